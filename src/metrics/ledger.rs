//! The ledger: durable changes, appends, snapshots and replay.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

use super::Registrar;

/// The ledger: durable changes, appends, snapshots and replay.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Durable changes by kind: register, revoke, release.
    pub changes: IntCounterVec,
    pub append_seconds: Histogram,
    pub fsync_seconds: Histogram,
    pub snapshot_age_seconds: IntGauge,
    pub write_errors: IntCounter,
    pub last_sequence: IntGauge,
    pub unreadable_snapshots: IntGauge,
    pub replay_seconds: prometheus::Gauge,
}

impl Ledger {
    pub(super) fn new(r: &Registrar) -> Self {
        Self {
            changes: r.counters("revocd_ledger_changes_total", "Changes made durable, by kind: register, revoke, release", &["kind"]),
            append_seconds: r.histogram("revocd_ledger_append_duration_seconds", "Time to write one group-committed batch to the ledger", &prometheus::exponential_buckets(0.000_01, 4.0, 10).unwrap_or_default()),
            fsync_seconds: r.histogram("revocd_ledger_fsync_duration_seconds", "Time of the one fsync that makes a batch durable", &prometheus::exponential_buckets(0.000_05, 3.0, 10).unwrap_or_default()),
            snapshot_age_seconds: r.gauge("revocd_ledger_snapshot_age_seconds", "Seconds since the newest ledger snapshot was installed (-1: none)"),
            write_errors: r.counter("revocd_ledger_write_errors_total", "Ledger writes that failed (disk full, I/O error); their changes were refused"),
            last_sequence: r.gauge("revocd_ledger_last_sequence", "Sequence number of the newest durable ledger record"),
            unreadable_snapshots: r.gauge("revocd_ledger_unreadable_snapshots", "Ledger snapshots start-up found unreadable (it recovered from an older one; run revocd ledger verify)"),
            replay_seconds: r.float_gauge("revocd_ledger_replay_seconds", "Time start-up took to rebuild state from snapshot and ledger"),
        }
    }
}
