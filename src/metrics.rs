//! Prometheus metrics, named `revocd_<area>_<what>_<unit>` with bounded labels.

pub mod tally;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// OCSP requests by HTTP method and OCSP response status.
    pub ocsp_requests: IntCounterVec,
    /// Certificate statuses answered, by status and CertID hash algorithm.
    pub ocsp_answers: IntCounterVec,
    pub ocsp_cache_hits: IntCounter,
    /// The hit path's counts of `ocsp_cache_hits`, successful
    /// `ocsp_requests`, `ocsp_answers` and `ocsp_response_age_seconds`,
    /// per thread; summed into those families when scraped.
    pub tally: tally::Tally,
    pub ocsp_cache_misses: IntCounter,
    /// Answers of the previous window served because the signer could not
    /// sign (HSM down): still valid, until their nextUpdate.
    pub ocsp_stale_served: IntCounter,
    /// 1 while an issuer's signer can sign, by role (ocsp, crl); set at
    /// scrape. 0 means its HSM is down and revocd is reconnecting.
    pub signer_up: IntGaugeVec,
    /// Per PKCS#11 module, set at scrape: up, errors, reconnections and
    /// signings in flight.
    pub hsm_up: IntGaugeVec,
    pub hsm_errors: IntCounterVec,
    pub hsm_reconnects: IntCounterVec,
    pub hsm_in_flight: IntGaugeVec,
    /// CDN purge: seconds from a change's acknowledgement to the
    /// invalidation created, paths sent, wildcards, errors, paths in
    /// invalidations not completed yet.
    pub cdn_invalidation_seconds: Histogram,
    pub cdn_paths: IntCounter,
    pub cdn_wildcards: IntCounter,
    pub cdn_errors: IntCounter,
    pub cdn_paths_in_progress: IntGauge,
    /// Upstream sources: polls by issuer, kind (crl, audit_report, certs)
    /// and result; changes recorded from them by kind; CRLs refused; serials
    /// a CRL dropped without a hold release (never applied); last success.
    pub upstream_polls: IntCounterVec,
    pub upstream_changes: IntCounterVec,
    pub upstream_refused: IntCounterVec,
    pub upstream_vanished: IntCounterVec,
    pub upstream_last_success: IntGaugeVec,
    /// Signatures made, by why (presign, on_demand, change).
    pub ocsp_signings: IntCounterVec,
    pub ocsp_signing_seconds: HistogramVec,
    pub ocsp_signing_in_flight: IntGauge,
    pub ocsp_signing_shed: IntCounter,
    /// now - thisUpdate of each answer served.
    pub ocsp_response_age_seconds: Histogram,
    /// Serials whose next-window responses the pre-signer has made.
    pub ocsp_presigned_serials: IntGaugeVec,
    /// 1 while an issuer's next window cannot all be signed within the
    /// pre-signer's CPU share: recently requested serials go first.
    pub ocsp_presign_degraded: IntGaugeVec,
    /// Serials a window rolled over without (signed on demand instead).
    pub ocsp_presign_missed: IntGaugeVec,
    pub ocsp_answer_files_refused: IntCounter,
    pub ocsp_answer_file_read_errors: IntGauge,
    /// Wall time the pre-signer's workers spent signing.
    pub ocsp_presign_busy_seconds: prometheus::Counter,
    /// Responses in the cache and what they are charged, set at scrape.
    pub ocsp_cached_responses: IntGauge,
    pub ocsp_cache_bytes: IntGauge,
    pub ready: IntGauge,
    /// Durable changes by kind: register, revoke, release.
    pub ledger_changes: IntCounterVec,
    pub ledger_append_seconds: Histogram,
    pub ledger_fsync_seconds: Histogram,
    pub ledger_write_errors: IntCounter,
    pub ledger_snapshot_age_seconds: IntGauge,
    pub ledger_last_sequence: IntGauge,
    pub ledger_replay_seconds: prometheus::Gauge,
    /// Serials known per issuer and status (good, revoked), set at scrape.
    pub issuer_serials: IntGaugeVec,
    pub crl_publishes: IntCounterVec,
    pub crl_publish_seconds: Histogram,
    pub crl_last_success: IntGaugeVec,
    pub crl_entries: IntGaugeVec,
    pub crl_bytes: IntGaugeVec,
    pub crl_number: IntGaugeVec,
    pub crl_change_to_publish_seconds: Histogram,
    pub crl_conflicts: IntCounterVec,
    pub crl_foreign_writes: IntCounterVec,
    pub crl_skipped: IntCounterVec,
    pub crl_store_conditional: IntGauge,
    /// From a revocation reaching the ledger to OCSP serving it at the origin.
    pub ocsp_revocation_visible_seconds: Histogram,
    pub http_connections_open: IntGaugeVec,
    /// Connections closed at once because `listen.max-connections` were open.
    pub http_connections_refused: IntCounterVec,
    /// Connections hyper ended with an error, by kind (header_timeout:
    /// slowloris or an idle keep-alive cut off; malformed; other).
    pub http_connection_errors: IntCounterVec,
    /// Requests refused before the handler, by reason (body_too_large).
    pub http_requests_rejected: IntCounterVec,
    /// Fleet mode: the last batch applied here and the head seen in the store.
    pub fleet_applied_sequence: IntGauge,
    pub fleet_head_sequence: IntGauge,
    /// head - applied: batches this replica has yet to apply.
    pub fleet_lag_batches: IntGauge,
    /// Seconds since this replica last knew it held every batch.
    pub fleet_lag_seconds: prometheus::Gauge,
    /// From a batch being written (its written_at) to its apply here.
    pub fleet_batch_delay_seconds: Histogram,
    /// Batches applied, by source: own (written here) or peer.
    pub fleet_batches_applied: IntCounterVec,
    /// Batch creates that lost the race for a sequence number (412).
    pub fleet_write_conflicts: IntCounter,
    pub fleet_store_errors: IntCounter,
    /// Sequence of a batch in the store that fails its checksum (0: none).
    pub fleet_corrupt_batch: IntGauge,
    pub ledger_unreadable_snapshots: IntGauge,
    pub crl_entries_kept: IntCounterVec,
    pub ocsp_uncommon_shed: IntCounterVec,
    pub ocsp_uncommon_cache_bytes: IntGauge,
    pub crl_reconciled_missing: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let fleet_gauge =
            |name: &str, help: &str| IntGauge::new(name, help).expect("static metric");
        let m = Self {
            tally: tally::Tally::default(),
            ocsp_requests: IntCounterVec::new(
                Opts::new(
                    "revocd_ocsp_requests_total",
                    "OCSP requests by HTTP method and OCSP response status",
                ),
                &["method", "status"],
            )
            .expect("static metric"),
            ocsp_answers: IntCounterVec::new(
                Opts::new(
                    "revocd_ocsp_answers_total",
                    "Certificate statuses answered, by status and CertID hash algorithm",
                ),
                &["cert_status", "hash"],
            )
            .expect("static metric"),
            ocsp_cache_hits: IntCounter::new(
                "revocd_ocsp_cache_hits_total",
                "OCSP answers served from pre-signed bytes",
            )
            .expect("static metric"),
            ocsp_cache_misses: IntCounter::new(
                "revocd_ocsp_cache_misses_total",
                "OCSP answers that needed an on-demand signature",
            )
            .expect("static metric"),
            cdn_invalidation_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_cdn_revocation_to_invalidation_seconds",
                    "From a revocation or release acknowledged to its CloudFront invalidation created",
                )
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
            )
            .expect("static metric"),
            cdn_paths: IntCounter::new(
                "revocd_cdn_invalidated_paths_total",
                "Paths sent in CloudFront invalidations (a wildcard counts as one)",
            )
            .expect("static metric"),
            cdn_wildcards: IntCounter::new(
                "revocd_cdn_wildcard_invalidations_total",
                "Invalidations of every OCSP answer because the paths exceeded the in-progress limit",
            )
            .expect("static metric"),
            cdn_errors: IntCounter::new(
                "revocd_cdn_invalidation_errors_total",
                "Failed CloudFront requests (retried with backoff)",
            )
            .expect("static metric"),
            cdn_paths_in_progress: IntGauge::new(
                "revocd_cdn_paths_in_progress",
                "Paths in CloudFront invalidations not completed yet",
            )
            .expect("static metric"),
            upstream_polls: IntCounterVec::new(
                Opts::new(
                    "revocd_upstream_polls_total",
                    "Polls of upstream sources by issuer, kind and result (unchanged, applied, refused, waiting, error)",
                ),
                &["issuer", "kind", "result"],
            )
            .expect("static metric"),
            upstream_changes: IntCounterVec::new(
                Opts::new(
                    "revocd_upstream_changes_total",
                    "Changes recorded from upstream sources, by kind (register, revoke, release)",
                ),
                &["issuer", "kind"],
            )
            .expect("static metric"),
            upstream_refused: IntCounterVec::new(
                Opts::new(
                    "revocd_upstream_crls_refused_total",
                    "Upstream CRLs refused (signature, issuer, number not increasing, unknown critical extension)",
                ),
                &["issuer"],
            )
            .expect("static metric"),
            upstream_vanished: IntCounterVec::new(
                Opts::new(
                    "revocd_upstream_vanished_serials_total",
                    "Revoked serials an upstream CRL stopped listing without a hold release: never applied",
                ),
                &["issuer"],
            )
            .expect("static metric"),
            upstream_last_success: IntGaugeVec::new(
                Opts::new(
                    "revocd_upstream_last_success_timestamp_seconds",
                    "When an upstream source of the issuer was last read successfully",
                ),
                &["issuer"],
            )
            .expect("static metric"),
            ocsp_stale_served: IntCounter::new(
                "revocd_ocsp_stale_served_total",
                "Previous-window answers served because the signer could not sign (HSM down)",
            )
            .expect("static metric"),
            signer_up: IntGaugeVec::new(
                Opts::new(
                    "revocd_signer_up",
                    "1 while the issuer's signer can sign (0: its HSM is down, reconnecting)",
                ),
                &["issuer", "role"],
            )
            .expect("static metric"),
            hsm_up: IntGaugeVec::new(
                Opts::new("revocd_hsm_up", "1 while the PKCS#11 module signs"),
                &["module"],
            )
            .expect("static metric"),
            hsm_errors: IntCounterVec::new(
                Opts::new(
                    "revocd_hsm_errors_total",
                    "PKCS#11 errors while signing (each marks the module down)",
                ),
                &["module"],
            )
            .expect("static metric"),
            hsm_reconnects: IntCounterVec::new(
                Opts::new(
                    "revocd_hsm_reconnects_total",
                    "Times a PKCS#11 module was brought up again after an error",
                ),
                &["module"],
            )
            .expect("static metric"),
            hsm_in_flight: IntGaugeVec::new(
                Opts::new(
                    "revocd_hsm_signings_in_flight",
                    "Signings inside the PKCS#11 module now (bounded by pkcs11.max-in-flight)",
                ),
                &["module"],
            )
            .expect("static metric"),
            ocsp_signings: IntCounterVec::new(
                Opts::new(
                    "revocd_ocsp_signings_total",
                    "OCSP responses signed, by why: presign, on_demand, change",
                ),
                &["why"],
            )
            .expect("static metric"),
            ocsp_signing_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "revocd_ocsp_signing_duration_seconds",
                    "Time to encode and sign one OCSP response",
                )
                .buckets(vec![
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                    0.1,
                ]),
                &["why"],
            )
            .expect("static metric"),
            ocsp_signing_in_flight: IntGauge::new(
                "revocd_ocsp_signing_in_flight",
                "On-demand signings running now",
            )
            .expect("static metric"),
            ocsp_signing_shed: IntCounter::new(
                "revocd_ocsp_signing_shed_total",
                "On-demand signings refused (tryLater) because the signing budget was spent",
            )
            .expect("static metric"),
            ocsp_response_age_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_ocsp_response_age_seconds",
                    "Age (now - thisUpdate) of OCSP responses when served",
                )
                .buckets(tally::AGE_BUCKETS.to_vec()),
            )
            .expect("static metric"),
            ocsp_presigned_serials: IntGaugeVec::new(
                Opts::new(
                    "revocd_ocsp_presigned_serials",
                    "Serials whose responses for the window are signed, by issuer and window (current, next)",
                ),
                &["issuer", "window"],
            )
            .expect("static metric"),
            ocsp_presign_degraded: IntGaugeVec::new(
                Opts::new(
                    "revocd_ocsp_presign_degraded",
                    "1 while the next window cannot all be pre-signed within ocsp.presign-cpu-share (recently requested serials first, the rest on demand)",
                ),
                &["issuer"],
            )
            .expect("static metric"),
            ocsp_presign_missed: IntGaugeVec::new(
                Opts::new(
                    "revocd_ocsp_presign_missed_serials",
                    "Serials of the last window rollover that were not pre-signed in time (signed on demand)",
                ),
                &["issuer"],
            )
            .expect("static metric"),
            ocsp_answer_files_refused: IntCounter::new(
                "revocd_ocsp_answer_files_refused_total",
                "Answer table files that failed verification at start (removed; their window is signed again)",
            )
            .expect("static metric"),
            ocsp_answer_file_read_errors: IntGauge::new(
                "revocd_ocsp_answer_file_read_errors",
                "Records of the answer table files in use that could not be read or verified (signed on demand instead)",
            )
            .expect("static metric"),
            ocsp_presign_busy_seconds: prometheus::Counter::new(
                "revocd_ocsp_presign_busy_seconds_total",
                "Wall time the pre-signer spent signing (rate / cores = its CPU share)",
            )
            .expect("static metric"),
            ocsp_cached_responses: IntGauge::new(
                "revocd_ocsp_cached_responses",
                "Signed responses held: pre-signed in the window tables plus signed on demand in the cache",
            )
            .expect("static metric"),
            ocsp_cache_bytes: IntGauge::new(
                "revocd_ocsp_cache_bytes",
                "Bytes of held responses: the window tables' answer bytes (ETag and own DER; the responder certificate is shared), plus what on-demand answers are charged against ocsp.cache-max-bytes (own bytes + 600 per entry)",
            )
            .expect("static metric"),
            ready: IntGauge::new(
                "revocd_ready",
                "1 once the current window is pre-signed and revocd answers from cache",
            )
            .expect("static metric"),
            ledger_changes: IntCounterVec::new(
                Opts::new(
                    "revocd_ledger_changes_total",
                    "Changes made durable, by kind: register, revoke, release",
                ),
                &["kind"],
            )
            .expect("static metric"),
            ledger_append_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_ledger_append_duration_seconds",
                    "Time to write one group-committed batch to the ledger",
                )
                .buckets(prometheus::exponential_buckets(0.000_01, 4.0, 10).unwrap_or_default()),
            )
            .expect("static metric"),
            ledger_fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_ledger_fsync_duration_seconds",
                    "Time of the one fsync that makes a batch durable",
                )
                .buckets(prometheus::exponential_buckets(0.000_05, 3.0, 10).unwrap_or_default()),
            )
            .expect("static metric"),
            ledger_snapshot_age_seconds: IntGauge::new(
                "revocd_ledger_snapshot_age_seconds",
                "Seconds since the newest ledger snapshot was installed (-1: none)",
            )
            .expect("static metric"),
            ledger_write_errors: IntCounter::new(
                "revocd_ledger_write_errors_total",
                "Ledger writes that failed (disk full, I/O error); their changes were refused",
            )
            .expect("static metric"),
            ledger_last_sequence: IntGauge::new(
                "revocd_ledger_last_sequence",
                "Sequence number of the newest durable ledger record",
            )
            .expect("static metric"),
            ledger_unreadable_snapshots: IntGauge::new(
                "revocd_ledger_unreadable_snapshots",
                "Ledger snapshots start-up found unreadable (it recovered from an older one; run revocd ledger verify)",
            )
            .expect("static metric"),
            fleet_corrupt_batch: fleet_gauge(
                "revocd_fleet_corrupt_batch",
                "Sequence of a ledger batch in the store that fails its checksum; the replica stops applying there (0: none)",
            ),
            ledger_replay_seconds: prometheus::Gauge::new(
                "revocd_ledger_replay_seconds",
                "Time start-up took to rebuild state from snapshot and ledger",
            )
            .expect("static metric"),
            issuer_serials: IntGaugeVec::new(
                Opts::new(
                    "revocd_issuer_serials",
                    "Serials known, by issuer and status (good, revoked)",
                ),
                &["issuer", "status"],
            )
            .expect("static metric"),
            crl_publishes: IntCounterVec::new(
                Opts::new("revocd_crl_publishes_total", "CRL publish attempts by issuer and result (ok, error)"),
                &["issuer", "result"],
            )
            .expect("static metric"),
            crl_publish_seconds: Histogram::with_opts(
                HistogramOpts::new("revocd_crl_publish_duration_seconds", "Time to build, check and upload one CRL")
                    .buckets(prometheus::exponential_buckets(0.001, 4.0, 10).unwrap_or_default()),
            )
            .expect("static metric"),
            crl_last_success: IntGaugeVec::new(
                Opts::new("revocd_crl_last_success_timestamp_seconds", "Unix time of the last successful CRL publish"),
                &["issuer"],
            )
            .expect("static metric"),
            crl_entries: IntGaugeVec::new(
                Opts::new("revocd_crl_entries", "Entries on the live CRL"),
                &["issuer"],
            )
            .expect("static metric"),
            crl_bytes: IntGaugeVec::new(
                Opts::new("revocd_crl_size_bytes", "Size of the live CRL"),
                &["issuer"],
            )
            .expect("static metric"),
            crl_number: IntGaugeVec::new(
                Opts::new("revocd_crl_number", "CRL number of the live CRL"),
                &["issuer"],
            )
            .expect("static metric"),
            crl_change_to_publish_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_crl_change_to_publish_seconds",
                    "Time from the first unpublished change to the CRL that carries it",
                )
                .buckets(vec![1.0, 10.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0]),
            )
            .expect("static metric"),
            crl_conflicts: IntCounterVec::new(
                Opts::new("revocd_crl_write_conflicts_total", "Conditional CRL writes that lost a race (412)"),
                &["issuer"],
            )
            .expect("static metric"),
            crl_foreign_writes: IntCounterVec::new(
                Opts::new("revocd_crl_foreign_writes_total", "Times the live CRL's ETag showed another writer"),
                &["issuer"],
            )
            .expect("static metric"),
            crl_skipped: IntCounterVec::new(
                Opts::new("revocd_crl_uploads_skipped_total", "Uploads skipped because the live CRL was current"),
                &["issuer"],
            )
            .expect("static metric"),
            ocsp_uncommon_shed: IntCounterVec::new(
                Opts::new(
                    "revocd_ocsp_uncommon_shed_total",
                    "Uncommon requests (several CertIDs, unknown serials, nonce echo) answered tryLater, by the limit that refused them (rate, budget)",
                ),
                &["reason"],
            )
            .expect("static metric"),
            ocsp_uncommon_cache_bytes: IntGauge::new(
                "revocd_ocsp_uncommon_cache_bytes",
                "Bytes charged to the cache of uncommon requests' answers (kept apart from pre-signed answers)",
            )
            .expect("static metric"),
            crl_entries_kept: IntCounterVec::new(
                Opts::new(
                    "revocd_crl_entries_kept_total",
                    "Entries the live CRL lists that a new CRL would have dropped without a certificateHold release: kept on the CRL by the safety gate",
                ),
                &["issuer"],
            )
            .expect("static metric"),
            crl_reconciled_missing: IntCounterVec::new(
                Opts::new(
                    "revocd_crl_reconcile_differences_total",
                    "Times the live CRL was found to differ from the state (a revocation missing after a crash, another writer's CRL): counted as an unpublished change",
                ),
                &["issuer"],
            )
            .expect("static metric"),
            crl_store_conditional: IntGauge::new(
                "revocd_crl_store_conditional_writes",
                "1 if the start-up probe found the store honours conditional writes",
            )
            .expect("static metric"),
            ocsp_revocation_visible_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_ocsp_revocation_visible_seconds",
                    "Time from a revocation reaching the ledger to OCSP answering it at the origin (fsync and re-sign included)",
                )
                .buckets(prometheus::exponential_buckets(0.000_5, 3.0, 10).unwrap_or_default()),
            )
            .expect("static metric"),
            http_connections_open: IntGaugeVec::new(
                Opts::new("revocd_http_connections_open", "Open connections by listener"),
                &["listener"],
            )
            .expect("static metric"),
            http_connections_refused: IntCounterVec::new(
                Opts::new(
                    "revocd_http_connections_refused_total",
                    "Connections closed at once because listen.max-connections were open",
                ),
                &["listener"],
            )
            .expect("static metric"),
            registry,
            http_connection_errors: IntCounterVec::new(
                Opts::new(
                    "revocd_http_connection_errors_total",
                    "Connections ended with an error, by listener and kind (header_timeout, malformed, other)",
                ),
                &["listener", "kind"],
            )
            .expect("static metric"),
            http_requests_rejected: IntCounterVec::new(
                Opts::new(
                    "revocd_http_requests_rejected_total",
                    "Requests refused for a limit, by listener and reason (body_too_large)",
                ),
                &["listener", "reason"],
            )
            .expect("static metric"),
            fleet_applied_sequence: fleet_gauge(
                "revocd_fleet_applied_sequence",
                "Fleet mode: the last ledger batch applied on this replica",
            ),
            fleet_head_sequence: fleet_gauge(
                "revocd_fleet_head_sequence",
                "Fleet mode: the ledger head pointer last read from the store",
            ),
            fleet_lag_batches: fleet_gauge(
                "revocd_fleet_lag_batches",
                "Fleet mode: batches in the store not yet applied here (head - applied)",
            ),
            fleet_lag_seconds: prometheus::Gauge::new(
                "revocd_fleet_lag_seconds",
                "Fleet mode: seconds since this replica last confirmed it held every batch",
            )
            .expect("static metric"),
            fleet_batch_delay_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_fleet_batch_delay_seconds",
                    "Fleet mode: from a batch being written by any replica to its apply here",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0]),
            )
            .expect("static metric"),
            fleet_batches_applied: IntCounterVec::new(
                Opts::new(
                    "revocd_fleet_batches_applied_total",
                    "Fleet mode: ledger batches applied, by source (own, peer)",
                ),
                &["source"],
            )
            .expect("static metric"),
            fleet_write_conflicts: IntCounter::new(
                "revocd_fleet_write_conflicts_total",
                "Fleet mode: batch writes that lost the race for a sequence number (412)",
            )
            .expect("static metric"),
            fleet_store_errors: IntCounter::new(
                "revocd_fleet_store_errors_total",
                "Fleet mode: failed requests to the ledger store",
            )
            .expect("static metric"),
        };
        let build = IntGaugeVec::new(
            Opts::new("revocd_build_info", "Build information; always 1"),
            &["version"],
        )
        .expect("static metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        use tally::{Family, Tallied};
        let tallied = |inner, family| {
            Box::new(Tallied::new(inner, m.tally.clone(), family))
                as Box<dyn prometheus::core::Collector>
        };
        for c in [
            tallied(Box::new(m.ocsp_requests.clone()), Family::Requests),
            tallied(Box::new(m.ocsp_answers.clone()), Family::Answers),
            tallied(Box::new(m.ocsp_cache_hits.clone()), Family::Hits),
            Box::new(m.ocsp_cache_misses.clone()),
            Box::new(m.ocsp_stale_served.clone()),
            Box::new(m.cdn_invalidation_seconds.clone()),
            Box::new(m.cdn_paths.clone()),
            Box::new(m.cdn_wildcards.clone()),
            Box::new(m.cdn_errors.clone()),
            Box::new(m.cdn_paths_in_progress.clone()),
            Box::new(m.upstream_polls.clone()),
            Box::new(m.upstream_changes.clone()),
            Box::new(m.upstream_refused.clone()),
            Box::new(m.upstream_vanished.clone()),
            Box::new(m.upstream_last_success.clone()),
            Box::new(m.signer_up.clone()),
            Box::new(m.hsm_up.clone()),
            Box::new(m.hsm_errors.clone()),
            Box::new(m.hsm_reconnects.clone()),
            Box::new(m.hsm_in_flight.clone()),
            Box::new(m.ocsp_signings.clone()),
            Box::new(m.ocsp_signing_seconds.clone()),
            Box::new(m.ocsp_signing_in_flight.clone()),
            Box::new(m.ocsp_signing_shed.clone()),
            tallied(Box::new(m.ocsp_response_age_seconds.clone()), Family::Age),
            Box::new(m.ocsp_presigned_serials.clone()),
            Box::new(m.ocsp_presign_degraded.clone()),
            Box::new(m.ocsp_presign_missed.clone()),
            Box::new(m.ocsp_answer_files_refused.clone()),
            Box::new(m.ocsp_answer_file_read_errors.clone()),
            Box::new(m.ocsp_presign_busy_seconds.clone()),
            Box::new(m.ocsp_cached_responses.clone()),
            Box::new(m.ocsp_cache_bytes.clone()),
            Box::new(m.ready.clone()),
            Box::new(m.ledger_changes.clone()),
            Box::new(m.ledger_append_seconds.clone()),
            Box::new(m.ledger_fsync_seconds.clone()),
            Box::new(m.ledger_snapshot_age_seconds.clone()),
            Box::new(m.ledger_last_sequence.clone()),
            Box::new(m.ledger_write_errors.clone()),
            Box::new(m.ledger_replay_seconds.clone()),
            Box::new(m.issuer_serials.clone()),
            Box::new(m.crl_publishes.clone()),
            Box::new(m.crl_publish_seconds.clone()),
            Box::new(m.crl_last_success.clone()),
            Box::new(m.crl_entries.clone()),
            Box::new(m.crl_bytes.clone()),
            Box::new(m.crl_number.clone()),
            Box::new(m.crl_change_to_publish_seconds.clone()),
            Box::new(m.crl_conflicts.clone()),
            Box::new(m.crl_foreign_writes.clone()),
            Box::new(m.crl_skipped.clone()),
            Box::new(m.crl_store_conditional.clone()),
            Box::new(m.ocsp_revocation_visible_seconds.clone()),
            Box::new(m.http_connections_open.clone()),
            Box::new(m.http_connections_refused.clone()),
            Box::new(m.http_connection_errors.clone()),
            Box::new(m.http_requests_rejected.clone()),
            Box::new(m.fleet_applied_sequence.clone()),
            Box::new(m.fleet_head_sequence.clone()),
            Box::new(m.fleet_lag_batches.clone()),
            Box::new(m.fleet_lag_seconds.clone()),
            Box::new(m.fleet_batch_delay_seconds.clone()),
            Box::new(m.fleet_batches_applied.clone()),
            Box::new(m.fleet_write_conflicts.clone()),
            Box::new(m.fleet_store_errors.clone()),
            Box::new(m.fleet_corrupt_batch.clone()),
            Box::new(m.ledger_unreadable_snapshots.clone()),
            Box::new(m.crl_entries_kept.clone()),
            Box::new(m.ocsp_uncommon_shed.clone()),
            Box::new(m.ocsp_uncommon_cache_bytes.clone()),
            Box::new(m.crl_reconciled_missing.clone()),
            Box::new(build),
        ] {
            m.registry.register(c).expect("unique metric names");
        }
        m
    }

    /// Adds an area's own families (created and kept by that area) to
    /// what is scraped. A name already registered is refused.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_build_info_and_counters() {
        let m = Metrics::new();
        m.ocsp_requests
            .with_label_values(&["GET", "successful"])
            .inc();
        let text = m.render();
        assert!(text.contains("revocd_build_info{version="));
        assert!(text.contains("revocd_ocsp_requests_total{method=\"GET\",status=\"successful\"} 1"));
    }

    #[test]
    fn hit_path_counts_from_every_thread_show_in_the_next_scrape() {
        use crate::pki::HashAlg;
        let m = Metrics::new();
        m.ocsp_requests.with_label_values(&["GET", "successful"]);
        m.ocsp_answers.with_label_values(&["revoked", "sha256"]);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.tally.presigned_hit(1, HashAlg::Sha256, 30);
                        m.tally.success(0);
                    }
                });
            }
        });
        // Those threads are gone; their counts stay. Shared counters and
        // this thread's tally add to the same series.
        m.tally.age(5000);
        m.ocsp_cache_hits.inc();
        m.ocsp_response_age_seconds.observe(2.0);
        let text = m.render();
        for line in [
            "revocd_ocsp_cache_hits_total 3001",
            "revocd_ocsp_requests_total{method=\"GET\",status=\"successful\"} 3000",
            "revocd_ocsp_answers_total{cert_status=\"revoked\",hash=\"sha256\"} 3000",
            "revocd_ocsp_response_age_seconds_bucket{le=\"10\"} 1",
            "revocd_ocsp_response_age_seconds_bucket{le=\"60\"} 3001",
            "revocd_ocsp_response_age_seconds_bucket{le=\"3600\"} 3001",
            "revocd_ocsp_response_age_seconds_bucket{le=\"7200\"} 3002",
            "revocd_ocsp_response_age_seconds_bucket{le=\"+Inf\"} 3002",
            "revocd_ocsp_response_age_seconds_sum 95002",
            "revocd_ocsp_response_age_seconds_count 3002",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        // Another registry's tally starts from nothing on the same thread.
        let other = Metrics::new();
        assert!(other.render().contains("revocd_ocsp_cache_hits_total 0"));
        other.tally.hit();
        assert!(other.render().contains("revocd_ocsp_cache_hits_total 1"));
        assert!(m.render().contains("revocd_ocsp_cache_hits_total 3001"));
    }
}
