//! Fleet mode: the ledger in object storage, shared by several replicas.
//!
//! Layout under the fleet store's prefix (formats in [`record`]):
//!
//! - `ledger/<seq, 20 digits>`: one immutable batch per group commit. A
//!   replica writes position `applied + 1` with a conditional create
//!   (`If-None-Match: *`), so the store picks exactly one writer per
//!   position. Losing the race (412) means another replica wrote it: fetch,
//!   apply, re-check the changes against the new state, try the next one.
//!   A change is acknowledged once its batch object exists.
//! - `ledger/head`: the highest position known written, as decimal text. A
//!   hint for followers, read with `If-None-Match` so an idle poll costs one
//!   304; it is advanced with a conditional replace and never lowered. A
//!   writer that dies between its batch and the head only delays followers
//!   until the next gap probe (every 10 polls) or the next write.
//! - `snapshots/<seq, 20 digits>.rvs`: the whole state after batch `seq`,
//!   written by the replica that wrote a batch whose position is a multiple
//!   of `snapshot-every`. Start-up loads the newest and replays the rest.
//!
//! The writer thread owns this backend: own writes and peers' batches are
//! applied in one order, in one place. Store calls run on the tokio runtime
//! through `Handle::block_on`; the writer thread is not a runtime thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tokio::runtime::Handle;

use super::record::{self, Batch, Record};
use super::types::{Applier, Recovery, Stats};
use super::writer::{Backend, WriteError};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::publish::{Expect, Fetched, PublishError, Publisher};

const HEAD: &str = "ledger/head";
const CONTENT_TYPE: &str = "application/octet-stream";
/// Batches fetched at once while catching up at start.
const PREFETCH: u64 = 32;
/// Polls between gap probes (reading `applied + 1` without a head change).
const PROBE_EVERY: u32 = 10;

fn batch_key(seq: u64) -> String {
    format!("ledger/{seq:020}")
}

fn snapshot_key(seq: u64) -> String {
    format!("snapshots/{seq:020}.rvs")
}

#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub poll: Duration,
    pub snapshot_every: u64,
    pub replica: String,
}

/// Why a batch could not be had.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// The object exists and is not a valid batch `seq`: never skipped.
    #[error("ledger batch {seq} in the store is corrupt: {why}")]
    Corrupt { seq: u64, why: String },
    #[error("reading ledger batch {seq}: {error}")]
    Store { seq: u64, error: String },
}

/// Reads and decodes batch `seq`; `None` when it does not exist yet.
async fn fetch(store: &Publisher, seq: u64) -> Result<Option<Batch>, FetchError> {
    let key = store.key(&batch_key(seq));
    let fetched = store
        .read_if_changed(&key, None)
        .await
        .map_err(|e| FetchError::Store {
            seq,
            error: e.to_string(),
        })?;
    match fetched {
        Fetched::Found { bytes, .. } => {
            let batch = record::decode_batch(&bytes).map_err(|e| FetchError::Corrupt {
                seq,
                why: e.to_string(),
            })?;
            if batch.seq != seq {
                return Err(FetchError::Corrupt {
                    seq,
                    why: format!("the object holds batch {}", batch.seq),
                });
            }
            Ok(Some(batch))
        }
        Fetched::Absent | Fetched::Unchanged => Ok(None),
    }
}

