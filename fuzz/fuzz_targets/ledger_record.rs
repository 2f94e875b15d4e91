#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = revocd::ledger::record::decode(data);
    let _ = revocd::ledger::recover::last_segment_ending(data);
    let _ = revocd::ledger::record::decode_snapshot(data);
    let _ = revocd::ledger::record::decode_batch(data);
    let _ = revocd::sources::index::parse(&String::from_utf8_lossy(data), 1_700_000_000);
});
