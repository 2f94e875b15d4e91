//! The answer store: pre-signed single-CertID answers, one table per
//! window.
//!
//! Pre-signed answers are produced in bulk, live exactly one window, are
//! replaced only when their serial changes, and all die together at the
//! window's end: a general cache is the wrong shape for them. Here each
//! window has a table of shards (16, or as many as the pre-signer's plan
//! needs for each shard's index to be about 80% full: hashbrown sizes by
//! powers of two); a shard holds its answers in compact form (`compact`:
//! the ETag digest and where the DER, without the signer's shared `certs`,
//! differs from the table's reference answer of its shape) in a few large
//! chunks, one per batch the pre-signer stores, and an index from
//! (issuer, hash, serial) to a 64-byte slot: no heap allocation per answer.
//! A lookup expands the answer into one new buffer.
//! A changed serial's new answer is appended and its slot replaced; the old
//! bytes stay until the table is dropped. Every slot carries the entry
//! revision and signer generation it was signed for, and a lookup must
//! match both, so no answer signed before an acknowledged change (or a key
//! rotation) is reachable.
//!
//! Tables are dropped once their window is over, except the previous
//! window's while an HSM signer is down (its answers are still valid and
//! are served when nothing newer can be signed).
//!
//! With `ocsp.answer-tables = "files"` the pre-signer's answers go to a
//! file per window instead (`filetable`), and only a compact index stays
//! in memory; answers stored after the file is sealed (changes, key
//! rotations) are kept in the memory table beside it, which is looked up
//! first.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};

use super::compact::{self, References};
use super::filetable::{self, CurrentSigner, FileTable, IssuerRef, Loaded};
use super::presigned::{FastHash, Presigned};
use super::signed::Signed;
use crate::clock::Window;
use crate::ocsp::response::CertStatus;
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

/// One window's answers.
struct Table {
    window: Window,
    shards: Vec<RwLock<Shard>>,
    /// The reference answers every stored answer is a difference from.
    refs: RwLock<References>,
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
            refs: RwLock::new(References::default()),
            answers: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    fn shard_of(&self, key: &Key) -> usize {
        (FastHash.hash_one(key) >> 7) as usize % self.shards.len()
    }

    fn contains(&self, issuer: usize, alg: HashAlg, serial: &Serial) -> bool {
        Key::new(issuer, alg, serial).is_some_and(|key| {
            self.shards[self.shard_of(&key)]
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .map
                .contains_key(&key)
        })
    }

