#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = revocd::sources::aws_events::event::parse(&String::from_utf8_lossy(data));
});
