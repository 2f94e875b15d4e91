#![no_main]
// The CRL parser reads what other writers put in the store.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = revocd::crl::build::entries_of(data);
    let _ = revocd::asn1::read_tlv(data);
});
