//! GET, HEAD, conditional GET and error statuses with curl and raw sockets
//! (docs/conformance.md 1-6, 19-21).

use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use crate::support::*;

const MALFORMED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];

/// (status, headers lowercased, body) via curl.
fn curl(args: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let body = dir.path().join("body");
    let out = run(Command::new(require("curl"))
        .args(["-s", "-S", "--max-time", "10", "-D", "-", "-o"])
        .arg(&body)
        .args(args)
        .arg(url));
    assert!(out.status.success(), "curl: {}", text(&out));
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, std::fs::read(&body).unwrap_or_default())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

struct Setup {
    dir: tempfile::TempDir,
    d: Daemon,
    der: Vec<u8>,
}

fn setup() -> Setup {
    let dir = demo_pki();
    let d = Daemon::start(&dir.path().join("revocd.toml"));
    let req = dir.path().join("req.der");
    openssl_request(dir.path(), &["leaf-revoked.pem"], false, &req);
    let der = std::fs::read(&req).expect("req");
    Setup { dir, d, der }
}

fn verify_with_openssl(s: &Setup, body: &[u8]) -> String {
    let resp = s.dir.path().join("resp.der");
    std::fs::write(&resp, body).expect("write");
    let out = run(Command::new(require("openssl"))
        .current_dir(s.dir.path())
        .args([
            "ocsp", "-respin", "resp.der", "-issuer", "ca.pem", "-CAfile", "ca.pem",
        ])
        .args(["-cert", "leaf-revoked.pem"]));
    text(&out)
}

