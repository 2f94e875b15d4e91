//! The answer store: pre-signed single-CertID answers, one table per
//! window.
//!
//! Pre-signed answers are produced in bulk, live exactly one window, are
//! replaced only when their serial changes, and all die together at the
//! window's end: a general cache is the wrong shape for them. Here each
//! window has a table of shards (16, or as many as the pre-signer's plan
//! needs for each shard's index to be about 80% full: hashbrown sizes by
//! powers of two); a shard holds its answers' bytes (ETag
//! then DER, without the signer's shared `certs` suffix) in a few large
//! chunks, one per batch the pre-signer stores, and an index from
//! (issuer, hash, serial) to a 64-byte slot: no heap allocation per answer.
//! A changed serial's new answer is appended and its slot replaced; the old
//! bytes stay until the table is dropped. Every slot carries the entry
//! revision and signer generation it was signed for, and a lookup must
//! match both, so no answer signed before an acknowledged change (or a key
//! rotation) is reachable.
//!
//! Tables are dropped once their window is over, except the previous
//! window's while an HSM signer is down (its answers are still valid and
//! are served when nothing newer can be signed).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};

use super::responder::Signed;
use crate::clock::Window;
use crate::pki::HashAlg;
use crate::state::Serial;

/// Shards of a table nobody sized in advance.
const SHARDS: usize = 16;
/// Answers per shard when a table is sized for a known count: 80% of a
/// power of two, so the index's buckets (a power of two each) are about 80%
/// full instead of anywhere from 44% to 88%.
const PER_SHARD: usize = (1 << 16) * 4 / 5;
/// Serial content octets a key holds inline: 20 (RFC 5280's maximum) plus
/// a sign octet. Longer serials are not stored here.
const SERIAL_MAX: usize = 21;

/// (issuer, hash, serial), inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    issuer: u16,
    alg: u8,
    len: u8,
    serial: [u8; SERIAL_MAX],
}

impl Key {
    fn new(issuer: usize, alg: HashAlg, serial: &Serial) -> Option<Self> {
        let content = serial.content();
        if content.len() > SERIAL_MAX {
            return None;
        }
        let mut bytes = [0u8; SERIAL_MAX];
        bytes[..content.len()].copy_from_slice(content);
        Some(Self {
            issuer: u16::try_from(issuer).ok()?,
            alg: alg as u8,
            len: content.len() as u8,
            serial: bytes,
        })
    }
}

/// Where one answer is and what it was signed for.
#[derive(Clone, Copy)]
struct Slot {
    revision: u64,
    generation: u32,
    chunk: u32,
    offset: u32,
    len: u32,
    signer: u16,
    /// thisUpdate and nextUpdate as seconds after the window's start.
    this_off: u32,
    next_off: u32,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Key, Slot, FastHash>,
    chunks: Vec<Bytes>,
    /// The signers' shared `certs` fields, by slot `signer`.
    signers: Vec<Bytes>,
}

/// FNV-1a over the key's few bytes: keys are not attacker-chosen in bulk
/// (the pre-signer fills the table; a request can only look up), and a hit
/// hashes once.
#[derive(Clone, Copy, Default)]
struct FastHash;

impl BuildHasher for FastHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // Spread the low bits hashbrown uses for its groups.
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// One window's answers.
struct Table {
    window: Window,
    shards: Vec<RwLock<Shard>>,
    answers: AtomicUsize,
    bytes: AtomicUsize,
}

impl Table {
    fn new(window: Window) -> Self {
        Self::sized(window, 0)
    }

    /// A table for about `answers` answers, its index allocated up front.
    fn sized(window: Window, answers: usize) -> Self {
        let count = answers.div_ceil(PER_SHARD).max(SHARDS);
        let each = answers.div_ceil(count);
        Self {
            window,
            shards: (0..count)
                .map(|_| {
                    RwLock::new(Shard {
                        map: HashMap::with_capacity_and_hasher(each, FastHash),
                        ..Shard::default()
                    })
                })
                .collect(),
            answers: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    fn shard_of(&self, key: &Key) -> usize {
        (FastHash.hash_one(key) >> 7) as usize % self.shards.len()
    }
}

/// One answer to store.
pub struct Presigned {
    pub issuer: usize,
    pub alg: HashAlg,
    pub serial: Serial,
    pub revision: u64,
    pub generation: u64,
    pub signed: Signed,
}

/// Every window's table.
#[derive(Default)]
pub struct AnswerStore {
    tables: RwLock<BTreeMap<i64, Arc<Table>>>,
}

impl std::fmt::Debug for AnswerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (answers, bytes) = self.usage();
        f.debug_struct("AnswerStore")
            .field("answers", &answers)
            .field("bytes", &bytes)
            .finish()
    }
}

