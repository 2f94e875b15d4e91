//! Keys in an HSM: the demo's keys moved into a real SoftHSM2 token with
//! `deploy/hsm/softhsm-demo.sh` (key files deleted), then OCSP answers and
//! CRLs signed through PKCS#11 and checked by openssl, python
//! `cryptography` and `revocd query`; an RSA and an ECDSA token key; and the
//! HSM going away and coming back, through p11-kit's client module talking
//! to a `p11-kit server` in front of SoftHSM (a network HSM's failure mode:
//! the process on the other end dies, handles go stale).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/hsm/softhsm-demo.sh");

/// Moves `dir`'s keys into a fresh SoftHSM token; the URIs name `module`
/// (default SoftHSM's). Returns the environment revocd needs.
fn into_softhsm(dir: &Path, module: Option<&Path>) -> Vec<(String, String)> {
    require("softhsm2-util");
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT).arg(dir).env_remove("SOFTHSM2_CONF");
    if let Some(m) = module {
        cmd.env("REVOCD_PKCS11_MODULE", m);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "softhsm-demo.sh: {}", text(&out));
    vec![(
        "SOFTHSM2_CONF".to_string(),
        dir.join("softhsm2.conf").display().to_string(),
    )]
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn revocd(dir: &Path, env: &[(String, String)], args: &[&str]) -> std::process::Output {
    run(Command::new(BIN)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args))
}

fn add_to_config(config: &Path, text: &str) {
    let old = std::fs::read_to_string(config).expect("config");
    std::fs::write(config, format!("{old}\n{text}")).expect("config");
}

fn openssl_ocsp(dir: &Path, d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["-no_nonce"];
    all.extend(args);
    crate::openssl_client_run(dir, d, &all)
}

fn query(dir: &Path, d: &Daemon, cert: &str, extra: &[&str]) -> String {
    let out = run(Command::new(BIN)
        .current_dir(dir)
        .args([
            "query",
            "--url",
            &d.url(),
            "--issuer",
            "ca.pem",
            "--cert",
            cert,
        ])
        .args(extra));
    let t = text(&out);
    assert!(out.status.success(), "revocd query {cert} {extra:?}: {t}");
    t
}

