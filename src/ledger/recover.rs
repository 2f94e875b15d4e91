//! Start-up recovery of the file ledger, as one decision table.
//!
//! Recovery reads everything first and changes nothing until it has decided
//! to start. What it accepts and what it refuses:
//!
//! | what it finds                                                | decision |
//! |--------------------------------------------------------------|----------|
//! | a `.tmp` snapshot (its writer died before the rename)        | removed after the decision to start |
//! | the newest snapshot unreadable, an older one readable and the log from it on complete | start from the older one; logged, `revocd_ledger_unreadable_snapshots` |
//! | an incomplete final record of the last segment, nothing valid after it (a torn write, never acknowledged) | cut off, logged |
//! | the last segment's header cut short (created, never written) | rewritten |
//! | a final record of the right length with a bad checksum whose end is zeros from a sector boundary on (a torn write the disk padded) | cut off, logged |
//! | any other checksum, length or framing error, in any segment  | refuse: file, offset, last good sequence |
//! | a segment that is not a version 1 segment                    | refuse |
//! | a gap or a step back in the sequence                         | refuse |
//! | a snapshot whose number is beyond what the log and the readable snapshots hold | refuse |
//!
//! A refusal changes no byte. Its message says what to run next: `revocd
//! ledger verify` for the whole report, `revocd ledger repair
//! --truncate-after SEQ` to cut the ledger there, keeping the cut bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{self, IssuerEntries, Record, RecordError};
use super::types::{numbered, segment_name, sync_dir, Applier, Options, Recovery};

/// Why the ledger cannot be trusted as it is. Nothing was changed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LedgerCorrupt {
    #[error("{file}: cannot read: {error}")]
    Io { file: PathBuf, error: String },
    #[error(
        "{file}: byte {offset} is not a revocd ledger segment header (version 1); the last good record is seq {last_good}"
    )]
    SegmentHeader {
        file: PathBuf,
        offset: u64,
        last_good: u64,
    },
    #[error(
        "{file}: corrupt record at byte {offset} ({error}); the last good record is seq {last_good}{}",
        if *.valid_after > 0 { format!(", and {} valid records follow it, so this is not a torn write", .valid_after) } else { String::new() }
    )]
    Record {
        file: PathBuf,
        offset: u64,
        last_good: u64,
        error: RecordError,
        /// Records that still decode after the damaged one.
        valid_after: u64,
    },
    #[error("{file}: gap in the ledger sequence at byte {offset}: expected seq {expected}, found {found}")]
    Gap {
        file: PathBuf,
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error(
        "snapshot {snapshot} says {snapshot} changes were acknowledged, but the readable snapshots and segments reach only seq {last_good}"
    )]
    BehindSnapshot { snapshot: u64, last_good: u64 },
}

impl LedgerCorrupt {
    /// The last sequence number that is known good.
    pub fn last_good(&self) -> Option<u64> {
        match self {
            Self::SegmentHeader { last_good, .. }
            | Self::Record { last_good, .. }
            | Self::BehindSnapshot { last_good, .. } => Some(*last_good),
            Self::Gap { expected, .. } => Some(expected.saturating_sub(1)),
            Self::Io { .. } => None,
        }
    }
}

/// The refusal start-up prints: the problem and what to run next.
#[derive(Debug, thiserror::Error)]
#[error(
    "the ledger in {dir} is corrupt, refusing to start (no byte was changed): {problem}. Run `revocd ledger verify --config FILE` for the whole report; `revocd ledger repair --config FILE --truncate-after {}` cuts everything after that record, keeps the cut bytes aside and lists the acknowledged changes that are lost",
    problem.last_good().map_or_else(|| "SEQ".to_string(), |s| s.to_string())
)]
pub struct Refused {
    pub dir: PathBuf,
    pub problem: LedgerCorrupt,
}

/// One snapshot file as found.
#[derive(Debug, Clone)]
pub struct SnapshotScan {
    pub seq: u64,
    pub path: PathBuf,
    /// `None`: not read (an older one than the base, during start-up).
    pub readable: Option<Result<(), String>>,
}

/// One segment file as found.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    pub path: PathBuf,
    pub name_seq: u64,
    /// First and last record sequence in the file.
    pub range: Option<(u64, u64)>,
    /// Length of the valid prefix (header and whole records).
    pub valid_len: u64,
    pub len: u64,
}

/// A torn final write found at the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    pub path: PathBuf,
    pub offset: u64,
    pub n_bytes: u64,
    pub why: String,
}

