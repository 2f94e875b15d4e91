//! The embedded backend: segment files and snapshots in `data-dir/ledger`.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::record::{self, IssuerEntries, Record};
use super::types::{
    numbered, segment_name, snapshot_name, sync_dir, Applier, LedgerError, Options, Stats,
};
use super::writer::{Backend, WriteError};
use crate::metrics::Metrics;

/// The embedded default: segment files and snapshots in `data-dir/ledger`.
pub(super) struct FileBackend {
    opts: Options,
    file: File,
    seq: u64,
    since_snapshot: u64,
    metrics: Metrics,
    stats: Arc<Stats>,
    clock: Arc<dyn crate::clock::Clock>,
    /// Set after a write could not be undone; every later append fails.
    failed: Option<String>,
    /// The newest snapshot known good (installed here, or recovery's base;
    /// 0: none). A new snapshot keeps it and the log from it on, so that one
    /// unreadable snapshot is survivable.
    good_snapshot: Arc<AtomicU64>,
}

impl FileBackend {
    pub(super) fn new(
        opts: Options,
        file: File,
        seq: u64,
        base_snapshot: Option<u64>,
        metrics: Metrics,
        stats: Arc<Stats>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        Self {
            opts,
            file,
            seq,
            since_snapshot: 0,
            metrics,
            stats,
            clock,
            failed: None,
            good_snapshot: Arc::new(AtomicU64::new(base_snapshot.unwrap_or(0))),
        }
    }
}

impl Backend for FileBackend {
    fn write(&mut self, records: &mut [Record]) -> Result<(), WriteError> {
        for (i, r) in records.iter_mut().enumerate() {
            r.seq = self.seq + i as u64 + 1;
        }
        self.append(records).map_err(|e| match e {
            LedgerError::Io(e) => WriteError::Io(e),
            LedgerError::Closed => WriteError::Io("ledger is closed".into()),
        })
    }

    fn after_batch(&mut self, applier: &dyn Applier) {
        if self.since_snapshot >= self.opts.snapshot_every {
            self.snapshot(applier);
        }
    }
}

impl FileBackend {
    /// Appends and fsyncs; on failure truncates the partial write away.
    fn append(&mut self, records: &[Record]) -> Result<(), LedgerError> {
        if let Some(why) = &self.failed {
            return Err(LedgerError::Io(why.clone()));
        }
        let mut buf = Vec::with_capacity(records.len() * 48);
        for r in records {
            record::encode(r, &mut buf);
        }
        let started = Instant::now();
        let before = self.file.stream_position().map_err(io)?;
        let wrote = self.file.write_all(&buf);
        self.metrics
            .ledger
            .append_seconds
            .observe(started.elapsed().as_secs_f64());
        let synced = wrote.and_then(|()| {
            let t = Instant::now();
            let r = self.file.sync_data();
            self.metrics
                .ledger
                .fsync_seconds
                .observe(t.elapsed().as_secs_f64());
            r
        });
        if let Err(e) = synced {
            // Undo the partial write so the log stays a clean prefix; if even
            // that fails, refuse every later append until restart.
            let undo = self
                .file
                .set_len(before)
                .and_then(|()| self.file.seek(SeekFrom::Start(before)).map(|_| ()))
                .and_then(|()| self.file.sync_data());
            if let Err(u) = undo {
                self.failed = Some(format!("{e}; undo failed: {u}"));
            }
            self.metrics.ledger.write_errors.inc();
            tracing::error!(error = %e, "ledger write failed; changes refused");
            return Err(LedgerError::Io(e.to_string()));
        }
        self.seq += records.len() as u64;
        self.since_snapshot += records.len() as u64;
        self.stats.last_seq.store(self.seq, Ordering::Release);
        Ok(())
    }

    /// Copies the state at `seq`, starts a new segment, and writes the
    /// snapshot in the background; older files go once it is installed.
    fn snapshot(&mut self, applier: &dyn Applier) {
        let seq = self.seq;
        let entries = applier.snapshot();
        let new_segment = self.opts.dir.join(segment_name(seq + 1));
        let opened = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(&new_segment)
            .and_then(|mut f| {
                f.write_all(record::LOG_MAGIC)?;
                f.sync_all()?;
                sync_dir(&self.opts.dir)?;
                Ok(f)
            });
        match opened {
            Ok(f) => self.file = f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a new ledger segment; snapshot postponed");
                return;
            }
        }
        self.since_snapshot = 0;
        let dir = self.opts.dir.clone();
        let stats = Arc::clone(&self.stats);
        let now = self.clock.now();
        let good = Arc::clone(&self.good_snapshot);
        let _ = std::thread::Builder::new()
            .name("revocd-snapshot".into())
            .spawn(move || match write_snapshot(&dir, seq, &entries) {
                Ok(()) => {
                    stats.snapshot_at.store(now, Ordering::Release);
                    tracing::info!(seq, "ledger snapshot installed");
                    let previous = good.fetch_max(seq, Ordering::AcqRel);
                    if previous > 0 && previous < seq {
                        if let Err(e) = prune(&dir, previous) {
                            tracing::warn!(error = %e, "removing ledger files older than snapshot {previous} failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(seq, error = %e, "ledger snapshot failed; the log still holds everything"),
            });
    }
}

fn io(e: std::io::Error) -> LedgerError {
    LedgerError::Io(e.to_string())
}

/// Writes `snap-<seq>` atomically (temp file, fsync, rename, fsync dir). It
/// removes nothing: see [`prune`].
pub fn write_snapshot(dir: &Path, seq: u64, entries: &[IssuerEntries]) -> std::io::Result<()> {
    let bytes = record::encode_snapshot(seq, entries);
    let tmp = dir.join(format!("{}.tmp", snapshot_name(seq)));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&bytes)?;
        if let Some(pause) = crate::fault::pause(crate::fault::SNAPSHOT_PAUSE) {
            std::thread::sleep(pause);
        }
        f.sync_all()
    });
    if let Err(e) = written {
        // A full disk must not also keep the half-written copy.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dir.join(snapshot_name(seq)))?;
    sync_dir(dir)
}

/// After a newer snapshot is installed: removes the snapshots older than
/// `keep` (the previous good one) and the segments that `keep` covers. What
/// stays is enough to start from either of the last two snapshots.
pub fn prune(dir: &Path, keep: u64) -> std::io::Result<()> {
    for (s, path) in numbered(dir, "snap-", ".rvs")? {
        if s < keep {
            fs::remove_file(path)?;
        }
    }
    // A segment is covered when the next one starts at or before keep + 1.
    let segments = numbered(dir, "log-", ".rvl")?;
    for pair in segments.windows(2) {
        if pair[1].0 <= keep + 1 {
            fs::remove_file(&pair[0].1)?;
        }
    }
    sync_dir(dir)
}
