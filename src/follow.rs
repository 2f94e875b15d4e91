//! OpenSSL `index.txt` as a source: imported at start and followed for
//! changes. What differs from the state goes through the ledger like any
//! other change, so it is durable before OCSP shows it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::ledger::{ApplyError, Ledger, Outcome, Submitted};
use crate::ocsp::Responder;
use crate::state::Applied;

/// How often the file's size and mtime are checked.
pub const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub struct ImportReport {
    pub recorded: usize,
    pub bad_lines: usize,
    pub conflicts: usize,
}

/// Reads `path` and submits every change the state does not hold yet.
pub async fn import(
    responder: &Responder,
    ledger: &Ledger,
    issuer: &str,
    path: &std::path::Path,
) -> std::io::Result<ImportReport> {
    let text = tokio::fs::read_to_string(path).await?;
    let parsed = crate::index::parse(&text, responder.clock().now());
    let mut report = ImportReport {
        bad_lines: parsed.errors.len(),
        ..Default::default()
    };
    for e in &parsed.errors {
        tracing::warn!(issuer, file = %path.display(), "{e} (line skipped)");
    }
    let Some(idx) = responder.issuer_index(issuer) else {
        return Ok(report);
    };
    let state = &responder.issuers()[idx].state;
    let mut changes = Vec::new();
    for change in parsed.changes {
        match state.check(&change) {
            Ok(Applied::Unchanged) => {}
            Ok(Applied::Changed { .. }) => changes.push(Submitted {
                issuer: issuer.to_string(),
                change,
                author: "index".to_string(),
            }),
            Err(c) => {
                report.conflicts += 1;
                tracing::warn!(issuer, file = %path.display(), "{c}");
            }
        }
    }
    for outcome in ledger.submit(changes).await {
        match outcome {
            Outcome::Recorded { .. } => report.recorded += 1,
            Outcome::Unchanged => {}
            Outcome::Refused(ApplyError::Conflict(c)) => {
                report.conflicts += 1;
                tracing::warn!(issuer, file = %path.display(), "{c}");
            }
            Outcome::Refused(e) => tracing::warn!(issuer, "{e}"),
            Outcome::Failed(e) => tracing::error!(issuer, "index change not recorded: {e}"),
        }
    }
    if report.recorded > 0 {
        tracing::info!(issuer, file = %path.display(), recorded = report.recorded, "index changes recorded");
    }
    Ok(report)
}

/// Follows `path` until shutdown: re-imports when its size or mtime changes.
pub async fn follow(
    responder: std::sync::Arc<Responder>,
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
            if let Err(e) = import(&responder, &ledger, &issuer, &path).await {
                tracing::warn!(issuer, file = %path.display(), error = %e, "cannot read index");
            }
        }
    }
}
