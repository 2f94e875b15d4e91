//! The answer table file format, version 1: pure encoding and decoding,
//! no IO (the file table in `filetable` does the reading and writing).
//!
//! One file per window holds that window's pre-signed answers. All
//! integers are little-endian.
//!
//! ```text
//! header      64 bytes   magic "revocdAT", version, window index/start/end, CRC-32
//! records     ...        one per answer, appended as the pre-signer signs
//! signers     ...        who signed the records (issuer, responder key, certs)
//! references  ...        the reference answers records are differences from
//! index       48 x n     the live record of every (signer, hash, serial)
//! footer      64 bytes   section lengths, their CRC-32s, CRC-32
//! ```
//!
//! A record carries its own length and CRC-32, the key it answers for, the
//! status its answer states (the "claim"), thisUpdate and nextUpdate as
//! offsets from the window's start, and the answer in compact form
//! (`compact`: its ETag digest and where its DER differs from a reference
//! answer; the DER never includes the signer's shared `certs`, which the
//! signers section holds once). Nothing in the file depends on the process that
//! wrote it: signers are named by issuer id and key hashes, answers by the
//! status they state, so a file can be loaded by a later process (or,
//! later, by a replica that holds no keys) and checked against its state.

use crate::clock::Window;
use crate::ocsp::response::CertStatus;
use crate::pki::HashAlg;
use crate::state::Reason;

