//! Hot answers: each thread keeps its own copy of the pre-signed answers it
//! served last, in front of the answer store.
//!
//! A hit in the store reads the issuer's state and the window's table under
//! their locks and expands the answer from its compact form; when the cores
//! ask for the same answers (a popular certificate, a CDN revalidating) they
//! contend for those locks' cache lines on every request. A hot answer is
//! found with no lock and no shared write: the thread's own direct-mapped
//! table of [`SLOTS`] answers, keyed by (responder, window, signer
//! generation, issuer, hash, serial), and valid only while the serial's
//! change stamp ([`crate::state::IssuerState::stamp`]) is the one it was
//! stored under. The stamp is read before the state, and a change moves it
//! before it is acknowledged, so no answer from before an acknowledged
//! change is served from here (the store's revision rule, kept).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::signed::Signed;
use crate::pki::HashAlg;

/// Answers each thread keeps: a power of two. About 850 bytes each with
/// the `certs` field, so under 1 MB a thread that answers.
const SLOTS: usize = 1024;
/// Serial content octets a key holds inline (RFC 5280's 20 and a sign
/// octet); longer serials are not kept here.
const SERIAL_MAX: usize = 21;

/// A distinct id per responder, so that responders sharing a thread (tests,
/// benches) never see each other's answers.
pub fn next_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A serial's INTEGER content held inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inline {
    len: u8,
    bytes: [u8; SERIAL_MAX],
}

impl Inline {
    /// `None` for a serial too long to hold inline.
    fn new(content: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; SERIAL_MAX];
        bytes.get_mut(..content.len())?.copy_from_slice(content);
        Some(Self {
            len: content.len() as u8,
            bytes,
        })
    }

    fn get(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    owner: u64,
    window: i64,
    generation: u64,
    issuer: u32,
    alg: u8,
    serial: Inline,
}

impl Key {
    /// `content` is the serial's INTEGER content; `None` for a serial too
    /// long to hold inline.
    pub fn new(
        owner: u64,
        window: i64,
        generation: u64,
        issuer: usize,
        alg: HashAlg,
        content: &[u8],
    ) -> Option<Self> {
        Some(Self {
            owner,
            window,
            generation,
            issuer: u32::try_from(issuer).ok()?,
            alg: alg as u8,
            serial: Inline::new(content)?,
        })
    }

    fn slot(&self) -> usize {
        let h = self.owner ^ (self.window as u64).rotate_left(17) ^ self.generation;
        let h = (h ^ u64::from(self.issuer) ^ (u64::from(self.alg) << 32)).wrapping_mul(K);
        (mix(h, self.serial.get()) >> 32) as usize & (SLOTS - 1)
    }
}

/// `h` with `bytes` mixed in, eight at a time.
fn mix(mut h: u64, bytes: &[u8]) -> u64 {
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

struct Slot {
    key: Key,
    stamp: u64,
    /// What `Responder::count_answer` counts it as.
    status_row: u8,
    signed: Signed,
}

thread_local! {
    static HOT: RefCell<Box<[Option<Slot>]>> =
        RefCell::new((0..SLOTS).map(|_| None).collect());
}

/// The answer this thread kept for `key`, if it was kept under `stamp`.
pub fn get(key: &Key, stamp: u64) -> Option<(Signed, u8)> {
    HOT.with(|hot| {
        let hot = hot.borrow();
        match hot.get(key.slot())? {
            Some(s) if s.key == *key && s.stamp == stamp => Some((s.signed.clone(), s.status_row)),
            _ => None,
        }
    })
}

/// Keeps `signed` for `key` under `stamp` (read before the state that
/// `signed` was found for), in place of whatever shared its slot. The bytes
/// are copied, so that a kept answer holds on to no store or arena buffer.
pub fn put(key: Key, stamp: u64, status_row: u8, signed: &Signed) {
    HOT.with(|hot| {
        let mut hot = hot.borrow_mut();
        if let Some(slot) = hot.get_mut(key.slot()) {
            *slot = Some(Slot {
                key,
                stamp,
                status_row,
                signed: signed.detached(),
            });
        }
    })
}

/// What a GET path asks, as the responder resolved it: the single CertID's
/// issuer, hash and serial. A path of the plain shape (one CertID, nothing
/// else; see `request::decode_single`) always asks the same of the same
/// responder, so its base64, its DER and its issuer lookup need not be
/// repeated while it stays in the thread's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub issuer: usize,
    pub alg: HashAlg,
    serial: Inline,
}

