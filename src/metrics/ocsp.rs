//! OCSP: requests and answers, the caches, signing and the pre-signer.

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::tally::{self, Family, Tally};
use super::Registrar;

/// OCSP: requests and answers, the caches, signing and the pre-signer.
#[derive(Debug, Clone)]
pub struct Ocsp {
    /// The hit path's counts of `cache_hits`, successful `requests`,
    /// `answers` and `response_age_seconds`, per thread; summed into
    /// those families when scraped.
    pub tally: Tally,
    /// OCSP requests by HTTP method and OCSP response status.
    pub requests: IntCounterVec,
    /// Certificate statuses answered, by status and CertID hash algorithm.
    pub answers: IntCounterVec,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    /// Answers of the previous window served because the signer could not
    /// sign (HSM down): still valid, until their nextUpdate.
    pub stale_served: IntCounter,
    /// Signatures made, by why (presign, on_demand, change).
    pub signings: IntCounterVec,
    pub signing_seconds: HistogramVec,
    pub signing_in_flight: IntGauge,
    pub signing_shed: IntCounter,
    /// now - thisUpdate of each answer served.
    pub response_age_seconds: Histogram,
    /// Serials whose next-window responses the pre-signer has made.
    pub presigned_serials: IntGaugeVec,
    /// 1 while an issuer's next window cannot all be signed within the
    /// pre-signer's CPU share: recently requested serials go first.
    pub presign_degraded: IntGaugeVec,
    /// Serials a window rolled over without (signed on demand instead).
    pub presign_missed: IntGaugeVec,
    pub answer_files_refused: IntCounter,
    pub answer_file_read_errors: IntGauge,
    /// Wall time the pre-signer's workers spent signing.
    pub presign_busy_seconds: prometheus::Counter,
    /// Responses in the cache and what they are charged, set at scrape.
    pub cached_responses: IntGauge,
    pub cache_bytes: IntGauge,
    pub uncommon_shed: IntCounterVec,
    pub uncommon_cache_bytes: IntGauge,
    /// From a revocation reaching the ledger to OCSP serving it at the origin.
    pub revocation_visible_seconds: Histogram,
    /// Serials a change made stale, waiting to be signed again ahead of
    /// routine pre-signing (a mass revocation, a peer's large batch).
    pub resign_queue: IntGauge,
}

impl Ocsp {
    pub(super) fn new(r: &Registrar) -> Self {
        let tally = Tally::default();
        Self {
            requests: r.tallied(r.counters_unregistered("revocd_ocsp_requests_total", "OCSP requests by HTTP method and OCSP response status", &["method", "status"]), &tally, Family::Requests),
            answers: r.tallied(r.counters_unregistered("revocd_ocsp_answers_total", "Certificate statuses answered, by status and CertID hash algorithm", &["cert_status", "hash"]), &tally, Family::Answers),
            cache_hits: r.tallied(r.counter_unregistered("revocd_ocsp_cache_hits_total", "OCSP answers served from pre-signed bytes"), &tally, Family::Hits),
            cache_misses: r.counter("revocd_ocsp_cache_misses_total", "OCSP answers that needed an on-demand signature"),
            stale_served: r.counter("revocd_ocsp_stale_served_total", "Previous-window answers served because the signer could not sign (HSM down)"),
            signings: r.counters("revocd_ocsp_signings_total", "OCSP responses signed, by why: presign, on_demand, change", &["why"]),
            signing_seconds: r.histograms("revocd_ocsp_signing_duration_seconds", "Time to encode and sign one OCSP response", &["why"], &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1]),
            signing_in_flight: r.gauge("revocd_ocsp_signing_in_flight", "On-demand signings running now"),
            resign_queue: r.gauge("revocd_ocsp_resign_queue", "Serials a change made stale, waiting to be signed again ahead of routine pre-signing (until then they are signed on demand)"),
            signing_shed: r.counter("revocd_ocsp_signing_shed_total", "On-demand signings refused (tryLater) because the signing budget was spent"),
            response_age_seconds: r.tallied(r.histogram_unregistered("revocd_ocsp_response_age_seconds", "Age (now - thisUpdate) of OCSP responses when served", &tally::AGE_BUCKETS), &tally, Family::Age),
            presigned_serials: r.gauges("revocd_ocsp_presigned_serials", "Serials whose responses for the window are signed, by issuer and window (current, next)", &["issuer", "window"]),
            presign_degraded: r.gauges("revocd_ocsp_presign_degraded", "1 while the next window cannot all be pre-signed within ocsp.presign-cpu-share (recently requested serials first, the rest on demand)", &["issuer"]),
            presign_missed: r.gauges("revocd_ocsp_presign_missed_serials", "Serials of the last window rollover that were not pre-signed in time (signed on demand)", &["issuer"]),
            answer_files_refused: r.counter("revocd_ocsp_answer_files_refused_total", "Answer table files that failed verification at start (removed; their window is signed again)"),
            answer_file_read_errors: r.gauge("revocd_ocsp_answer_file_read_errors", "Records of the answer table files in use that could not be read or verified (signed on demand instead)"),
            presign_busy_seconds: r.float_counter("revocd_ocsp_presign_busy_seconds_total", "Wall time the pre-signer spent signing (rate / cores = its CPU share)"),
            cached_responses: r.gauge("revocd_ocsp_cached_responses", "Signed responses held: pre-signed in the window tables plus signed on demand in the cache"),
            cache_bytes: r.gauge("revocd_ocsp_cache_bytes", "Bytes of held responses: the window tables' answer bytes (ETag and own DER; the responder certificate is shared), plus what on-demand answers are charged against ocsp.cache-max-bytes (own bytes + 600 per entry)"),
            uncommon_shed: r.counters("revocd_ocsp_uncommon_shed_total", "Uncommon requests (several CertIDs, unknown serials, nonce echo) answered tryLater, by the limit that refused them (rate, budget)", &["reason"]),
            uncommon_cache_bytes: r.gauge("revocd_ocsp_uncommon_cache_bytes", "Bytes charged to the cache of uncommon requests' answers (kept apart from pre-signed answers)"),
            revocation_visible_seconds: r.histogram("revocd_ocsp_revocation_visible_seconds", "Time from a revocation reaching the ledger to OCSP answering it at the origin (fsync and re-sign included)", &prometheus::exponential_buckets(0.000_5, 3.0, 10).unwrap_or_default()),
            tally,
        }
    }
}