/// Fetches batches `from..from + count` concurrently; results in order.
async fn fetch_range(
    store: &Arc<Publisher>,
    from: u64,
    count: u64,
) -> Vec<Result<Option<Batch>, FetchError>> {
    let tasks: Vec<_> = (from..from + count)
        .map(|seq| {
            let store = Arc::clone(store);
            tokio::spawn(async move { fetch(&store, seq).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| {
            Err(FetchError::Store {
                seq: from,
                error: format!("fetch task: {e}"),
            })
        }));
    }
    out
}

/// The records `replica` wrote in batches after `after` for which `keep`
/// holds, read back from the store in order; `None` when more than `limit`
/// batches came since (too many to read back at start).
pub async fn own_changes_after(
    store: &Arc<Publisher>,
    replica: &str,
    after: u64,
    limit: u64,
    keep: impl Fn(&crate::state::Change) -> bool,
) -> anyhow::Result<Option<Vec<super::types::Written>>> {
    let mut found = Vec::new();
    let mut next = after + 1;
    loop {
        if next - after > limit {
            return Ok(None);
        }
        for fetched in fetch_range(store, next, PREFETCH).await {
            let Some(batch) = fetched.context("reading back a ledger batch")? else {
                return Ok(Some(found));
            };
            if batch.writer == replica {
                found.extend(batch.records.iter().filter(|r| keep(&r.change)).map(|r| {
                    super::types::Written {
                        seq: r.seq,
                        issuer: r.issuer.clone(),
                        change: r.change.clone(),
                    }
                }));
            }
            next = batch.seq + 1;
        }
    }
}

/// The snapshot numbers in the store, ascending.
async fn list_snapshots(store: &Publisher) -> anyhow::Result<Vec<u64>> {
    let mut snapshots: Vec<u64> = store
        .list("snapshots")
        .await
        .context("listing snapshots in the fleet store")?
        .iter()
        .filter_map(|n| n.strip_suffix(".rvs")?.parse().ok())
        .collect();
    snapshots.sort_unstable();
    Ok(snapshots)
}

/// Start-up: the newest snapshot in the store, then every batch after it.
/// Returns what was found; `last_seq` is the last batch applied.
pub async fn recover(store: &Arc<Publisher>, applier: &dyn Applier) -> anyhow::Result<Recovery> {
    read(
        store,
        &mut |_, issuers| {
            for (id, entries) in issuers {
                applier.restore(&id, entries);
            }
        },
        &mut |rec| {
            super::types::replay(applier, rec);
        },
    )
    .await
}

/// `revocd ledger dump` in fleet mode: the newest readable snapshot's
/// entries, then every record of every batch after it, in order.
pub async fn dump(
    store: &Arc<Publisher>,
    emit: &mut impl FnMut(super::tools::DumpLine<'_>),
) -> anyhow::Result<Recovery> {
    use std::cell::RefCell;
    let emit = RefCell::new(emit);
    read(
        store,
        &mut |seq, issuers| {
            for (issuer, entries) in &issuers {
                for (serial, entry) in entries {
                    (emit.borrow_mut())(super::tools::DumpLine::Entry {
                        snapshot: seq,
                        issuer,
                        serial,
                        entry,
                    });
                }
            }
        },
        &mut |rec| (emit.borrow_mut())(super::tools::DumpLine::Record(rec)),
    )
    .await
}

/// Reads the newest readable snapshot and every batch after it, in order,
/// refusing a corrupt batch and a snapshot beyond the batches.
async fn read(
    store: &Arc<Publisher>,
    on_snapshot: &mut dyn FnMut(u64, Vec<record::IssuerEntries>),
    on_record: &mut dyn FnMut(&Record),
) -> anyhow::Result<Recovery> {
    let mut report = Recovery::default();
    let snapshots = list_snapshots(store).await?;
    let newest_snapshot = snapshots.last().copied();
    let mut base = 0;
    for seq in snapshots.into_iter().rev() {
        let key = store.key(&snapshot_key(seq));
        let Fetched::Found { bytes, .. } = store.read_if_changed(&key, None).await? else {
            continue;
        };
        match record::decode_snapshot(&bytes) {
            Ok((s, issuers)) if s == seq => {
                on_snapshot(seq, issuers);
                base = seq;
                report.snapshot_seq = Some(seq);
                break;
            }
            Ok(_) => tracing::warn!(seq, "fleet snapshot name and content disagree; skipped"),
            Err(e) => {
                report
                    .unreadable_snapshots
                    .push(format!("{}: {e}", snapshot_key(seq)));
                tracing::error!(seq, error = %e, "fleet snapshot unreadable; trying an older one")
            }
        }
    }
    // Fetch ahead in parallel, apply strictly in order, stop at the first gap.
    let mut next = base + 1;
    'replay: loop {
        for fetched in fetch_range(store, next, PREFETCH).await {
            match fetched.context("fetching a ledger batch")? {
                Some(batch) => {
                    for rec in &batch.records {
                        on_record(rec);
                    }
                    report.records_replayed += batch.records.len() as u64;
                    next = batch.seq + 1;
                }
                None => break 'replay,
            }
        }
    }
    report.last_seq = next - 1;
    // A snapshot promises that its batches exist.
    if let Some(newest) = newest_snapshot {
        anyhow::ensure!(
            newest <= report.last_seq,
            "fleet snapshot {newest} exists, but the readable snapshots and batches in the store reach only batch {}; refusing to start (run `revocd ledger verify`)",
            report.last_seq
        );
    }
    Ok(report)
}

pub struct FleetBackend {
    store: Arc<Publisher>,
    rt: Handle,
    opts: FleetOptions,
    /// The last batch applied here; the next write goes to `applied + 1`.
    applied: u64,
    head_etag: Option<String>,
    head_seen: u64,
    polls: u32,
    /// Unix time this replica last knew it held every batch.
    caught_up_at: i64,
    /// A batch at a multiple of `snapshot_every` was written here.
    snapshot_due: bool,
    metrics: Metrics,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    /// Last time a store error was logged (errors during an outage repeat
    /// every poll; one line per 30 s is enough).
    last_error_log: Option<Instant>,
}

impl FleetBackend {
    pub fn new(
        store: Arc<Publisher>,
        rt: Handle,
        opts: FleetOptions,
        applied: u64,
        metrics: Metrics,
        stats: Arc<Stats>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        stats.last_seq.store(applied, Ordering::Release);
        metrics.fleet.applied_sequence.set(applied as i64);
        let now = clock.now();
        Self {
            store,
            rt,
            opts,
            applied,
            head_etag: None,
            head_seen: applied,
            polls: 0,
            caught_up_at: now,
            snapshot_due: false,
            metrics,
            stats,
            clock,
            last_error_log: None,
        }
    }

    fn store_error(&mut self, what: &str, e: &dyn std::fmt::Display) {
        self.metrics.fleet.store_errors.inc();
        if self
            .last_error_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
        {
            self.last_error_log = Some(Instant::now());
            tracing::warn!(error = %e, "fleet ledger store: {what} failed");
        }
    }

    fn set_applied(&mut self, seq: u64) {
        self.applied = seq;
        self.head_seen = self.head_seen.max(seq);
        self.stats.last_seq.store(seq, Ordering::Release);
        self.metrics.fleet.applied_sequence.set(seq as i64);
        self.metrics.ledger.last_sequence.set(seq as i64);
    }

    /// Reads the head pointer if it changed; returns whether it moved past
    /// what is applied here.
    fn head_moved(&mut self) -> Result<bool, PublishError> {
        let key = self.store.key(HEAD);
        match self
            .rt
            .block_on(self.store.read_if_changed(&key, self.head_etag.as_deref()))?
        {
            Fetched::Unchanged | Fetched::Absent => {}
            Fetched::Found { bytes, etag } => {
                self.head_etag = etag;
                if let Some(seq) = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                {
                    self.head_seen = self.head_seen.max(seq);
                }
            }
        }
        self.metrics.fleet.head_sequence.set(self.head_seen as i64);
        Ok(self.head_seen > self.applied)
    }

    /// Moves the head pointer up to `seq` (never down). Best effort: the
    /// batch is already durable; a stale head only delays followers.
    fn advance_head(&mut self, seq: u64) {
        let key = self.store.key(HEAD);
        for _ in 0..8 {
            let current = match self.rt.block_on(self.store.read_if_changed(&key, None)) {
                Ok(f) => f,
                Err(e) => return self.store_error("reading the head pointer", &e),
            };
            let (value, expect) = match current {
                Fetched::Found { bytes, etag } => (
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|t| t.trim().parse::<u64>().ok())
                        .unwrap_or(0),
                    etag.map_or(Expect::Any, Expect::ETag),
                ),
                Fetched::Absent | Fetched::Unchanged => (0, Expect::Absent),
            };
            if value >= seq {
                self.head_seen = self.head_seen.max(value);
                return;
            }
            let body = Bytes::from(format!("{seq}\n"));
            match self
                .rt
                .block_on(self.store.write(&key, body, "text/plain", &expect))
            {
                Ok(etag) => {
                    self.head_etag = etag;
                    self.head_seen = self.head_seen.max(seq);
                    return;
                }
                Err(PublishError::Conflict) => continue,
                Err(e) => return self.store_error("advancing the head pointer", &e),
            }
        }
    }

    /// Fetches and returns every batch after `applied`, in order, until the
    /// first that does not exist yet. When the head says several are new,
    /// up to `PREFETCH` are fetched at once (a replica far behind catches up
    /// in round trips of 32 batches, not one).
    fn catch_up(&mut self) -> Vec<Record> {
        let mut records = Vec::new();
        'fetch: loop {
            let ahead = self
                .head_seen
                .saturating_sub(self.applied)
                .clamp(1, PREFETCH);
            let fetched = self
                .rt
                .block_on(fetch_range(&self.store, self.applied + 1, ahead));
            for result in fetched {
                tracing::debug!(from = self.applied + 1, ok = ?result.as_ref().map(Option::is_some), "catch-up fetch");
                match result {
                    Ok(Some(batch)) => {
                        self.metrics.fleet.corrupt_batch.set(0);
                        let delay = (self.clock.now() - batch.written_at).max(0);
                        self.metrics.fleet.batch_delay_seconds.observe(delay as f64);
                        self.metrics
                            .fleet
                            .batches_applied
                            .with_label_values(&["peer"])
                            .inc();
                        tracing::debug!(seq = batch.seq, writer = %batch.writer, n = batch.records.len(), "applying a peer's batch");
                        let seq = batch.seq;
                        records.extend(batch.records);
                        self.set_applied(seq);
                    }
                    Ok(None) => {
                        self.caught_up_at = self.clock.now();
                        break 'fetch;
                    }
                    Err(e @ FetchError::Corrupt { seq, .. }) => {
                        // Never skipped: stop applying here, alert, and keep
                        // serving the state this replica has.
                        self.metrics.fleet.corrupt_batch.set(seq as i64);
                        self.metrics.fleet.store_errors.inc();
                        if self
                            .last_error_log
                            .is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
                        {
                            self.last_error_log = Some(Instant::now());
                            tracing::error!(error = %e, "the fleet ledger has a corrupt batch; this replica stops applying at it and serves what it has");
                        }
                        break 'fetch;
                    }
                    Err(e) => {
                        self.store_error("reading a ledger batch", &e);
                        break 'fetch;
                    }
                }
            }
        }
        self.metrics
            .fleet
            .lag_batches
            .set(self.head_seen.saturating_sub(self.applied) as i64);
        records
    }
}

