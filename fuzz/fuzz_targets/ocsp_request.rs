#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = revocd::ocsp::decode_der(data);
});
