//! The durable ledger: every change is on disk (fsync) before it is
//! acknowledged, and state is rebuilt at start from the newest snapshot plus
//! the records after it. Embedded default: segment files and snapshots under
//! `<data-dir>/ledger/`; the format is in [`record`] and ARCHITECTURE.md.
//!
//! One writer thread owns the files. Appends queue up while it fsyncs, and
//! everything queued is written with a single fsync (group commit). Only after
//! the fsync are the changes applied to the in-memory state and acknowledged.

pub mod fleet;
pub mod record;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::state::{Applied, Change, Conflict, Entry, Serial};
use record::{IssuerEntries, Record};

/// What the ledger applies durable changes to: the in-memory state.
pub trait Applier: Send + Sync + 'static {
    /// What applying would do, without doing it (conflicts are refused
    /// before anything is written).
    fn check(&self, issuer: &str, change: &Change) -> Result<Applied, ApplyError>;
    /// Applies a change that is on disk.
    fn apply(&self, issuer: &str, change: &Change);
    /// Replaces an issuer's state with a snapshot's entries (start-up).
    fn restore(&self, issuer: &str, entries: Vec<(Serial, Entry)>);
    /// Every issuer's entries, for a snapshot.
    fn snapshot(&self) -> Vec<IssuerEntries>;
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("issuer {0:?} is not served here")]
    UnknownIssuer(String),
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger write failed, change not recorded: {0}")]
    Io(String),
    #[error("ledger is closed")]
    Closed,
}

/// What happened to one change.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Written, fsynced and applied as record `seq`.
    Recorded {
        seq: u64,
    },
    /// Already the state; nothing written.
    Unchanged,
    Refused(ApplyError),
    Failed(LedgerError),
}

/// One change for one issuer.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub issuer: String,
    pub change: Change,
}

struct Request {
    changes: Vec<Submitted>,
    reply: oneshot::Sender<Vec<Outcome>>,
}

/// The handle the admin API and sources append through.
#[derive(Clone)]
pub struct Ledger {
    tx: std::sync::mpsc::Sender<Request>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Unix time the newest snapshot was installed (0: none yet).
    pub snapshot_at: AtomicI64,
    pub last_seq: AtomicU64,
}

/// What start-up recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub snapshot_seq: Option<u64>,
    pub records_replayed: u64,
    pub last_seq: u64,
    /// Bytes cut from the end of the last segment (a torn final write).
    pub dropped_bytes: u64,
    pub dropped_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    /// Records between snapshots.
    pub snapshot_every: u64,
}

fn segment_name(first_seq: u64) -> String {
    format!("log-{first_seq:020}.rvl")
}

fn snapshot_name(seq: u64) -> String {
    format!("snap-{seq:020}.rvs")
}