/// Everything one read of the ledger directory found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub snapshots: Vec<SnapshotScan>,
    /// The snapshot replay starts from.
    pub base: Option<u64>,
    pub segments: Vec<SegmentScan>,
    pub torn: Option<Torn>,
    pub tmp_files: Vec<PathBuf>,
    /// The last good sequence number (base, then every record replayed).
    pub last_seq: u64,
    pub records_after_base: u64,
    /// The first problem; nothing after it was read.
    pub problem: Option<LedgerCorrupt>,
}

/// Where a record was found.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub path: &'a Path,
    /// Byte offset just past the record.
    pub end: u64,
}

/// What a scan does with what it reads.
pub trait Visit {
    /// The snapshot replay starts from.
    fn snapshot(&mut self, _seq: u64, _issuers: Vec<IssuerEntries>) {}
    /// Each record after the base snapshot, in order.
    fn record(&mut self, rec: &Record, at: At<'_>);
}

impl<F: FnMut(&Record, At<'_>)> Visit for F {
    fn record(&mut self, rec: &Record, at: At<'_>) {
        self(rec, at)
    }
}

/// A record this close to the end of a segment, with a bad checksum, can be
/// a torn write only when the bytes from a sector boundary on are zeros.
const SECTOR: u64 = 512;
/// ... and only when there are at least this many of them: a record's own
/// last bytes are often zeros (the high bytes of a time, flags).
const MIN_ZERO_RUN: u64 = 16;
/// A group commit is at most 4,096 records; a "torn tail" longer than this
/// cannot be one write.
const MAX_TORN: usize = 4096 * 4096;

/// Reads the ledger in `dir` without changing it. `all_snapshots` decodes
/// every snapshot (verify); otherwise only down to the first readable one.
pub fn scan(dir: &Path, all_snapshots: bool, visit: &mut dyn Visit) -> std::io::Result<Scan> {
    let mut out = Scan::default();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "tmp") {
            out.tmp_files.push(entry.path());
        }
    }
    out.tmp_files.sort();
    scan_snapshots(dir, all_snapshots, visit, &mut out)?;
    let base = out.base.unwrap_or(0);
    out.last_seq = base;
    let segments = numbered(dir, "log-", ".rvl")?;
    let n_segments = segments.len();
    // The sequence number the next record in the log must carry, once the
    // first record fixed it.
    let mut prev: Option<u64> = None;
    'segments: for (i, (name_seq, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == n_segments;
        let mut bytes = Vec::new();
        if let Err(e) = File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)) {
            out.problem = Some(LedgerCorrupt::Io {
                file: path.clone(),
                error: e.to_string(),
            });
            break;
        }
        let mut seg = SegmentScan {
            path: path.clone(),
            name_seq: *name_seq,
            range: None,
            valid_len: 0,
            len: bytes.len() as u64,
        };
        if !bytes.starts_with(record::LOG_MAGIC) {
            let cut_short = bytes.len() < record::LOG_MAGIC.len()
                && (record::LOG_MAGIC.starts_with(&bytes) || bytes.iter().all(|b| *b == 0));
            if is_last && cut_short {
                out.torn = Some(Torn {
                    path: path.clone(),
                    offset: 0,
                    n_bytes: bytes.len() as u64,
                    why: "segment header cut short".into(),
                });
            } else {
                out.problem = Some(LedgerCorrupt::SegmentHeader {
                    file: path.clone(),
                    offset: 0,
                    last_good: prev.map_or(base, |p| p.max(base)),
                });
            }
            out.segments.push(seg);
            break;
        }
        let mut at = record::LOG_MAGIC.len();
        while at < bytes.len() {
            match record::decode(&bytes[at..]) {
                Ok((rec, n)) => {
                    // Each record follows the one before it; the first
                    // record of the log follows the snapshot or is covered
                    // by it; a segment starts with the record it is named for.
                    let expected = match prev {
                        Some(p) if rec.seq != p + 1 => Some(p + 1),
                        None if rec.seq > base + 1 => Some(base + 1),
                        _ if seg.range.is_none() && rec.seq != *name_seq => Some(*name_seq),
                        _ => None,
                    };
                    if let Some(expected) = expected {
                        out.problem = Some(LedgerCorrupt::Gap {
                            file: path.clone(),
                            offset: at as u64,
                            expected,
                            found: rec.seq,
                        });
                        out.segments.push(seg);
                        break 'segments;
                    }
                    prev = Some(rec.seq);
                    at += n;
                    seg.range = Some((seg.range.map_or(rec.seq, |r| r.0), rec.seq));
                    seg.valid_len = at as u64;
                    if rec.seq > base {
                        out.last_seq = rec.seq;
                        out.records_after_base += 1;
                        visit.record(
                            &rec,
                            At {
                                path,
                                end: at as u64,
                            },
                        );
                    }
                }
                Err(error) => {
                    let after = prev.unwrap_or(base);
                    if is_last && is_torn_tail(&bytes, at, after) {
                        out.torn = Some(Torn {
                            path: path.clone(),
                            offset: at as u64,
                            n_bytes: (bytes.len() - at) as u64,
                            why: error.to_string(),
                        });
                    } else {
                        out.problem = Some(LedgerCorrupt::Record {
                            file: path.clone(),
                            offset: at as u64,
                            last_good: prev.map_or(base, |p| p.max(base)),
                            error,
                            valid_after: count_valid_after(&bytes, at, after),
                        });
                    }
                    out.segments.push(seg);
                    break 'segments;
                }
            }
        }
        if seg.valid_len == 0 {
            seg.valid_len = record::LOG_MAGIC.len() as u64;
        }
        out.segments.push(seg);
    }
    if out.problem.is_none() {
        // A snapshot, readable or not, is a promise that its number of
        // changes were acknowledged.
        if let Some(s) = out.snapshots.iter().map(|s| s.seq).max() {
            if s > out.last_seq {
                out.problem = Some(LedgerCorrupt::BehindSnapshot {
                    snapshot: s,
                    last_good: out.last_seq,
                });
            }
        }
    }
    Ok(out)
}