#[test]
fn get_answers_with_rfc9919_caching_headers() {
    let s = setup();
    let url = format!("{}{}", s.d.url(), STANDARD.encode(&s.der));
    let (status, head, body) = curl(&[], &url);
    assert_eq!(status, 200, "{head}");
    let out = verify_with_openssl(&s, &body);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf-revoked.pem: revoked"), "{out}");
    assert_eq!(
        header(&head, "content-type"),
        Some("application/ocsp-response")
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let cc = header(&head, "cache-control").expect("cache-control");
    let max_age: u64 = cc
        .strip_prefix("max-age=")
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("max-age");
    assert!(max_age <= 3600, "{cc}");
    assert!(
        cc.ends_with("public, no-transform, must-revalidate"),
        "{cc}"
    );
    for h in ["last-modified", "expires", "date", "etag"] {
        assert!(header(&head, h).is_some(), "missing {h}: {head}");
    }
    let etag = header(&head, "etag").expect("etag");
    assert_eq!(etag.len(), 66, "quoted hex SHA-256: {etag}");
    // Last-Modified is thisUpdate: the window start for an answer signed
    // ahead of its window, the signing time for one signed inside it (this
    // one, at start-up); never in the future, never before the window.
    let lm = header(&head, "last-modified").expect("lm");
    // The head is lower-cased here; HTTP dates spell names in title case.
    let lm: Vec<String> = lm
        .split(' ')
        .map(|w| match w {
            "gmt" => "GMT".to_string(),
            w => {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }
        })
        .collect();
    let lm = httpdate::parse_http_date(&lm.join(" ")).expect("an HTTP date");
    let lm = lm
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
    assert!(
        lm <= now && lm >= now - now.rem_euclid(3600) - 3600,
        "{head}"
    );
}

#[test]
fn every_get_encoding_gives_the_same_bytes() {
    let s = setup();
    let b64 = STANDARD.encode(&s.der);
    let (_, _, reference) = curl(&[], &format!("{}{b64}", s.d.url()));
    let escaped = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let variants = [
        escaped,
        format!("/{b64}"),
        b64.trim_end_matches('=').to_string(),
        URL_SAFE_NO_PAD.encode(&s.der),
    ];
    for v in variants {
        let (status, head, body) = curl(&["--path-as-is"], &format!("{}{v}", s.d.url()));
        assert_eq!(status, 200, "{v}: {head}");
        assert_eq!(body, reference, "{v}");
    }
}

#[test]
fn head_has_the_same_headers_and_no_body() {
    let s = setup();
    let url = format!("{}{}", s.d.url(), STANDARD.encode(&s.der));
    let (_, get_head, get_body) = curl(&[], &url);
    let (status, _, _) = curl(&["-I"], &url);
    assert_eq!(status, 200);
    // A raw HTTP/1.0 HEAD read to EOF shows that no body follows the headers.
    let path = url.trim_start_matches(&format!("http://{}", s.d.public));
    let (status, head, body) = raw_http(
        s.d.public,
        format!("HEAD {path} HTTP/1.0\r\n\r\n").as_bytes(),
    )
    .expect("head");
    let head = head.to_lowercase();
    assert_eq!(status, 200);
    assert!(body.is_empty(), "{} body bytes", body.len());
    for h in ["content-type", "content-length", "etag", "last-modified"] {
        assert_eq!(header(&head, h), header(&get_head, h), "{h}");
    }
    assert_eq!(
        header(&head, "content-length"),
        Some(get_body.len().to_string().as_str())
    );
}

#[test]
fn if_none_match_gets_304_with_caching_headers() {
    let s = setup();
    let url = format!("{}{}", s.d.url(), STANDARD.encode(&s.der));
    let (_, head, _) = curl(&[], &url);
    let etag = header(&head, "etag").expect("etag").to_string();
    let (status, head304, body) = curl(&["-H", &format!("If-None-Match: {etag}")], &url);
    assert_eq!(status, 304, "{head304}");
    assert!(body.is_empty());
    assert_eq!(header(&head304, "etag"), Some(etag.as_str()));
    assert!(header(&head304, "cache-control").is_some_and(|c| c.starts_with("max-age=")));
    let (status, _, _) = curl(&["-H", "If-None-Match: \"nope\""], &url);
    assert_eq!(status, 200);
}

#[test]
fn wrong_method_is_405_with_allow() {
    let s = setup();
    let (status, head, body) = curl(&["-X", "PUT"], &s.d.url());
    assert_eq!(status, 405);
    assert_eq!(header(&head, "allow"), Some("get, head, post"));
    assert_eq!(body, MALFORMED);
}

#[test]
fn oversize_post_is_413() {
    let s = setup();
    let big = s.dir.path().join("big");
    std::fs::write(&big, vec![0x30u8; 20_000]).expect("write");
    let (status, head, body) = curl(
        &["--data-binary", &format!("@{}", big.display())],
        &s.d.url(),
    );
    assert_eq!(status, 413, "{head}");
    assert_eq!(body, MALFORMED);
    assert_eq!(header(&head, "cache-control"), Some("no-cache"));
}

#[test]
fn malformed_requests_get_400_and_the_five_byte_error() {
    let s = setup();
    let garbage = s.dir.path().join("garbage");
    std::fs::write(&garbage, b"\xff\xfe not der").expect("write");
    let truncated = s.dir.path().join("truncated");
    std::fs::write(&truncated, &s.der[..s.der.len() - 3]).expect("write");
    let empty = s.dir.path().join("empty");
    std::fs::write(&empty, b"").expect("write");
    for file in [&garbage, &truncated, &empty] {
        let (status, head, body) = curl(
            &["--data-binary", &format!("@{}", file.display())],
            &s.d.url(),
        );
        assert_eq!(status, 400, "{}: {head}", file.display());
        assert_eq!(body, MALFORMED);
        assert_eq!(header(&head, "cache-control"), Some("no-cache"));
    }
    for path in ["!!!notbase64!!!", "MEow%ZZ", "AAAA"] {
        let (status, _, body) = curl(&["--path-as-is"], &format!("{}{path}", s.d.url()));
        assert_eq!(status, 400, "{path}");
        assert_eq!(body, MALFORMED, "{path}");
    }
    // A GET path of several KiB is read and answered, not refused as too long.
    let long = "QUFB".repeat(2048);
    let (status, _, body) = curl(&[], &format!("{}{long}", s.d.url()));
    assert_eq!(status, 400);
    assert_eq!(body, MALFORMED);
    // Still serving.
    let (status, _, _) = curl(&[], &format!("{}{}", s.d.url(), STANDARD.encode(&s.der)));
    assert_eq!(status, 200);
}

#[test]
fn http10_without_host_is_answered_and_closed() {
    let s = setup();
    let mut req = format!(
        "POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        s.der.len()
    )
    .into_bytes();
    req.extend_from_slice(&s.der);
    // raw_http reads to EOF: it returns only because the server closed.
    let (status, head, body) = raw_http(s.d.public, &req).expect("answer");
    assert_eq!(status, 200, "{head}");
    let out = verify_with_openssl(&s, &body);
    assert!(out.contains("Response verify OK"), "{out}");
}

#[test]
fn admin_endpoints_report_health_readiness_and_metrics() {
    let s = setup();
    let url = format!("{}{}", s.d.url(), STANDARD.encode(&s.der));
    curl(&[], &url);
    curl(&["-X", "PUT"], &s.d.url());
    let (status, _, _) = s.d.http_admin("GET", "/healthz").expect("healthz");
    assert_eq!(status, 200);
    let (status, _, _) = s.d.http_admin("GET", "/readyz").expect("readyz");
    assert_eq!(status, 200);
    let (status, _, body) = s.d.http_admin("GET", "/metrics").expect("metrics");
    assert_eq!(status, 200);
    let m = String::from_utf8_lossy(&body);
    for needle in [
        "revocd_ocsp_requests_total{method=\"GET\",status=\"successful\"} 1",
        "revocd_ocsp_requests_total{method=\"other\",status=\"malformed_request\"} 1",
        "revocd_ocsp_cache_hits_total 1",
        "revocd_ocsp_response_age_seconds_count 1",
        "revocd_ready 1",
    ] {
        assert!(m.contains(needle), "missing {needle}:\n{m}");
    }
    // Two serials x two pre-signed hashes for the current window, and possibly
    // some of the next window already. The pre-signer may be signing while
    // we scrape (a signing is counted, then timed): look until both agree.
    let presigned = metric(&m, "revocd_ocsp_signings_total{why=\"presign\"}");
    assert!(presigned >= 4.0, "{m}");
    eventually(WAIT_SECS, "every presign signing counted and timed", || {
        let (_, _, body) = s.d.http_admin("GET", "/metrics")?;
        let m = String::from_utf8_lossy(&body);
        (metric(&m, "revocd_ocsp_signings_total{why=\"presign\"}")
            == metric(
                &m,
                "revocd_ocsp_signing_duration_seconds_count{why=\"presign\"}",
            ))
        .then_some(())
    });
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}
