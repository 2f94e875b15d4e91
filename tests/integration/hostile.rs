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

/// A demo PKI whose config has `lines` added at the top of `section`.
fn demo_with(section: &str, lines: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = demo_pki();
    let config = dir.path().join("revocd.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let header = format!("[{section}]\n");
    assert!(text.contains(&header), "no {header} in the demo config");
    std::fs::write(&config, text.replace(&header, &format!("{header}{lines}"))).expect("write");
    (dir, config)
}

/// (name, to the admin listener?, request bytes, expected status, expected body)
type Row<'a> = (&'a str, bool, Vec<u8>, u16, Option<&'a [u8]>);

#[test]
fn hostile_requests_get_clean_answers_and_the_daemon_keeps_serving() {
    let (dir, config) = demo_with("listen", "header-read-timeout = \"1s\"\n");
    let p = dir.path();
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
                let der =
                    revocd::tools::query::build_request(&ca, &good, revocd::pki::HashAlg::Sha1);
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
            "unknown critical request extension",
            false,
            post(
                "/",
                &{
                    use revocd::asn1::*;
                    let req = request_with_serial(&ca, good.content());
                    // The same request with a critical requestExtensions entry.
                    let (outer, _) = read_tlv(&req).expect("request");
                    let (tbs, _) = read_tlv(outer.content).expect("tbs");
                    let ext = sequence(&[
                        &oid(&oid_content("1.3.6.1.4.1.55555.7")),
                        &[0x01, 0x01, 0xff],
                        &octet_string(&[0x05, 0x00]),
                    ]);
                    sequence(&[&sequence(&[tbs.content, &tlv(0xa2, &sequence(&[&ext]))])])
                },
                "",
            ),
            400,
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
        (
            "admin 20 MB body without a token",
            true,
            post(revoke, &vec![b' '; 20 << 20], ""),
            401,
            None,
        ),
        (
            "admin duplicate JSON key",
            true,
            post(
                revoke,
                br#"{"serial": "0D0D", "reason": "certificateHold", "reason": "unspecified"}"#,
                &auth,
            ),
            400,
            None,
        ),
        (
            "admin scheme name in capitals",
            true,
            post(
                revoke,
                br#"{"serial": "0D0E", "reason": "superseded"}"#,
                &format!("Authorization: BEARER {tok}\r\n"),
            ),
            200,
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

    // The duplicate key is named, and nothing was revoked.
    let (s400, v) = admin_call(
        d.admin,
        "POST",
        revoke,
        Some(&tok),
        r#"{"serial": "0D0D", "reason": "certificateHold", "reason": "unspecified"}"#,
    )
    .expect("answer");
    assert_eq!((s400, v["field"].as_str()), (400, Some("reason")), "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("duplicate key"),
        "{v}"
    );
    let (_, v) = admin_call(
        d.admin,
        "GET",
        "/v1/issuers/demo/certificates/0D0D",
        Some(&tok),
        "",
    )
    .expect("answer");
    assert_eq!(v["status"].as_str(), Some("unknown"), "{v}");

    // Pipelined requests on one connection: both answered, in order.
    let der = revocd::tools::query::build_request(&ca, &good, revocd::pki::HashAlg::Sha1);
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
    // (Cut after the 1 s header-read-timeout; the bound only has to be
    // below the test's own 30 s read timeout.)
    let mut s = TcpStream::connect(d.public).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the slow client was not cut off"
    );
    let head = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || head.starts_with("HTTP/1.1 408"), "{head}");

    // Every limit that triggered is counted (a closed connection is
    // counted as its task ends, which may be after the client saw it).
    for series in [
        "revocd_http_connection_errors_total{kind=\"header_timeout\",listener=\"public\"}",
        "revocd_http_requests_rejected_total{listener=\"public\",reason=\"body_too_large\"}",
        "revocd_http_requests_rejected_total{listener=\"admin\",reason=\"body_too_large\"}",
    ] {
        metric_reaches(&d, series, 1.0);
    }

    // Still serving, and nothing it printed, start to exit, is a panic.
    let mut d = d;
    assert!(d.is_alive());
    let (status, logs) = d.stop();
    assert!(status.success(), "{status:?}: {logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn connections_beyond_the_limit_are_closed_and_counted() {
    let (dir, config) = demo_with("listen", "max-connections = 20\n");
    let p = dir.path();
    let d = Daemon::start(&config);
    // Hold 30 idle connections open.
    let held: Vec<TcpStream> = (0..30)
        .filter_map(|_| TcpStream::connect(d.public).ok())
        .collect();
    metric_reaches(
        &d,
        "revocd_http_connections_refused_total{listener=\"public\"}",
        10.0,
    );
    drop(held);
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let v = eventually(WAIT_SECS, "service after the flood", || {
        std::panic::catch_unwind(|| ocsp_status(&d, &ca, &good)).ok()
    });
    assert_eq!(v.status, "good");
}

/// Sends `headers` and then one body byte every `every` until the server
/// answers or closes; returns what it answered and after how long.
fn trickle(
    addr: std::net::SocketAddr,
    headers: &str,
    every: Duration,
    max: Duration,
) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(every)).expect("timeout");
    s.write_all(headers.as_bytes()).expect("headers");
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    while started.elapsed() < max {
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {
                if s.write_all(b"0").is_err() {
                    break;
                }
            }
        }
    }
    (String::from_utf8_lossy(&got).to_string(), started.elapsed())
}

