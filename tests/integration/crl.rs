//! CRLs against real clients and real S3-compatible servers: openssl,
//! python `cryptography`, moto_server (honours conditional writes) and
//! Garage (ignores them).

use std::path::Path;
use std::process::Command;

use revocd::state::Serial;

use crate::support::*;

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new(require("openssl")).current_dir(dir).args(args));
    text(&out)
}

/// Fetches the live CRL from revocd into DIR/crl.der.
fn fetch_crl(d: &Daemon, dir: &Path) -> (String, Vec<u8>) {
    let (status, head, body) = eventually(WAIT_SECS, "a CRL at /crl/demo.crl", || {
        http_get(d.public, "/crl/demo.crl").filter(|r| r.0 == 200)
    });
    assert_eq!(status, 200);
    std::fs::write(dir.join("crl.der"), &body).expect("write");
    (head.to_lowercase(), body)
}

fn crl_number(der: &[u8], ca: &revocd::pki::Cert) -> u64 {
    revocd::crl::build::check(der, ca)
        .expect("a valid CRL")
        .number
}

fn python_check(dir: &Path, n: usize, expects: &[String]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_crl.py");
    let out = run(Command::new(python())
        .arg(script)
        .arg(dir.join("crl.der"))
        .arg(dir.join("ca.pem"))
        .arg(n.to_string())
        .args(expects));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    t
}

#[test]
fn demo_crl_verifies_with_openssl_and_python() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let (head, body) = fetch_crl(&d, p);
    assert!(
        head.contains("content-type: application/pkix-crl"),
        "{head}"
    );
    assert!(
        head.contains("cache-control: public, max-age=120"),
        "{head}"
    );
    let out = openssl(
        p,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
        ],
    );
    assert!(out.contains("verify OK"), "{out}");
    openssl(
        p,
        &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
    );
    let out = openssl(
        p,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "crl.pem",
            "leaf-revoked.pem",
        ],
    );
    assert!(out.contains("certificate revoked"), "{out}");
    let out = openssl(
        p,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "crl.pem",
            "leaf-good.pem",
        ],
    );
    assert!(out.contains("leaf-good.pem: OK"), "{out}");
    let revoked = serial_of(&p.join("leaf-revoked.pem"));
    let t = python_check(p, 1, &[format!("{revoked}=keyCompromise")]);
    assert!(t.contains("OK signature verifies"), "{t}");
    // Conditional GET.
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag")
        .trim()
        .to_string();
    let req = format!("GET /crl/demo.crl HTTP/1.0\r\nIf-None-Match: {etag}\r\n\r\n");
    let (status, _, empty) = raw_http(d.public, req.as_bytes()).expect("304");
    assert_eq!((status, empty.len()), (304, 0));
    assert!(!body.is_empty());
    let (status, _, _) = http_get(d.public, "/crl/nope.crl").expect("404");
    assert_eq!(status, 404);
}

