//! A window's answer table in a file (`ocsp.answer-tables = "files"`): the
//! answers on disk, read with positioned reads; in memory only a compact
//! index (16 bytes an answer: key hash -> offset and length).
//!
//! Life of a file, `<data-dir>/answers/<window index>.rvat`:
//! - the pre-signer's pass for the window creates `<index>.rvat.partial`
//!   and appends records to it as it signs, serving them at once; each
//!   record's index entry goes to `<index>.rvat.index-partial` as it is
//!   appended;
//! - when the pass ends (done, out of time, or shutdown) the table is
//!   sealed: the live records' index (the entries still current, read back
//!   from the side file: 48 bytes a record instead of the records), the
//!   signers and a footer are appended, the file is synced and renamed to
//!   `<index>.rvat`, the directory synced and the side file removed. A
//!   sealed file is never written again: later answers for the window
//!   (changes, rotations) are kept in memory;
//! - at start, sealed files of the current and next window are verified
//!   (header, footer, section checksums, every index entry's bounds) and
//!   loaded: entries whose signer is not the issuer's current one, or whose
//!   claim is not what the state says now, are left out. Partial files,
//!   side files and files of windows that are over are deleted;
//! - each record is verified (length, checksum, key, claim) when read.
//!
//! Format: `tablefmt`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use bytes::Bytes;

use super::compact::{self, References};
use super::presigned::{key_hash, FastHash, Presigned};
use super::signed::Signed;
use super::tablefmt::{self as fmt, Claim, FileKey, FormatError, RecordHead, SignerInfo};
use crate::clock::Window;
use crate::ocsp::response::CertStatus;
use crate::pki::HashAlg;
use crate::state::Serial;

/// Index entries per shard when sized: 80% of a power of two.
const PER_SHARD: usize = (1 << 16) * 4 / 5;
const SHARDS: usize = 16;
/// Offset bits of a packed index value; the rest is the record's length.
const LEN_BITS: u32 = 24;

/// The file name of `window`'s sealed table.
pub fn file_name(window: i64) -> String {
    format!("{window}.rvat")
}

/// An issuer as the files name it.
#[derive(Debug, Clone)]
pub struct IssuerRef {
    pub id: String,
    pub key_sha1: [u8; 20],
}

/// A signer of this file's records, as this process knows it.
#[derive(Debug, Clone)]
struct Mapped {
    issuer: usize,
    generation: u64,
    responder_key_sha1: [u8; 20],
    certs: Bytes,
}

/// The issuer's signer now: what a loaded file's signers are checked with.
#[derive(Debug, Clone)]
pub struct CurrentSigner {
    pub generation: u64,
    pub responder_key_sha1: [u8; 20],
    pub certs: Bytes,
}

struct Writer {
    /// Where the next record goes.
    end: u64,
    /// The signers section, in file order (parallel to `FileTable::signers`).
    infos: Vec<SignerInfo>,
    /// While the table is written: the side file of the records' index
    /// entries, in record order, and its length.
    entries: Option<(File, PathBuf, u64)>,
}

pub struct FileTable {
    window: Window,
    /// `<index>.rvat.partial` while written, `<index>.rvat` once sealed.
    path: RwLock<PathBuf>,
    file: File,
    writer: Mutex<Writer>,
    sealed: AtomicBool,
    signers: RwLock<Vec<Option<Mapped>>>,
    /// The reference answers the records are differences from.
    refs: RwLock<References>,
    shards: Vec<RwLock<HashMap<u64, u64, FastHash>>>,
    answers: AtomicUsize,
    bytes: AtomicU64,
    read_errors: AtomicU64,
}

impl std::fmt::Debug for FileTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTable")
            .field("window", &self.window.index)
            .field("answers", &self.answers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why a file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Format(#[from] FormatError),
}

/// What a load found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub answers: usize,
    /// Entries whose serial's state changed since they were signed.
    pub changed: usize,
    /// Entries of a signer that is no longer the issuer's (or an issuer
    /// no longer configured).
    pub other_signer: usize,
}

fn shards_for(answers: usize) -> Vec<RwLock<HashMap<u64, u64, FastHash>>> {
    let count = answers.div_ceil(PER_SHARD).max(SHARDS);
    let each = answers.div_ceil(count);
    (0..count)
        .map(|_| RwLock::new(HashMap::with_capacity_and_hasher(each, FastHash)))
        .collect()
}

