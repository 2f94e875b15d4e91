//! Prometheus metrics, named `revocd_<area>_<what>_<unit>` with bounded labels.
//!
//! Each area's families live in their own file and are created and
//! registered in one step through [`Registrar`], so a new metric is named
//! once, in its area. Components whose metrics nobody else reads (the AWS
//! events consumer, the admin guard, `revocd sync`) keep them beside their
//! code and register them through the same [`Registrar`].

pub mod cdn;
pub mod crl;
pub mod fleet;
pub mod hsm;
pub mod http;
pub mod ledger;
pub mod ocsp;
mod registrar;
pub mod tally;
pub mod upstream;

use prometheus::core::Collector;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Registry, TextEncoder};

pub use self::registrar::Registrar;

/// Every family revocd exports, by area.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub ocsp: ocsp::Ocsp,
    pub hsm: hsm::Hsm,
    pub ledger: ledger::Ledger,
    pub fleet: fleet::Fleet,
    pub crl: crl::Crl,
    pub cdn: cdn::Cdn,
    pub http: http::Http,
    pub upstream: upstream::Upstream,
    /// 1 once start-up is done and answers can be served.
    pub ready: IntGauge,
    /// Serials known per issuer and status (good, revoked), set at scrape.
    pub issuer_serials: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = Registrar::new(&registry);
        let build = r.gauges(
            "revocd_build_info",
            "Build information; always 1",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Self {
            ocsp: ocsp::Ocsp::new(&r),
            hsm: hsm::Hsm::new(&r),
            ledger: ledger::Ledger::new(&r),
            fleet: fleet::Fleet::new(&r),
            crl: crl::Crl::new(&r),
            cdn: cdn::Cdn::new(&r),
            http: http::Http::new(&r),
            upstream: upstream::Upstream::new(&r),
            ready: r.gauge(
                "revocd_ready",
                "1 once the current window is pre-signed and revocd answers from cache",
            ),
            issuer_serials: r.gauges(
                "revocd_issuer_serials",
                "Serials known, by issuer and status (good, revoked)",
                &["issuer", "status"],
            ),
            registry,
        }
    }

    /// Where an area whose families are its own registers them.
    pub fn registrar(&self) -> Registrar<'_> {
        Registrar::new(&self.registry)
    }

    /// Adds an area's own families (created and kept by that area) to
    /// what is scraped. A name already registered is refused.
    pub fn register(&self, collector: Box<dyn Collector>) -> prometheus::Result<()> {
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
        m.ocsp
            .requests
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
        m.ocsp.requests.with_label_values(&["GET", "successful"]);
        m.ocsp.answers.with_label_values(&["revoked", "sha256"]);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.ocsp.tally.presigned_hit(1, HashAlg::Sha256, 30);
                        m.ocsp.tally.success(0);
                    }
                });
            }
        });
        // Those threads are gone; their counts stay. Shared counters and
        // this thread's tally add to the same series.
        m.ocsp.tally.age(5000);
        m.ocsp.cache_hits.inc();
        m.ocsp.response_age_seconds.observe(2.0);
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
        other.ocsp.tally.hit();
        assert!(other.render().contains("revocd_ocsp_cache_hits_total 1"));
        assert!(m.render().contains("revocd_ocsp_cache_hits_total 3001"));
    }
}