pub const MAGIC: &[u8; 8] = b"revocdAT";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const FOOTER_LEN: usize = 64;
/// A record's fixed part before the stored answer.
pub const RECORD_HEAD: usize = 52;
/// One index entry.
pub const INDEX_ENTRY: usize = 48;
/// Serial content octets a key holds: 20 (RFC 5280) plus a sign octet.
pub const SERIAL_MAX: usize = 21;
/// The largest record accepted (an answer is a few hundred bytes; an RSA-4096
/// one about 1 KB).
pub const RECORD_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("too short for a table ({0} bytes)")]
    TooShort(u64),
    #[error("not a revocd answer table (bad magic in the {0})")]
    Magic(&'static str),
    #[error("format version {0}, this revocd reads version {VERSION}")]
    Version(u32),
    #[error("the {0}'s checksum does not match")]
    Checksum(&'static str),
    #[error("the {section} lies outside the file or overlaps another section")]
    Layout { section: &'static str },
    #[error("written for window {found}, expected window {expected}")]
    Window { found: i64, expected: i64 },
    #[error("record at offset {offset}: {why}")]
    Record { offset: u64, why: &'static str },
    #[error("index entry {entry}: {why}")]
    Index { entry: u64, why: &'static str },
    #[error("signer {signer}: {why}")]
    Signer { signer: usize, why: &'static str },
}

/// What an answer states about its certificate: a record is served only
/// while the state still says the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    kind: u8,
    reason: u8,
    at: i64,
}

const NO_REASON: u8 = 0xff;

impl Claim {
    pub fn of(status: &CertStatus) -> Self {
        match status {
            CertStatus::Good => Self {
                kind: 0,
                reason: NO_REASON,
                at: 0,
            },
            CertStatus::Revoked { at, reason } => Self {
                kind: 1,
                reason: reason.map_or(NO_REASON, |r| r as u8),
                at: *at,
            },
            CertStatus::Unknown => Self {
                kind: 2,
                reason: NO_REASON,
                at: 0,
            },
        }
    }

    fn encode(self, out: &mut [u8]) {
        out[0] = self.kind;
        out[1] = self.reason;
        out[2] = 0;
        out[3..11].copy_from_slice(&self.at.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let kind = b[0];
        let reason = b[1];
        let valid_reason = reason == NO_REASON || Reason::ALL.iter().any(|r| *r as u8 == reason);
        if kind > 2 || !valid_reason {
            return None;
        }
        Some(Self {
            kind,
            reason,
            at: i64_at(b, 3),
        })
    }
}

/// (signer, hash, serial): what a record answers for, in file terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    pub signer: u16,
    pub alg: HashAlg,
    pub len: u8,
    pub serial: [u8; SERIAL_MAX],
}

impl FileKey {
    pub fn new(signer: u16, alg: HashAlg, content: &[u8]) -> Option<Self> {
        if content.is_empty() || content.len() > SERIAL_MAX {
            return None;
        }
        let mut serial = [0u8; SERIAL_MAX];
        serial[..content.len()].copy_from_slice(content);
        Some(Self {
            signer,
            alg,
            len: content.len() as u8,
            serial,
        })
    }

    pub fn serial(&self) -> &[u8] {
        &self.serial[..usize::from(self.len)]
    }

    /// 25 bytes: signer, hash, length, serial.
    fn encode(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.signer.to_le_bytes());
        out[2] = alg_code(self.alg);
        out[3] = self.len;
        out[4..4 + SERIAL_MAX].copy_from_slice(&self.serial);
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let alg = alg_of(b[2])?;
        let len = b[3];
        if len == 0 || usize::from(len) > SERIAL_MAX {
            return None;
        }
        let mut serial = [0u8; SERIAL_MAX];
        serial[..usize::from(len)].copy_from_slice(&b[4..4 + usize::from(len)]);
        Some(Self {
            signer: u16::from_le_bytes([b[0], b[1]]),
            alg,
            len,
            serial,
        })
    }
}

fn alg_code(alg: HashAlg) -> u8 {
    match alg {
        HashAlg::Sha1 => 1,
        HashAlg::Sha256 => 2,
        HashAlg::Sha384 => 3,
        HashAlg::Sha512 => 4,
    }
}

fn alg_of(code: u8) -> Option<HashAlg> {
    match code {
        1 => Some(HashAlg::Sha1),
        2 => Some(HashAlg::Sha256),
        3 => Some(HashAlg::Sha384),
        4 => Some(HashAlg::Sha512),
        _ => None,
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    u64_at(b, at) as i64
}

/// The file's first 64 bytes.
pub fn encode_header(window: Window) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&window.index.to_le_bytes());
    h[24..32].copy_from_slice(&window.start.to_le_bytes());
    h[32..40].copy_from_slice(&window.end.to_le_bytes());
    let crc = crc32fast::hash(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a header written for `window`.
pub fn check_header(h: &[u8], window: Window) -> Result<(), FormatError> {
    if h.len() < HEADER_LEN {
        return Err(FormatError::TooShort(h.len() as u64));
    }
    if &h[0..8] != MAGIC {
        return Err(FormatError::Magic("header"));
    }
    if crc32fast::hash(&h[..60]) != u32_at(h, 60) {
        return Err(FormatError::Checksum("header"));
    }
    let version = u32_at(h, 8);
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    let (index, start, end) = (i64_at(h, 16), i64_at(h, 24), i64_at(h, 32));
    if index != window.index || start != window.start || end != window.end {
        return Err(FormatError::Window {
            found: index,
            expected: window.index,
        });
    }
    Ok(())
}

/// One record's fixed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    pub key: FileKey,
    pub claim: Claim,
    /// thisUpdate and nextUpdate, seconds after the window's start.
    pub this_off: u32,
    pub next_off: u32,
}

/// Appends one record (head, then `answer`) to `out`; returns its length.
pub fn encode_record(out: &mut Vec<u8>, head: &RecordHead, answer: &[u8]) -> usize {
    let len = RECORD_HEAD + answer.len();
    let start = out.len();
    out.resize(start + RECORD_HEAD, 0);
    let h = &mut out[start..];
    h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    head.key.encode(&mut h[8..33]);
    head.claim.encode(&mut h[33..44]);
    h[44..48].copy_from_slice(&head.this_off.to_le_bytes());
    h[48..52].copy_from_slice(&head.next_off.to_le_bytes());
    out.extend_from_slice(answer);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    len
}

/// Decodes the record `b` (exactly one record's bytes, read at `offset`):
/// its head and the stored answer's range within `b`.
pub fn decode_record(
    b: &[u8],
    offset: u64,
) -> Result<(RecordHead, std::ops::Range<usize>), FormatError> {
    let bad = |why| FormatError::Record { offset, why };
    if b.len() < RECORD_HEAD {
        return Err(bad("shorter than a record head"));
    }
    if u32_at(b, 0) as usize != b.len() {
        return Err(bad("its length does not match the index"));
    }
    if crc32fast::hash(&b[8..]) != u32_at(b, 4) {
        return Err(bad("checksum does not match"));
    }
    let key = FileKey::decode(&b[8..33]).ok_or_else(|| bad("bad hash code or serial length"))?;
    let claim = Claim::decode(&b[33..44]).ok_or_else(|| bad("bad status or reason"))?;
    Ok((
        RecordHead {
            key,
            claim,
            this_off: u32_at(b, 44),
            next_off: u32_at(b, 48),
        },
        RECORD_HEAD..b.len(),
    ))
}

/// The length a record starting with `prefix` (at least 4 bytes) says it
/// has, for a sequential scan.
pub fn record_len(prefix: &[u8]) -> usize {
    u32_at(prefix, 0) as usize
}

/// Who signed a file's records, in terms a later process can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfo {
    pub issuer_id: String,
    /// SHA-1 of the issuer's public key (the CertID issuerKeyHash).
    pub issuer_key_sha1: [u8; 20],
    /// SHA-1 of the responder's public key (ResponderID byKey).
    pub responder_key_sha1: [u8; 20],
    /// The responses' `certs` field, shared by all of this signer's records.
    pub certs: Vec<u8>,
}

pub fn encode_signers(signers: &[SignerInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(signers.len() as u32).to_le_bytes());
    for s in signers {
        out.extend_from_slice(&(s.issuer_id.len() as u16).to_le_bytes());
        out.extend_from_slice(s.issuer_id.as_bytes());
        out.extend_from_slice(&s.issuer_key_sha1);
        out.extend_from_slice(&s.responder_key_sha1);
        out.extend_from_slice(&(s.certs.len() as u32).to_le_bytes());
        out.extend_from_slice(&s.certs);
    }
    out
}

pub fn decode_signers(b: &[u8]) -> Result<Vec<SignerInfo>, FormatError> {
    let short = |signer| FormatError::Signer {
        signer,
        why: "the section ends inside it",
    };
    let take = |at: &mut usize, n: usize, signer: usize| -> Result<std::ops::Range<usize>, _> {
        let end = at
            .checked_add(n)
            .filter(|e| *e <= b.len())
            .ok_or(short(signer))?;
        let r = *at..end;
        *at = end;
        Ok(r)
    };
    let mut at = 0;
    let count = u32_at(&b[take(&mut at, 4, 0)?], 0) as usize;
    let mut out = Vec::with_capacity(count.min(1024));
    for n in 0..count {
        let id_len = usize::from(u16_at(&b[take(&mut at, 2, n)?], 0));
        let issuer_id = std::str::from_utf8(&b[take(&mut at, id_len, n)?])
            .map_err(|_| FormatError::Signer {
                signer: n,
                why: "issuer id is not UTF-8",
            })?
            .to_string();
        let mut issuer_key_sha1 = [0u8; 20];
        issuer_key_sha1.copy_from_slice(&b[take(&mut at, 20, n)?]);
        let mut responder_key_sha1 = [0u8; 20];
        responder_key_sha1.copy_from_slice(&b[take(&mut at, 20, n)?]);
        let certs_len = u32_at(&b[take(&mut at, 4, n)?], 0) as usize;
        let certs = b[take(&mut at, certs_len, n)?].to_vec();
        out.push(SignerInfo {
            issuer_id,
            issuer_key_sha1,
            responder_key_sha1,
            certs,
        });
    }
    if at != b.len() {
        return Err(FormatError::Layout { section: "signers" });
    }
    Ok(out)
}

/// One index entry: a live record, its key and claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: FileKey,
    pub claim: Claim,
    pub offset: u64,
    pub len: u32,
}

pub fn encode_index_entry(out: &mut Vec<u8>, e: &IndexEntry) {
    let start = out.len();
    out.resize(start + INDEX_ENTRY, 0);
    let b = &mut out[start..];
    e.key.encode(&mut b[0..25]);
    e.claim.encode(&mut b[25..36]);
    b[36..44].copy_from_slice(&e.offset.to_le_bytes());
    b[44..48].copy_from_slice(&e.len.to_le_bytes());
}

/// Decodes index entry number `n` (`b` is its 48 bytes) of a file whose
/// records end at `records_end`, with `signers` signers.
pub fn decode_index_entry(
    b: &[u8],
    n: u64,
    records_end: u64,
    signers: usize,
) -> Result<IndexEntry, FormatError> {
    let bad = |why| FormatError::Index { entry: n, why };
    let key = FileKey::decode(&b[0..25]).ok_or_else(|| bad("bad hash code or serial length"))?;
    let claim = Claim::decode(&b[25..36]).ok_or_else(|| bad("bad status or reason"))?;
    let (offset, len) = (u64_at(b, 36), u32_at(b, 44));
    if usize::from(key.signer) >= signers {
        return Err(bad("names a signer the file does not have"));
    }
    if (len as usize) < RECORD_HEAD || len as usize > RECORD_MAX {
        return Err(bad("record length out of range"));
    }
    if offset < HEADER_LEN as u64 || offset.saturating_add(u64::from(len)) > records_end {
        return Err(bad("record lies outside the records"));
    }
    Ok(IndexEntry {
        key,
        claim,
        offset,
        len,
    })
}

/// The references section: count, then each reference's length and bytes.
pub fn encode_references(refs: &[bytes::Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(refs.len() as u32).to_le_bytes());
    for r in refs {
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

pub fn decode_references(b: &[u8]) -> Result<Vec<bytes::Bytes>, FormatError> {
    let bad = FormatError::Layout {
        section: "references",
    };
    let count = u32_at(b.get(..4).ok_or(bad.clone())?, 0) as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(count.min(65_536));
    for _ in 0..count {
        let len = u32_at(b.get(at..at + 4).ok_or(bad.clone())?, 0) as usize;
        let bytes = b
            .get(at + 4..(at + 4).saturating_add(len))
            .ok_or(bad.clone())?;
        out.push(bytes::Bytes::copy_from_slice(bytes));
        at += 4 + len;
    }
    if at != b.len() {
        return Err(bad);
    }
    Ok(out)
}

/// Where the sections are, as the footer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub records_end: u64,
    pub signers_len: u64,
    pub references_len: u64,
    pub index_count: u64,
    pub signers_crc: u32,
    pub references_crc: u32,
    pub index_crc: u32,
}

impl Footer {
    pub fn signers_offset(&self) -> u64 {
        self.records_end
    }

    pub fn references_offset(&self) -> u64 {
        self.records_end + self.signers_len
    }

    pub fn index_offset(&self) -> u64 {
        self.references_offset() + self.references_len
    }

    pub fn index_len(&self) -> u64 {
        self.index_count * INDEX_ENTRY as u64
    }
}

pub fn encode_footer(f: &Footer) -> [u8; FOOTER_LEN] {
    let mut b = [0u8; FOOTER_LEN];
    b[0..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&f.records_end.to_le_bytes());
    b[16..24].copy_from_slice(&f.signers_len.to_le_bytes());
    b[24..32].copy_from_slice(&f.index_count.to_le_bytes());
    b[32..36].copy_from_slice(&f.signers_crc.to_le_bytes());
    b[36..40].copy_from_slice(&f.index_crc.to_le_bytes());
    b[40..48].copy_from_slice(&f.references_len.to_le_bytes());
    b[48..52].copy_from_slice(&f.references_crc.to_le_bytes());
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes the footer of a file of `file_len` bytes and checks that the
/// sections it names tile the file exactly.
pub fn decode_footer(b: &[u8], file_len: u64) -> Result<Footer, FormatError> {
    if file_len < (HEADER_LEN + FOOTER_LEN) as u64 || b.len() < FOOTER_LEN {
        return Err(FormatError::TooShort(file_len));
    }
    if &b[0..8] != MAGIC {
        return Err(FormatError::Magic("footer"));
    }
    if crc32fast::hash(&b[..60]) != u32_at(b, 60) {
        return Err(FormatError::Checksum("footer"));
    }
    let f = Footer {
        records_end: u64_at(b, 8),
        signers_len: u64_at(b, 16),
        index_count: u64_at(b, 24),
        signers_crc: u32_at(b, 32),
        index_crc: u32_at(b, 36),
        references_len: u64_at(b, 40),
        references_crc: u32_at(b, 48),
    };
    let end = f
        .records_end
        .checked_add(f.signers_len)
        .and_then(|e| e.checked_add(f.references_len))
        .and_then(|e| e.checked_add(f.index_count.checked_mul(INDEX_ENTRY as u64)?))
        .and_then(|e| e.checked_add(FOOTER_LEN as u64));
    if f.records_end < HEADER_LEN as u64 || end != Some(file_len) {
        return Err(FormatError::Layout { section: "footer" });
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window() -> Window {
        crate::clock::Windows::new(3600).by_index(490_000)
    }

    fn head(serial: &[u8]) -> RecordHead {
        RecordHead {
            key: FileKey::new(1, HashAlg::Sha256, serial).expect("key"),
            claim: Claim::of(&CertStatus::Revoked {
                at: 1_700_000_000,
                reason: Some(Reason::KeyCompromise),
            }),
            this_off: 10,
            next_off: 10 + 8 * 3600,
        }
    }

    #[test]
    fn every_section_round_trips() {
        assert!(check_header(&encode_header(window()), window()).is_ok());
        let mut out = vec![0u8; 3];
        let len = encode_record(&mut out, &head(&[0x0a, 0x0b]), b"etag and DER");
        let (h, body) = decode_record(&out[3..], 3).expect("record");
        assert_eq!(h, head(&[0x0a, 0x0b]));
        assert_eq!(&out[3..][body], b"etag and DER");
        assert_eq!(record_len(&out[3..]), len);
        let signers = vec![SignerInfo {
            issuer_id: "demo".into(),
            issuer_key_sha1: [1; 20],
            responder_key_sha1: [2; 20],
            certs: b"certs".to_vec(),
        }];
        assert_eq!(decode_signers(&encode_signers(&signers)), Ok(signers));
        let entry = IndexEntry {
            key: head(&[7]).key,
            claim: Claim::of(&CertStatus::Good),
            offset: 64,
            len: 100,
        };
        let mut b = Vec::new();
        encode_index_entry(&mut b, &entry);
        assert_eq!(decode_index_entry(&b, 0, 1000, 2), Ok(entry));
        let footer = Footer {
            records_end: 1000,
            signers_len: 50,
            references_len: 30,
            index_count: 2,
            signers_crc: 5,
            references_crc: 7,
            index_crc: 6,
        };
        let file_len = 1000 + 50 + 30 + 96 + FOOTER_LEN as u64;
        assert_eq!(decode_footer(&encode_footer(&footer), file_len), Ok(footer));
        let refs = vec![bytes::Bytes::from_static(b"one"), bytes::Bytes::new()];
        assert_eq!(decode_references(&encode_references(&refs)), Ok(refs));
    }

    #[test]
    fn a_flipped_bit_or_another_window_is_refused_by_name() {
        let mut h = encode_header(window());
        h[20] ^= 1;
        assert_eq!(
            check_header(&h, window()),
            Err(FormatError::Checksum("header"))
        );
        let other = crate::clock::Windows::new(3600).by_index(490_001);
        assert!(matches!(
            check_header(&encode_header(other), window()),
            Err(FormatError::Window { .. })
        ));
        let mut out = Vec::new();
        encode_record(&mut out, &head(&[1]), b"answer");
        out[55] ^= 0x40;
        assert!(matches!(
            decode_record(&out, 64),
            Err(FormatError::Record {
                offset: 64,
                why: "checksum does not match"
            })
        ));
        let entry = IndexEntry {
            key: head(&[7]).key,
            claim: Claim::of(&CertStatus::Good),
            offset: 990,
            len: 100,
        };
        let mut b = Vec::new();
        encode_index_entry(&mut b, &entry);
        assert!(decode_index_entry(&b, 3, 1000, 2).is_err(), "past the end");
        assert!(decode_index_entry(&b, 3, 2000, 1).is_err(), "no signer 1");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = check_header(&bytes, window());
            let _ = decode_record(&bytes, 64);
            let _ = decode_signers(&bytes);
            let _ = decode_references(&bytes);
            if bytes.len() >= INDEX_ENTRY {
                let _ = decode_index_entry(&bytes[..INDEX_ENTRY], 0, 1 << 20, 3);
            }
            let _ = decode_footer(&bytes, bytes.len() as u64);
            if bytes.len() >= 4 {
                let _ = record_len(&bytes);
            }
        }
    }
}
