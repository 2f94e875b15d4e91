//! The operator's tools: `revocd ledger verify | dump | repair`. They read
//! the ledger with the same scan start-up uses, so what `verify` calls good
//! is exactly what start-up accepts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::{self, IssuerEntries, Record};
use super::recover::{self, At, Scan, Visit};
use super::types::numbered;

/// Prints what a scan found: snapshots, segments and sequence ranges, the
/// torn tail if any, and the first problem. True when start-up would
/// accept the ledger and every snapshot is readable.
pub fn report(dir: &Path, scan: &Scan, out: &mut dyn Write) -> std::io::Result<bool> {
    writeln!(out, "ledger {}", dir.display())?;
    for s in &scan.snapshots {
        let verdict = match &s.readable {
            Some(Ok(())) => "ok".to_string(),
            Some(Err(e)) => format!("UNREADABLE: {e}"),
            None => "not read".to_string(),
        };
        writeln!(
            out,
            "snapshot {:>10}  {}  {verdict}",
            s.seq,
            s.path.display()
        )?;
    }
    for seg in &scan.segments {
        let range = seg.range.map_or_else(
            || "no records".to_string(),
            |(a, b)| format!("seq {a}..={b}"),
        );
        writeln!(
            out,
            "segment  {:>10}  {}  {range}, {} of {} bytes read",
            seg.name_seq,
            seg.path.display(),
            seg.valid_len,
            seg.len
        )?;
    }
    if let Some(t) = &scan.torn {
        writeln!(
            out,
            "torn tail: {} bytes at byte {} of {} ({}): a write that was never acknowledged; start-up cuts it",
            t.n_bytes,
            t.offset,
            t.path.display(),
            t.why
        )?;
    }
    for tmp in &scan.tmp_files {
        writeln!(
            out,
            "stray temp file {} (start-up removes it)",
            tmp.display()
        )?;
    }
    let unreadable = scan
        .snapshots
        .iter()
        .filter(|s| matches!(s.readable, Some(Err(_))))
        .count();
    match &scan.problem {
        Some(p) => {
            writeln!(out, "PROBLEM: {p}")?;
            writeln!(
                out,
                "start-up refuses this ledger; `revocd ledger repair --truncate-after {}` cuts it after the last good record",
                p.last_good().map_or_else(|| "SEQ".into(), |s| s.to_string())
            )?;
            Ok(false)
        }
        None => {
            writeln!(
                out,
                "start-up would load snapshot {} and replay {} records: last seq {}",
                scan.base.map_or_else(|| "none".into(), |s| s.to_string()),
                scan.records_after_base,
                scan.last_seq
            )?;
            if unreadable > 0 {
                writeln!(
                    out,
                    "PROBLEM: {unreadable} unreadable snapshot(s); start-up survives from the older one, and the next snapshot replaces it"
                )?;
            }
            Ok(unreadable == 0)
        }
    }
}

/// `revocd ledger verify` of a file ledger: every snapshot and segment.
pub fn verify(dir: &Path, out: &mut dyn Write) -> std::io::Result<bool> {
    let scan = recover::scan(dir, true, &mut |_: &Record, _: At<'_>| {})?;
    report(dir, &scan, out)
}

/// One line of `revocd ledger dump`.
pub enum DumpLine<'a> {
    /// An entry of the snapshot the state starts from.
    Entry {
        snapshot: u64,
        issuer: &'a str,
        serial: &'a crate::state::Serial,
        entry: &'a crate::state::Entry,
    },
    /// A record of the log: the audit trail.
    Record(&'a Record),
}

struct Dump<'a, F: FnMut(DumpLine<'_>)> {
    emit: &'a mut F,
}

