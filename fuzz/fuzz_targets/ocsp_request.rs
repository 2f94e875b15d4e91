#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let full = revocd::ocsp::decode_der(data);
    // The hit path's in-place decoder answers only what the full decoder
    // reads the same way: one query, no nonce, no extension.
    if let Some(one) = revocd::ocsp::request::decode_single(data) {
        let full = full.expect("decode_single accepted what decode_der refuses");
        assert_eq!(full.queries.len(), 1);
        assert!(full.nonce.is_none() && full.unknown_critical.is_none());
        let q = &full.queries[0];
        assert_eq!(q.hash, Some(one.hash));
        assert_eq!(q.name_hash, one.name_hash);
        assert_eq!(q.key_hash, one.key_hash);
        assert_eq!(q.serial.content(), one.serial);
    }
});