/// The snapshots of `dir`, newest first until one reads (all of them with
/// `all_snapshots`); the newest readable one is the base and goes to
/// `visit`.
fn scan_snapshots(
    dir: &Path,
    all_snapshots: bool,
    visit: &mut dyn Visit,
    out: &mut Scan,
) -> std::io::Result<()> {
    let snapshots = numbered(dir, "snap-", ".rvs")?;
    for (seq, path) in snapshots.iter().rev() {
        let want = out.base.is_none() || all_snapshots;
        let readable = want.then(|| {
            let bytes = fs::read(path).map_err(|e| e.to_string())?;
            match record::decode_snapshot(&bytes) {
                Ok((s, issuers)) if s == *seq => {
                    if out.base.is_none() {
                        out.base = Some(*seq);
                        visit.snapshot(*seq, issuers);
                    }
                    Ok(())
                }
                Ok((s, _)) => Err(format!("holds snapshot {s}, not {seq}")),
                Err(e) => Err(e.to_string()),
            }
        });
        out.snapshots.push(SnapshotScan {
            seq: *seq,
            path: path.clone(),
            readable,
        });
    }
    out.snapshots.reverse();
    Ok(())
}

/// Whether a record that could follow seq `after` starts at `off`: a
/// plausible length, version 1, a sequence number just after, and a
/// matching checksum.
pub(super) fn record_starts_at(bytes: &[u8], off: usize, after: u64) -> bool {
    let Some(head) = bytes.get(off..off + 17) else {
        return false;
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(12..=4096).contains(&len) || !record::is_record_version(head[8]) {
        return false;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&head[9..17]);
    let seq = u64::from_le_bytes(s);
    if seq <= after || seq > after + 1 + 4096 * 64 {
        return false;
    }
    record::decode(&bytes[off..]).is_ok()
}

/// Valid records anywhere after the damaged one at `at`.
fn count_valid_after(bytes: &[u8], at: usize, after: u64) -> u64 {
    let mut n = 0;
    let mut off = at + 1;
    while off < bytes.len() {
        if record_starts_at(bytes, off, after) {
            n += 1;
            match record::decode(&bytes[off..]) {
                Ok((_, len)) => off += len,
                Err(_) => off += 1,
            }
        } else {
            off += 1;
        }
    }
    n
}

/// The rule for the end of the last segment: is what starts at `at` a write
/// that never completed (so it was never acknowledged)?
fn is_torn_tail(bytes: &[u8], at: usize, after: u64) -> bool {
    let rest = &bytes[at..];
    if rest.len() > MAX_TORN {
        return false;
    }
    if rest.iter().all(|b| *b == 0) {
        return true;
    }
    if count_valid_after(bytes, at, after) > 0 {
        return false;
    }
    if rest.len() < 8 {
        return true;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len > 4096 {
        // A torn write keeps the length it wrote; this one was damaged.
        return false;
    }
    if 8 + len > rest.len() {
        // Cut short, unless what is there is the whole record under a
        // damaged length.
        return crc32fast::hash(&rest[8..]) != crc;
    }
    // The length is all there but the record is bad: torn only if the disk
    // left zeros from a sector boundary inside this record to the end.
    let end = bytes.len() as u64;
    let record_end = (at + 8 + len) as u64;
    let first_zero = bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p as u64 + 1);
    let boundary = first_zero.div_ceil(SECTOR) * SECTOR;
    boundary >= at as u64 && boundary < record_end && end.saturating_sub(boundary) >= MIN_ZERO_RUN
}

/// How the last segment's bytes end, by the rules `scan` applies: `None`
/// when every record decodes, `Some(true)` for a torn final write start-up
/// would cut, `Some(false)` for corruption it would refuse. Pure (the fuzz
/// target `ledger_record` runs it on arbitrary bytes).
pub fn last_segment_ending(bytes: &[u8]) -> Option<bool> {
    let mut at = record::LOG_MAGIC.len().min(bytes.len());
    let mut prev = 0;
    while at < bytes.len() {
        match record::decode(&bytes[at..]) {
            Ok((rec, n)) => {
                prev = rec.seq;
                at += n;
            }
            Err(_) => return Some(is_torn_tail(bytes, at, prev)),
        }
    }
    None
}

/// Replays into the state as the scan reads.
struct Replay<'a> {
    applier: &'a dyn Applier,
}