#[test]
fn an_empty_crl_has_no_revoked_certificates() {
    let dir = demo_pki();
    let p = dir.path();
    let index = std::fs::read_to_string(p.join("index.txt")).expect("index");
    let good: String = index
        .lines()
        .filter(|l| l.starts_with('V'))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(p.join("index.txt"), good).expect("write");
    let d = Daemon::start(&p.join("revocd.toml"));
    let (_, body) = fetch_crl(&d, p);
    let out = openssl(
        p,
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    assert!(out.contains("No Revoked Certificates."), "{out}");
    python_check(p, 0, &[]);
    // The TBSCertList has exactly version, signature, issuer, thisUpdate,
    // nextUpdate, extensions: no empty revokedCertificates SEQUENCE.
    let (crl, _) = revocd::asn1::read_tlv(&body).expect("crl");
    let parts = revocd::asn1::children(crl.content).expect("parts");
    let tbs = revocd::asn1::children(parts[0].content).expect("tbs");
    assert_eq!(tbs.len(), 6);
}

#[test]
fn openssl_crl_download_through_the_cdp_url() {
    // The CDP URL in the certificates names revocd's port: init for it.
    let mut dir = None;
    let (d, _) = Daemon::start_on_free_port(|port| {
        let fresh = tempfile::tempdir().expect("tmp");
        let out = run(Command::new(BIN)
            .args(["init", "--dir"])
            .arg(fresh.path())
            .args(["--listen", &format!("127.0.0.1:{port}")]));
        assert!(out.status.success(), "{}", text(&out));
        let config = fresh.path().join("revocd.toml");
        dir = Some(fresh);
        config
    });
    let dir = dir.expect("initialised");
    let p = dir.path();
    fetch_crl(&d, p);
    let out = openssl(
        p,
        &[
            "verify",
            "-crl_check",
            "-crl_download",
            "-CAfile",
            "ca.pem",
            "leaf-revoked.pem",
        ],
    );
    assert!(out.contains("certificate revoked"), "{out}");
    let out = openssl(
        p,
        &[
            "verify",
            "-crl_check",
            "-crl_download",
            "-CAfile",
            "ca.pem",
            "leaf-good.pem",
        ],
    );
    assert!(out.contains("leaf-good.pem: OK"), "{out}");
}

fn fast_crl(config: &Path) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replace("[crl]\n", "[crl]\ndebounce = \"1s\"\nmax-delay = \"2s\"\n");
    std::fs::write(config, text).expect("write");
}

#[test]
fn a_revocation_reaches_the_crl_after_the_debounce() {
    let dir = demo_pki();
    let p = dir.path();
    fast_crl(&p.join("revocd.toml"));
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let (_, first) = fetch_crl(&d, p);
    let n0 = crl_number(&first, &ca);
    let good = serial_of(&p.join("leaf-good.pem"));
    let (s, v) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/revocations",
        Some(&token(p)),
        &format!(r#"{{"serial": "{good}", "reason": "superseded"}}"#),
    )
    .expect("revoke");
    assert_eq!(s, 200, "{v}");
    let body = eventually(30, "the revocation on a CRL", || {
        let (_, _, b) = http_get(d.public, "/crl/demo.crl")?;
        revocd::crl::build::check(&b, &ca)
            .ok()
            .filter(|f| f.n_entries == 2)
            .map(|_| b)
    });
    assert!(crl_number(&body, &ca) > n0);
    std::fs::write(p.join("crl.der"), &body).expect("write");
    let revoked = serial_of(&p.join("leaf-revoked.pem"));
    python_check(
        p,
        2,
        &[
            format!("{good}=superseded"),
            format!("{revoked}=keyCompromise"),
        ],
    );
    // The CRL is served as soon as it is live; its publish is counted
    // just after. The initial CRL and this one each carried changes.
    let ok = "revocd_crl_publishes_total{issuer=\"demo\",result=\"ok\"}";
    assert_eq!(metric_reaches(&d, ok, 2.0), 2.0);
    assert_eq!(metric(&d, "revocd_crl_entries{issuer=\"demo\"}"), 2.0);
    assert_eq!(
        metric(&d, "revocd_crl_change_to_publish_seconds_count"),
        2.0
    );
}

#[test]
fn moto_gets_conditional_writes_with_content_type_and_cache_control() {
    let moto = moto();
    create_bucket(moto.port, "pki");
    let dir = demo_pki();
    let p = dir.path();
    use_s3(&p.join("revocd.toml"), moto.port, "pki/crls", "");
    let d = Daemon::start_with(&p.join("revocd.toml"), &MOTO_ENV, true);
    let (_, head, body) = eventually(WAIT_SECS, "the CRL in moto", || {
        moto_get(moto.port, "/pki/crls/demo.crl").filter(|r| r.0 == 200)
    });
    let head = head.to_lowercase();
    assert!(
        head.contains("content-type: application/pkix-crl"),
        "{head}"
    );
    assert!(
        head.contains("cache-control: public, max-age=120"),
        "{head}"
    );
    let ca = load_cert(&p.join("ca.pem"));
    assert!(crl_number(&body, &ca) > 0);
    assert_eq!(metric(&d, "revocd_crl_store_conditional_writes"), 1.0);
    d.wait_log("store honours conditional writes");
}