impl Backend for FleetBackend {
    fn write(&mut self, records: &mut [Record]) -> Result<(), WriteError> {
        let seq = self.applied + 1;
        for r in records.iter_mut() {
            r.seq = seq;
        }
        let batch = Batch {
            seq,
            written_at: self.clock.now(),
            writer: self.opts.replica.clone(),
            records: records.to_vec(),
        };
        let key = self.store.key(&batch_key(seq));
        let body = Bytes::from(record::encode_batch(&batch));
        let started = Instant::now();
        let created = self
            .rt
            .block_on(self.store.write(&key, body, CONTENT_TYPE, &Expect::Absent));
        self.metrics
            .ledger
            .append_seconds
            .observe(started.elapsed().as_secs_f64());
        match created {
            Ok(_) => {
                self.metrics
                    .fleet
                    .batches_applied
                    .with_label_values(&["own"])
                    .inc();
                self.set_applied(seq);
                self.caught_up_at = self.clock.now();
                if seq % self.opts.snapshot_every == 0 {
                    self.snapshot_due = true;
                }
                self.advance_head(seq);
                Ok(())
            }
            Err(PublishError::Conflict) => {
                self.metrics.fleet.write_conflicts.inc();
                Err(WriteError::Behind)
            }
            Err(e) => {
                self.metrics.ledger.write_errors.inc();
                self.store_error("writing a ledger batch", &e);
                Err(WriteError::Io(format!("fleet ledger store: {e}")))
            }
        }
    }