fn crl_verifies(dir: &Path, der: &[u8], entries: usize) {
    std::fs::write(dir.join("crl.der"), der).expect("write");
    let out = openssl(
        dir,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
        ],
    );
    assert!(out.contains("verify OK"), "{out}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_crl.py");
    let out = run(Command::new(python())
        .arg(script)
        .arg(dir.join("crl.der"))
        .arg(dir.join("ca.pem"))
        .arg(entries.to_string()));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn ecdsa_keys_in_softhsm_sign_answers_and_crls_that_clients_verify() {
    let dir = demo_pki();
    let p = dir.path();
    let env = into_softhsm(p, None);
    assert!(!p.join("ca.key").exists() && !p.join("responder.key").exists());
    let config = std::fs::read_to_string(p.join("revocd.toml")).expect("config");
    std::fs::write(
        p.join("revocd.toml"),
        config.replace("[crl]\n", "[crl]\ndebounce = \"1s\"\nmax-delay = \"2s\"\n"),
    )
    .expect("config");
    assert!(
        config.contains("key = \"pkcs11:token=revocd;object=ca?"),
        "{config}"
    );
    let checked = revocd(p, &env, &["check-config", "--config", "revocd.toml"]);
    assert!(checked.status.success(), "{}", text(&checked));

    let d = Daemon::start_with(&p.join("revocd.toml"), &env_refs(&env), true);
    let good = serial_of(&p.join("leaf-good.pem"));
    let revoked = serial_of(&p.join("leaf-revoked.pem"));
    for (cert, status) in [("leaf-good.pem", "good"), ("leaf-revoked.pem", "revoked")] {
        // revocd query: POST and GET, SHA-1 and SHA-256.
        for extra in [
            &[][..],
            &["--sha256"][..],
            &["--get"][..],
            &["--sha256", "--get"][..],
        ] {
            let t = query(p, &d, cert, extra);
            assert!(t.contains(&format!(": {status}")), "{t}");
            assert!(t.contains("Response verify OK"), "{t}");
        }
        // openssl (POST), SHA-1 and SHA-256; python cryptography on the bytes.
        for sha in [&[][..], &["-sha256"][..]] {
            let mut args = sha.to_vec();
            args.extend(["-cert", cert, "-respout", "resp.der"]);
            let out = openssl_ocsp(p, &d, &args);
            assert!(out.contains("Response verify OK"), "{out}");
            assert!(out.contains(&format!("{cert}: {status}")), "{out}");
            let serial = if status == "good" { &good } else { &revoked };
            crate::python_client::check(
                p,
                &p.join("resp.der"),
                "ca.pem",
                &[format!("{serial}={status}")],
            );
        }
    }
    // A revocation is re-signed through the HSM at once.
    let tok = token(p);
    revoke(&d, &tok, "5A01", "keyCompromise");
    let ca = load_cert(&p.join("ca.pem"));
    let serial = revocd::state::Serial::from_hex("5A01").expect("serial");
    assert_eq!(ocsp_status(&d, &ca, &serial).status, "revoked");
    // The CRL, signed by the CA key in the token, lists both revocations.
    let crl = eventually(30, "a CRL with the revocation", || {
        let (s, _, der) = http_get(d.public, "/crl/demo.crl")?;
        let f = revocd::crl::build::check(&der, &ca).ok()?;
        (s == 200 && f.n_entries == 2).then_some(der)
    });
    crl_verifies(p, &crl, 2);
    let m = metric(&d, "revocd_signer_up{issuer=\"demo\",role=\"crl\"}");
    assert_eq!(m, 1.0);
    // Never logged, from start to exit.
    let mut d = d;
    let (_, logs) = d.stop();
    let pin = std::fs::read_to_string(p.join("hsm.pin")).expect("pin");
    assert!(!logs.contains(pin.trim()), "the PIN was logged");
}

#[test]
fn sharded_and_delta_crls_are_signed_in_the_hsm() {
    for (extra, names) in [
        (
            "shards = 2\nurl-base = \"http://crl.example/crl\"\n",
            vec!["/crl/demo/0.crl", "/crl/demo/1.crl"],
        ),
        (
            "delta = true\n",
            vec!["/crl/demo.crl", "/crl/demo-delta.crl"],
        ),
    ] {
        let dir = demo_pki();
        let p = dir.path();
        let env = into_softhsm(p, None);
        let config = p.join("revocd.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        std::fs::write(
            &config,
            text.replace(
                "[crl]\n",
                &format!("[crl]\n{extra}debounce = \"1s\"\nmax-delay = \"2s\"\n"),
            ),
        )
        .expect("config");
        let d = Daemon::start_with(&config, &env_refs(&env), true);
        let ca = load_cert(&p.join("ca.pem"));
        for name in names {
            let der = eventually(30, name, || {
                let (s, _, der) = http_get(d.public, name)?;
                (s == 200).then_some(der)
            });
            let facts = revocd::crl::build::check(&der, &ca).expect("a CRL the CA key signed");
            crl_verifies(p, &der, facts.n_entries);
        }
    }
}

