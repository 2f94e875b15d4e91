//! CDN purge on revocation: every revocation or release this replica
//! acknowledges, from any source, becomes a CloudFront invalidation of the
//! serial's GET paths, so the edge stops serving the old answer in about
//! the time an invalidation takes instead of up to max-age.
//!
//! Changes are gathered for `cdn.batch` into one invalidation; paths in
//! invalidations not yet completed stay within `cdn.max-paths-in-progress`
//! (CloudFront allows 3,000). A backlog larger than what is left becomes one
//! wildcard path over every OCSP answer. A failed request is retried with
//! backoff, nothing dropped. CloudFront is called through the AWS SDK
//! (`crate::aws`), with its default credential chain.
//!
//! Purges survive a crash: the ledger tells the purger of each change in
//! sequence order, and once an invalidation is created the purger keeps the
//! highest sequence number it covers in `<data-dir>/cdn/purged-through`. At
//! start the changes this replica recorded after it are read back from the
//! ledger and purged again; when the ledger no longer holds them all, one
//! wildcard invalidation covers whatever they were.

pub mod paths;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Cdn as Options;
use crate::ledger::{Acknowledged, Ledger};
use crate::shared::Shared;

/// One invalidation CloudFront has not completed yet.
struct InProgress {
    id: String,
    paths: usize,
}

/// The changes waiting for an invalidation. Past the paths-in-progress
/// limit no invalidation could list them (each needs a path at least), so
/// only the first and the newest are kept, and one wildcard covers them
/// all: memory stays bounded through a mass revocation.
#[derive(Default)]
struct Backlog {
    changes: Vec<Acknowledged>,
    /// Changes left out since the backlog was over the limit.
    collapsed: usize,
}

impl Backlog {
    fn push(&mut self, a: Acknowledged, limit: usize) {
        if self.changes.len() < limit.max(2) {
            self.changes.push(a);
            return;
        }
        // Keep the oldest (for the latency metric) and the newest (the
        // sequence number the purge covers through).
        self.collapsed += self.changes.len() - 1;
        self.changes.truncate(1);
        self.changes.push(a);
    }

    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    fn len(&self) -> usize {
        self.changes.len() + self.collapsed
    }

    /// The highest sequence number waiting.
    fn through(&self) -> Option<u64> {
        self.changes.iter().map(|a| a.seq).max()
    }
}

pub struct Purger {
    options: Options,
    shared: Shared,
    /// `ocsp.path`.
    prefix: String,
    client: aws_sdk_cloudfront::Client,
    in_progress: Vec<InProgress>,
    sequence: u64,
    /// `<data-dir>/cdn/purged-through`.
    cursor: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    #[error("CloudFront {what}: {why}")]
    Api { what: &'static str, why: String },
}

impl Purger {
    pub fn new(
        options: Options,
        shared: Shared,
        prefix: String,
        sdk: &crate::aws::Sdk,
        cursor: PathBuf,
    ) -> Self {
        let client = crate::aws::cloudfront(sdk, options.endpoint.as_deref());
        Self {
            options,
            shared,
            prefix,
            client,
            in_progress: Vec::new(),
            sequence: 0,
            cursor,
        }
    }