/// Issue 14, items 1-2: a POST body that trickles one byte at a time is cut
/// at the body deadline, on both listeners (it was still open after 300 s);
/// an unauthenticated admin POST is answered 401 from its headers, without
/// reading its declared body.
#[test]
fn slow_bodies_are_cut_at_the_body_deadline_and_strangers_bodies_are_never_read() {
    let (dir, config) = demo_with("listen", "body-timeout = \"2s\"\nbody-min-rate = 1024\n");
    let p = dir.path();
    let d = Daemon::start(&config);
    let tok = token(p);
    let headers = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 200\r\n\r\n";
    let (answer, took) = trickle(
        d.public,
        headers,
        Duration::from_millis(300),
        Duration::from_secs(30),
    );
    // Cut at about 2 s; 20 s is far below what the trickle needs to send
    // its 200 bytes (60 s), and leaves room for a busy machine.
    assert!(
        took < Duration::from_secs(20),
        "public: still open after {took:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    let admin_headers = format!(
        "POST /v1/issuers/demo/revocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nContent-Length: 200\r\n\r\n"
    );
    let (answer, took) = trickle(
        d.admin,
        &admin_headers,
        Duration::from_millis(300),
        Duration::from_secs(30),
    );
    assert!(
        took < Duration::from_secs(20),
        "admin: still open after {took:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A stranger declaring 16 MiB gets 401 at once, the body unread.
    let stranger =
        "POST /v1/issuers/demo/revocations HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\n";
    let (answer, took) = trickle(
        d.admin,
        stranger,
        Duration::from_millis(300),
        Duration::from_secs(30),
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // Reading the declared body at one byte per 300 ms would take 58 days.
    assert!(took < Duration::from_secs(20), "{took:?}");
    for listener in ["public", "admin"] {
        let series = format!(
            "revocd_http_connection_errors_total{{kind=\"body_timeout\",listener=\"{listener}\"}}"
        );
        metric_reaches(&d, &series, 1.0);
    }
    metric_reaches(
        &d,
        "revocd_http_requests_rejected_total{listener=\"admin\",reason=\"unauthenticated\"}",
        1.0,
    );
}

/// Issue 14, target: with the default limits, 500 slow-body connections on
/// the public listener and 50 slow unauthenticated admin POSTs never lock
/// out a legitimate client.
#[test]
fn five_hundred_slow_bodies_never_lock_out_a_legitimate_client() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let headers = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 200\r\n\r\n";
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(d.public).expect("connect");
            s.write_all(headers.as_bytes()).expect("headers");
            s.write_all(b"0").expect("a byte");
            s
        })
        .collect();
    let stranger =
        "POST /v1/issuers/demo/revocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{";
    // Strangers from another address than the operator's: failed
    // authentications get their own address refused, not others.
    let admin_slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect_from([127, 0, 0, 2].into(), d.admin).expect("connect");
            let _ = s.write_all(stranger.as_bytes());
            s
        })
        .collect();
    for round in 0..5 {
        assert_eq!(ocsp_status(&d, &ca, &good).status, "good", "round {round}");
        assert!(
            matches!(d.http_admin("GET", "/readyz"), Some((200, _, _))),
            "round {round}"
        );
        revoke(&d, &tok, &format!("0E{round:02X}"), "superseded");
        for s in slow.iter_mut() {
            let _ = s.write_all(b"0");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(admin_slow);
}

/// Issue 14, item 1: a client that pipelines requests and never reads the
/// answers is cut at the write timeout, and counted.
#[test]
fn a_client_that_never_reads_is_cut_at_the_write_timeout() {
    let (dir, config) = demo_with("listen", "write-timeout = \"2s\"\n");
    let p = dir.path();
    let d = Daemon::start(&config);
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let der = revocd::tools::query::build_request(&ca, &good, revocd::pki::HashAlg::Sha1);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let one = format!("GET /{b64} HTTP/1.1\r\nHost: x\r\n\r\n");
    let public = d.public;
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(public).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        // Never read: the answers pile up until the server's writes stall.
        for _ in 0..200_000 {
            if s.write_all(one.as_bytes()).is_err() {
                break;
            }
        }
        s
    });
    eventually(40, "a write_timeout counted", || {
        (metric(
            &d,
            "revocd_http_connection_errors_total{kind=\"write_timeout\",listener=\"public\"}",
        ) >= 1.0)
            .then_some(())
    });
    drop(writer.join());
    assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
}