#[test]
fn two_publishers_racing_on_one_bucket_never_lower_the_crl_number() {
    let moto = moto();
    create_bucket(moto.port, "pki");
    let a = demo_pki();
    let b = tempfile::tempdir().expect("tmp");
    // The same CA in both, each with its own ledger.
    let out = run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", a.path().display()))
        .arg(b.path()));
    assert!(out.status.success());
    for dir in [a.path(), b.path()] {
        use_s3(
            &dir.join("revocd.toml"),
            moto.port,
            "pki/crls",
            "debounce = \"1s\"\nmax-delay = \"1s\"\n",
        );
    }
    let da = Daemon::start_with(&a.path().join("revocd.toml"), &MOTO_ENV, true);
    let db = Daemon::start_with(&b.path().join("revocd.toml"), &MOTO_ENV, true);
    let ca = load_cert(&a.path().join("ca.pem"));
    let port = moto.port;
    let tok = token(a.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, ca) = (stop.clone(), ca.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some((200, _, body)) = moto_get(port, "/pki/crls/demo.crl") {
                    if let Ok(f) = revocd::crl::build::check(&body, &ca) {
                        seen.push(f.number);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            seen
        })
    };
    for round in 0..20u32 {
        for (d, who) in [(&da, 0xA0u32), (&db, 0xB0)] {
            let serial = format!("{:X}", (who << 16) | round);
            let body = format!(r#"{{"serial": "{serial}", "reason": "superseded"}}"#);
            let (s, _) = admin_call(
                d.admin,
                "POST",
                "/v1/issuers/demo/revocations",
                Some(&tok),
                &body,
            )
            .expect("revoke");
            assert_eq!(s, 200);
            let (s, _) = admin_call(
                d.admin,
                "POST",
                "/v1/issuers/demo/crl/publish",
                Some(&tok),
                "",
            )
            .expect("publish");
            assert_eq!(s, 202);
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.join().expect("watcher");
    assert!(seen.len() > 10, "watched too little: {seen:?}");
    for w in seen.windows(2) {
        assert!(
            w[1] >= w[0],
            "the live CRL number went down: {} -> {}",
            w[0],
            w[1]
        );
    }
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    eprintln!(
        "{} observations, {} distinct live CRL numbers",
        seen.len(),
        distinct.len()
    );
    assert!(distinct.len() > 2, "{distinct:?}");
}

#[test]
fn store_outage_publishing_retries_and_ocsp_keeps_serving() {
    let mut moto = moto();
    create_bucket(moto.port, "pki");
    // revocd reaches the store through a proxy, so that the store can come
    // back on another port.
    let store = fault_proxy(moto.port);
    let dir = demo_pki();
    let p = dir.path();
    use_s3(
        &p.join("revocd.toml"),
        store.port,
        "pki/crls",
        "debounce = \"1s\"\nmax-delay = \"1s\"\n",
    );
    let d = Daemon::start_with(&p.join("revocd.toml"), &MOTO_ENV, true);
    eventually(WAIT_SECS, "the first CRL in moto", || {
        moto_get(moto.port, "/pki/crls/demo.crl").filter(|r| r.0 == 200)
    });
    moto.stop();
    let good = serial_of(&p.join("leaf-good.pem"));
    let (s, _) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/revocations",
        Some(&token(p)),
        &format!(r#"{{"serial": "{good}", "reason": "keyCompromise"}}"#),
    )
    .expect("revoke");
    assert_eq!(s, 200, "revocations are accepted while the store is down");
    let ca = load_cert(&p.join("ca.pem"));
    let v = ocsp_status(&d, &ca, &Serial::from_hex(&good).expect("hex"));
    assert_eq!(v.status, "revoked", "OCSP serves while the store is down");
    eventually(30, "a failed publish", || {
        let (_, _, m) = d.http_admin("GET", "/metrics")?;
        String::from_utf8_lossy(&m)
            .contains("revocd_crl_publishes_total{issuer=\"demo\",result=\"error\"}")
            .then_some(())
    });
    // The store comes back (empty: moto keeps nothing across restarts).
    let moto = crate::support::moto();
    create_bucket(moto.port, "pki");
    store
        .upstream
        .store(moto.port, std::sync::atomic::Ordering::SeqCst);
    let body = eventually(60, "the CRL with the revocation in the store", || {
        let (_, _, b) = moto_get(moto.port, "/pki/crls/demo.crl").filter(|r| r.0 == 200)?;
        revocd::crl::build::check(&b, &ca)
            .ok()
            .filter(|f| f.n_entries == 2)
            .map(|_| b)
    });
    assert!(!body.is_empty());
    assert_eq!(
        ocsp_status(&d, &ca, &Serial::from_hex(&good).expect("hex")).status,
        "revoked"
    );
}

#[test]
fn garage_ignores_conditional_writes_so_revocd_runs_as_single_writer() {
    let g = garage();
    let dir = demo_pki();
    let p = dir.path();
    let config = p.join("revocd.toml");
    use_s3(&config, g.server.port, "pki/crls", "");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("region = \"us-east-1\"", "region = \"garage\""),
    )
    .expect("write");
    let env = [
        ("AWS_ACCESS_KEY_ID", g.key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", g.secret.as_str()),
    ];
    // Fleet mode on Garage is refused at start: without conditional writes
    // two replicas could overwrite each other's ledger batches.
    let single = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{single}\n[fleet]\nstore = \"s3://pki/fleet\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"garage\"\nallow-http = true\n",
            g.server.port
        ),
    )
    .expect("write");
    let (code, stderr) = serve_until_exit(&config, &env, 60);
    assert_ne!(
        code,
        Some(0),
        "fleet mode must not start on Garage: {stderr}"
    );
    assert!(
        stderr.contains("fleet mode refused")
            && stderr.contains("does not honour conditional writes"),
        "{stderr}"
    );
    // Single-writer mode (no [fleet]) works on the same store.
    std::fs::write(&config, single).expect("write");
    let d = Daemon::start_with(&config, &env, true);
    let (_, head, body) = eventually(30, "the CRL in Garage", || {
        s3_get(
            g.server.port,
            "/pki/crls/demo.crl",
            "garage",
            &g.key,
            &g.secret,
        )
        .filter(|r| r.0 == 200)
    });
    assert!(
        head.contains("content-type: application/pkix-crl"),
        "{head}"
    );
    let ca = load_cert(&p.join("ca.pem"));
    assert!(crl_number(&body, &ca) > 0);
    d.wait_log("store ignores conditional writes");
    assert_eq!(metric(&d, "revocd_crl_store_conditional_writes"), 0.0);
}

