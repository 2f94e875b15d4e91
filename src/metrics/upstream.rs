//! Upstream sources: CRLs, audit reports and certificate lists polled.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;

/// Upstream sources: CRLs, audit reports and certificate lists polled.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Upstream sources: polls by issuer, kind (crl, audit_report, certs)
    /// and result; changes recorded from them by kind; CRLs refused; serials
    /// a CRL dropped without a hold release (never applied); last success.
    pub polls: IntCounterVec,
    pub changes: IntCounterVec,
    pub refused: IntCounterVec,
    pub vanished: IntCounterVec,
    pub last_success: IntGaugeVec,
}

impl Upstream {
    pub(super) fn new(r: &Registrar) -> Self {
        Self {
            polls: r.counters("revocd_upstream_polls_total", "Polls of upstream sources by issuer, kind and result (unchanged, applied, refused, waiting, error)", &["issuer", "kind", "result"]),
            changes: r.counters("revocd_upstream_changes_total", "Changes recorded from upstream sources, by kind (register, revoke, release)", &["issuer", "kind"]),
            refused: r.counters("revocd_upstream_crls_refused_total", "Upstream CRLs refused (signature, issuer, number not increasing, unknown critical extension)", &["issuer"]),
            vanished: r.counters("revocd_upstream_vanished_serials_total", "Revoked serials an upstream CRL stopped listing without a hold release: never applied", &["issuer"]),
            last_success: r.gauges("revocd_upstream_last_success_timestamp_seconds", "When an upstream source of the issuer was last read successfully", &["issuer"]),
        }
    }
}