    fn get(
        &self,
        issuer: usize,
        alg: HashAlg,
        serial: &Serial,
        revision: u64,
        generation: u64,
    ) -> Option<Signed> {
        let key = Key::new(issuer, alg, serial)?;
        let shard = self.shards[self.shard_of(&key)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = shard.map.get(&key)?;
        if slot.revision != revision || slot.generation != generation as u32 {
            return None;
        }
        let chunk = shard.chunks.get(slot.chunk as usize)?;
        let start = slot.offset as usize;
        let buf = compact::expand_with(&self.refs, chunk.get(start..start + slot.len as usize)?)?;
        let certs = shard.signers.get(usize::from(slot.signer))?.clone();
        let base = self.window.start;
        Some(Signed::from_parts(
            buf,
            certs,
            base + i64::from(slot.this_off),
            base + i64::from(slot.next_off),
            self.window.end,
        ))
    }

    fn insert(&self, window: Window, answers: Vec<Presigned>) {
        let table = self;
        let mut by_shard: Vec<Vec<(Key, Presigned, Vec<u8>)>> =
            (0..table.shards.len()).map(|_| Vec::new()).collect();
        for a in answers {
            let Some(key) = Key::new(a.issuer, a.alg, &a.serial) else {
                continue;
            };
            let fits = |t: i64| t >= window.start && u32::try_from(t - window.start).is_ok();
            if !fits(a.signed.this_update) || !fits(a.signed.next_update) {
                continue;
            }
            let shape = (
                a.signed.certs().as_ptr() as u64,
                a.alg as u8,
                a.signed.own_der().len(),
            );
            let Some(compact) = compact::compact(
                &table.refs,
                shape,
                a.signed.own_der(),
                &a.signed.etag_digest(),
            ) else {
                continue;
            };
            by_shard[table.shard_of(&key)].push((key, a, compact));
        }
        for (n, items) in by_shard.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let mut chunk = BytesMut::with_capacity(items.iter().map(|(_, _, c)| c.len()).sum());
            let mut placed = Vec::with_capacity(items.len());
            for (key, a, compact) in items {
                let offset = chunk.len();
                chunk.extend_from_slice(&compact);
                placed.push((key, a, offset, compact.len()));
            }
            let chunk = chunk.freeze();
            let added_bytes = chunk.len();
            let mut shard = table.shards[n]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let chunk_index = shard.chunks.len() as u32;
            shard.chunks.push(chunk);
            let mut added = 0usize;
            for (key, a, offset, len) in placed {
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
                    len: len as u32,
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
}

/// One window's answers: in memory, and in a file when files are on.
struct Tables {
    mem: Arc<Table>,
    file: Option<FileTable>,
}

/// Where the file tables are and the issuers they name.
struct Files {
    dir: PathBuf,
    issuers: Vec<IssuerRef>,
}

/// Every window's table.
#[derive(Default)]
pub struct AnswerStore {
    tables: RwLock<BTreeMap<i64, Arc<Tables>>>,
    files: OnceLock<Files>,
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
    /// Keeps pre-signed answers in files in `dir` from now on (and loads
    /// those there with `load_files`). `issuers` by index.
    pub fn use_files(&self, dir: PathBuf, issuers: Vec<IssuerRef>) {
        let _ = self.files.set(Files { dir, issuers });
    }

    fn tables(&self, window: i64) -> Option<Arc<Tables>> {
        self.tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&window)
            .cloned()
    }

    /// `window`'s tables, made (with a file when files are on) if new.
    fn tables_for(&self, window: Window, answers: usize) -> Arc<Tables> {
        if let Some(t) = self.tables(window.index) {
            return t;
        }
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(tables.entry(window.index).or_insert_with(|| {
            let file = self.files.get().and_then(|f| {
                FileTable::create(&f.dir, window, answers)
                    .map_err(|e| {
                        tracing::error!(
                            dir = %f.dir.display(),
                            window = window.index,
                            error = %e,
                            "cannot create the window's answer table file; its answers are kept in memory"
                        );
                    })
                    .ok()
            });
            let mem = if file.is_some() {
                Table::new(window)
            } else {
                Table::sized(window, answers)
            };
            Arc::new(Tables {
                mem: Arc::new(mem),
                file,
            })
        }))
    }

    /// The answer for (issuer, alg, serial) in `window`, if it was signed
    /// for this entry `revision` (memory) or states `status` (file) under
    /// signer `generation`.
    #[allow(clippy::too_many_arguments)]
    pub fn get(
        &self,
        window: i64,
        issuer: usize,
        alg: HashAlg,
        serial: &Serial,
        revision: u64,
        generation: u64,
        status: &CertStatus,
    ) -> Option<Signed> {
        let tables = self.tables(window)?;
        if let Some(hit) = tables.mem.get(issuer, alg, serial, revision, generation) {
            return Some(hit);
        }
        tables
            .file
            .as_ref()?
            .get(issuer, alg, serial, status, generation)
    }

    /// Whether `window` holds an answer for (issuer, alg, serial) at all.
    pub fn contains(&self, window: i64, issuer: usize, alg: HashAlg, serial: &Serial) -> bool {
        let Some(tables) = self.tables(window) else {
            return false;
        };
        tables
            .file
            .as_ref()
            .is_some_and(|f| f.contains(issuer, alg, serial))
            || tables.mem.contains(issuer, alg, serial)
    }

    /// Stores `answers` signed for `window`, replacing older answers of the
    /// same keys. Answers a slot cannot describe (a serial over 21 octets,
    /// times before the window) are left out; the caller signs those on
    /// demand.
    pub fn insert(&self, window: Window, answers: Vec<Presigned>) {
        if answers.is_empty() {
            return;
        }
        let tables = self.tables_for(window, 0);
        let answers = match (&tables.file, self.files.get()) {
            (Some(file), Some(files)) => match file.append(answers, &files.issuers) {
                Ok(()) => return,
                Err((rest, None)) => rest,
                Err((rest, Some(e))) => {
                    tracing::error!(
                        window = window.index,
                        error = %e,
                        "writing the window's answer table file failed; sealing it and keeping later answers in memory"
                    );
                    self.seal(window.index);
                    rest
                }
            },
            _ => answers,
        };
        tables.mem.insert(window, answers);
    }

    /// Sizes `window`'s table for about `answers` answers before they come
    /// (the pre-signer knows its plan); a table already made stays as is.
    pub fn reserve(&self, window: Window, answers: usize) {
        self.tables_for(window, answers);
    }

    /// Seals `window`'s file table, if it has one being written: later
    /// answers of the window are kept in memory. Blocking IO.
    pub fn seal(&self, window: i64) {
        let Some(tables) = self.tables(window) else {
            return;
        };
        let Some(file) = tables.file.as_ref().filter(|f| !f.is_sealed()) else {
            return;
        };
        let started = std::time::Instant::now();
        match file.seal() {
            Ok(()) => tracing::info!(
                window,
                answers = file.usage().0,
                seconds = started.elapsed().as_secs_f64(),
                "answer table file sealed"
            ),
            Err(e) => tracing::error!(
                window,
                error = %e,
                "sealing the answer table file failed; it serves until its window ends and is not loaded after a restart"
            ),
        }
    }

    /// Loads the sealed files of `windows` (the current and the next) and
    /// deletes every other file in the directory (partial files, windows
    /// that are over, files that fail verification). Blocking IO.
    pub fn load_files(
        &self,
        windows: &[Window],
        current: &(dyn Fn(usize) -> Option<CurrentSigner> + Sync),
        claim_now: &(dyn Fn(usize, &Serial) -> Option<CertStatus> + Sync),
    ) -> Vec<(i64, Result<Loaded, String>)> {
        let Some(files) = self.files.get() else {
            return Vec::new();
        };
        let entries = match std::fs::read_dir(&files.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::error!(dir = %files.dir.display(), error = %e, "cannot read the answer table directory");
                return Vec::new();
            }
        };
        let mut wanted = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match windows
                .iter()
                .find(|w| name == filetable::file_name(w.index))
            {
                Some(window) if self.tables(window.index).is_none() => wanted.push((path, *window)),
                Some(_) => {}
                None => {
                    // A partial table (a crash before sealing), a window
                    // that is over, or something else: nothing to serve.
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::warn!(file = %path.display(), error = %e, "cannot remove a stale answer table file");
                    }
                }
            }
        }
        // One thread per file (the current and the next window).
        let loaded: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = wanted
                .iter()
                .map(|(path, window)| {
                    scope.spawn(move || {
                        let started = std::time::Instant::now();
                        let r = FileTable::load(path, *window, &files.issuers, current, claim_now);
                        (r, started.elapsed())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        let mut results = Vec::new();
        for ((path, window), joined) in wanted.into_iter().zip(loaded) {
            let Ok((result, took)) = joined else {
                results.push((window.index, Err("the loading thread panicked".to_string())));
                continue;
            };
            match result {
                Ok((table, loaded)) => {
                    tracing::info!(
                        file = %path.display(),
                        answers = loaded.answers,
                        changed_since = loaded.changed,
                        other_signer = loaded.other_signer,
                        seconds = took.as_secs_f64(),
                        "answer table loaded"
                    );
                    self.tables
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            window.index,
                            Arc::new(Tables {
                                mem: Arc::new(Table::new(window)),
                                file: Some(table),
                            }),
                        );
                    results.push((window.index, Ok(loaded)));
                }
                Err(e) => {
                    tracing::error!(
                        file = %path.display(),
                        error = %e,
                        "answer table refused; removed, its window is signed again"
                    );
                    let _ = std::fs::remove_file(&path);
                    results.push((window.index, Err(e.to_string())));
                }
            }
        }
        results
    }

    /// Drops the tables of windows that are over: all before `current - 1`,
    /// and the previous window's unless `keep_previous` (a signer is down
    /// and its answers are still valid). Their files are deleted.
    pub fn retire(&self, current: i64, keep_previous: bool) -> usize {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        let keep_from = if keep_previous { current - 1 } else { current };
        let over: Vec<i64> = tables.range(..keep_from).map(|(w, _)| *w).collect();
        for w in &over {
            if let Some(t) = tables.remove(w) {
                if let Some(file) = &t.file {
                    file.remove();
                }
            }
        }
        over.len()
    }

    /// (answers, bytes of answers) held in every table, memory and files.
    pub fn usage(&self) -> (u64, u64) {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        tables.values().fold((0, 0), |(n, b), t| {
            let (fa, fb) = t.file.as_ref().map_or((0, 0), FileTable::usage);
            (
                n + t.mem.answers.load(Ordering::Relaxed) as u64 + fa as u64,
                b + t.mem.bytes.load(Ordering::Relaxed) as u64 + fb,
            )
        })
    }

    /// Records that could not be read back from table files.
    pub fn file_read_errors(&self) -> u64 {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        tables
            .values()
            .filter_map(|t| t.file.as_ref())
            .map(FileTable::read_errors)
            .sum()
    }

    /// Answers held for `window`.
    #[cfg(test)]
    fn answers_in(&self, window: i64) -> usize {
        self.tables(window).map_or(0, |t| {
            t.mem.answers.load(Ordering::Relaxed) + t.file.as_ref().map_or(0, |f| f.usage().0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(own: &[u8], certs: &Bytes, window: Window) -> Signed {
        Signed::new(
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
            claim: CertStatus::Good,
            responder_key_sha1: [9; 20],
            signed: signed(own, &certs, window),
        };
        store.insert(window, vec![one(7, b"first answer")]);
        let got = store
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial,
                7,
                0,
                &CertStatus::Good,
            )
            .expect("stored");
        assert_eq!(
            got.to_der(),
            [&b"first answer"[..], b"shared certs"].concat()
        );
        assert_eq!(got.this_update, window.start);
        assert_eq!(got.window_end, window.end);
        // Another revision, hash, generation, window or issuer: not this one.
        assert!(store
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial,
                8,
                0,
                &CertStatus::Good
            )
            .is_none());
        assert!(store
            .get(
                window.index,
                0,
                HashAlg::Sha256,
                &serial,
                7,
                0,
                &CertStatus::Good
            )
            .is_none());
        assert!(store
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial,
                7,
                1,
                &CertStatus::Good
            )
            .is_none());
        assert!(store
            .get(
                window.index + 1,
                0,
                HashAlg::Sha1,
                &serial,
                7,
                0,
                &CertStatus::Good
            )
            .is_none());
        assert!(store
            .get(
                window.index,
                1,
                HashAlg::Sha1,
                &serial,
                7,
                0,
                &CertStatus::Good
            )
            .is_none());
        // A change: the new answer replaces the slot, the old revision is gone.
        store.insert(window, vec![one(9, b"after the change")]);
        assert!(store
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial,
                7,
                0,
                &CertStatus::Good
            )
            .is_none());
        let got = store
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial,
                9,
                0,
                &CertStatus::Good,
            )
            .expect("replaced");
        assert_eq!(&got.to_der()[..16], b"after the change");
        assert_eq!(store.usage().0, 1, "one slot, replaced");
        // The window's table goes once it is over.
        assert_eq!(store.retire(window.index + 1, true), 0);
        assert_eq!(store.retire(window.index + 1, false), 1);
        assert!(store
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial,
                9,
                0,
                &CertStatus::Good
            )
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
                    claim: CertStatus::Good,
                    responder_key_sha1: [9; 20],
                })
                .collect();
            store.insert(window, answers);
        }
        assert_eq!(store.answers_in(window.index), 20 * 256 * 2);
        assert_eq!(
            store.tables(window.index).expect("table").mem.shards.len(),
            SHARDS + 1
        );
        for n in (0..20 * 256u32).step_by(97) {
            let serial = Serial::from_hex(&format!("{:X}", 0x1000_0000 + n)).expect("hex");
            for alg in HashAlg::ALL.into_iter().take(2) {
                let got = store
                    .get(window.index, 1, alg, &serial, 1, 3, &CertStatus::Good)
                    .expect("present");
                let want = format!("{}-{}C", serial.to_hex(), alg.name());
                assert_eq!(got.to_der(), want.as_bytes());
            }
        }
    }

    fn issuers() -> Vec<IssuerRef> {
        vec![IssuerRef {
            id: "demo".into(),
            key_sha1: [4; 20],
        }]
    }

    fn file_answers(
        window: Window,
        certs: &Bytes,
        serials: std::ops::Range<u32>,
    ) -> Vec<Presigned> {
        serials
            .flat_map(|n| [HashAlg::Sha1, HashAlg::Sha256].map(move |alg| (n, alg)))
            .map(|(n, alg)| {
                let (serial, claim) = (serial(n), claim_of(n));
                Presigned {
                    issuer: 0,
                    alg,
                    signed: signed(
                        format!("answer {n} {}", alg.name()).as_bytes(),
                        certs,
                        window,
                    ),
                    serial,
                    revision: 1,
                    generation: 0,
                    claim,
                    responder_key_sha1: [9; 20],
                }
            })
            .collect()
    }

    fn claim_of(n: u32) -> CertStatus {
        if n % 10 == 0 {
            CertStatus::Revoked {
                at: 1_700_000_000,
                reason: None,
            }
        } else {
            CertStatus::Good
        }
    }

    fn serial(n: u32) -> Serial {
        Serial::from_hex(&format!("{:X}", 0x1000 + n)).expect("hex")
    }

    #[test]
    fn a_sealed_window_file_is_served_again_by_the_next_process_as_long_as_it_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let window = crate::clock::Windows::new(3600).by_index(490_100);
        let certs = Bytes::from_static(b"the responder certificate");
        let first = AnswerStore::default();
        first.use_files(dir.path().to_path_buf(), issuers());
        first.reserve(window, 2000);
        first.insert(window, file_answers(window, &certs, 0..600));
        first.insert(window, file_answers(window, &certs, 600..1000));
        // Serial 5 changed and was signed again: the later record wins.
        let mut again = file_answers(window, &certs, 5..6);
        for a in &mut again {
            a.signed = signed(b"re-signed", &certs, window);
        }
        first.insert(window, again);
        let got = first
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial(5),
                1,
                0,
                &CertStatus::Good,
            )
            .expect("served while written");
        assert_eq!(got.to_der(), [&b"re-signed"[..], &certs[..]].concat());
        first.seal(window.index);
        assert!(dir.path().join(filetable::file_name(window.index)).exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [filetable::file_name(window.index)],
            "the side file is gone"
        );
        // After the seal, answers go to memory and are found first.
        let mut late = file_answers(window, &certs, 7..8);
        late[0].revision = 2;
        late[0].signed = signed(b"after the seal", &certs, window);
        first.insert(window, late);
        let got = first
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial(7),
                2,
                0,
                &CertStatus::Good,
            )
            .expect("memory");
        assert_eq!(&got.to_der()[..14], b"after the seal");
        drop(first);

        // The next process: serial 3 was revoked meanwhile, so its records
        // are left out; every other answer comes back byte for byte.
        let second = AnswerStore::default();
        second.use_files(dir.path().to_path_buf(), issuers());
        let current = |_| {
            Some(CurrentSigner {
                generation: 0,
                responder_key_sha1: [9; 20],
                certs: Bytes::from_static(b"the responder certificate"),
            })
        };
        let revoked = CertStatus::Revoked {
            at: 1_700_000_500,
            reason: Some(crate::state::Reason::KeyCompromise),
        };
        let claim_now = |_: usize, s: &Serial| {
            let n = u32::from_str_radix(&s.to_hex(), 16).ok()? - 0x1000;
            Some(if n == 3 { revoked.clone() } else { claim_of(n) })
        };
        let next = crate::clock::Windows::new(3600).by_index(490_101);
        let results = second.load_files(&[window, next], &current, &claim_now);
        assert_eq!(results.len(), 1);
        let loaded = results[0].1.clone().expect("loaded");
        assert_eq!(loaded.changed, 2, "serial 3 under both hashes");
        assert_eq!(loaded.answers, 2000 - 2);
        assert!(second.contains(window.index, 0, HashAlg::Sha256, &serial(999)));
        assert!(!second.contains(window.index, 0, HashAlg::Sha256, &serial(3)));
        for n in [0u32, 1, 5, 10, 599, 600, 999] {
            for alg in [HashAlg::Sha1, HashAlg::Sha256] {
                let got = second
                    .get(window.index, 0, alg, &serial(n), 77, 0, &claim_of(n))
                    .unwrap_or_else(|| panic!("serial {n} {}", alg.name()));
                let own = if n == 5 {
                    "re-signed".to_string()
                } else {
                    format!("answer {n} {}", alg.name())
                };
                assert_eq!(got.to_der(), [own.as_bytes(), &certs[..]].concat());
                assert_eq!(got.window_end, window.end);
            }
        }
        // A claim the state no longer makes is never served.
        assert!(second
            .get(window.index, 0, HashAlg::Sha1, &serial(1), 77, 0, &revoked)
            .is_none());
        // Another signer generation (a rotation since): not served.
        assert!(second
            .get(
                window.index,
                0,
                HashAlg::Sha1,
                &serial(1),
                77,
                1,
                &claim_of(1)
            )
            .is_none());
        // The window is over: its file goes.
        assert_eq!(second.retire(window.index + 2, false), 1);
        assert!(!dir.path().join(filetable::file_name(window.index)).exists());
    }

    #[test]
    fn a_damaged_file_is_refused_or_its_damaged_record_signed_again_never_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let window = crate::clock::Windows::new(3600).by_index(490_200);
        let certs = Bytes::from_static(b"C");
        let write = || {
            let store = AnswerStore::default();
            store.use_files(dir.path().to_path_buf(), issuers());
            store.insert(window, file_answers(window, &certs, 0..100));
            store.seal(window.index);
        };
        let current = |_| {
            Some(CurrentSigner {
                generation: 0,
                responder_key_sha1: [9; 20],
                certs: Bytes::from_static(b"C"),
            })
        };
        let claim_now = |_: usize, s: &Serial| {
            let n = u32::from_str_radix(&s.to_hex(), 16).ok()? - 0x1000;
            Some(claim_of(n))
        };
        let path = dir.path().join(filetable::file_name(window.index));
        let load = || {
            let store = AnswerStore::default();
            store.use_files(dir.path().to_path_buf(), issuers());
            let r = store.load_files(&[window], &current, &claim_now);
            (store, r)
        };

        // One flipped bit in a record: the file loads, that record is not
        // served (and counted), the others are.
        write();
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[64 + 60] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        let (store, r) = load();
        assert!(r[0].1.is_ok());
        let served = (0..100u32)
            .filter(|n| {
                store
                    .get(
                        window.index,
                        0,
                        HashAlg::Sha1,
                        &serial(*n),
                        0,
                        0,
                        &claim_of(*n),
                    )
                    .is_some()
            })
            .count();
        assert_eq!(served, 99);
        assert_eq!(store.file_read_errors(), 1);

        // A flipped bit in the index, a truncated file, a partial file, a
        // file of another format version: refused and removed.
        for damage in 0..3 {
            write();
            let mut bytes = std::fs::read(&path).expect("read");
            match damage {
                0 => {
                    let at = bytes.len() - 64 - 10;
                    bytes[at] ^= 0x10;
                }
                1 => bytes.truncate(bytes.len() - 1),
                _ => bytes[8] = 2,
            }
            std::fs::write(&path, &bytes).expect("write");
            let (store, r) = load();
            let err = r[0].1.clone().expect_err("refused");
            assert!(!err.is_empty());
            assert!(!path.exists(), "removed: {err}");
            assert!(!store.contains(window.index, 0, HashAlg::Sha1, &serial(1)));
        }
        let partial = dir
            .path()
            .join(format!("{}.partial", filetable::file_name(window.index)));
        std::fs::write(&partial, b"half written").expect("write");
        let side = dir.path().join(format!(
            "{}.index-partial",
            filetable::file_name(window.index)
        ));
        std::fs::write(&side, [0u8; 48]).expect("write");
        let (_, r) = load();
        assert!(r.is_empty());
        assert!(!partial.exists(), "a partial table is removed at start");
        assert!(!side.exists(), "so is its side file of index entries");
    }
}