fn pack(offset: u64, len: usize) -> u64 {
    (offset << LEN_BITS) | len as u64
}

fn unpack(v: u64) -> (u64, usize) {
    (v >> LEN_BITS, (v & ((1 << LEN_BITS) - 1)) as usize)
}

/// Tells the kernel the table is read at random: a miss reads the record's
/// pages, not a readahead window (measured with `loadtest/tablebench`).
fn advise_random(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Random);
}

/// Syncs a directory so a rename in it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FileTable {
    /// A new table for `window` in `dir`, sized for about `answers`.
    pub fn create(dir: &Path, window: Window, answers: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let fresh = |suffix: &str| {
            let path = dir.join(format!("{}.{suffix}", file_name(window.index)));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            io::Result::Ok((file, path))
        };
        let (file, path) = fresh("partial")?;
        file.write_all_at(&fmt::encode_header(window), 0)?;
        let (entries, entries_path) = fresh("index-partial")?;
        Ok(Self {
            window,
            path: RwLock::new(path),
            file,
            writer: Mutex::new(Writer {
                end: fmt::HEADER_LEN as u64,
                infos: Vec::new(),
                entries: Some((entries, entries_path, 0)),
            }),
            sealed: AtomicBool::new(false),
            signers: RwLock::new(Vec::new()),
            refs: RwLock::new(References::default()),
            shards: shards_for(answers),
            answers: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
        })
    }

    fn shard(&self, hash: u64) -> &RwLock<HashMap<u64, u64, FastHash>> {
        &self.shards[(hash >> 7) as usize % self.shards.len()]
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// (answers, bytes of live records).
    pub fn usage(&self) -> (usize, u64) {
        (
            self.answers.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    pub fn read_errors(&self) -> u64 {
        self.read_errors.load(Ordering::Relaxed)
    }

    /// Appends `answers` (all for this window); gives them back when the
    /// table is sealed or the write failed, for the caller to keep in
    /// memory.
    pub fn append(
        &self,
        answers: Vec<Presigned>,
        issuers: &[IssuerRef],
    ) -> Result<(), (Vec<Presigned>, Option<io::Error>)> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_sealed() {
            return Err((answers, None));
        }
        let mut buf = Vec::with_capacity(answers.len() * 200);
        let mut entries = Vec::with_capacity(answers.len() * fmt::INDEX_ENTRY);
        let mut placed = Vec::with_capacity(answers.len());
        let mut rest = Vec::new();
        for a in answers {
            let Some(signer) = self.signer_index(&mut w, &a, issuers) else {
                rest.push(a);
                continue;
            };
            let offset_of = |t: i64| u32::try_from(t - self.window.start).ok();
            let (Some(this_off), Some(next_off), Some(key)) = (
                offset_of(a.signed.this_update),
                offset_of(a.signed.next_update),
                FileKey::new(signer, a.alg, a.serial.content()),
            ) else {
                rest.push(a);
                continue;
            };
            let own = a.signed.own_der();
            let shape = (u64::from(signer), a.alg as u8, own.len());
            let Some(body) = compact::compact(&self.refs, shape, own, &a.signed.etag_digest())
            else {
                rest.push(a);
                continue;
            };
            let head = RecordHead {
                key,
                claim: Claim::of(&a.claim),
                this_off,
                next_off,
            };
            let offset = w.end + buf.len() as u64;
            let len = fmt::encode_record(&mut buf, &head, &body);
            fmt::encode_index_entry(
                &mut entries,
                &fmt::IndexEntry {
                    key,
                    claim: head.claim,
                    offset,
                    len: len as u32,
                },
            );
            placed.push((key_hash(a.issuer, a.alg, &a.serial), pack(offset, len), len));
        }
        let written = self
            .file
            .write_all_at(&buf, w.end)
            .and_then(|()| match &mut w.entries {
                Some((side, _, side_end)) => {
                    side.write_all_at(&entries, *side_end)?;
                    *side_end += entries.len() as u64;
                    Ok(())
                }
                None => Err(io::Error::other("the table is sealed")),
            });
        if let Err(e) = written {
            // The file cannot take more: seal it where it is (nothing
            // written past `end` is indexed) and keep the rest in memory.
            drop(w);
            return Err((rest, Some(e)));
        }
        w.end += buf.len() as u64;
        drop(w);
        let mut added = 0;
        let mut bytes = 0;
        for (hash, packed, len) in placed {
            let mut shard = self
                .shard(hash)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            match shard.insert(hash, packed) {
                None => {
                    added += 1;
                    bytes += len as u64;
                }
                Some(old) => bytes += len as u64 - unpack(old).1.min(len) as u64,
            }
        }
        self.answers.fetch_add(added, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if rest.is_empty() {
            Ok(())
        } else {
            Err((rest, None))
        }
    }

    /// The file signer number for `a`'s signer, added if new.
    fn signer_index(&self, w: &mut Writer, a: &Presigned, issuers: &[IssuerRef]) -> Option<u16> {
        let mut signers = self.signers.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = signers.iter().position(|s| {
            s.as_ref().is_some_and(|s| {
                s.issuer == a.issuer
                    && s.generation == a.generation
                    && s.responder_key_sha1 == a.responder_key_sha1
            })
        }) {
            return u16::try_from(i).ok();
        }
        let issuer = issuers.get(a.issuer)?;
        let index = u16::try_from(signers.len()).ok()?;
        signers.push(Some(Mapped {
            issuer: a.issuer,
            generation: a.generation,
            responder_key_sha1: a.responder_key_sha1,
            certs: a.signed.certs().clone(),
        }));
        w.infos.push(SignerInfo {
            issuer_id: issuer.id.clone(),
            issuer_key_sha1: issuer.key_sha1,
            responder_key_sha1: a.responder_key_sha1,
            certs: a.signed.certs().to_vec(),
        });
        Some(index)
    }

    pub fn contains(&self, issuer: usize, alg: HashAlg, serial: &Serial) -> bool {
        let hash = key_hash(issuer, alg, serial);
        self.shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&hash)
    }

    /// The answer for (issuer, alg, serial) if it states `status` and was
    /// signed under the issuer's signer `generation`. One positioned read.
    pub fn get(
        &self,
        issuer: usize,
        alg: HashAlg,
        serial: &Serial,
        status: &CertStatus,
        generation: u64,
    ) -> Option<Signed> {
        let hash = key_hash(issuer, alg, serial);
        let packed = *self
            .shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)?;
        let (offset, len) = unpack(packed);
        let mut buf = vec![0u8; len];
        if let Err(e) = self.file.read_exact_at(&mut buf, offset) {
            self.read_error(&format!("reading {len} bytes at {offset}: {e}"));
            return None;
        }
        let (head, body) = match fmt::decode_record(&buf, offset) {
            Ok(r) => r,
            Err(e) => {
                self.read_error(&e.to_string());
                return None;
            }
        };
        let certs = {
            let signers = self.signers.read().unwrap_or_else(PoisonError::into_inner);
            let s = signers.get(usize::from(head.key.signer))?.as_ref()?;
            if s.issuer != issuer || s.generation != generation {
                return None;
            }
            s.certs.clone()
        };
        // Another key with the same 64-bit hash, or a changed state: not
        // this answer.
        if head.key.alg != alg
            || head.key.serial() != serial.content()
            || head.claim != Claim::of(status)
        {
            return None;
        }
        let Some(expanded) = compact::expand_with(&self.refs, &buf[body]) else {
            self.read_error(&format!(
                "record at {offset}: its compact answer does not fit its reference"
            ));
            return None;
        };
        let base = self.window.start;
        Some(Signed::from_parts(
            expanded,
            certs,
            base + i64::from(head.this_off),
            base + i64::from(head.next_off),
            self.window.end,
        ))
    }

    fn read_error(&self, what: &str) {
        let n = self.read_errors.fetch_add(1, Ordering::Relaxed);
        if n == 0 || n.is_power_of_two() {
            let path = self.path.read().unwrap_or_else(PoisonError::into_inner);
            tracing::error!(
                file = %path.display(),
                error = what,
                errors = n + 1,
                "an answer table record cannot be read; it is signed on demand instead"
            );
        }
    }

    /// Seals the table: the live records' index, the signers and the
    /// footer are appended, the file synced and renamed to its final name.
    /// Later answers for the window go to memory. Blocking IO; reads back
    /// the side file of index entries, not the records.
    pub fn seal(&self) -> io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.sealed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let records_end = w.end;
        let Some((side, side_path, side_end)) = w.entries.take() else {
            return Err(io::Error::other(
                "the table has no index entries to seal with",
            ));
        };
        let signers_bytes = fmt::encode_signers(&w.infos);
        let refs_bytes = fmt::encode_references(
            self.refs
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .list(),
        );
        let mapped: Vec<Option<Mapped>> = self
            .signers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // The entries in record order; one is live when the in-memory
        // index still points at its record (a later record for the same
        // key replaced it otherwise). Written out as they are found.
        let index_at = records_end + (signers_bytes.len() + refs_bytes.len()) as u64;
        let mut index = Vec::with_capacity(1 << 20);
        let mut index_crc = crc32fast::Hasher::new();
        let mut index_len = 0u64;
        let mut count = 0u64;
        let mut reader = BufReader::with_capacity(1 << 20, (&side).take(side_end));
        let mut entry = [0u8; fmt::INDEX_ENTRY];
        for n in 0..side_end / fmt::INDEX_ENTRY as u64 {
            reader.read_exact(&mut entry)?;
            let e = fmt::decode_index_entry(&entry, n, records_end, mapped.len())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let live = mapped
                .get(usize::from(e.key.signer))
                .and_then(Option::as_ref)
                .is_some_and(|m| {
                    let serial = Serial::from_content(e.key.serial());
                    let hash = key_hash(m.issuer, e.key.alg, &serial);
                    self.shard(hash)
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&hash)
                        == Some(&pack(e.offset, e.len as usize))
                });
            if live {
                index.extend_from_slice(&entry);
                count += 1;
            }
            if index.len() >= 1 << 20 {
                index_crc.update(&index);
                self.file.write_all_at(&index, index_at + index_len)?;
                index_len += index.len() as u64;
                index.clear();
            }
        }
        index_crc.update(&index);
        self.file.write_all_at(&index, index_at + index_len)?;
        index_len += index.len() as u64;
        let footer = fmt::encode_footer(&fmt::Footer {
            records_end,
            signers_len: signers_bytes.len() as u64,
            references_len: refs_bytes.len() as u64,
            index_count: count,
            signers_crc: crc32fast::hash(&signers_bytes),
            references_crc: crc32fast::hash(&refs_bytes),
            index_crc: index_crc.finalize(),
        });
        self.file.write_all_at(&signers_bytes, records_end)?;
        self.file
            .write_all_at(&refs_bytes, records_end + signers_bytes.len() as u64)?;
        let end = index_at + index_len;
        self.file.write_all_at(&footer, end)?;
        self.file.set_len(end + footer.len() as u64)?;
        self.file.sync_all()?;
        let mut path = self.path.write().unwrap_or_else(PoisonError::into_inner);
        let sealed = path.with_extension("");
        fs::rename(&*path, &sealed)?;
        if let Some(dir) = sealed.parent() {
            sync_dir(dir)?;
        }
        *path = sealed;
        drop(path);
        drop(w);
        drop(side);
        if let Err(e) = fs::remove_file(&side_path) {
            tracing::warn!(file = %side_path.display(), error = %e, "cannot remove an answer table's side file (it is removed at the next start)");
        }
        advise_random(&self.file);
        Ok(())
    }

    /// Deletes the table's file (its window is over), and its side file
    /// if it was never sealed.
    pub fn remove(&self) {
        let side = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .take();
        if let Some((_, side_path, _)) = side {
            let _ = fs::remove_file(side_path);
        }
        let path = self.path.read().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = fs::remove_file(&*path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(file = %path.display(), error = %e, "removing an answer table of a past window failed");
            }
        }
    }

    /// Loads and verifies the sealed table at `path` for `window`.
    /// `signer_of` maps a file signer to the issuer index and its current
    /// signer; `claim_now` says what the state states about a serial now.
    pub fn load(
        path: &Path,
        window: Window,
        issuers: &[IssuerRef],
        current: &(dyn Fn(usize) -> Option<CurrentSigner> + Sync),
        claim_now: &(dyn Fn(usize, &Serial) -> Option<CertStatus> + Sync),
    ) -> Result<(Self, Loaded), LoadError> {
        let file = OpenOptions::new().read(true).open(path)?;
        let file_len = file.metadata()?.len();
        if file_len < (fmt::HEADER_LEN + fmt::FOOTER_LEN) as u64 {
            return Err(FormatError::TooShort(file_len).into());
        }
        let mut header = [0u8; fmt::HEADER_LEN];
        file.read_exact_at(&mut header, 0)?;
        fmt::check_header(&header, window)?;
        let mut footer = [0u8; fmt::FOOTER_LEN];
        file.read_exact_at(&mut footer, file_len - fmt::FOOTER_LEN as u64)?;
        let footer = fmt::decode_footer(&footer, file_len)?;
        let signers_len = usize::try_from(footer.signers_len)
            .map_err(|_| FormatError::Layout { section: "signers" })?;
        let mut signers_bytes = vec![0u8; signers_len];
        file.read_exact_at(&mut signers_bytes, footer.signers_offset())?;
        if crc32fast::hash(&signers_bytes) != footer.signers_crc {
            return Err(FormatError::Checksum("signers section").into());
        }
        let infos = fmt::decode_signers(&signers_bytes)?;
        let refs_len = usize::try_from(footer.references_len).map_err(|_| FormatError::Layout {
            section: "references",
        })?;
        let mut refs_bytes = vec![0u8; refs_len];
        file.read_exact_at(&mut refs_bytes, footer.references_offset())?;
        if crc32fast::hash(&refs_bytes) != footer.references_crc {
            return Err(FormatError::Checksum("references section").into());
        }
        let refs = References::from_list(fmt::decode_references(&refs_bytes)?);
        let mut loaded = Loaded::default();
        // A file signer is usable when its issuer is configured with the
        // same key and the issuer's current signer is the one that signed.
        let mapped: Vec<Option<Mapped>> = infos
            .iter()
            .map(|info| {
                let issuer = issuers
                    .iter()
                    .position(|i| i.id == info.issuer_id && i.key_sha1 == info.issuer_key_sha1)?;
                let now = current(issuer)?;
                (now.responder_key_sha1 == info.responder_key_sha1
                    && now.certs[..] == info.certs[..])
                    .then_some(Mapped {
                        issuer,
                        generation: now.generation,
                        responder_key_sha1: now.responder_key_sha1,
                        certs: now.certs,
                    })
            })
            .collect();
        let count = usize::try_from(footer.index_count)
            .map_err(|_| FormatError::Layout { section: "index" })?;
        let shards = shards_for(count);
        let table_bytes = AtomicU64::new(0);
        let mut crc = crc32fast::Hasher::new();
        let mut from = &file;
        from.seek(SeekFrom::Start(footer.index_offset()))?;
        let mut reader = BufReader::with_capacity(1 << 20, from);
        let mut entry = [0u8; fmt::INDEX_ENTRY];
        for n in 0..footer.index_count {
            reader.read_exact(&mut entry)?;
            crc.update(&entry);
            let e = fmt::decode_index_entry(&entry, n, footer.records_end, infos.len())?;
            let Some(m) = mapped[usize::from(e.key.signer)].as_ref() else {
                loaded.other_signer += 1;
                continue;
            };
            let serial = Serial::from_content(e.key.serial());
            if claim_now(m.issuer, &serial).map(|s| Claim::of(&s)) != Some(e.claim) {
                loaded.changed += 1;
                continue;
            }
            let hash = key_hash(m.issuer, e.key.alg, &serial);
            let shard = &shards[(hash >> 7) as usize % shards.len()];
            if shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(hash, pack(e.offset, e.len as usize))
                .is_none()
            {
                loaded.answers += 1;
                table_bytes.fetch_add(u64::from(e.len), Ordering::Relaxed);
            }
        }
        if crc.finalize() != footer.index_crc {
            return Err(FormatError::Checksum("index section").into());
        }
        drop(reader);
        advise_random(&file);
        Ok((
            Self {
                window,
                path: RwLock::new(path.to_path_buf()),
                file,
                writer: Mutex::new(Writer {
                    end: footer.records_end,
                    infos,
                    entries: None,
                }),
                sealed: AtomicBool::new(true),
                signers: RwLock::new(mapped),
                refs: RwLock::new(refs),
                shards,
                answers: AtomicUsize::new(loaded.answers),
                bytes: table_bytes,
                read_errors: AtomicU64::new(0),
            },
            loaded,
        ))
    }
}
