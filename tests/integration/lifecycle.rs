//! Signals: SIGHUP rotates the responder key without downtime and refuses a
//! broken configuration; SIGTERM drains and exits.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use revocd::state::Serial;

use crate::support::*;

fn signer_of(v: &revocd::tools::query::Verdict) -> String {
    v.lines
        .iter()
        .find(|l| l.starts_with("Signed by delegated responder"))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn sighup_rotates_the_responder_key_without_downtime() {
    let dir = demo_pki();
    let p = dir.path().to_path_buf();
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    assert!(signer_of(&ocsp_status(&d, &ca, &good)).contains("revocd demo OCSP responder"));

    // A new delegated responder, made with openssl from the CA key.
    std::fs::write(
        p.join("ext.cnf"),
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = OCSPSigning\nnoCheck = ignored\n",
    )
    .expect("ext");
    openssl(
        &p,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "new.key",
        ],
    );
    openssl(
        &p,
        &[
            "req",
            "-new",
            "-key",
            "new.key",
            "-subj",
            "/O=revocd demo/CN=rotated responder",
            "-out",
            "new.csr",
        ],
    );
    openssl(
        &p,
        &[
            "x509",
            "-req",
            "-in",
            "new.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-days",
            "30",
            "-set_serial",
            "0x7077",
            "-extfile",
            "ext.cnf",
            "-out",
            "new.pem",
        ],
    );

    // Clients keep asking throughout; every answer must verify.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (stop, served, failed, ca, good, public) = (
            stop.clone(),
            served.clone(),
            failed.clone(),
            ca.clone(),
            good.clone(),
            d.public,
        );
        std::thread::spawn(move || {
            let der = revocd::tools::query::build_request(&ca, &good, revocd::pki::HashAlg::Sha1);
            while !stop.load(Ordering::SeqCst) {
                let mut req = format!("POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n", der.len())
                    .into_bytes();
                req.extend_from_slice(&der);
                let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
                let ok = raw_http(public, &req)
                    .filter(|r| r.0 == 200)
                    .and_then(|r| revocd::tools::query::verify(&r.2, &ca, &good, now).ok())
                    .is_some_and(|v| v.status == "good");
                if ok {
                    served.fetch_add(1, Ordering::SeqCst)
                } else {
                    failed.fetch_add(1, Ordering::SeqCst)
                };
            }
        })
    };
    std::fs::copy(p.join("new.pem"), p.join("responder.pem")).expect("copy");
    std::fs::copy(p.join("new.key"), p.join("responder.key")).expect("copy");
    d.signal("HUP");
    eventually(30, "answers signed by the rotated responder", || {
        signer_of(&ocsp_status(&d, &ca, &good))
            .contains("rotated responder")
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    client.join().expect("client");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "answers failed during the rotation"
    );
    assert!(served.load(Ordering::SeqCst) > 10);
    let out = run(Command::new(require("openssl")).current_dir(&p).args([
        "ocsp",
        "-issuer",
        "ca.pem",
        "-CAfile",
        "ca.pem",
        "-cert",
        "leaf-good.pem",
        "-no_nonce",
        "-url",
        &d.url(),
        "-resp_text",
    ]));
    let t = text(&out);
    assert!(
        t.contains("Response verify OK") && t.contains("rotated responder"),
        "{t}"
    );
    d.wait_log("OCSP signer rotated");
}

#[test]
fn sighup_with_a_broken_config_keeps_serving_the_old_one() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    std::fs::write(p.join("responder.key"), "not a key").expect("write");
    d.signal("HUP");
    // The refusal, then the problems it lists on the lines after it.
    d.wait_log("reload refused");
    d.wait_log("responder.key");
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = demo_pki();
    let mut d = Daemon::start(&dir.path().join("revocd.toml"));
    d.signal("TERM");
    let status = d.wait_exit(30).expect("revocd exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let logs = d.final_logs();
    assert!(
        logs.contains("shutting down") && logs.contains("stopped"),
        "{logs}"
    );
}
