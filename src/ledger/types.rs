//! The ledger's vocabulary, shared by the handle, the writer thread, the
//! backends and recovery: what a change is and what came of it, the
//! [`Applier`] seam to the state, and the file names of the embedded
//! ledger.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::record::{IssuerEntries, Record};
use crate::state::{Applied, Change, Conflict, Entry, Serial};

/// What the ledger applies durable changes to: the in-memory state.
pub trait Applier: Send + Sync + 'static {
    /// What applying would do, without doing it (conflicts are refused
    /// before anything is written).
    fn check(&self, issuer: &str, change: &Change) -> Result<Applied, ApplyError>;
    /// Applies a change that is on disk, made by `author`.
    fn apply(&self, issuer: &str, change: &Change, author: &str);
    /// The end of a group of applied changes (one commit, a peer's batch),
    /// before they are acknowledged: finish what they need.
    fn settle(&self) {}
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

/// One change for one issuer, and who makes it: an operator's name, or the
/// source (`index`, `upstream:<url>`, `aws-events`). Recorded with the
/// change (docs/design.md: what revocd never does).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub issuer: String,
    pub change: Change,
    pub author: String,
}

pub(crate) struct Request {
    pub(crate) changes: Vec<Submitted>,
    pub(crate) reply: oneshot::Sender<Vec<Outcome>>,
}

/// A revocation or release this replica recorded: what a CDN may hold an
/// older answer for.
#[derive(Debug, Clone)]
pub struct Acknowledged {
    pub issuer: String,
    pub serial: crate::state::Serial,
    /// Its ledger sequence number (the batch's, in fleet mode).
    pub seq: u64,
    /// When the ledger acknowledged it.
    pub at: std::time::Instant,
}

/// Where an observer of recorded changes is told of them: set once, read by
/// the writer thread, which sends in sequence order.
pub(crate) type Observer =
    Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Acknowledged>>>;

/// Where the records this replica wrote can be read back.
#[derive(Clone)]
pub enum History {
    /// The segment files of the embedded ledger.
    File(PathBuf),
    /// The batches in the fleet store written by `replica`.
    Fleet {
        store: Arc<crate::publish::Publisher>,
        replica: String,
    },
}

/// A change read back from the ledger.
#[derive(Debug, Clone)]
pub struct Written {
    pub seq: u64,
    pub issuer: String,
    pub change: Change,
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
    /// Snapshots that did not verify (start-up went on from an older one).
    pub unreadable_snapshots: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    /// Records between snapshots.
    pub snapshot_every: u64,
}

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("log-{first_seq:020}.rvl")
}

pub(crate) fn snapshot_name(seq: u64) -> String {
    format!("snap-{seq:020}.rvs")
}

/// Files in `dir` named `prefix<20 digits>suffix`, sorted by number.
pub(crate) fn numbered(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> std::io::Result<Vec<(u64, PathBuf)>> {
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

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Applies a record read back from a ledger (recovery, a peer's batch). It
/// was checked when written; one that no longer applies is logged and
/// skipped. Returns whether it was applied.
pub(crate) fn replay(applier: &dyn Applier, rec: &Record) -> bool {
    match applier.check(&rec.issuer, &rec.change) {
        Ok(_) => {
            applier.apply(&rec.issuer, &rec.change, &rec.author);
            true
        }
        Err(e) => {
            tracing::warn!(seq = rec.seq, error = %e, "ledger record no longer applies; skipped");
            false
        }
    }
}