/// Issue 14, item 2: requests only strangers need (several CertIDs, unknown
/// serials) sign under their own budget and rate, into their own cache:
/// beyond the rate they get tryLater, legitimate clients never do, and no
/// pre-signed answer is evicted (a legitimate request never signs).
#[test]
fn strangers_cannot_drive_signing_or_evict_presigned_answers() {
    let (dir, config) = demo_with(
        "ocsp",
        "unknown-serial = \"unknown\"\nuncommon-signing-rate = 20\ncache-max-bytes = 200000\n",
    );
    let p = dir.path();
    let d = Daemon::start(&config);
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let revoked = Serial::from_hex(&serial_of(&p.join("leaf-revoked.pem"))).expect("hex");
    let legit_signings = || metric(&d, "revocd_ocsp_signings_total{why=\"on_demand\"}");
    assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
    let before = legit_signings();
    let public = d.public;
    let started = std::time::Instant::now();
    let abusers: Vec<_> = (0..8u32)
        .map(|t| {
            let ca = ca.clone();
            let (good, revoked) = (good.clone(), revoked.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for i in 0..150u32 {
                    use revocd::asn1::*;
                    let alg = revocd::pki::HashAlg::Sha1;
                    let id = |content: &[u8]| {
                        sequence(&[&sequence(&[
                            &alg.algorithm_identifier_der(),
                            &octet_string(&ca.name_hash(alg)),
                            &octet_string(&ca.key_hash(alg)),
                            &integer_from_content(content),
                        ])])
                    };
                    let n = (t << 16 | i).to_be_bytes();
                    let ids = if i % 2 == 0 {
                        vec![id(&[0x40, n[0], n[1], n[2], n[3]])]
                    } else {
                        // Known serials, in a combination no one asked for yet.
                        vec![
                            id(good.content()),
                            id(revoked.content()),
                            id(&[0x41, n[0], n[1], n[2], n[3]]),
                        ]
                    };
                    let refs: Vec<&[u8]> = ids.iter().map(Vec::as_slice).collect();
                    let der = sequence(&[&sequence(&[&sequence(&refs)])]);
                    let (status, _, _) = raw_http(public, &post("/", &der, "")).expect("answer");
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    // Legitimate clients meanwhile: always a pre-signed answer.
    let mut legit = 0;
    while abusers.iter().any(|a| !a.is_finished()) {
        assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
        assert_eq!(ocsp_status(&d, &ca, &revoked).status, "revoked");
        legit += 2;
    }
    let statuses: Vec<u16> = abusers
        .into_iter()
        .flat_map(|a| a.join().expect("abuser"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let shed = statuses.iter().filter(|s| **s == 503).count();
    let signed = metric(&d, "revocd_ocsp_signings_total{why=\"uncommon\"}");
    eprintln!(
        "{} abusive requests in {elapsed:.1} s: {shed} tryLater, {signed} signed; {legit} legitimate answers",
        statuses.len()
    );
    assert!(shed > 0, "the rate must shed some");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        signed <= 20.0 * elapsed + 20.0 + 1.0,
        "{signed} uncommon signings in {elapsed:.1} s exceed the rate"
    );
    assert_eq!(
        legit_signings(),
        before,
        "a legitimate request had to sign: a pre-signed answer was evicted"
    );
    // Every tryLater is counted, by the limit (rate or budget) that refused it.
    assert_eq!(metric(&d, "revocd_ocsp_uncommon_shed_total") as usize, shed);
}

/// The head deadline (`listen.header-read-timeout`, enforced per
/// connection by `http::deadline::Deadlines`): a head that trickles in is
/// cut however it trickles, an idle keep-alive connection is closed, and a
/// request whose body takes longer than the head timeout (under its own
/// deadline) is answered.
#[test]
fn a_head_must_arrive_whole_in_time_and_a_request_being_answered_is_not_cut() {
    let (dir, config) = demo_with("listen", "header-read-timeout = \"1s\"\n");
    let p = dir.path();
    let d = Daemon::start(&config);

    // A header line that grows by a byte every 300 ms.
    let (answer, took) = trickle(
        d.public,
        "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_millis(300),
        Duration::from_secs(30),
    );
    // Cut after the 1 s timeout; the trickle itself gives up at 30 s.
    assert!(took < Duration::from_secs(20), "still open after {took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A keep-alive connection left idle after its answer is closed.
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let der = revocd::tools::query::build_request(&ca, &good, revocd::pki::HashAlg::Sha1);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let mut s = TcpStream::connect(d.public).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    s.write_all(format!("GET /{b64} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("write");
    let mut buf = [0u8; 8192];
    let n = s.read(&mut buf).expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let idle = started.elapsed();
    // Closed after the 1 s timeout; the test's own read gives up at 40 s.
    assert!(
        idle < Duration::from_secs(20),
        "idle connection open {idle:?}"
    );

    // A POST whose body takes three times the head timeout: answered.
    let mut s = TcpStream::connect(d.public).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        der.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    for part in der.chunks(der.len().div_ceil(3)) {
        std::thread::sleep(Duration::from_secs(1));
        s.write_all(part).expect("body");
    }
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");

    metric_reaches(
        &d,
        "revocd_http_connection_errors_total{kind=\"header_timeout\",listener=\"public\"}",
        2.0,
    );
}