#[test]
fn an_rsa_ca_key_in_softhsm_signs_its_own_answers_and_crl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let serial = crate::issuers::rsa_ca(p);
    std::fs::write(p.join("admin.token"), "t0ken-for-the-rsa-test\n").expect("token");
    let config = p.join("revocd.toml");
    add_to_config(
        &config,
        "[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[crl]\nstore = \"file://crl\"\n",
    );
    let env = into_softhsm(p, None);
    assert!(!p.join("ca.key").exists());
    let d = Daemon::start_with(&config, &env_refs(&env), true);
    for sha in [&[][..], &["-sha256"][..]] {
        let mut args = sha.to_vec();
        args.extend(["-cert", "leaf.pem", "-respout", "resp.der"]);
        let out = openssl_ocsp(p, &d, &args);
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains("leaf.pem: good"), "{out}");
        crate::python_client::check(
            p,
            &p.join("resp.der"),
            "ca.pem",
            &[format!("{serial}=good")],
        );
    }
    let t = query(p, &d, "leaf.pem", &["--get"]);
    assert!(
        t.contains(": good") && t.contains("Response verify OK"),
        "{t}"
    );
    let ca = load_cert(&p.join("ca.pem"));
    let crl = eventually(30, "the RSA CRL", || {
        let (s, _, der) = http_get(d.public, "/crl/rsa.crl")?;
        (s == 200).then_some(der)
    });
    assert!(revocd::crl::build::check(&crl, &ca).is_ok());
    crl_verifies(p, &crl, 0);
}

