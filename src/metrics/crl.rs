//! CRL building and publishing.

use prometheus::{Histogram, IntCounterVec, IntGauge, IntGaugeVec};

use super::Registrar;

/// CRL building and publishing.
#[derive(Debug, Clone)]
pub struct Crl {
    pub publishes: IntCounterVec,
    pub publish_seconds: Histogram,
    pub last_success: IntGaugeVec,
    pub entries: IntGaugeVec,
    pub bytes: IntGaugeVec,
    pub number: IntGaugeVec,
    pub change_to_publish_seconds: Histogram,
    pub conflicts: IntCounterVec,
    pub foreign_writes: IntCounterVec,
    pub skipped: IntCounterVec,
    pub entries_kept: IntCounterVec,
    pub reconciled_missing: IntCounterVec,
    pub store_conditional: IntGauge,
}

impl Crl {
    pub(super) fn new(r: &Registrar) -> Self {
        Self {
            publishes: r.counters("revocd_crl_publishes_total", "CRL publish attempts by issuer and result (ok, error)", &["issuer", "result"]),
            publish_seconds: r.histogram("revocd_crl_publish_duration_seconds", "Time to build, check and upload one CRL", &prometheus::exponential_buckets(0.001, 4.0, 10).unwrap_or_default()),
            last_success: r.gauges("revocd_crl_last_success_timestamp_seconds", "Unix time of the last successful CRL publish", &["issuer"]),
            entries: r.gauges("revocd_crl_entries", "Entries on the live CRL", &["issuer"]),
            bytes: r.gauges("revocd_crl_size_bytes", "Size of the live CRL", &["issuer"]),
            number: r.gauges("revocd_crl_number", "CRL number of the live CRL", &["issuer"]),
            change_to_publish_seconds: r.histogram("revocd_crl_change_to_publish_seconds", "Time from the first unpublished change to the CRL that carries it", &[1.0, 10.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0]),
            conflicts: r.counters("revocd_crl_write_conflicts_total", "Conditional CRL writes that lost a race (412)", &["issuer"]),
            foreign_writes: r.counters("revocd_crl_foreign_writes_total", "Times the live CRL's ETag showed another writer", &["issuer"]),
            skipped: r.counters("revocd_crl_uploads_skipped_total", "Uploads skipped because the live CRL was current", &["issuer"]),
            entries_kept: r.counters("revocd_crl_entries_kept_total", "Entries the live CRL lists that a new CRL would have dropped without a certificateHold release: kept on the CRL by the safety gate", &["issuer"]),
            reconciled_missing: r.counters("revocd_crl_reconcile_differences_total", "Times the live CRL was found to differ from the state (a revocation missing after a crash, another writer's CRL): counted as an unpublished change", &["issuer"]),
            store_conditional: r.gauge("revocd_crl_store_conditional_writes", "1 if the start-up probe found the store honours conditional writes"),
        }
    }
}