impl AnswerStore {
    fn table(&self, window: i64) -> Option<Arc<Table>> {
        self.tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&window)
            .cloned()
    }

    /// The answer for (issuer, alg, serial) in `window`, if it was signed
    /// for this entry `revision` under signer `generation`.
    pub fn get(
        &self,
        window: i64,
        issuer: usize,
        alg: HashAlg,
        serial: &Serial,
        revision: u64,
        generation: u64,
    ) -> Option<Signed> {
        let key = Key::new(issuer, alg, serial)?;
        let table = self.table(window)?;
        let shard = table.shards[table.shard_of(&key)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = shard.map.get(&key)?;
        if slot.revision != revision || slot.generation != generation as u32 {
            return None;
        }
        let chunk = shard.chunks.get(slot.chunk as usize)?;
        let start = slot.offset as usize;
        let buf = chunk.slice(start..start + slot.len as usize);
        let certs = shard.signers.get(usize::from(slot.signer))?.clone();
        let base = table.window.start;
        Some(Signed::from_parts(
            buf,
            certs,
            base + i64::from(slot.this_off),
            base + i64::from(slot.next_off),
            table.window.end,
        ))
    }

    /// Stores `answers` signed for `window`, replacing older answers of the
    /// same keys. Answers a slot cannot describe (a serial over 21 octets,
    /// times before the window) are left out; the caller signs those on
    /// demand.
    pub fn insert(&self, window: Window, answers: Vec<Presigned>) {
        if answers.is_empty() {
            return;
        }
        let table = {
            let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                tables
                    .entry(window.index)
                    .or_insert_with(|| Arc::new(Table::new(window))),
            )
        };
        let mut by_shard: Vec<Vec<(Key, Presigned)>> =
            (0..table.shards.len()).map(|_| Vec::new()).collect();
        for a in answers {
            let Some(key) = Key::new(a.issuer, a.alg, &a.serial) else {
                continue;
            };
            let fits = |t: i64| t >= window.start && u32::try_from(t - window.start).is_ok();
            if !fits(a.signed.this_update) || !fits(a.signed.next_update) {
                continue;
            }
            by_shard[table.shard_of(&key)].push((key, a));
        }
        for (n, items) in by_shard.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let mut chunk =
                BytesMut::with_capacity(items.iter().map(|(_, a)| a.signed.stored_len()).sum());
            let mut placed = Vec::with_capacity(items.len());
            for (key, a) in items {
                let offset = chunk.len();
                chunk.extend_from_slice(a.signed.stored_bytes());
                placed.push((key, a, offset));
            }
            let chunk = chunk.freeze();
            let added_bytes = chunk.len();
            let mut shard = table.shards[n]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let chunk_index = shard.chunks.len() as u32;
            shard.chunks.push(chunk);
            let mut added = 0usize;
            for (key, a, offset) in placed {
                let certs = a.signed.certs();
                let signer = match shard
                    .signers
                    .iter()
                    .position(|s| s.as_ptr() == certs.as_ptr() && s.len() == certs.len())
                {
                    Some(i) => i,
                    None => {
                        shard.signers.push(certs.clone());
                        shard.signers.len() - 1
                    }
                };
                let slot = Slot {
                    revision: a.revision,
                    generation: a.generation as u32,
                    chunk: chunk_index,
                    offset: offset as u32,
                    len: a.signed.stored_len() as u32,
                    signer: signer as u16,
                    this_off: (a.signed.this_update - window.start) as u32,
                    next_off: (a.signed.next_update - window.start) as u32,
                };
                if shard.map.insert(key, slot).is_none() {
                    added += 1;
                }
            }
            table.answers.fetch_add(added, Ordering::Relaxed);
            table.bytes.fetch_add(added_bytes, Ordering::Relaxed);
        }
    }

    /// Sizes `window`'s table for about `answers` answers before they come
    /// (the pre-signer knows its plan); a table already made stays as is.
    pub fn reserve(&self, window: Window, answers: usize) {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        tables
            .entry(window.index)
            .or_insert_with(|| Arc::new(Table::sized(window, answers)));
    }

    /// Drops the tables of windows that are over: all before `current - 1`,
    /// and the previous window's unless `keep_previous` (a signer is down
    /// and its answers are still valid).
    pub fn retire(&self, current: i64, keep_previous: bool) -> usize {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        let before = tables.len();
        let keep_from = if keep_previous { current - 1 } else { current };
        tables.retain(|w, _| *w >= keep_from);
        before - tables.len()
    }

    /// (answers, bytes of answers) held in every table.
    pub fn usage(&self) -> (u64, u64) {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        tables.values().fold((0, 0), |(n, b), t| {
            (
                n + t.answers.load(Ordering::Relaxed) as u64,
                b + t.bytes.load(Ordering::Relaxed) as u64,
            )
        })
    }

    /// Answers held for `window`.
    #[cfg(test)]
    fn answers_in(&self, window: i64) -> usize {
        self.table(window)
            .map_or(0, |t| t.answers.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(own: &[u8], certs: &Bytes, window: Window) -> Signed {
        Signed::new_for_tests(
            own,
            certs,
            window.start,
            window.start + 3600 * 8,
            window.end,
        )
    }

    #[test]
    fn answers_are_found_by_key_revision_and_generation_and_replaced_in_place() {
        let store = AnswerStore::default();
        let window = crate::clock::Windows::new(3600).by_index(500_000);
        let certs = Bytes::from_static(b"shared certs");
        let serial = Serial::from_hex("0A0B").expect("hex");
        let one = |revision, own: &[u8]| Presigned {
            issuer: 0,
            alg: HashAlg::Sha1,
            serial: serial.clone(),
            revision,
            generation: 0,
            signed: signed(own, &certs, window),
        };
        store.insert(window, vec![one(7, b"first answer")]);
        let got = store
            .get(window.index, 0, HashAlg::Sha1, &serial, 7, 0)
            .expect("stored");
        assert_eq!(
            got.to_der(),
            [&b"first answer"[..], b"shared certs"].concat()
        );
        assert_eq!(got.this_update, window.start);
        assert_eq!(got.window_end, window.end);
        // Another revision, hash, generation, window or issuer: not this one.
        assert!(store
            .get(window.index, 0, HashAlg::Sha1, &serial, 8, 0)
            .is_none());
        assert!(store
            .get(window.index, 0, HashAlg::Sha256, &serial, 7, 0)
            .is_none());
        assert!(store
            .get(window.index, 0, HashAlg::Sha1, &serial, 7, 1)
            .is_none());
        assert!(store
            .get(window.index + 1, 0, HashAlg::Sha1, &serial, 7, 0)
            .is_none());
        assert!(store
            .get(window.index, 1, HashAlg::Sha1, &serial, 7, 0)
            .is_none());
        // A change: the new answer replaces the slot, the old revision is gone.
        store.insert(window, vec![one(9, b"after the change")]);
        assert!(store
            .get(window.index, 0, HashAlg::Sha1, &serial, 7, 0)
            .is_none());
        let got = store
            .get(window.index, 0, HashAlg::Sha1, &serial, 9, 0)
            .expect("replaced");
        assert_eq!(&got.to_der()[..16], b"after the change");
        assert_eq!(store.usage().0, 1, "one slot, replaced");
        // The window's table goes once it is over.
        assert_eq!(store.retire(window.index + 1, true), 0);
        assert_eq!(store.retire(window.index + 1, false), 1);
        assert!(store
            .get(window.index, 0, HashAlg::Sha1, &serial, 9, 0)
            .is_none());
    }

    #[test]
    fn many_answers_from_many_batches_all_come_back() {
        let store = AnswerStore::default();
        let window = crate::clock::Windows::new(3600).by_index(500_001);
        // Sized for more shards than the default: lookups still find all.
        store.reserve(window, PER_SHARD * SHARDS + 1);
        let certs = Bytes::from_static(b"C");
        for batch in 0..20u32 {
            let answers = (0..256u32)
                .flat_map(|i| {
                    let serial = Serial::from_hex(&format!("{:X}", 0x1000_0000 + batch * 256 + i))
                        .expect("hex");
                    HashAlg::ALL
                        .into_iter()
                        .take(2)
                        .map(move |alg| (serial.clone(), alg))
                })
                .map(|(serial, alg)| Presigned {
                    issuer: 1,
                    alg,
                    signed: signed(
                        format!("{}-{}", serial.to_hex(), alg.name()).as_bytes(),
                        &certs,
                        window,
                    ),
                    serial,
                    revision: 1,
                    generation: 3,
                })
                .collect();
            store.insert(window, answers);
        }
        assert_eq!(store.answers_in(window.index), 20 * 256 * 2);
        assert_eq!(
            store.table(window.index).expect("table").shards.len(),
            SHARDS + 1
        );
        for n in (0..20 * 256u32).step_by(97) {
            let serial = Serial::from_hex(&format!("{:X}", 0x1000_0000 + n)).expect("hex");
            for alg in HashAlg::ALL.into_iter().take(2) {
                let got = store
                    .get(window.index, 1, alg, &serial, 1, 3)
                    .expect("present");
                let want = format!("{}-{}C", serial.to_hex(), alg.name());
                assert_eq!(got.to_der(), want.as_bytes());
            }
        }
    }
}