#[test]
fn sharded_crls_carry_their_idp_and_a_manifest_lists_them() {
    let dir = demo_pki();
    let p = dir.path();
    let demo = std::fs::read_to_string(p.join("revocd.toml")).expect("config");
    let (d, port) = Daemon::start_on_free_port(|port| {
        let base = format!("http://127.0.0.1:{port}/crl");
        let config = demo.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        std::fs::write(p.join("revocd.toml"), config).expect("write");
        set_crl(
            &p.join("revocd.toml"),
            &format!("shards = 4\nurl-base = \"{base}\"\ndebounce = \"1s\"\nmax-delay = \"2s\"\n"),
        );
        p.join("revocd.toml")
    });
    let base = format!("http://127.0.0.1:{port}/crl");
    let tok = token(p);
    let mut revoked: std::collections::BTreeSet<String> =
        (1..=20u32).map(|n| format!("{:X}", 0x5A00 + n)).collect();
    for s in &revoked {
        revoke(&d, &tok, s, "superseded");
    }
    revoked.insert(serial_of(&p.join("leaf-revoked.pem")));
    let ca = load_cert(&p.join("ca.pem"));
    let mut union = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = String::new();
    let manifest = loop {
        let got = http_get(d.public, "/crl/demo/manifest.json").and_then(|(s, _, m)| {
            last = String::from_utf8_lossy(&m).into_owned();
            let v: serde_json::Value = serde_json::from_slice(&m).ok()?;
            let total: u64 = v["shards"]
                .as_array()?
                .iter()
                .filter_map(|s| s["entries"].as_u64())
                .sum();
            (s == 200 && total == 21).then_some(v)
        });
        if let Some(v) = got {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no manifest listing 21 entries after 30 s; last manifest: {last}\nrevocd log:\n{}",
            d.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let shards = manifest["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 4);
    for (k, entry) in shards.iter().enumerate() {
        let url = format!("{base}/demo/{k}.crl");
        assert_eq!(entry["url"].as_str(), Some(url.as_str()));
        let (s, _, der) = http_get(d.public, &format!("/crl/demo/{k}.crl")).expect("shard");
        assert_eq!(s, 200);
        let sha = hex::encode(revocd::pki::HashAlg::Sha256.digest(&der));
        assert_eq!(entry["sha256"].as_str(), Some(sha.as_str()), "shard {k}");
        std::fs::write(p.join("crl.der"), &der).expect("write");
        let out = openssl(
            p,
            &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
        );
        assert!(
            out.contains("X509v3 Issuing Distribution Point: critical"),
            "{out}"
        );
        assert!(out.contains(&format!("URI:{url}")), "{out}");
        for e in revocd::crl::build::entries_of(&der).expect("entries") {
            assert_eq!(
                revocd::crl::shard_of(&e.serial, 4),
                k as u32,
                "{:?} in the wrong shard",
                e.serial
            );
            union.insert(e.serial.to_hex().trim_start_matches('0').to_string());
        }
        let out = openssl(
            p,
            &[
                "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
            ],
        );
        assert!(out.contains("verify OK"), "{out}");
        assert!(crl_number(&der, &ca) > 0);
    }
    // In the store each shard is at the path its IDP URL names, so a CDN in
    // front of the bucket finds it (not at an escaped `demo%2F0.crl`).
    for k in 0..4 {
        let stored = std::fs::read(p.join(format!("crl/demo/{k}.crl")))
            .unwrap_or_else(|e| panic!("crl/demo/{k}.crl in the store: {e}"));
        assert!(revocd::crl::build::check(&stored, &ca).is_ok());
    }
    assert!(p.join("crl/demo/manifest.json").is_file());
    let want: std::collections::BTreeSet<String> = revoked
        .iter()
        .map(|s| s.trim_start_matches('0').to_string())
        .collect();
    assert_eq!(union, want);
}

#[test]
fn delta_crls_share_the_number_sequence_and_openssl_uses_them() {
    let dir = demo_pki();
    let p = dir.path();
    set_crl(
        &p.join("revocd.toml"),
        "delta = true\ndebounce = \"1s\"\nmax-delay = \"10m\"\n",
    );
    let d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let get = |name: &str| http_get(d.public, name).filter(|r| r.0 == 200).map(|r| r.2);
    let base = eventually(WAIT_SECS, "the full CRL", || get("/crl/demo.crl"));
    let base_number = crl_number(&base, &ca);
    // A delta against this base, empty at first.
    eventually(30, "a delta against the base", || {
        let delta = get("/crl/demo-delta.crl")?;
        let f = revocd::crl::build::check(&delta, &ca).ok()?;
        (f.is_delta && f.n_entries == 0 && f.number > base_number).then_some(())
    });
    let good = serial_of(&p.join("leaf-good.pem"));
    revoke(&d, &tok, &good, "keyCompromise");
    let delta = eventually(30, "the revocation in the delta", || {
        let delta = get("/crl/demo-delta.crl")?;
        let f = revocd::crl::build::check(&delta, &ca).ok()?;
        (f.n_entries == 1).then_some(delta)
    });
    // The full CRL was not re-published (max-delay is 10 minutes).
    assert_eq!(get("/crl/demo.crl").expect("base"), base);
    std::fs::write(p.join("base.der"), &base).expect("write");
    std::fs::write(p.join("delta.der"), &delta).expect("write");
    let out = openssl(
        p,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "delta.der",
            "-noout",
            "-text",
        ],
    );
    assert!(
        out.contains("X509v3 Delta CRL Indicator: critical"),
        "{out}"
    );
    assert!(out.contains(&base_number.to_string()), "{out}");
    openssl(
        p,
        &[
            "crl", "-inform", "DER", "-in", "base.der", "-out", "base.pem",
        ],
    );
    openssl(
        p,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "delta.der",
            "-out",
            "delta.pem",
        ],
    );
    let out = openssl(
        p,
        &[
            "verify",
            "-crl_check",
            "-use_deltas",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "base.pem",
            "-CRLfile",
            "delta.pem",
            "leaf-good.pem",
        ],
    );
    assert!(out.contains("certificate revoked"), "{out}");
    // Without the delta the base alone still says good.
    let out = openssl(
        p,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "base.pem",
            "leaf-good.pem",
        ],
    );
    assert!(out.contains("leaf-good.pem: OK"), "{out}");
}

