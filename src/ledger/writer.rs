//! The writer thread: takes groups of changes, checks them against the
//! state, has the backend record them (one fsync or one object per group),
//! then applies and acknowledges. It is the same in both modes; only the
//! [`Backend`] differs.

use std::time::Instant;

use super::record::Record;
use super::types::{replay, Applier, LedgerError, Outcome, Request};
use crate::metrics::Metrics;
use crate::state::{Applied, Change, Serial};
use std::collections::HashSet;
use std::sync::Arc;

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

pub(super) struct Writer {
    pub(super) backend: Box<dyn Backend>,
    pub(super) applier: Arc<dyn Applier>,
    pub(super) metrics: Metrics,
    /// Told of every revocation and release recorded here, in sequence
    /// order (peers' batches are theirs to report).
    pub(super) observer: super::types::Observer,
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
    pub(super) fn run(mut self, rx: std::sync::mpsc::Receiver<Request>) {
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
        if records.is_empty() {
            return;
        }
        self.apply_each_foreign(records);
        self.applier.settle();
    }

    fn apply_each_foreign(&self, records: &[Record]) {
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
                author = %rec.author,
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
                                author: sub.author.clone(),
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
                    self.applier.apply(&rec.issuer, &rec.change, &rec.author);
                    if matches!(rec.change, Change::Revoke { .. }) {
                        self.metrics
                            .ocsp
                            .revocation_visible_seconds
                            .observe(received.elapsed().as_secs_f64());
                    }
                    let kind = rec.change.kind();
                    self.metrics.ledger.changes.with_label_values(&[kind]).inc();
                    if let (Some(observer), false) = (
                        self.observer.get(),
                        matches!(rec.change, Change::Register { .. }),
                    ) {
                        let _ = observer.send(super::types::Acknowledged {
                            issuer: rec.issuer.clone(),
                            serial: rec.change.serial().clone(),
                            seq: rec.seq,
                            at: Instant::now(),
                        });
                    }
                    tracing::info!(
                        target: "audit",
                        event = kind,
                        issuer = %rec.issuer,
                        serial = %rec.change.serial(),
                        seq = rec.seq,
                        author = %rec.author,
                        detail = ?rec.change,
                        "change recorded"
                    );
                    Outcome::Recorded { seq: rec.seq }
                }
                Err(WriteError::Io(e)) => Outcome::Failed(LedgerError::Io(e.clone())),
                Err(WriteError::Behind) => Outcome::Failed(LedgerError::Closed),
            });
        }
        if result.is_ok() {
            self.applier.settle();
        }
        Ok(())
    }
}