#[test]
fn a_wrong_key_a_wrong_pin_or_a_pin_in_the_uri_is_refused_by_name() {
    let dir = demo_pki();
    let p = dir.path();
    let env = into_softhsm(p, None);
    let config = p.join("revocd.toml");
    let good = std::fs::read_to_string(&config).expect("config");
    let check = |cfg: &str| {
        std::fs::write(&config, cfg).expect("config");
        let out = revocd(p, &env, &["check-config", "--config", "revocd.toml"]);
        (out.status.success(), text(&out))
    };
    // The responder's key named as the CA's: the probe signature does not
    // verify with the CA certificate.
    let swapped = good.replacen("object=ca?", "object=responder?", 1);
    let (ok, out) = check(&swapped);
    assert!(!ok && out.contains("does not match certificate"), "{out}");
    // A PIN in the URI is never accepted.
    let (ok, out) = check(&good.replacen("pin-source=file:hsm.pin", "pin-value=1234", 1));
    assert!(!ok && out.contains("pin-value is refused"), "{out}");
    // A wrong PIN: the login fails, and the PIN is not printed.
    let pin = std::fs::read_to_string(p.join("hsm.pin")).expect("pin");
    std::fs::write(p.join("hsm.pin"), "00000000\n").expect("pin");
    let (ok, out) = check(&good);
    assert!(!ok && out.contains("PinIncorrect"), "{out}");
    assert!(
        !out.contains("00000000") && !out.contains(pin.trim()),
        "{out}"
    );
    std::fs::write(p.join("hsm.pin"), &pin).expect("pin");
    // A PIN file others can read is a loose secret like a key file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.join("hsm.pin"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let (ok, out) = check(&good);
    assert!(
        !ok && out.contains("hsm.pin is accessible by group or others"),
        "{out}"
    );
    std::fs::set_permissions(p.join("hsm.pin"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let (ok, out) = check(&good);
    assert!(ok, "{out}");
}

/// `p11-kit server` exporting the SoftHSM token on a Unix socket: what
/// revocd reaches through p11-kit's client module.
struct P11Server {
    child: Child,
}

impl P11Server {
    fn start(dir: &Path, socket: &Path) -> P11Server {
        let bin = require("p11-kit");
        let _ = std::fs::remove_file(socket);
        use std::os::unix::process::CommandExt;
        // Its own process group: the server forks a p11-kit-remote per
        // connection, and the HSM going away means all of them.
        let child = Command::new(bin)
            .process_group(0)
            .args([
                "server",
                "-f",
                "--provider",
                &softhsm_module().display().to_string(),
                "-n",
            ])
            .arg(socket)
            .arg("pkcs11:token=revocd")
            .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("p11-kit server");
        eventually(WAIT_SECS, "the p11-kit socket", || {
            socket.exists().then_some(())
        });
        P11Server { child }
    }

    fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for P11Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn softhsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("SoftHSM2 is not installed; run ./scripts/test")
}

fn p11_kit_client() -> PathBuf {
    let p = PathBuf::from("/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so");
    assert!(
        p.exists(),
        "p11-kit-client.so missing; run ./scripts/test (p11-kit-modules)"
    );
    p
}

/// The demo's keys in a SoftHSM token that revocd reaches through p11-kit's
/// client module and a `p11-kit server` on `socket` (not started yet).
fn behind_p11_kit(dir: &Path) -> (Vec<(String, String)>, PathBuf) {
    let mut env = into_softhsm(dir, Some(&p11_kit_client()));
    let socket = dir.join("p11-kit.sock");
    env.push((
        "P11_KIT_SERVER_ADDRESS".into(),
        format!("unix:path={}", socket.display()),
    ));
    (env, socket)
}

/// RFC 6960 OCSPResponse { responseStatus tryLater }.
const TRY_LATER: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x03];

fn post_der(d: &Daemon, der: &[u8]) -> (u16, Vec<u8>) {
    let mut req = format!(
        "POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        der.len()
    )
    .into_bytes();
    req.extend_from_slice(der);
    let (s, _, body) = raw_http(d.public, &req).expect("HTTP answer");
    (s, body)
}

#[test]
fn an_hsm_that_goes_away_marks_the_signer_down_keeps_answering_and_recovers() {
    let dir = demo_pki();
    let p = dir.path();
    let (env, socket) = behind_p11_kit(p);
    let config = p.join("revocd.toml");
    add_to_config(&config, "[pkcs11]\nsessions = 2\nretry-max = \"1s\"\n");
    let cfg = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        cfg.replace("[crl]\n", "[crl]\ndebounce = \"1s\"\nmax-delay = \"2s\"\n"),
    )
    .expect("config");
    let mut server = P11Server::start(p, &socket);
    let d = Daemon::start_with(&config, &env_refs(&env), true);
    let ca = load_cert(&p.join("ca.pem"));
    let good = revocd::state::Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("s");
    assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
    assert_eq!(
        metric(&d, "revocd_signer_up{issuer=\"demo\",role=\"ocsp\"}"),
        1.0
    );

    // The HSM goes away.
    server.kill();
    let tok = token(p);
    revoke(&d, &tok, "5A02", "keyCompromise");
    let fresh = revocd::state::Serial::from_hex("5A02").expect("serial");
    eventually(WAIT_SECS, "the signer marked down", || {
        (metric(&d, "revocd_signer_up{issuer=\"demo\",role=\"ocsp\"}") == 0.0).then_some(())
    });
    metric_reaches(&d, "revocd_hsm_errors_total", 1.0);
    // What it signed before is still served, verified; what it never
    // signed (the acknowledged revocation's new answer) is tryLater, never
    // the old `good`.
    assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
    let req = revocd::tools::query::build_request(&ca, &fresh, revocd::pki::HashAlg::Sha1);
    let (status, body) = post_der(&d, &req);
    // tryLater, with HTTP 503 and Retry-After as revocd answers it.
    assert_eq!(
        (status, body.as_slice()),
        (503, &TRY_LATER[..]),
        "{}",
        d.logs()
    );
    let (ready, _, _) = http_get(d.admin, "/readyz").expect("readyz");
    assert_eq!(ready, 200);

    // The token comes back, with the PIN changed meanwhile: reconnection
    // fails on login until the operator installs the new PIN and sends
    // SIGHUP.
    let old_pin = std::fs::read_to_string(p.join("hsm.pin")).expect("pin");
    let changed = run(Command::new(require("pkcs11-tool"))
        .env("SOFTHSM2_CONF", p.join("softhsm2.conf"))
        .args(["--module", &softhsm_module().display().to_string()])
        .args([
            "--token-label",
            "revocd",
            "--login",
            "--pin",
            old_pin.trim(),
        ])
        .args(["--change-pin", "--new-pin", "87654321"]));
    assert!(changed.status.success(), "{}", text(&changed));
    let _server = P11Server::start(p, &socket);
    d.wait_log("PinIncorrect");
    assert_eq!(
        metric(&d, "revocd_signer_up{issuer=\"demo\",role=\"ocsp\"}"),
        0.0
    );
    std::fs::write(p.join("hsm.pin"), "87654321\n").expect("pin");
    d.signal("HUP");
    eventually(30, "the signer up again", || {
        (metric(&d, "revocd_signer_up{issuer=\"demo\",role=\"ocsp\"}") == 1.0).then_some(())
    });
    metric_reaches(&d, "revocd_hsm_reconnects_total", 1.0);
    // The revocation is answered, signed by the HSM again, and the CRL
    // publish that failed meanwhile is retried.
    assert_eq!(ocsp_status(&d, &ca, &fresh).status, "revoked");
    eventually(30, "the revocation on the CRL", || {
        let (s, _, der) = http_get(d.public, "/crl/demo.crl")?;
        let f = revocd::crl::build::check(&der, &ca).ok()?;
        (s == 200 && f.n_entries == 2).then_some(())
    });
    d.wait_log("HSM reconnected: signer up");
    // The new PIN is never logged, from start to exit.
    let mut d = d;
    let (_, logs) = d.stop();
    assert!(!logs.contains("87654321"), "{logs}");
}

