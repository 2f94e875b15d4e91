//! Admin access as a CA's security officer would check it: TLS on the admin
//! listener (curl and `revocd revoke` with and without client
//! certificates, plain HTTP refused), named operators with scopes (403
//! naming the scope, the body never read first), every change attributed
//! (the status call, `ledger dump` after a restart, the audit log), and a
//! flood of bad tokens from one address that leaves an operator elsewhere
//! served.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::haproxy::issue;
use crate::support::*;

const SERVER_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n";
const CLIENT_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";

fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A token file for `name`, 0600.
fn token_file(p: &Path, name: &str) -> String {
    let token = format!("{name}-token-{}", "0123456789abcdef".repeat(2));
    std::fs::write(p.join(format!("{name}.token")), format!("{token}\n")).expect("token");
    private(&p.join(format!("{name}.token")));
    token
}

/// The demo config with its operator replaced by `admin` (from the config
/// `revocd init` wrote, kept aside as `revocd.toml.init`).
fn with_admin(p: &Path, admin: &str) -> std::path::PathBuf {
    let config = p.join("revocd.toml");
    let init = p.join("revocd.toml.init");
    if !init.exists() {
        std::fs::copy(&config, &init).expect("keep the demo config");
    }
    let text = std::fs::read_to_string(&init).expect("config");
    let start = text
        .find("# Who may use the admin API")
        .expect("the demo's operator");
    let end = text.find("[ocsp]").expect("[ocsp]");
    std::fs::write(
        &config,
        format!("{}{admin}\n{}", &text[..start], &text[end..]),
    )
    .expect("config");
    config
}

/// The admin listener's certificate (issued by the demo CA for
/// 127.0.0.1), its chain file and key.
fn server_tls(p: &Path) {
    issue(p, "admin-server", SERVER_EXT);
    let chain = [
        std::fs::read(p.join("admin-server.pem")).expect("pem"),
        std::fs::read(p.join("ca.pem")).expect("ca"),
    ]
    .concat();
    std::fs::write(p.join("admin-chain.pem"), chain).expect("chain");
    private(&p.join("admin-server.key"));
}