impl Visit for Replay<'_> {
    fn snapshot(&mut self, _seq: u64, issuers: Vec<IssuerEntries>) {
        for (id, entries) in issuers {
            self.applier.restore(&id, entries);
        }
    }
    fn record(&mut self, rec: &Record, _at: At<'_>) {
        super::types::replay(self.applier, rec);
    }
}

/// Rebuilds state from `opts.dir` into `applier`. Returns what it found and
/// the segment to append to (opened, positioned at its end). Refuses, with
/// no byte changed, on anything but a torn final write.
pub fn recover(opts: &Options, applier: &dyn Applier) -> anyhow::Result<(Recovery, File, u64)> {
    use anyhow::Context;
    fs::create_dir_all(&opts.dir).with_context(|| format!("creating {}", opts.dir.display()))?;
    let scan = scan(&opts.dir, false, &mut Replay { applier })
        .with_context(|| format!("reading the ledger in {}", opts.dir.display()))?;
    if let Some(problem) = scan.problem.clone() {
        return Err(Refused {
            dir: opts.dir.clone(),
            problem,
        }
        .into());
    }
    let unreadable: Vec<String> = scan
        .snapshots
        .iter()
        .filter_map(|s| match &s.readable {
            Some(Err(e)) => Some(format!("{}: {e}", s.path.display())),
            _ => None,
        })
        .collect();
    for u in &unreadable {
        tracing::error!(
            snapshot = %u,
            base = ?scan.base,
            "ledger snapshot unreadable; recovered from the older snapshot and the log after it (run `revocd ledger verify`)"
        );
    }
    // Decided: start. Only now is anything changed.
    for tmp in &scan.tmp_files {
        let _ = fs::remove_file(tmp);
    }
    let mut report = Recovery {
        snapshot_seq: scan.base,
        records_replayed: scan.records_after_base,
        last_seq: scan.last_seq,
        unreadable_snapshots: unreadable,
        ..Recovery::default()
    };
    let (path, len) = match (&scan.torn, scan.segments.last()) {
        (Some(t), _) => {
            tracing::warn!(
                file = %t.path.display(),
                offset = t.offset,
                dropped_bytes = t.n_bytes,
                after_seq = scan.last_seq,
                error = %t.why,
                "the ledger ends in a torn write; it was never acknowledged and is cut off"
            );
            report.dropped_bytes = t.n_bytes;
            report.dropped_reason = Some(t.why.clone());
            (t.path.clone(), t.offset)
        }
        (None, Some(seg)) => (seg.path.clone(), seg.valid_len),
        (None, None) => (opts.dir.join(segment_name(scan.last_seq + 1)), 0),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if len < record::LOG_MAGIC.len() as u64 {
        file.set_len(0)?;
        file.write_all(record::LOG_MAGIC)?;
        file.sync_all()?;
        sync_dir(&opts.dir)?;
    } else if file.metadata()?.len() != len {
        file.set_len(len)?;
        file.sync_all()?;
    }
    file.seek(SeekFrom::End(0))?;
    Ok((report, file, scan.last_seq))
}