impl<F: FnMut(DumpLine<'_>)> Visit for Dump<'_, F> {
    fn snapshot(&mut self, seq: u64, issuers: Vec<IssuerEntries>) {
        for (issuer, entries) in &issuers {
            for (serial, entry) in entries {
                (self.emit)(DumpLine::Entry {
                    snapshot: seq,
                    issuer,
                    serial,
                    entry,
                });
            }
        }
    }
    fn record(&mut self, rec: &Record, _at: At<'_>) {
        (self.emit)(DumpLine::Record(rec));
    }
}

/// `revocd ledger dump`: the base snapshot's entries, then every record
/// after it, in order. Stops at the first problem and returns the scan.
pub fn dump(dir: &Path, emit: &mut impl FnMut(DumpLine<'_>)) -> std::io::Result<Scan> {
    recover::scan(dir, false, &mut Dump { emit })
}

/// What `repair` did.
#[derive(Debug, Default)]
pub struct Repaired {
    /// Where the cut bytes and files were moved.
    pub kept_in: PathBuf,
    /// Acknowledged changes that were cut and could still be read.
    pub lost: Vec<Record>,
    /// Bytes that were cut and could not be read as records.
    pub unreadable_bytes: u64,
    pub moved_files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("seq {seq} is after the last good record ({last_good}); choose a sequence number at or before it")]
    PastLastGood { seq: u64, last_good: u64 },
    #[error("no record or snapshot with seq {0} exists in this ledger")]
    NotFound(u64),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Records that can still be read in `bytes` (cut from a ledger), each
/// after seq `after`; and how many bytes were not part of one.
fn salvage(bytes: &[u8], after: u64, lost: &mut Vec<Record>) -> u64 {
    let mut unreadable = 0;
    let mut off = 0;
    while off < bytes.len() {
        if recover::record_starts_at(bytes, off, after) {
            if let Ok((rec, n)) = record::decode(&bytes[off..]) {
                lost.push(rec);
                off += n;
                continue;
            }
        }
        unreadable += 1;
        off += 1;
    }
    unreadable
}

/// `revocd ledger repair --truncate-after SEQ`: cuts every change after
/// `seq`. Nothing is deleted: cut files and byte ranges go to
/// `<dir>/cut-<unix time>/`. Returns what was cut; the caller verifies
/// the result with a fresh scan.
pub fn repair(dir: &Path, seq: u64, now: i64) -> Result<Repaired, RepairError> {
    let scan = recover::scan(dir, true, &mut |_: &Record, _: At<'_>| {})?;
    // Where each record of the log ends, including those a snapshot covers.
    let mut ends: Vec<(u64, PathBuf, u64)> = Vec::new();
    for seg in &scan.segments {
        let bytes = fs::read(&seg.path)?;
        let mut at = record::LOG_MAGIC.len().min(bytes.len());
        while let Ok((rec, n)) = record::decode(&bytes[at..]) {
            at += n;
            ends.push((rec.seq, seg.path.clone(), at as u64));
        }
    }
    if scan.problem.is_some() && seq > scan.last_seq {
        return Err(RepairError::PastLastGood {
            seq,
            last_good: scan.last_seq,
        });
    }
    let in_log = ends.iter().find(|(s, _, _)| *s == seq).cloned();
    let is_snapshot = scan
        .snapshots
        .iter()
        .any(|s| s.seq == seq && matches!(s.readable, Some(Ok(()))));
    if in_log.is_none() && !is_snapshot && seq != 0 {
        return Err(RepairError::NotFound(seq));
    }
    let kept_in = dir.join(format!("cut-{now}"));
    fs::create_dir_all(&kept_in)?;
    let mut done = Repaired {
        kept_in: kept_in.clone(),
        ..Repaired::default()
    };
    let move_aside = |path: &Path, done: &mut Repaired| -> std::io::Result<()> {
        let name = path.file_name().unwrap_or_default();
        let to = kept_in.join(name);
        fs::rename(path, &to)?;
        done.moved_files.push(to);
        Ok(())
    };
    for s in numbered(dir, "snap-", ".rvs")? {
        if s.0 > seq {
            move_aside(&s.1, &mut done)?;
        }
    }
    for (name_seq, path) in numbered(dir, "log-", ".rvl")? {
        let holds_cut = in_log.as_ref().is_some_and(|(_, p, _)| *p == path);
        if holds_cut {
            let end = in_log.as_ref().map_or(0, |(_, _, e)| *e);
            let bytes = fs::read(&path)?;
            let tail = &bytes[(end as usize).min(bytes.len())..];
            if !tail.is_empty() {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let side = kept_in.join(format!("{name}.from-byte-{end}"));
                fs::write(&side, tail)?;
                fs::File::open(&side)?.sync_all()?;
                done.unreadable_bytes += salvage(tail, seq, &mut done.lost);
                done.moved_files.push(side);
                let f = fs::OpenOptions::new().write(true).open(&path)?;
                f.set_len(end)?;
                f.sync_all()?;
            }
        } else if name_seq > seq {
            let bytes = fs::read(&path)?;
            let body = bytes.get(record::LOG_MAGIC.len()..).unwrap_or_default();
            done.unreadable_bytes += salvage(body, seq, &mut done.lost);
            move_aside(&path, &mut done)?;
        }
    }
    super::types::sync_dir(&kept_in)?;
    super::types::sync_dir(dir)?;
    done.lost.sort_by_key(|r| r.seq);
    done.lost.dedup_by_key(|r| r.seq);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_finds_records_after_a_damaged_one() {
        let mut bytes = Vec::new();
        for seq in 5..=7u64 {
            record::encode(
                &Record {
                    seq,
                    issuer: "demo".into(),
                    author: "test".into(),
                    change: crate::state::Change::Release {
                        serial: crate::state::Serial::from_hex("0A").expect("hex"),
                    },
                },
                &mut bytes,
            );
        }
        bytes[10] ^= 0xff; // inside record 5
        let mut lost = Vec::new();
        let unreadable = salvage(&bytes, 4, &mut lost);
        assert_eq!(lost.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![6, 7]);
        assert!(unreadable > 0);
    }
}