    fn poll(&mut self, force: bool) -> Vec<Record> {
        self.polls = self.polls.wrapping_add(1);
        let look = if force || self.polls % PROBE_EVERY == 0 {
            true
        } else {
            match self.head_moved() {
                Ok(true) => true,
                Ok(false) => {
                    self.caught_up_at = self.clock.now();
                    false
                }
                Err(e) => {
                    self.store_error("reading the head pointer", &e);
                    false
                }
            }
        };
        let records = if look { self.catch_up() } else { Vec::new() };
        self.metrics
            .fleet
            .lag_seconds
            .set((self.clock.now() - self.caught_up_at).max(0) as f64);
        self.metrics
            .fleet
            .lag_batches
            .set(self.head_seen.saturating_sub(self.applied) as i64);
        records
    }

    fn poll_every(&self) -> Option<Duration> {
        Some(self.opts.poll)
    }

    fn after_batch(&mut self, applier: &dyn Applier) {
        if !std::mem::take(&mut self.snapshot_due) {
            return;
        }
        let seq = self.applied;
        let entries = applier.snapshot();
        let store = Arc::clone(&self.store);
        let stats = Arc::clone(&self.stats);
        let now = self.clock.now();
        self.rt.spawn(async move {
            let bytes = tokio::task::spawn_blocking(move || record::encode_snapshot(seq, &entries))
                .await
                .unwrap_or_default();
            let key = store.key(&snapshot_key(seq));
            match store
                .write(&key, Bytes::from(bytes), CONTENT_TYPE, &Expect::Absent)
                .await
            {
                Ok(_) | Err(PublishError::Conflict) => {
                    stats.snapshot_at.store(now, Ordering::Release);
                    tracing::info!(seq, "fleet snapshot written");
                }
                Err(e) => tracing::warn!(seq, error = %e, "fleet snapshot failed; replay from the batches still works"),
            }
        });
    }
}