    /// Gathers acknowledged changes and invalidates their paths until
    /// shutdown.
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Acknowledged>,
        resumed: Resume,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let limit = self.options.max_paths_in_progress;
        let mut pending = Backlog::default();
        match resumed {
            Resume::Nothing => {}
            Resume::Changes(changes) => {
                for a in changes {
                    pending.push(a, limit);
                }
            }
            Resume::Everything { through } => {
                let mut backoff = Duration::from_secs(1);
                while let Err(e) = self.purge_everything().await {
                    self.shared.metrics.cdn.errors.inc();
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "CDN invalidation failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = crate::shutdown::stopped(&mut shutdown) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
                self.advance(through).await;
            }
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            if pending.is_empty() {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(a) => pending.push(a, limit),
                        None => return,
                    },
                    () = crate::shutdown::stopped(&mut shutdown) => return,
                }
            }
            // Gather the batch.
            let until = tokio::time::Instant::now() + self.options.batch;
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(a) => pending.push(a, limit),
                        None => break,
                    },
                    () = tokio::time::sleep_until(until) => break,
                    () = crate::shutdown::stopped(&mut shutdown) => return,
                }
            }
            match self.purge(&pending).await {
                Ok(()) => {
                    // The ledger reports changes in sequence order: every
                    // earlier one was in this batch or an earlier one.
                    if let Some(through) = pending.through() {
                        self.advance(through).await;
                    }
                    pending = Backlog::default();
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    self.shared.metrics.cdn.errors.inc();
                    tracing::warn!(error = %e, pending = pending.len(), retry_in_s = backoff.as_secs(), "CDN invalidation failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = crate::shutdown::stopped(&mut shutdown) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// One invalidation for `pending`, within the paths-in-progress limit.
    async fn purge(&mut self, backlog: &Backlog) -> Result<(), CdnError> {
        let pending = backlog.changes.as_slice();
        let mut wanted: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for a in pending.iter().filter(|_| backlog.collapsed == 0) {
            let Some(idx) = self.shared.issuers.index(&a.issuer) else {
                continue;
            };
            if !seen.insert((idx, a.serial.clone())) {
                continue;
            }
            let cert = &self.shared.issuers[idx].cert;
            for p in paths::get_paths(&self.prefix, cert, &a.serial) {
                wanted.push(p);
            }
        }
        if wanted.is_empty() && backlog.collapsed == 0 {
            return Ok(());
        }
        self.refresh_in_progress().await?;
        let busy: usize = self.in_progress.iter().map(|i| i.paths).sum();
        let room = self.options.max_paths_in_progress.saturating_sub(busy);
        if room == 0 {
            return Err(CdnError::Api {
                what: "limit",
                why: format!("{busy} paths still in progress (cdn.max-paths-in-progress)"),
            });
        }
        let paths = if wanted.len() > room || backlog.collapsed > 0 {
            tracing::warn!(
                paths = wanted.len(),
                changes = backlog.len(),
                room,
                "too many paths for CloudFront's in-progress limit: invalidating every OCSP answer"
            );
            self.shared.metrics.cdn.wildcards.inc();
            vec![self.wildcard()]
        } else {
            wanted
        };
        self.invalidate(paths, pending).await
    }

    /// One path over every OCSP answer (it counts as one path).
    fn wildcard(&self) -> String {
        if self.prefix == "/" {
            "/*".to_string()
        } else {
            format!("{}/*", self.prefix.trim_end_matches('/'))
        }
    }

    /// After a restart that could not tell which changes were left
    /// unpurged: one wildcard.
    async fn purge_everything(&mut self) -> Result<(), CdnError> {
        self.refresh_in_progress().await?;
        tracing::warn!("purges pending before the restart cannot be read back from the ledger: invalidating every OCSP answer once");
        let path = self.wildcard();
        self.invalidate(vec![path], &[]).await?;
        self.shared.metrics.cdn.wildcards.inc();
        Ok(())
    }

    async fn invalidate(
        &mut self,
        paths: Vec<String>,
        pending: &[Acknowledged],
    ) -> Result<(), CdnError> {
        let id = self.create(&paths).await?;
        let m = &self.shared.metrics;
        m.cdn.paths.inc_by(paths.len() as u64);
        for a in pending {
            m.cdn
                .invalidation_seconds
                .observe(a.at.elapsed().as_secs_f64());
        }
        tracing::info!(invalidation = %id, paths = paths.len(), changes = pending.len(), "CloudFront invalidation created");
        self.in_progress.push(InProgress {
            id,
            paths: paths.len(),
        });
        m.cdn
            .paths_in_progress
            .set(self.in_progress.iter().map(|i| i.paths as i64).sum());
        Ok(())
    }

    /// Forgets invalidations CloudFront has completed.
    async fn refresh_in_progress(&mut self) -> Result<(), CdnError> {
        let mut still = Vec::new();
        let mut failed = None;
        for inv in std::mem::take(&mut self.in_progress) {
            if failed.is_some() {
                still.push(inv);
                continue;
            }
            let got = self
                .client
                .get_invalidation()
                .distribution_id(&self.options.distribution)
                .id(&inv.id)
                .send()
                .await;
            match got {
                // CloudFront says "Completed" (moto "COMPLETED").
                Ok(out)
                    if out
                        .invalidation()
                        .is_some_and(|i| i.status().eq_ignore_ascii_case("completed")) => {}
                Ok(_) => still.push(inv),
                Err(e) => {
                    failed = Some(CdnError::Api {
                        what: "GetInvalidation",
                        why: crate::aws::describe(&e),
                    });
                    still.push(inv);
                }
            }
        }
        self.in_progress = still;
        self.shared
            .metrics
            .cdn
            .paths_in_progress
            .set(self.in_progress.iter().map(|i| i.paths as i64).sum());
        failed.map_or(Ok(()), Err)
    }

    async fn create(&mut self, paths: &[String]) -> Result<String, CdnError> {
        use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
        self.sequence += 1;
        let api = |why: String| CdnError::Api {
            what: "CreateInvalidation",
            why,
        };
        let batch = InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(i32::try_from(paths.len()).unwrap_or(i32::MAX))
                    .set_items(Some(paths.to_vec()))
                    .build()
                    .map_err(|e| api(e.to_string()))?,
            )
            .caller_reference(format!(
                "revocd-{}-{}-{}",
                std::process::id(),
                self.shared.clock.now(),
                self.sequence
            ))
            .build()
            .map_err(|e| api(e.to_string()))?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.options.distribution)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| api(crate::aws::describe(&e)))?;
        out.invalidation()
            .map(|i| i.id().to_string())
            .ok_or_else(|| api("no invalidation in the answer".to_string()))
    }

    /// Keeps `through` as the highest sequence number purged. A cursor not
    /// written is not an error: the next start purges those changes again.
    async fn advance(&self, through: u64) {
        let path = self.cursor.clone();
        let written = tokio::task::spawn_blocking(move || write_cursor(&path, through)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            tracing::warn!(file = %self.cursor.display(), error = %e, "cannot keep the purge cursor; a restart purges these changes again");
        }
    }
}