impl Asked {
    /// `None` for a serial too long to hold inline.
    pub fn new(issuer: usize, alg: HashAlg, content: &[u8]) -> Option<Self> {
        Some(Self {
            issuer,
            alg,
            serial: Inline::new(content)?,
        })
    }

    /// The serial's INTEGER content.
    pub fn serial(&self) -> &[u8] {
        self.serial.get()
    }
}

/// GET paths each thread remembers: a power of two.
const PATH_SLOTS: usize = 1024;
/// Longer paths are not remembered (a single-CertID request is 100-170
/// base64 characters).
const PATH_MAX: usize = 256;

struct PathSlot {
    owner: u64,
    /// Reused in place by the next path that takes the slot.
    path: String,
    asked: Asked,
}

thread_local! {
    static PATHS: RefCell<Box<[Option<PathSlot>]>> =
        RefCell::new((0..PATH_SLOTS).map(|_| None).collect());
}

fn path_slot(owner: u64, path: &str) -> usize {
    (mix(owner.wrapping_mul(K), path.as_bytes()) >> 32) as usize & (PATH_SLOTS - 1)
}

/// What `path` asked of responder `owner`, if this thread remembers it.
pub fn asked(owner: u64, path: &str) -> Option<Asked> {
    PATHS.with(|paths| match paths.borrow().get(path_slot(owner, path))? {
        Some(s) if s.owner == owner && *s.path == *path => Some(s.asked),
        _ => None,
    })
}

/// Remembers that `path` asked `asked` of responder `owner`.
pub fn remember(owner: u64, path: &str, asked: Asked) {
    if path.len() > PATH_MAX {
        return;
    }
    PATHS.with(
        |paths| match paths.borrow_mut().get_mut(path_slot(owner, path)) {
            Some(Some(slot)) => {
                slot.owner = owner;
                slot.path.clear();
                slot.path.push_str(path);
                slot.asked = asked;
            }
            Some(empty) => {
                *empty = Some(PathSlot {
                    owner,
                    path: path.to_owned(),
                    asked,
                })
            }
            None => {}
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Serial;

    fn signed(tag: &[u8]) -> Signed {
        Signed::new(tag, &bytes::Bytes::from_static(b"C"), 10, 20, 30)
    }

    fn key(owner: u64, serial: &str) -> Key {
        let s = Serial::from_hex(serial).expect("hex");
        Key::new(owner, 7, 1, 0, HashAlg::Sha1, s.content()).expect("key")
    }

    #[test]
    fn a_kept_answer_is_served_only_under_its_stamp_and_key() {
        let owner = next_owner();
        put(key(owner, "0A"), 5, 0, &signed(b"answer-0A"));
        let (got, row) = get(&key(owner, "0A"), 5).expect("kept");
        assert_eq!(got.to_der(), b"answer-0AC");
        assert_eq!(got.etag(), signed(b"answer-0A").etag());
        assert_eq!(row, 0);
        // The serial changed since: its stamp moved on.
        assert!(get(&key(owner, "0A"), 6).is_none());
        // Another serial, responder, window or generation: not this answer.
        assert!(get(&key(owner, "0B"), 5).is_none());
        assert!(get(&key(next_owner(), "0A"), 5).is_none());
        let s = [0x0a];
        for other in [
            Key::new(owner, 8, 1, 0, HashAlg::Sha1, &s),
            Key::new(owner, 7, 2, 0, HashAlg::Sha1, &s),
            Key::new(owner, 7, 1, 1, HashAlg::Sha1, &s),
            Key::new(owner, 7, 1, 0, HashAlg::Sha256, &s),
        ] {
            assert!(get(&other.expect("key"), 5).is_none());
        }
    }

    #[test]
    fn a_path_is_remembered_for_its_responder_only() {
        let owner = next_owner();
        let asked = Asked::new(3, HashAlg::Sha256, &[0x0a, 0x0b]).expect("fits");
        assert!(super::asked(owner, "/MEMw").is_none());
        remember(owner, "/MEMw", asked);
        assert_eq!(super::asked(owner, "/MEMw"), Some(asked));
        assert_eq!(asked.serial(), [0x0a, 0x0b]);
        assert!(super::asked(owner, "/MEMx").is_none());
        assert!(super::asked(next_owner(), "/MEMw").is_none());
        let long = "A".repeat(PATH_MAX + 1);
        remember(owner, &long, asked);
        assert!(super::asked(owner, &long).is_none());
    }

    #[test]
    fn serials_longer_than_a_slot_holds_are_not_kept() {
        assert!(Key::new(1, 0, 0, 0, HashAlg::Sha1, &[0x11; 22]).is_none());
    }
}
