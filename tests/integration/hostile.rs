//! Hostile input, one table: each row is a request as an attacker or a broken
//! client would send it, the status it must get, and the daemon must still
//! answer afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use revocd::state::Serial;

use crate::support::*;

fn post(path: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![0x05, 0x00];
    for _ in 0..depth {
        let mut outer = vec![0x30];
        revocd::asn1::push_len(&mut outer, v.len());
        outer.extend_from_slice(&v);
        v = outer;
    }
    v
}

/// An OCSP request for `serial` given as raw INTEGER content octets.
fn request_with_serial(ca: &revocd::pki::Cert, content: &[u8]) -> Vec<u8> {
    use revocd::asn1::*;
    let alg = revocd::pki::HashAlg::Sha1;
    let cert_id = sequence(&[
        &alg.algorithm_identifier_der(),
        &octet_string(&ca.name_hash(alg)),
        &octet_string(&ca.key_hash(alg)),
        &integer_from_content(content),
    ]);
    sequence(&[&sequence(&[&sequence(&[&sequence(&[&cert_id])])])])
}

/// (name, to the admin listener?, request bytes, expected status, expected body)
type Row<'a> = (&'a str, bool, Vec<u8>, u16, Option<&'a [u8]>);

#[test]
fn hostile_requests_get_clean_answers_and_the_daemon_keeps_serving() {
    let dir = demo_pki();
    let p = dir.path();
    let config = p.join("revocd.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("[listen]\n", "[listen]\nheader-read-timeout = \"1s\"\n"),
    )
    .expect("write");
    let d = Daemon::start(&config);
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let auth = format!("Authorization: Bearer {tok}\r\n");
    let revoke = "/v1/issuers/demo/revocations";
    let mut huge_len = vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff];
    huge_len.extend_from_slice(&[0u8; 16]);
    let mut long_der = vec![0x30, 0x82, 0x23, 0x2c, 0x02, 0x82, 0x23, 0x28];
    long_der.extend(std::iter::repeat_n(0x11u8, 9000));
    let ocsp_unauthorized = [0x30u8, 0x03, 0x0a, 0x01, 0x06];
    let malformed = [0x30u8, 0x03, 0x0a, 0x01, 0x01];

    let table: Vec<Row> = vec![
        (
            "garbage bytes",
            false,
            post("/", b"\x00\xff garbage \x13\x37", ""),
            400,
            Some(&malformed),
        ),
        (
            "1000-deep DER",
            false,
            post("/", &nested(1000), ""),
            400,
            Some(&malformed),
        ),
        (
            "9 KB INTEGER",
            false,
            post("/", &long_der, ""),
            400,
            Some(&malformed),
        ),
        (
            "huge DER length",
            false,
            post("/", &huge_len, ""),
            400,
            Some(&malformed),
        ),
        (
            "0-byte body",
            false,
            post("/", b"", ""),
            400,
            Some(&malformed),
        ),
        (
            "1 MB body",
            false,
            post("/", &vec![0x30u8; 1 << 20], ""),
            413,
            Some(&malformed),
        ),
        (
            "bad percent-encoding",
            false,
            get("/MEow%zz%2"),
            400,
            Some(&malformed),
        ),
        (
            "10 KB GET path",
            false,
            get(&format!("/{}", "AAAA".repeat(2560))),
            400,
            Some(&malformed),
        ),
        (
            "HTTP/1.0 without Host",
            false,
            {
                let der = revocd::query::build_request(&ca, &good, revocd::pki::HashAlg::Sha1);
                let mut r = format!("POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n", der.len())
                    .into_bytes();
                r.extend_from_slice(&der);
                r
            },
            200,
            None,
        ),
        (
            "serial 0",
            false,
            post("/", &request_with_serial(&ca, &[0]), ""),
            200,
            Some(&ocsp_unauthorized),
        ),
        (
            "negative serial",
            false,
            post("/", &request_with_serial(&ca, &[0x85]), ""),
            200,
            Some(&ocsp_unauthorized),
        ),
        (
            "21-octet serial",
            false,
            post("/", &request_with_serial(&ca, &[0x7f; 21]), ""),
            200,
            Some(&ocsp_unauthorized),
        ),
        (
            "wrong method",
            false,
            b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            Some(&malformed),
        ),
        (
            "admin without token",
            true,
            post(revoke, br#"{"serial": "01"}"#, ""),
            401,
            None,
        ),
        (
            "admin with a wrong token",
            true,
            post(
                revoke,
                br#"{"serial": "01"}"#,
                "Authorization: Bearer nope\r\n",
            ),
            401,
            None,
        ),
        (
            "admin serial of the wrong type",
            true,
            post(revoke, br#"{"serial": 5}"#, &auth),
            400,
            None,
        ),
        (
            "admin reason of the wrong type",
            true,
            post(revoke, br#"{"serial": "01", "reason": 3}"#, &auth),
            400,
            None,
        ),
        (
            "admin array body",
            true,
            post(revoke, b"[]", &auth),
            400,
            None,
        ),
        (
            "admin truncated JSON",
            true,
            post(revoke, br#"{"serial": "0"#, &auth),
            400,
            None,
        ),
        (
            "admin serial 0",
            true,
            post(revoke, br#"{"serial": "00"}"#, &auth),
            400,
            None,
        ),
        (
            "admin negative serial",
            true,
            post(revoke, br#"{"serial": "-5"}"#, &auth),
            400,
            None,
        ),
        (
            "admin 21-octet serial",
            true,
            post(
                revoke,
                format!(r#"{{"serial": "{}"}}"#, "7F".repeat(21)).as_bytes(),
                &auth,
            ),
            400,
            None,
        ),
        (
            "admin 20 MB body",
            true,
            post(revoke, &vec![b' '; 20 << 20], &auth),
            413,
            None,
        ),
    ];
    for (name, admin, request, want, body) in table {
        let addr = if admin { d.admin } else { d.public };
        let (status, head, got) =
            raw_http(addr, &request).unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(status, want, "{name}: {head}");
        if let Some(b) = body {
            assert_eq!(got, b, "{name}");
        }
        // Still serving after every row.
        assert_eq!(ocsp_status(&d, &ca, &good).status, "good", "after {name}");
    }

    // Pipelined requests on one connection: both answered, in order.
    let der = revocd::query::build_request(&ca, &good, revocd::pki::HashAlg::Sha1);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let pipelined = format!(
        "GET /{b64} HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz-not-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut s = TcpStream::connect(d.public).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(pipelined.as_bytes()).expect("write");
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let all = String::from_utf8_lossy(&all);
    assert_eq!(all.matches("HTTP/1.1 ").count(), 2, "{all}");
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");

    // A slow client that never finishes its headers is cut off.
    let mut s = TcpStream::connect(d.public).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the slow client was not cut off"
    );
    let head = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || head.starts_with("HTTP/1.1 408"), "{head}");

    // Every limit that triggered is counted.
    let (_, _, m) = d.http_admin("GET", "/metrics").expect("metrics");
    let m = String::from_utf8_lossy(&m).to_string();
    let count = |series: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    for series in [
        "revocd_http_connection_errors_total{kind=\"header_timeout\",listener=\"public\"}",
        "revocd_http_requests_rejected_total{listener=\"public\",reason=\"body_too_large\"}",
        "revocd_http_requests_rejected_total{listener=\"admin\",reason=\"body_too_large\"}",
    ] {
        assert!(count(series) >= 1.0, "{series} not counted:\n{m}");
    }

    let mut d = d;
    assert!(d.is_alive());
    assert!(!d.logs().contains("panicked"));
}

#[test]
fn connections_beyond_the_limit_are_closed_and_counted() {
    let dir = demo_pki();
    let p = dir.path();
    let config = p.join("revocd.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("[listen]\n", "[listen]\nmax-connections = 20\n"),
    )
    .expect("write");
    let d = Daemon::start(&config);
    // Hold 30 idle connections open.
    let held: Vec<TcpStream> = (0..30)
        .filter_map(|_| TcpStream::connect(d.public).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (_, _, m) = d.http_admin("GET", "/metrics").expect("metrics");
    let m = String::from_utf8_lossy(&m).to_string();
    let refused: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("revocd_http_connections_refused_total{listener=\"public\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 10.0, "{m}");
    drop(held);
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let v = eventually(10, "service after the flood", || {
        std::panic::catch_unwind(|| ocsp_status(&d, &ca, &good)).ok()
    });
    assert_eq!(v.status, "good");
}