#[test]
fn a_released_hold_appears_as_remove_from_crl_in_the_delta() {
    let dir = demo_pki();
    let p = dir.path();
    set_crl(
        &p.join("revocd.toml"),
        "delta = true\ndebounce = \"1s\"\nmax-delay = \"10m\"\n",
    );
    let d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let get = |name: &str| http_get(d.public, name).filter(|r| r.0 == 200).map(|r| r.2);
    eventually(WAIT_SECS, "the full CRL", || get("/crl/demo.crl"));
    revoke(&d, &tok, "0BEEF1", "certificateHold");
    // Publish the full CRL now so it carries the hold.
    let (s, _) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/crl/publish",
        Some(&tok),
        "",
    )
    .expect("publish");
    assert_eq!(s, 202);
    eventually(30, "the hold on the full CRL", || {
        let b = get("/crl/demo.crl")?;
        (revocd::crl::build::check(&b, &ca).ok()?.n_entries == 2).then_some(())
    });
    revoke(&d, &tok, "0BEEF1", "removeFromCRL");
    let delta = eventually(30, "removeFromCRL in the delta", || {
        let delta = get("/crl/demo-delta.crl")?;
        let entries = revocd::crl::build::entries_of(&delta).ok()?;
        entries
            .iter()
            .any(|e| e.reason == revocd::state::Reason::RemoveFromCrl)
            .then_some(delta)
    });
    std::fs::write(p.join("delta.der"), &delta).expect("write");
    let out = openssl(
        p,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "delta.der",
            "-noout",
            "-text",
        ],
    );
    assert!(out.contains("Remove From CRL"), "{out}");
}

#[test]
fn the_ccadb_url_list_names_every_full_crl_in_the_store_and_at_the_origin() {
    for (extra, want) in [
        (
            "shards = 2\nurl-base = \"http://crl.example/crl\"\n",
            vec![
                "http://crl.example/crl/demo/0.crl",
                "http://crl.example/crl/demo/1.crl",
            ],
        ),
        (
            "delta = true\nurl-base = \"http://crl.example/crl/\"\n",
            vec!["http://crl.example/crl/demo.crl"],
        ),
    ] {
        let dir = demo_pki();
        let p = dir.path();
        set_crl(&p.join("revocd.toml"), extra);
        let d = Daemon::start(&p.join("revocd.toml"));
        let (status, head, body) = http_get(d.public, "/crl/demo/urls.json").expect("urls.json");
        assert_eq!(status, 200);
        assert!(head.to_lowercase().contains("application/json"), "{head}");
        let got: Vec<String> = serde_json::from_slice(&body).expect("a JSON array");
        assert_eq!(got, want);
        let stored = std::fs::read(p.join("crl/demo/urls.json")).expect("in the store");
        assert_eq!(stored, body);
    }
}
