#![no_main]
libfuzzer_sys::fuzz_target!(|path: &str| {
    if let Ok(der) = revocd::ocsp::decode_get_path(path) {
        let _ = revocd::ocsp::decode_der(&der);
    }
});