/// curl against the admin listener: (HTTP status, body); status 0 when no
/// HTTP answer came (a refused handshake).
fn curl(p: &Path, args: &[&str], url: &str) -> (u16, String) {
    let out = run(Command::new(require("curl"))
        .current_dir(p)
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn cli(p: &Path, args: &[&str]) -> std::process::Output {
    run(Command::new(BIN).current_dir(p).args(args))
}

#[test]
fn the_tls_admin_listener_serves_curl_and_the_cli_with_and_without_client_certificates_and_never_plain_http(
) {
    let dir = demo_pki();
    let p = dir.path();
    server_tls(p);
    let admin_token = token_file(p, "admin");
    let config = with_admin(
        p,
        "[admin]\ntls-certificate = \"admin-chain.pem\"\ntls-key = \"admin-server.key\"\n\n[[admin.operator]]\nname = \"admin\"\ntoken-file = \"admin.token\"\nscopes = [\"read\", \"register\", \"revoke\", \"release\", \"publish\"]\n",
    );
    let d = Daemon::start(&config);
    let base = format!("https://{}", d.admin);
    let good = serial_of(&p.join("leaf-good.pem"));
    let auth = format!("Authorization: Bearer {admin_token}");

    // curl, verifying the server against the demo CA.
    let (code, body) = curl(
        p,
        &["--cacert", "ca.pem", "-H", &auth],
        &format!("{base}/v1/issuers/demo/certificates/{good}"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"status\":\"good\""), "{body}");
    // Plain HTTP on that port is never served: no HTTP answer at all.
    let plain = raw_http(
        d.admin,
        format!("GET /v1/issuers/demo/certificates/{good} HTTP/1.0\r\n{auth}\r\n\r\n").as_bytes(),
    );
    assert!(plain.is_none(), "plain HTTP answered: {plain:?}");
    // The CLI over TLS, trusting the chain in admin.tls-certificate.
    let out = cli(
        p,
        &[
            "revoke",
            "--config",
            "revocd.toml",
            "--admin-url",
            &base,
            "--serial",
            &good,
            "--reason",
            "superseded",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(
        p,
        &[
            "status",
            "--config",
            "revocd.toml",
            "--admin-url",
            &base,
            "--serial",
            &good,
        ],
    );
    assert!(
        text(&out).contains("\"status\": \"revoked\""),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("\"changed_by\": \"admin\""),
        "{}",
        text(&out)
    );
    drop(d);

    // Client certificates required: alice by subject (read, revoke), bob by
    // key pin (read only).
    issue(p, "alice", CLIENT_EXT);
    issue(p, "bob", CLIENT_EXT);
    let pin = {
        let pubkey = run(Command::new(require("openssl")).current_dir(p).args([
            "pkey", "-in", "bob.key", "-pubout", "-outform", "DER", "-out", "bob.spki",
        ]));
        assert!(pubkey.status.success(), "{}", text(&pubkey));
        hex::encode(
            revocd::pki::HashAlg::Sha256.digest(&std::fs::read(p.join("bob.spki")).expect("spki")),
        )
    };
    let config = with_admin(
        p,
        &format!(
            "[admin]\ntls-certificate = \"admin-chain.pem\"\ntls-key = \"admin-server.key\"\nclient-ca = \"ca.pem\"\n\n\
             [[admin.operator]]\nname = \"alice\"\nclient-cert-subject = \"CN=alice\"\nscopes = [\"read\", \"revoke\"]\n\n\
             [[admin.operator]]\nname = \"bob\"\nclient-cert-spki-sha256 = \"{pin}\"\nscopes = [\"read\"]\n"
        ),
    );
    let mut text_cfg = std::fs::read_to_string(&config).expect("config");
    text_cfg = text_cfg.replace("[listen]\n", "[listen]\nmetrics = \"127.0.0.1:0\"\n");
    std::fs::write(&config, text_cfg).expect("config");
    let d = Daemon::start(&config);
    let metrics_addr: std::net::SocketAddr = d
        .wait_log("revocd: metrics listener on http://")
        .trim_start_matches("revocd: metrics listener on http://")
        .trim()
        .parse()
        .expect("metrics address");
    let base = format!("https://{}", d.admin);
    let revoke_body = r#"{"serial": "5A11CE", "reason": "keyCompromise"}"#;
    let revoke_url = format!("{base}/v1/issuers/demo/revocations");
    // Without a client certificate the handshake fails.
    let (code, _) = curl(p, &["--cacert", "ca.pem"], &format!("{base}/healthz"));
    assert_eq!(code, 0, "served without a client certificate");
    // Alice revokes; Bob may only read (403 naming the scope).
    let (code, body) = curl(
        p,
        &[
            "--cacert",
            "ca.pem",
            "--cert",
            "alice.pem",
            "--key",
            "alice.key",
            "-X",
            "POST",
            "-d",
            revoke_body,
        ],
        &revoke_url,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = curl(
        p,
        &[
            "--cacert",
            "ca.pem",
            "--cert",
            "bob.pem",
            "--key",
            "bob.key",
            "-X",
            "POST",
            "-d",
            r#"{"serial": "5A11CF", "reason": "keyCompromise"}"#,
        ],
        &revoke_url,
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("\"scope\":\"revoke\""), "{body}");
    let (code, body) = curl(
        p,
        &[
            "--cacert", "ca.pem", "--cert", "bob.pem", "--key", "bob.key",
        ],
        &format!("{base}/v1/issuers/demo/certificates/5A11CE"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"changed_by\":\"alice\""), "{body}");
    // The CLI with a client certificate.
    let out = cli(
        p,
        &[
            "revoke",
            "--config",
            "revocd.toml",
            "--admin-url",
            &base,
            "--serial",
            "5A11D0",
            "--reason",
            "superseded",
            "--client-cert",
            "alice.pem",
            "--client-key",
            "alice.key",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // Probes and Prometheus on the plain metrics listener; no API there.
    let (status, _, _) = http_get(metrics_addr, "/readyz").expect("readyz");
    assert_eq!(status, 200);
    let (status, _, body) = http_get(metrics_addr, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("revocd_admin_auth_failures_total"));
    let (status, _, _) =
        http_get(metrics_addr, "/v1/issuers/demo/certificates/5A11CE").expect("api");
    assert_eq!(status, 403);
    assert!(
        metric_reaches(
            &d,
            "revocd_admin_auth_failures_total{reason=\"tls_handshake\"}",
            1.0
        ) >= 1.0
    );
}

#[test]
fn scopes_refuse_with_403_naming_the_scope_before_a_body_is_read() {
    let dir = demo_pki();
    let p = dir.path();
    let reader = token_file(p, "reader");
    let revoker = token_file(p, "revoker");
    let releaser = token_file(p, "releaser");
    let config = with_admin(
        p,
        "[[admin.operator]]\nname = \"reader\"\ntoken-file = \"reader.token\"\nscopes = [\"read\"]\n\n\
         [[admin.operator]]\nname = \"revoker\"\ntoken-file = \"revoker.token\"\nscopes = [\"read\", \"revoke\"]\n\n\
         [[admin.operator]]\nname = \"releaser\"\ntoken-file = \"releaser.token\"\nscopes = [\"revoke\", \"release\"]\n",
    );
    let d = Daemon::start(&config);
    let call = |tok: &str, body: &str| {
        admin_call(
            d.admin,
            "POST",
            "/v1/issuers/demo/revocations",
            Some(tok),
            body,
        )
        .expect("answer")
    };
    let (code, v) = call(
        &reader,
        r#"{"serial": "0B01", "reason": "certificateHold"}"#,
    );
    assert_eq!((code, v["scope"].as_str()), (403, Some("revoke")), "{v}");
    let (code, v) = call(
        &revoker,
        r#"{"serial": "0B01", "reason": "certificateHold"}"#,
    );
    assert_eq!(code, 200, "{v}");
    // Undoing a hold is its own scope.
    let (code, v) = call(&revoker, r#"{"serial": "0B01", "reason": "removeFromCRL"}"#);
    assert_eq!((code, v["scope"].as_str()), (403, Some("release")), "{v}");
    let (code, v) = call(
        &releaser,
        r#"{"serial": "0B01", "reason": "removeFromCRL"}"#,
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = admin_call(
        d.admin,
        "GET",
        "/v1/issuers/demo/certificates/0B01",
        Some(&reader),
        "",
    )
    .expect("status");
    assert_eq!(
        (code, v["changed_by"].as_str()),
        (200, Some("releaser")),
        "{v}"
    );
    let (code, v) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/crl/publish",
        Some(&reader),
        "",
    )
    .expect("publish");
    assert_eq!((code, v["scope"].as_str()), (403, Some("publish")), "{v}");
    // A 16 MiB body declared by an operator without the scope: refused from
    // the headers, the body never read (it is never sent).
    let mut s = std::net::TcpStream::connect(d.admin).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(
        format!(
            "POST /v1/issuers/demo/certificates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {reader}\r\nContent-Length: 16777216\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .expect("head");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("\"scope\":\"register\""), "{answer}");
}

#[test]
fn every_change_names_its_author_in_the_ledger_dump_after_a_restart() {
    let dir = demo_pki();
    let p = dir.path();
    let alice = token_file(p, "alice");
    let config = with_admin(
        p,
        "[[admin.operator]]\nname = \"alice\"\ntoken-file = \"alice.token\"\nscopes = [\"read\", \"revoke\", \"register\"]\n",
    );
    let mut d = Daemon::start(&config);
    revoke(&d, &alice, "A11CE1", "keyCompromise");
    d.wait_log("author=alice");
    // From index.txt (the demo's revoked leaf was imported at start).
    let revoked = serial_of(&p.join("leaf-revoked.pem"));
    d.signal("TERM");
    assert!(d.wait_exit(30).is_some_and(|s| s.success()));
    let d = Daemon::start(&config);
    let (_, v) = admin_call(
        d.admin,
        "GET",
        &format!("/v1/issuers/demo/certificates/{revoked}"),
        Some(&alice),
        "",
    )
    .expect("status");
    assert_eq!(v["changed_by"].as_str(), Some("index"), "{v}");
    drop(d);
    let out = run(Command::new(BIN)
        .args(["ledger", "dump", "--config"])
        .arg(&config));
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let author = l["author"].as_str().unwrap_or_default();
        assert!(
            !author.is_empty() && author != "unattributed",
            "a change without an author: {l}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l["serial"] == "A11CE1" && l["author"] == "alice"));
}

#[test]
fn an_old_ledger_without_authors_still_loads_and_shows_unattributed() {
    let dir = demo_pki();
    let p = dir.path();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger-pre1970/ledger");
    let ledger_dir = p.join("data/ledger");
    std::fs::create_dir_all(&ledger_dir).expect("mkdir");
    for f in std::fs::read_dir(&fixture).expect("fixture").flatten() {
        std::fs::copy(f.path(), ledger_dir.join(f.file_name())).expect("copy");
    }
    let out = run(Command::new(BIN)
        .args(["ledger", "dump", "--config"])
        .arg(p.join("revocd.toml")));
    assert!(out.status.success(), "{}", text(&out));
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("\"serial\":\"1965\""), "{dump}");
    assert!(dump.contains("\"author\":\"unattributed\""), "{dump}");
    let d = Daemon::start(&p.join("revocd.toml"));
    let (_, v) = admin_call(
        d.admin,
        "GET",
        "/v1/issuers/demo/certificates/1965",
        Some(&token(p)),
        "",
    )
    .expect("status");
    assert_eq!(v["changed_by"].as_str(), Some("unattributed"), "{v}");
}

#[test]
fn a_flood_of_bad_tokens_from_one_address_leaves_an_operator_elsewhere_served() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(p);
    let admin = d.admin;
    // 64 connections from 127.0.0.2, 10,000 bad-token requests in all.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let req = "POST /v1/issuers/demo/revocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer guessed-wrong-token-0123456789\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
                while sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 10_000 {
                    if let Ok(mut s) = connect_from([127, 0, 0, 2].into(), admin) {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                        let _ = s.write_all(req.as_bytes());
                        let mut buf = Vec::new();
                        let _ = s.read_to_end(&mut buf);
                    }
                }
            })
        })
        .collect();
    // Meanwhile, for as long as the flood lasts, an operator at 127.0.0.1
    // revokes: every revocation is acknowledged.
    let mut slowest = Duration::ZERO;
    let mut n = 0u32;
    while n < 20 || flood.iter().any(|t| !t.is_finished()) {
        let started = Instant::now();
        revoke(&d, &tok, &format!("F100{n:04X}"), "keyCompromise");
        slowest = slowest.max(started.elapsed());
        n += 1;
    }
    for t in flood {
        t.join().expect("flood");
    }
    eprintln!(
        "under a 64-connection bad-token flood (10,000 requests), {n} revocations, the slowest acknowledged in {slowest:?}"
    );
    metric_reaches(
        &d,
        "revocd_admin_auth_failures_total{reason=\"bad_token\"}",
        20.0,
    );
    metric_reaches(&d, "revocd_admin_refused_connections_total", 1.0);
    assert_eq!(metric(&d, "revocd_admin_refused_addresses"), 1.0);
    // Still serving its operator after the flood.
    revoke(&d, &tok, "F1FFFF", "keyCompromise");
}
