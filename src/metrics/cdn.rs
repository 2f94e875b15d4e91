//! CloudFront purges.

use prometheus::{Histogram, IntCounter, IntGauge};

use super::Registrar;

/// CloudFront purges.
#[derive(Debug, Clone)]
pub struct Cdn {
    /// CDN purge: seconds from a change's acknowledgement to the
    /// invalidation created, paths sent, wildcards, errors, paths in
    /// invalidations not completed yet.
    pub invalidation_seconds: Histogram,
    pub paths: IntCounter,
    pub wildcards: IntCounter,
    pub errors: IntCounter,
    pub paths_in_progress: IntGauge,
}

impl Cdn {
    pub(super) fn new(r: &Registrar) -> Self {
        Self {
            invalidation_seconds: r.histogram("revocd_cdn_revocation_to_invalidation_seconds", "From a revocation or release acknowledged to its CloudFront invalidation created", &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
            paths: r.counter("revocd_cdn_invalidated_paths_total", "Paths sent in CloudFront invalidations (a wildcard counts as one)"),
            wildcards: r.counter("revocd_cdn_wildcard_invalidations_total", "Invalidations of every OCSP answer because the paths exceeded the in-progress limit"),
            errors: r.counter("revocd_cdn_invalidation_errors_total", "Failed CloudFront requests (retried with backoff)"),
            paths_in_progress: r.gauge("revocd_cdn_paths_in_progress", "Paths in CloudFront invalidations not completed yet"),
        }
    }
}
