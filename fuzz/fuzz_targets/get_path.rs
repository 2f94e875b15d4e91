#![no_main]
libfuzzer_sys::fuzz_target!(|path: &str| {
    let decoded = revocd::ocsp::decode_get_path(path);
    if let Ok(der) = &decoded {
        let _ = revocd::ocsp::decode_der(der);
    }
    // Decoding in place gives what the allocating decoder gives.
    let mut buf = [0u8; 384];
    let in_place = revocd::ocsp::request::decode_get_path_in(path, &mut buf);
    assert_eq!(in_place.map(|d| d.into_owned()), decoded);
});
