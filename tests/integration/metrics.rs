//! `/metrics` after real traffic: the series operators alert on exist, are
//! named per Prometheus conventions, and count what happened.

use revocd::state::Serial;

use crate::support::*;

fn value(m: &str, series: &str) -> f64 {
    m.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{m}"))
}

#[test]
fn metrics_after_real_traffic() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    for _ in 0..5 {
        assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
    }
    raw_http(d.public, b"PUT / HTTP/1.0\r\n\r\n").expect("405");
    revoke(&d, &token(p), &good.to_hex(), "superseded");
    assert_eq!(ocsp_status(&d, &ca, &good).status, "revoked");
    eventually(WAIT_SECS, "a CRL", || {
        http_get(d.public, "/crl/demo.crl").filter(|r| r.0 == 200)
    });
    // Served once live; counted just after.
    metric_reaches(
        &d,
        "revocd_crl_publishes_total{issuer=\"demo\",result=\"ok\"}",
        1.0,
    );
    let (_, _, body) = d.http_admin("GET", "/metrics").expect("metrics");
    let m = String::from_utf8_lossy(&body).to_string();
    assert_eq!(
        value(
            &m,
            "revocd_ocsp_requests_total{method=\"POST\",status=\"successful\"}"
        ),
        6.0
    );
    assert_eq!(
        value(
            &m,
            "revocd_ocsp_requests_total{method=\"other\",status=\"malformed_request\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "revocd_ocsp_answers_total{cert_status=\"good\",hash=\"sha1\"}"
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "revocd_ocsp_answers_total{cert_status=\"revoked\",hash=\"sha1\"}"
        ),
        1.0
    );
    // Every answer was pre-signed or re-signed on the change: no signing on the hot path.
    assert_eq!(value(&m, "revocd_ocsp_cache_hits_total"), 6.0);
    assert_eq!(value(&m, "revocd_ocsp_cache_misses_total"), 0.0);
    assert!(value(&m, "revocd_ocsp_signings_total{why=\"change\"}") >= 2.0);
    // The index import and the API revocation.
    assert_eq!(
        value(&m, "revocd_ocsp_revocation_visible_seconds_count"),
        2.0
    );
    assert_eq!(
        value(&m, "revocd_ledger_changes_total{kind=\"revoke\"}"),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "revocd_issuer_serials{issuer=\"demo\",status=\"revoked\"}"
        ),
        2.0
    );
    assert_eq!(
        value(&m, "revocd_issuer_serials{issuer=\"demo\",status=\"good\"}"),
        0.0
    );
    assert!(value(&m, "revocd_ledger_fsync_duration_seconds_count") >= 2.0);
    assert_eq!(
        value(
            &m,
            "revocd_ocsp_presigned_serials{issuer=\"demo\",window=\"current\"}"
        ),
        2.0
    );
    assert!(
        value(
            &m,
            "revocd_crl_publishes_total{issuer=\"demo\",result=\"ok\"}"
        ) >= 1.0
    );
    assert_eq!(value(&m, "revocd_ready"), 1.0);
    // Conventions: counters end in _total, durations in _seconds, sizes in _bytes.
    for line in m.lines().filter(|l| l.starts_with("# TYPE revocd_")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (name, kind) = (parts[2], parts[3]);
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
        if name.contains("duration") || name.contains("age") {
            assert!(name.ends_with("_seconds"), "{line}");
        }
    }
}