#[test]
fn after_a_rollover_with_the_hsm_down_the_previous_windows_answer_is_served() {
    let dir = demo_pki();
    let p = dir.path();
    let (env, socket) = behind_p11_kit(p);
    let config = p.join("revocd.toml");
    let cfg = std::fs::read_to_string(&config).expect("config");
    // One-minute windows, and no pre-signing: an answer exists only once a
    // client asked, so what the rollover finds is exactly what was asked.
    std::fs::write(
        &config,
        cfg.replace("window = \"60m\"", "window = \"1m\"\npresign-cpu-share = 0"),
    )
    .expect("config");
    let mut server = P11Server::start(p, &socket);
    let d = Daemon::start_with(&config, &env_refs(&env), true);
    let ca = load_cert(&p.join("ca.pem"));
    let good = revocd::state::Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("s");
    let revoked =
        revocd::state::Serial::from_hex(&serial_of(&p.join("leaf-revoked.pem"))).expect("s");
    let mut first = ocsp_status(&d, &ca, &good);
    let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
    if now % 60 > 50 {
        // Too close to the rollover to take the HSM down inside this
        // window: ask again in the next one.
        std::thread::sleep(std::time::Duration::from_secs((61 - now % 60) as u64));
        first = ocsp_status(&d, &ca, &good);
    }
    assert_eq!(first.status, "good");
    let window_end = (first.this_update.div_euclid(60) + 1) * 60;

    server.kill();
    // Read while the HSM is down (a hit): kept past its window's end.
    eventually(WAIT_SECS, "the signer marked down", || {
        let req = revocd::tools::query::build_request(&ca, &revoked, revocd::pki::HashAlg::Sha1);
        let _ = post_der(&d, &req);
        (metric(&d, "revocd_signer_up{issuer=\"demo\",role=\"ocsp\"}") == 0.0).then_some(())
    });
    assert_eq!(ocsp_status(&d, &ca, &good).this_update, first.this_update);
    // Past the rollover: nothing can be signed for the new window.
    let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
    std::thread::sleep(std::time::Duration::from_secs(
        (window_end - now + 8).max(0) as u64,
    ));
    let later = ocsp_status(&d, &ca, &good);
    assert_eq!(later.status, "good");
    assert_eq!(
        later.this_update, first.this_update,
        "the previous window's answer, still before its nextUpdate"
    );
    assert!(metric(&d, "revocd_ocsp_stale_served_total") >= 1.0);
    // A serial never asked about before the outage has nothing to fall
    // back on: tryLater.
    let req = revocd::tools::query::build_request(&ca, &revoked, revocd::pki::HashAlg::Sha256);
    let (status, body) = post_der(&d, &req);
    assert_eq!((status, body.as_slice()), (503, &TRY_LATER[..]));
}