/// What a start has to purge for the run before it.
#[derive(Debug)]
pub enum Resume {
    Nothing,
    /// These changes, read back from the ledger.
    Changes(Vec<Acknowledged>),
    /// Everything (one wildcard): the ledger no longer holds the changes
    /// after the cursor. Recorded as purged through `through` once done.
    Everything {
        through: u64,
    },
}

/// The purge cursor in `path`: `Ok(None)` when there is none yet.
fn read_cursor(path: &std::path::Path) -> std::io::Result<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| std::io::Error::other(format!("{text:?} is not a sequence number"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the cursor whole (temp file, fsync, rename).
fn write_cursor(path: &std::path::Path, seq: u64) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::tools::sync::replace_file(path, format!("{seq}\n").as_bytes())
}

/// What was left to purge when the last run stopped: the changes this
/// replica recorded after the cursor, up to now.
async fn resume(ledger: &Ledger, cursor: &std::path::Path) -> Resume {
    let last = ledger
        .stats()
        .last_seq
        .load(std::sync::atomic::Ordering::Acquire);
    let after = match read_cursor(cursor) {
        // The first start with [cdn]: nothing was pending.
        Ok(None) => {
            if let Err(e) = write_cursor(cursor, last) {
                tracing::warn!(file = %cursor.display(), error = %e, "cannot write the purge cursor");
            }
            return Resume::Nothing;
        }
        Ok(Some(c)) => c,
        Err(e) => {
            tracing::warn!(file = %cursor.display(), error = %e, "the purge cursor is unreadable");
            return Resume::Everything { through: last };
        }
    };
    if after >= last {
        return Resume::Nothing;
    }
    match ledger.own_changes_after(after).await {
        Ok(Some(changes)) => {
            let now = std::time::Instant::now();
            let changes: Vec<Acknowledged> = changes
                .into_iter()
                .map(|w| Acknowledged {
                    issuer: w.issuer,
                    serial: w.change.serial().clone(),
                    seq: w.seq,
                    at: now,
                })
                .collect();
            if !changes.is_empty() {
                tracing::info!(
                    changes = changes.len(),
                    after,
                    "CDN purges left pending by the last run are sent again"
                );
            }
            Resume::Changes(changes)
        }
        Ok(None) => Resume::Everything { through: last },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read back the changes after the purge cursor");
            Resume::Everything { through: last }
        }
    }
}

/// The running purger: where the ledger reports acknowledged changes, and
/// its task.
pub type Running = (
    mpsc::UnboundedSender<Acknowledged>,
    tokio::task::JoinHandle<()>,
);

/// Starts the purger when `[cdn]` is configured: it observes the ledger
/// from now on, and first purges what the last run left pending.
pub async fn start(
    options: Option<&Options>,
    shared: &Shared,
    prefix: &str,
    sdk: &crate::aws::Sdk,
    ledger: &Ledger,
    data_dir: &std::path::Path,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let options = options?;
    let cursor = data_dir.join("cdn").join("purged-through");
    let purger = Purger::new(
        options.clone(),
        shared.clone(),
        prefix.to_string(),
        sdk,
        cursor.clone(),
    );
    // Observe first, then read back what came before: a change recorded in
    // between is seen twice (purged twice), never not at all.
    let (tx, rx) = mpsc::unbounded_channel();
    ledger.observe(tx);
    let resumed = resume(ledger, &cursor).await;
    Some(tokio::spawn(purger.run(rx, resumed, shutdown)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cdn/purged-through");
        assert_eq!(read_cursor(&path).expect("read"), None);
        write_cursor(&path, 42).expect("write");
        assert_eq!(read_cursor(&path).expect("read"), Some(42));
        std::fs::write(&path, "garbage").expect("write");
        assert!(read_cursor(&path).is_err());
    }

    #[test]
    fn a_backlog_past_the_limit_keeps_two_changes_and_covers_the_newest() {
        let ack = |seq: u64| Acknowledged {
            issuer: "demo".into(),
            serial: crate::state::Serial::from_hex(&format!("{seq:X}")).expect("hex"),
            seq,
            at: std::time::Instant::now(),
        };
        let mut b = Backlog::default();
        for seq in 1..=3 {
            b.push(ack(seq), 3);
        }
        assert_eq!((b.changes.len(), b.collapsed), (3, 0), "within the limit");
        for seq in 4..=1_000_000 {
            b.push(ack(seq), 3);
        }
        assert!(b.changes.len() <= 3, "bounded: {}", b.changes.len());
        assert!(b.collapsed > 0, "a wildcard is due");
        assert_eq!(b.changes[0].seq, 1, "the oldest kept for the latency");
        assert_eq!(b.through(), Some(1_000_000));
        assert_eq!(b.len(), 1_000_000);
    }
}