/// `revocd ledger verify` in fleet mode: every snapshot and every batch in
/// the store, in order. True when all are readable and there is no gap.
pub async fn verify(store: &Arc<Publisher>, out: &mut dyn std::io::Write) -> anyhow::Result<bool> {
    let snapshots = list_snapshots(store).await?;
    let mut ok = true;
    writeln!(out, "fleet ledger {}", store.describe())?;
    for seq in &snapshots {
        let key = store.key(&snapshot_key(*seq));
        let verdict = match store.read_if_changed(&key, None).await? {
            Fetched::Found { bytes, .. } => match record::decode_snapshot(&bytes) {
                Ok((s, _)) if s == *seq => "ok".to_string(),
                Ok((s, _)) => format!("UNREADABLE: holds snapshot {s}"),
                Err(e) => format!("UNREADABLE: {e}"),
            },
            _ => "UNREADABLE: vanished while listing".to_string(),
        };
        ok &= verdict == "ok";
        writeln!(out, "snapshot {seq:>10}  {}  {verdict}", snapshot_key(*seq))?;
    }
    let mut next = 1;
    let mut n_records = 0u64;
    let mut problem = None;
    'fetch: loop {
        for fetched in fetch_range(store, next, PREFETCH).await {
            match fetched {
                Ok(Some(batch)) => {
                    n_records += batch.records.len() as u64;
                    next = batch.seq + 1;
                }
                Ok(None) => break 'fetch,
                Err(e) => {
                    problem = Some(e.to_string());
                    break 'fetch;
                }
            }
        }
    }
    let last = next - 1;
    writeln!(out, "batches 1..={last}: {n_records} records")?;
    if problem.is_none() {
        if let Some(s) = snapshots.last().filter(|s| **s > last) {
            problem = Some(format!("snapshot {s} exists but the batches end at {last}"));
        }
    }
    if let Some(p) = &problem {
        writeln!(out, "PROBLEM: {p}")?;
        return Ok(false);
    }
    if !ok {
        writeln!(
            out,
            "PROBLEM: unreadable snapshot(s); start-up replays from an older one"
        )?;
    }
    Ok(ok)
}
