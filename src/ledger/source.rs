//! What a source of changes hands the ledger (index.txt, upstream CRLs and
//! reports): only the changes the state does not hold yet, each recorded
//! with the source as its author; a change that contradicts the state is
//! logged and skipped, never recorded.

use super::handle::Ledger;
use super::types::{ApplyError, Outcome, Submitted};
use crate::state::{Applied, Change, IssuerState};

/// What came of a source's changes.
#[derive(Debug, Default)]
pub struct FromSource {
    /// The kind (`register`, `revoke`, `release`) of each change recorded.
    pub recorded: Vec<&'static str>,
    /// Changes that contradict the state: not recorded.
    pub conflicts: usize,
    /// The ledger failed: the source is read again next time.
    pub failed: bool,
}

/// Submits `changes` of issuer `issuer` (whose state is `state`) made by
/// `author`; logs at most ten conflicts.
pub async fn submit_from_source(
    ledger: &Ledger,
    issuer: &str,
    state: &IssuerState,
    changes: Vec<Change>,
    author: &str,
) -> FromSource {
    let mut report = FromSource::default();
    let mut conflict = |c: &dyn std::fmt::Display| {
        report.conflicts += 1;
        if report.conflicts <= 10 {
            tracing::warn!(issuer, source = author, "{c} (not applied)");
        }
    };
    let mut submit = Vec::new();
    for change in changes {
        match state.check(&change) {
            Ok(Applied::Unchanged) => {}
            Ok(Applied::Changed { .. }) => submit.push(Submitted {
                issuer: issuer.to_string(),
                change,
                author: author.to_string(),
            }),
            Err(c) => conflict(&c),
        }
    }
    let kinds: Vec<&'static str> = submit.iter().map(|s| s.change.kind()).collect();
    let mut failed = false;
    let mut recorded = Vec::new();
    for (outcome, kind) in ledger.submit(submit).await.into_iter().zip(kinds) {
        match outcome {
            Outcome::Recorded { .. } => recorded.push(kind),
            Outcome::Unchanged => {}
            Outcome::Refused(ApplyError::Conflict(c)) => conflict(&c),
            Outcome::Refused(e) => tracing::warn!(issuer, source = author, "{e}"),
            Outcome::Failed(e) => {
                failed = true;
                tracing::error!(issuer, source = author, "change not recorded: {e}");
            }
        }
    }
    if !recorded.is_empty() {
        tracing::info!(
            issuer,
            source = author,
            recorded = recorded.len(),
            "changes recorded"
        );
    }
    report.recorded = recorded;
    report.failed = failed;
    report
}
