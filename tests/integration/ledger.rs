//! The durable ledger and admin API against the real daemon: SIGKILL during
//! concurrent revocations, API errors, `openssl ca -revoke` followed, CLI.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use revocd::state::Serial;

use crate::support::*;

const REASONS: [&str; 4] = [
    "keyCompromise",
    "superseded",
    "cessationOfOperation",
    "affiliationChanged",
];

#[test]
fn sigkill_during_1000_concurrent_revocations_loses_no_acknowledged_one() {
    let dir = demo_pki();
    let p = dir.path().to_path_buf();
    let mut d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(&p);
    let admin = d.admin;
    let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
    // serial -> (revoked_at, reason) for every 2xx.
    let acked: Arc<Mutex<HashMap<u32, (i64, &'static str)>>> = Arc::default();
    let n_acked = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(1));
    let mut threads = Vec::new();
    for _ in 0..16 {
        let (acked, n_acked, next, tok) =
            (acked.clone(), n_acked.clone(), next.clone(), tok.clone());
        threads.push(std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i > 1000 {
                return;
            }
            let i = i as u32;
            let at = now - 3600 - i64::from(i);
            let reason = REASONS[i as usize % REASONS.len()];
            let body = format!(
                r#"{{"serial": "{i:X}", "reason": "{reason}", "revoked_at": "{}"}}"#,
                revocd::clock::rfc3339(at)
            );
            if let Some((200, _)) = admin_call(
                admin,
                "POST",
                "/v1/issuers/demo/revocations",
                Some(&tok),
                &body,
            ) {
                acked.lock().expect("lock").insert(i, (at, reason));
                n_acked.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while n_acked.load(Ordering::SeqCst) < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    d.kill();
    for t in threads {
        t.join().expect("client thread");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 300,
        "only {} acknowledged before the kill",
        acked.len()
    );
    assert!(
        acked.len() < 1000,
        "the kill came after every revocation: nothing was tested"
    );
    eprintln!(
        "{} of 1000 revocations acknowledged before SIGKILL",
        acked.len()
    );

    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    for (i, (at, reason)) in &acked {
        let serial = Serial::from_hex(&format!("{i:X}")).expect("serial");
        let v = ocsp_status(&d, &ca, &serial);
        assert_eq!(v.status, "revoked", "serial {i:X} lost after SIGKILL");
        assert_eq!(v.revoked_at, Some(*at), "serial {i:X}");
        assert_eq!(
            v.reason.as_deref().map(str::to_lowercase),
            Some(reason.to_lowercase()),
            "serial {i:X}"
        );
    }
}

#[test]
fn admin_api_authenticates_and_names_the_bad_field() {
    let dir = demo_pki();
    let d = Daemon::start(&dir.path().join("revocd.toml"));
    let tok = token(dir.path());
    let path = "/v1/issuers/demo/revocations";
    let call = |token: Option<&str>, p: &str, body: &str| {
        admin_call(d.admin, "POST", p, token, body).expect("answer")
    };
    assert_eq!(call(None, path, r#"{"serial": "01"}"#).0, 401);
    assert_eq!(call(Some("wrong"), path, r#"{"serial": "01"}"#).0, 401);
    let (s, v) = call(Some(&tok), path, "{not json");
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("JSON"), "{v}");
    let (s, v) = call(Some(&tok), path, r#"{"serial": "xyz"}"#);
    assert_eq!((s, v["field"].as_str()), (400, Some("serial")), "{v}");
    let (s, v) = call(Some(&tok), path, r#"{"serial": 17}"#);
    assert_eq!((s, v["field"].as_str()), (400, Some("serial")), "{v}");
    let (s, v) = call(Some(&tok), path, r#"{"serial": "01", "reason": "bored"}"#);
    assert_eq!((s, v["field"].as_str()), (400, Some("reason")), "{v}");
    let (s, v) = call(
        Some(&tok),
        path,
        r#"{"serial": "01", "revoked_at": "yesterday"}"#,
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("revoked_at")), "{v}");
    let (s, v) = call(
        Some(&tok),
        "/v1/issuers/nope/revocations",
        r#"{"serial": "01"}"#,
    );
    assert_eq!((s, v["field"].as_str()), (404, Some("issuer")), "{v}");
    let (s, v) = call(
        Some(&tok),
        path,
        r#"{"serial": "0A", "reason": "superseded", "revoked_at": "2026-01-01T00:00:00Z"}"#,
    );
    assert_eq!((s, v["result"].as_str()), (200, Some("revoked")), "{v}");
    let (s, v) = call(
        Some(&tok),
        path,
        r#"{"serial": "0A", "reason": "superseded", "revoked_at": "2026-01-01T00:00:00Z"}"#,
    );
    assert_eq!((s, v["result"].as_str()), (200, Some("unchanged")), "{v}");
    let (s, v) = call(
        Some(&tok),
        path,
        r#"{"serial": "0A", "reason": "affiliationChanged"}"#,
    );
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("already revoked"),
        "{v}"
    );
    let (s, v) = call(
        Some(&tok),
        path,
        r#"{"serial": "0A", "reason": "keyCompromise", "revoked_at": "2026-01-01T00:00:00Z"}"#,
    );
    assert_eq!((s, v["result"].as_str()), (200, Some("revoked")), "{v}");
    let (s, v) = admin_call(
        d.admin,
        "GET",
        "/v1/issuers/demo/certificates/0A",
        Some(&tok),
        "",
    )
    .expect("status");
    assert_eq!(
        (s, v["status"].as_str(), v["reason"].as_str()),
        (200, Some("revoked"), Some("keyCompromise")),
        "{v}"
    );
    let (s, _) = admin_call(
        d.admin,
        "GET",
        "/v1/issuers/demo/certificates/0B",
        Some(&tok),
        "",
    )
    .expect("status");
    assert_eq!(s, 404);
}

#[test]
fn cli_registers_revokes_and_reads_status() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let url = format!("http://{}", d.admin);
    let cli = |args: &[&str]| {
        let out = run(Command::new(BIN).current_dir(p).args(args).args([
            "--config",
            "revocd.toml",
            "--admin-url",
            &url,
        ]));
        (out.status.success(), text(&out))
    };
    let (ok, t) = cli(&[
        "register",
        "--serial",
        "C0FFEE",
        "--not-after",
        "2030-01-01T00:00:00Z",
    ]);
    assert!(ok && t.contains("registered"), "{t}");
    let (ok, t) = cli(&["register", "--cert", "leaf-good.pem"]);
    assert!(ok && t.contains("unchanged"), "{t}");
    // A certificate of another CA is refused, naming the field.
    let other = demo_pki();
    let foreign = other.path().join("leaf-good.pem");
    let (ok, t) = cli(&["register", "--cert", foreign.to_str().expect("utf8")]);
    assert!(!ok && t.contains("field certificate"), "{t}");
    let (ok, t) = cli(&[
        "revoke",
        "--serial",
        "C0FFEE",
        "--reason",
        "certificateHold",
    ]);
    assert!(ok && t.contains("revoked"), "{t}");
    let ca = load_cert(&p.join("ca.pem"));
    let serial = Serial::from_hex("C0FFEE").expect("hex");
    assert_eq!(ocsp_status(&d, &ca, &serial).status, "revoked");
    let (ok, t) = cli(&["revoke", "--serial", "C0FFEE", "--reason", "removeFromCRL"]);
    assert!(ok && t.contains("released"), "{t}");
    assert_eq!(ocsp_status(&d, &ca, &serial).status, "good");
    let (ok, t) = cli(&["status", "--serial", "C0FFEE"]);
    assert!(ok && t.contains("\"good\""), "{t}");
    // import-index: a new index with one more revoked serial and one bad line.
    std::fs::write(
        p.join("more.txt"),
        "R\t301231235959Z\t251231235959Z,superseded\tABCD01\tunknown\t/CN=x\nnot a line\n",
    )
    .expect("write");
    let (ok, t) = cli(&["import-index", "--index", "more.txt"]);
    assert!(ok, "{t}");
    assert!(t.contains("line 2"), "{t}");
    let v = ocsp_status(&d, &ca, &Serial::from_hex("ABCD01").expect("hex"));
    assert_eq!(
        (v.status.as_str(), v.reason.as_deref()),
        ("revoked", Some("Superseded"))
    );
}

#[test]
fn openssl_ca_revoke_is_followed_within_two_seconds() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    std::fs::write(
        p.join("openssl.cnf"),
        "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndir = .\ndatabase = $dir/index.txt\n\
         new_certs_dir = $dir/newcerts\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n\
         serial = $dir/serial\ndefault_md = sha256\npolicy = policy_any\ndefault_days = 30\n\
         unique_subject = no\n[ policy_any ]\ncommonName = supplied\n",
    )
    .expect("cnf");
    std::fs::create_dir(p.join("newcerts")).expect("dir");
    std::fs::write(p.join("index.txt"), "").expect("index");
    std::fs::write(p.join("serial"), "1000\n").expect("serial");
    openssl(
        p,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "ca.key",
        ],
    );
    openssl(
        p,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=openssl ca test",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    openssl(
        p,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "leaf.key",
        ],
    );
    openssl(
        p,
        &[
            "req", "-new", "-key", "leaf.key", "-subj", "/CN=leaf", "-out", "leaf.csr",
        ],
    );
    openssl(
        p,
        &[
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-in",
            "leaf.csr",
            "-out",
            "leaf.pem",
            "-notext",
        ],
    );
    std::fs::write(
        p.join("revocd.toml"),
        "data-dir = \"data\"\n[[issuer]]\nid = \"ossl\"\ncertificate = \"ca.pem\"\nkey = \"ca.key\"\nindex = \"index.txt\"\n",
    )
    .expect("config");
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let serial = Serial::from_content(&load_cert(&p.join("leaf.pem")).serial);
    assert_eq!(ocsp_status(&d, &ca, &serial).status, "good");
    openssl(
        p,
        &[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            "leaf.pem",
            "-crl_reason",
            "keyCompromise",
        ],
    );
    let revoked = Instant::now();
    let deadline = revoked + Duration::from_secs(WAIT_SECS);
    loop {
        let v = ocsp_status(&d, &ca, &serial);
        if v.status == "revoked" {
            assert_eq!(v.reason.as_deref(), Some("KeyCompromise"));
            eprintln!(
                "openssl ca -revoke visible in OCSP after {:?}",
                revoked.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revocation not seen within {WAIT_SECS} s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
