#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = revocd::admin::parse_revocation(data, 1_800_000_000);
});
