//! Fleet mode: the shared ledger in the object store.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

use super::Registrar;

/// Fleet mode: the shared ledger in the object store.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Sequence of a batch in the store that fails its checksum (0: none).
    pub corrupt_batch: IntGauge,
    /// Fleet mode: the last batch applied here and the head seen in the store.
    pub applied_sequence: IntGauge,
    pub head_sequence: IntGauge,
    /// head - applied: batches this replica has yet to apply.
    pub lag_batches: IntGauge,
    /// Seconds since this replica last knew it held every batch.
    pub lag_seconds: prometheus::Gauge,
    /// From a batch being written (its written_at) to its apply here.
    pub batch_delay_seconds: Histogram,
    /// Batches applied, by source: own (written here) or peer.
    pub batches_applied: IntCounterVec,
    /// Batch creates that lost the race for a sequence number (412).
    pub write_conflicts: IntCounter,
    pub store_errors: IntCounter,
}

impl Fleet {
    pub(super) fn new(r: &Registrar) -> Self {
        Self {
            corrupt_batch: r.gauge("revocd_fleet_corrupt_batch", "Sequence of a ledger batch in the store that fails its checksum; the replica stops applying there (0: none)"),
            applied_sequence: r.gauge("revocd_fleet_applied_sequence", "Fleet mode: the last ledger batch applied on this replica"),
            head_sequence: r.gauge("revocd_fleet_head_sequence", "Fleet mode: the ledger head pointer last read from the store"),
            lag_batches: r.gauge("revocd_fleet_lag_batches", "Fleet mode: batches in the store not yet applied here (head - applied)"),
            lag_seconds: r.float_gauge("revocd_fleet_lag_seconds", "Fleet mode: seconds since this replica last confirmed it held every batch"),
            batch_delay_seconds: r.histogram("revocd_fleet_batch_delay_seconds", "Fleet mode: from a batch being written by any replica to its apply here", &[0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0]),
            batches_applied: r.counters("revocd_fleet_batches_applied_total", "Fleet mode: ledger batches applied, by source (own, peer)", &["source"]),
            write_conflicts: r.counter("revocd_fleet_write_conflicts_total", "Fleet mode: batch writes that lost the race for a sequence number (412)"),
            store_errors: r.counter("revocd_fleet_store_errors_total", "Fleet mode: failed requests to the ledger store"),
        }
    }
}
