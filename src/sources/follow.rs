//! OpenSSL `index.txt` as a source: imported at start and followed for
//! changes. What differs from the state goes through the ledger like any
//! other change, so it is durable before OCSP shows it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::issuer::Issuers;
use crate::ledger::{submit_from_source, Ledger};

/// How often the file's size and mtime are checked.
pub const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub struct ImportReport {
    pub recorded: usize,
    pub bad_lines: usize,
    pub conflicts: usize,
}

/// The author of every change from index.txt.
pub const AUTHOR: &str = "index";

/// Reads `path` and submits every change the state does not hold yet.
pub async fn import(
    issuers: &Issuers,
    now: i64,
    ledger: &Ledger,
    issuer: &str,
    path: &std::path::Path,
) -> std::io::Result<ImportReport> {
    let text = tokio::fs::read_to_string(path).await?;
    let parsed = crate::sources::index::parse(&text, now);
    let mut report = ImportReport {
        bad_lines: parsed.errors.len(),
        ..Default::default()
    };
    for e in &parsed.errors {
        tracing::warn!(issuer, file = %path.display(), "{e} (line skipped)");
    }
    let Some(idx) = issuers.index(issuer) else {
        return Ok(report);
    };
    let from =
        submit_from_source(ledger, issuer, &issuers[idx].state, parsed.changes, AUTHOR).await;
    report.recorded = from.recorded.len();
    report.conflicts = from.conflicts;
    Ok(report)
}

/// Follows `path` until shutdown: re-imports when its size or mtime changes.
pub async fn follow(
    issuers: std::sync::Arc<Issuers>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    ledger: Ledger,
    issuer: String,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let stamp = |p: &PathBuf| -> Option<(u64, SystemTime)> {
        let m = std::fs::metadata(p).ok()?;
        Some((m.len(), m.modified().ok()?))
    };
    let mut last = stamp(&path);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
        let now = stamp(&path);
        if now.is_some() && now != last {
            last = now;
            if let Err(e) = import(&issuers, clock.now(), &ledger, &issuer, &path).await {
                tracing::warn!(issuer, file = %path.display(), error = %e, "cannot read index");
            }
        }
    }
}