/// Files in `dir` named `prefix<20 digits>suffix`, sorted by number.
fn numbered(dir: &Path, prefix: &str, suffix: &str) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|d| d.parse::<u64>().ok())
        {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Applies a record read back from a ledger (recovery, a peer's batch). It
/// was checked when written; one that no longer applies is logged and
/// skipped. Returns whether it was applied.
pub(crate) fn replay(applier: &dyn Applier, rec: &Record) -> bool {
    match applier.check(&rec.issuer, &rec.change) {
        Ok(_) => {
            applier.apply(&rec.issuer, &rec.change);
            true
        }
        Err(e) => {
            tracing::warn!(seq = rec.seq, error = %e, "ledger record no longer applies; skipped");
            false
        }
    }
}

/// Rebuilds state from `dir` into `applier`. Returns what it found and the
/// segment to append to (opened, positioned at its end).
pub fn recover(opts: &Options, applier: &dyn Applier) -> anyhow::Result<(Recovery, File, u64)> {
    use anyhow::Context;
    fs::create_dir_all(&opts.dir).with_context(|| format!("creating {}", opts.dir.display()))?;
    // A snapshot whose writer died before the rename is garbage.
    for entry in fs::read_dir(&opts.dir)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    let mut report = Recovery::default();
    let mut base = 0u64;
    for (seq, path) in numbered(&opts.dir, "snap-", ".rvs")?.into_iter().rev() {
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match record::decode_snapshot(&bytes) {
            Ok((s, issuers)) if s == seq => {
                for (id, entries) in issuers {
                    applier.restore(&id, entries);
                }
                base = seq;
                report.snapshot_seq = Some(seq);
                break;
            }
            Ok(_) => {
                tracing::warn!(file = %path.display(), "snapshot name and content disagree; skipped")
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "snapshot unreadable; trying an older one")
            }
        }
    }
    let segments = numbered(&opts.dir, "log-", ".rvl")?;
    let mut last_seq = base;
    let n_segments = segments.len();
    let mut tail: Option<(PathBuf, u64)> = None;
    for (i, (_, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == n_segments;
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("reading {}", path.display()))?;
        if bytes.len() < record::LOG_MAGIC.len() || !bytes.starts_with(record::LOG_MAGIC) {
            if is_last && bytes.len() < record::LOG_MAGIC.len() {
                // Created but its header never reached the disk.
                report.dropped_bytes += bytes.len() as u64;
                report.dropped_reason = Some("segment header cut short".into());
                tail = Some((path.clone(), 0));
                continue;
            }
            anyhow::bail!(
                "{} is not a revocd ledger segment (version 1)",
                path.display()
            );
        }
        let mut at = record::LOG_MAGIC.len();
        while at < bytes.len() {
            match record::decode(&bytes[at..]) {
                Ok((rec, n)) => {
                    if rec.seq > base {
                        if rec.seq != last_seq + 1 {
                            tracing::warn!(
                                expected = last_seq + 1,
                                found = rec.seq,
                                "gap in ledger sequence"
                            );
                        }
                        replay(applier, &rec);
                        last_seq = rec.seq;
                        report.records_replayed += 1;
                    }
                    at += n;
                }
                Err(e) if is_last => {
                    report.dropped_bytes = (bytes.len() - at) as u64;
                    report.dropped_reason = Some(e.to_string());
                    tracing::warn!(
                        file = %path.display(),
                        offset = at,
                        dropped_bytes = bytes.len() - at,
                        error = %e,
                        "ledger ends in a torn record; it was never acknowledged and is dropped"
                    );
                    break;
                }
                Err(e) => anyhow::bail!(
                    "{} is corrupt at byte {at} ({e}), and later segments exist; refusing to start",
                    path.display()
                ),
            }
        }
        if is_last {
            tail = Some((path.clone(), at as u64));
        }
    }
    report.last_seq = last_seq;
    let (path, len) = match tail {
        Some(t) => t,
        None => (opts.dir.join(segment_name(last_seq + 1)), 0),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if len == 0 {
        file.set_len(0)?;
        file.write_all(record::LOG_MAGIC)?;
        file.sync_all()?;
        sync_dir(&opts.dir)?;
    } else {
        file.set_len(len)?;
        file.sync_all()?;
    }
    file.seek(SeekFrom::End(0))?;
    Ok((report, file, last_seq))
}

impl Ledger {
    /// Starts the writer thread on the segment `recover` returned.
    pub fn start(
        opts: Options,
        file: File,
        last_seq: u64,
        applier: Arc<dyn Applier>,
        metrics: Metrics,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        let stats = Arc::new(Stats::default());
        stats.last_seq.store(last_seq, Ordering::Release);
        // An existing snapshot counts for the age metric.
        if let Ok(snaps) = numbered(&opts.dir, "snap-", ".rvs") {
            if let Some((_, p)) = snaps.last() {
                let mtime = fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                stats.snapshot_at.store(mtime, Ordering::Release);
            }
        }
        let backend = FileBackend {
            opts,
            file,
            seq: last_seq,
            since_snapshot: 0,
            metrics: metrics.clone(),
            stats: Arc::clone(&stats),
            clock,
            failed: None,
        };
        Self::with_backend(Box::new(backend), applier, metrics, stats)
    }

    /// Starts the writer thread on any backend (the file ledger or the fleet
    /// ledger in object storage).
    pub(crate) fn with_backend(
        backend: Box<dyn Backend>,
        applier: Arc<dyn Applier>,
        metrics: Metrics,
        stats: Arc<Stats>,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer {
            backend,
            applier,
            metrics,
        };
        std::thread::Builder::new()
            .name("revocd-ledger".into())
            .spawn(move || writer.run(rx))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the ledger writer"));
        Self { tx, stats }
    }

    /// Appends changes; resolves once each is durable and applied, refused,
    /// or failed.
    pub async fn submit(&self, changes: Vec<Submitted>) -> Vec<Outcome> {
        let n = changes.len();
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request { changes, reply }).is_err() {
            return vec![Outcome::Failed(LedgerError::Closed); n];
        }
        rx.await
            .unwrap_or_else(|_| vec![Outcome::Failed(LedgerError::Closed); n])
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Why a backend did not record a group.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Nothing was recorded; every change in the group is refused with 503.
    Io(String),
    /// Another writer took the next position first: catch up and re-check.
    Behind,
}

/// Where the writer makes changes durable. The writer thread owns it, checks
/// changes against the state, and applies what the backend recorded.
pub(crate) trait Backend: Send {
    /// Records `records` durably as the next entry of the log, setting each
    /// record's sequence number.
    fn write(&mut self, records: &mut [Record]) -> Result<(), WriteError>;

    /// Records other writers made since this one last looked, in order, for
    /// the writer to apply; `force` looks even when the head pointer has not
    /// moved (after losing a race). The file ledger has no other writers.
    fn poll(&mut self, _force: bool) -> Vec<Record> {
        Vec::new()
    }

    /// How often to poll while no change arrives.
    fn poll_every(&self) -> Option<std::time::Duration> {
        None
    }

    /// After each group of requests: take a snapshot when one is due.
    fn after_batch(&mut self, applier: &dyn Applier);
}

struct Writer {
    backend: Box<dyn Backend>,
    applier: Arc<dyn Applier>,
    metrics: Metrics,
}

/// A change accepted into the group being written.
struct Pending {
    request: usize,
    index: usize,
    record: Record,
}

/// A group lost the race for the next log position.
struct Behind;

/// After this many lost races in a row a request fails (503) rather than
/// spin; each round applied another writer's batch, so progress is made.
const MAX_ROUNDS: usize = 64;

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Request>) {
        use std::sync::mpsc::RecvTimeoutError;
        let mut last_poll = Instant::now();
        loop {
            let first = match self.backend.poll_every() {
                Some(every) => {
                    if last_poll.elapsed() >= every {
                        last_poll = Instant::now();
                        let records = self.backend.poll(false);
                        self.apply_foreign(&records);
                    }
                    let wait = every.saturating_sub(last_poll.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(r) => r,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.process(batch);
            self.backend.after_batch(self.applier.as_ref());
        }
    }

    /// Applies records another writer made (they were checked when written;
    /// one that no longer applies is logged and skipped, as in recovery).
    fn apply_foreign(&self, records: &[Record]) {
        for rec in records {
            if !replay(self.applier.as_ref(), rec) {
                continue;
            }
            tracing::info!(
                target: "audit",
                event = rec.change.kind(),
                issuer = %rec.issuer,
                serial = %rec.change.serial(),
                seq = rec.seq,
                detail = ?rec.change,
                "change applied from a peer"
            );
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        let received = Instant::now();
        let mut outcomes: Vec<Vec<Option<Outcome>>> =
            batch.iter().map(|r| vec![None; r.changes.len()]).collect();
        let mut rounds = 0;
        while self.plan(&batch, &mut outcomes, received).is_err() {
            rounds += 1;
            if rounds >= MAX_ROUNDS {
                tracing::error!(
                    rounds,
                    "lost the race for the next ledger position too often"
                );
                break;
            }
            let records = self.backend.poll(true);
            self.apply_foreign(&records);
        }
        for (req, out) in batch.into_iter().zip(outcomes) {
            let out = out
                .into_iter()
                .map(|o| {
                    o.unwrap_or_else(|| {
                        Outcome::Failed(LedgerError::Io("too many concurrent writers".into()))
                    })
                })
                .collect();
            let _ = req.reply.send(out);
        }
    }

    /// Checks every undecided change against the state and writes the ones
    /// that change something; two changes to one serial go in separate
    /// groups, so the second is checked against the state the first leaves.
    fn plan(
        &mut self,
        batch: &[Request],
        outcomes: &mut [Vec<Option<Outcome>>],
        received: Instant,
    ) -> Result<(), Behind> {
        let mut pending: Vec<Pending> = Vec::new();
        let mut keys: HashSet<(&str, &Serial)> = HashSet::new();
        for (ri, req) in batch.iter().enumerate() {
            for (ci, sub) in req.changes.iter().enumerate() {
                if outcomes[ri][ci].is_some() {
                    continue;
                }
                let key = (sub.issuer.as_str(), sub.change.serial());
                if keys.contains(&key) {
                    self.flush(&mut pending, outcomes, received)?;
                    keys.clear();
                }
                match self.applier.check(&sub.issuer, &sub.change) {
                    Ok(Applied::Changed { .. }) => {
                        keys.insert(key);
                        pending.push(Pending {
                            request: ri,
                            index: ci,
                            record: Record {
                                seq: 0,
                                issuer: sub.issuer.clone(),
                                change: sub.change.clone(),
                            },
                        });
                    }
                    Ok(Applied::Unchanged) => outcomes[ri][ci] = Some(Outcome::Unchanged),
                    Err(e) => outcomes[ri][ci] = Some(Outcome::Refused(e)),
                }
            }
        }
        self.flush(&mut pending, outcomes, received)
    }

    /// Has the backend record `pending`, then applies and acknowledges them.
    fn flush(
        &mut self,
        pending: &mut Vec<Pending>,
        outcomes: &mut [Vec<Option<Outcome>>],
        received: Instant,
    ) -> Result<(), Behind> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut records: Vec<Record> = pending.iter().map(|p| p.record.clone()).collect();
        let result = self.backend.write(&mut records);
        if matches!(result, Err(WriteError::Behind)) {
            pending.clear();
            return Err(Behind);
        }
        for (p, rec) in pending.drain(..).zip(records) {
            outcomes[p.request][p.index] = Some(match &result {
                Ok(()) => {
                    self.applier.apply(&rec.issuer, &rec.change);
                    if matches!(rec.change, Change::Revoke { .. }) {
                        self.metrics
                            .ocsp_revocation_visible_seconds
                            .observe(received.elapsed().as_secs_f64());
                    }
                    let kind = rec.change.kind();
                    self.metrics.ledger_changes.with_label_values(&[kind]).inc();
                    tracing::info!(
                        target: "audit",
                        event = kind,
                        issuer = %rec.issuer,
                        serial = %rec.change.serial(),
                        seq = rec.seq,
                        detail = ?rec.change,
                        "change recorded"
                    );
                    Outcome::Recorded { seq: rec.seq }
                }
                Err(WriteError::Io(e)) => Outcome::Failed(LedgerError::Io(e.clone())),
                Err(WriteError::Behind) => Outcome::Failed(LedgerError::Closed),
            });
        }
        Ok(())
    }
}

/// The embedded default: segment files and snapshots in `data-dir/ledger`.
struct FileBackend {
    opts: Options,
    file: File,
    seq: u64,
    since_snapshot: u64,
    metrics: Metrics,
    stats: Arc<Stats>,
    clock: Arc<dyn crate::clock::Clock>,
    /// Set after a write could not be undone; every later append fails.
    failed: Option<String>,
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
            .ledger_append_seconds
            .observe(started.elapsed().as_secs_f64());
        let synced = wrote.and_then(|()| {
            let t = Instant::now();
            let r = self.file.sync_data();
            self.metrics
                .ledger_fsync_seconds
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
            self.metrics.ledger_write_errors.inc();
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
        let _ = std::thread::Builder::new()
            .name("revocd-snapshot".into())
            .spawn(move || match write_snapshot(&dir, seq, &entries) {
                Ok(()) => {
                    stats.snapshot_at.store(now, Ordering::Release);
                    tracing::info!(seq, "ledger snapshot installed");
                }
                Err(e) => tracing::warn!(seq, error = %e, "ledger snapshot failed; the log still holds everything"),
            });
    }
}

fn io(e: std::io::Error) -> LedgerError {
    LedgerError::Io(e.to_string())
}

/// Fault injection for the crash tests: `REVOCD_FAULT_SNAPSHOT_PAUSE_MS`
/// holds every snapshot between writing its temp file and installing it, so
/// a test can SIGKILL the daemon at exactly that point. Unset in production.
fn fault_pause() -> Option<std::time::Duration> {
    std::env::var("REVOCD_FAULT_SNAPSHOT_PAUSE_MS")
        .ok()?
        .parse()
        .ok()
        .map(std::time::Duration::from_millis)
}

/// Writes `snap-<seq>` atomically (temp file, fsync, rename, fsync dir), then
/// removes older snapshots and the segments it covers.
pub fn write_snapshot(dir: &Path, seq: u64, entries: &[IssuerEntries]) -> std::io::Result<()> {
    let bytes = record::encode_snapshot(seq, entries);
    let tmp = dir.join(format!("{}.tmp", snapshot_name(seq)));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(&bytes)?;
        if let Some(pause) = fault_pause() {
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
    sync_dir(dir)?;
    for (s, path) in numbered(dir, "snap-", ".rvs")? {
        if s < seq {
            let _ = fs::remove_file(path);
        }
    }
    // A segment is covered when the next one starts at or before seq + 1.
    let segments = numbered(dir, "log-", ".rvl")?;
    for pair in segments.windows(2) {
        if pair[1].0 <= seq + 1 {
            let _ = fs::remove_file(&pair[0].1);
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::{IssuerState, Reason};
    use std::collections::HashMap;

    /// State for one issuer "demo", as the ledger sees it.
    #[derive(Default)]
    struct Mem(HashMap<String, IssuerState>);

    impl Mem {
        fn new() -> Arc<Self> {
            let mut m = HashMap::new();
            m.insert("demo".to_string(), IssuerState::new());
            Arc::new(Self(m))
        }
        fn status(&self, serial: &str) -> Option<crate::state::Status> {
            self.0["demo"]
                .lookup(&Serial::from_hex(serial).expect("hex"))
                .map(|e| e.status)
        }
    }

    impl Applier for Mem {
        fn check(&self, issuer: &str, change: &Change) -> Result<Applied, ApplyError> {
            let st = self
                .0
                .get(issuer)
                .ok_or_else(|| ApplyError::UnknownIssuer(issuer.into()))?;
            Ok(st.check(change)?)
        }
        fn apply(&self, issuer: &str, change: &Change) {
            if let Some(st) = self.0.get(issuer) {
                let _ = st.apply(change);
            }
        }
        fn restore(&self, issuer: &str, entries: Vec<(Serial, Entry)>) {
            if let Some(st) = self.0.get(issuer) {
                st.restore(entries);
            }
        }
        fn snapshot(&self) -> Vec<IssuerEntries> {
            self.0
                .iter()
                .map(|(id, st)| (id.clone(), st.snapshot()))
                .collect()
        }
    }

    fn revoke(n: u32) -> Submitted {
        Submitted {
            issuer: "demo".into(),
            change: Change::Revoke {
                serial: Serial::from_hex(&format!("{n:X}")).expect("hex"),
                at: 1_700_000_000 + i64::from(n),
                reason: Reason::KeyCompromise,
                invalidity_date: None,
            },
        }
    }

    fn open(dir: &Path, every: u64) -> (Arc<Mem>, Recovery, Ledger) {
        let mem = Mem::new();
        let opts = Options {
            dir: dir.to_path_buf(),
            snapshot_every: every,
        };
        let (rec, file, last) = recover(&opts, mem.as_ref()).expect("recover");
        let ledger = Ledger::start(
            opts,
            file,
            last,
            mem.clone(),
            Metrics::new(),
            ManualClock::new(0),
        );
        (mem, rec, ledger)
    }

    #[tokio::test]
    async fn a_torn_last_record_is_dropped_and_everything_before_recovers() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (_, _, ledger) = open(dir.path(), 1_000_000);
            for n in 1..=10 {
                let out = ledger.submit(vec![revoke(n)]).await;
                assert!(matches!(out[0], Outcome::Recorded { seq } if seq == u64::from(n)));
            }
        }
        let seg = dir.path().join(segment_name(1));
        let len = fs::metadata(&seg).expect("meta").len();
        // Cut the last record in half, as a crash mid-write would.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .and_then(|f| f.set_len(len - 10))
            .expect("truncate");
        let (mem, rec, ledger) = open(dir.path(), 1_000_000);
        assert_eq!(rec.records_replayed, 9);
        assert_eq!(rec.last_seq, 9);
        assert!(rec.dropped_bytes > 0);
        assert_eq!(rec.dropped_reason.as_deref(), Some("record is cut short"));
        assert!(mem.status("9").is_some());
        assert!(mem.status("A").is_none());
        // The log continues cleanly after the cut.
        let out = ledger.submit(vec![revoke(10)]).await;
        assert!(matches!(out[0], Outcome::Recorded { seq: 10 }), "{out:?}");
    }

    #[tokio::test]
    async fn start_up_uses_the_snapshot_and_the_records_after_it() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (_, _, ledger) = open(dir.path(), 100);
            for chunk in (1..=250u32).collect::<Vec<_>>().chunks(10) {
                ledger
                    .submit(chunk.iter().map(|n| revoke(*n)).collect())
                    .await;
            }
        }
        // Snapshots are written in the background; wait for the newest.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while numbered(dir.path(), "snap-", ".rvs")
            .expect("ls")
            .last()
            .map(|s| s.0)
            != Some(200)
        {
            assert!(Instant::now() < deadline, "no snapshot at 200");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Segments covered by the snapshot are gone.
        let segs = numbered(dir.path(), "log-", ".rvl").expect("ls");
        assert!(segs.iter().all(|(first, _)| *first >= 101), "{segs:?}");
        let (mem, rec, _) = open(dir.path(), 100);
        assert_eq!(rec.snapshot_seq, Some(200));
        assert_eq!(rec.records_replayed, 50);
        assert_eq!(rec.last_seq, 250);
        for n in 1..=250u32 {
            assert!(mem.status(&format!("{n:X}")).is_some(), "{n}");
        }
    }

    #[tokio::test]
    async fn group_commit_and_conflicts_in_one_batch() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mem, _, ledger) = open(dir.path(), 1_000_000);
        let mut handles = Vec::new();
        for n in 1..=200u32 {
            let l = ledger.clone();
            handles.push(tokio::spawn(async move { l.submit(vec![revoke(n)]).await }));
        }
        for h in handles {
            assert!(matches!(
                h.await.expect("join")[0],
                Outcome::Recorded { .. }
            ));
        }
        // The same serial twice in one request: the second sees the first.
        let twice = vec![revoke(500), revoke(500)];
        let out = ledger.submit(twice).await;
        assert!(matches!(out[0], Outcome::Recorded { .. }), "{out:?}");
        assert!(matches!(out[1], Outcome::Unchanged), "{out:?}");
        let mut other = revoke(500);
        if let Change::Revoke { reason, .. } = &mut other.change {
            *reason = Reason::Superseded;
        }
        let out = ledger.submit(vec![other]).await;
        assert!(
            matches!(out[0], Outcome::Refused(ApplyError::Conflict(_))),
            "{out:?}"
        );
        assert_eq!(ledger.stats().last_seq.load(Ordering::Acquire), 201);
        assert!(mem.status("C8").is_some());
    }
}
