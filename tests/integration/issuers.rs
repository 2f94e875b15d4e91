//! Issuer set-ups: an RSA CA signing its own answers (built with the openssl
//! CLI, not by revocd), an ECDSA CA with a delegated responder (`revocd init`),
//! and the unknown-serial policies.

use std::path::Path;
use std::process::Command;

use crate::openssl_client_run as ocsp;
use crate::python_client::check;
use crate::support::*;

/// An RSA-2048 CA and one leaf made by openssl; index.txt lists the leaf as
/// valid; the config has the CA sign its own responses.
pub(crate) fn rsa_ca(dir: &Path) -> String {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "ca.key",
        ],
    );
    openssl(
        dir,
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
            "/O=revocd test/CN=RSA test CA",
            "-sha256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
    );
    openssl(
        dir,
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
        dir,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=rsa-leaf.test",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x5EED0001",
            "-days",
            "10",
            "-sha256",
            "-out",
            "leaf.pem",
        ],
    );
    let serial = serial_of(&dir.join("leaf.pem"));
    std::fs::write(
        dir.join("index.txt"),
        format!("V\t301231235959Z\t\t{serial}\tunknown\t/CN=rsa-leaf.test\n"),
    )
    .expect("index");
    std::fs::write(
        dir.join("revocd.toml"),
        "[[issuer]]\nid = \"rsa\"\ncertificate = \"ca.pem\"\nkey = \"ca.key\"\nindex = \"index.txt\"\n",
    )
    .expect("config");
    serial
}

#[test]
fn rsa_issuer_signs_its_own_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    let serial = rsa_ca(p);
    let d = Daemon::start(&p.join("revocd.toml"));
    let out = ocsp(p, &d, &["-no_nonce", "-cert", "leaf.pem", "-resp_text"]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf.pem: good"), "{out}");
    assert!(out.contains("sha256WithRSAEncryption"), "{out}");
    assert!(
        !out.contains("BEGIN CERTIFICATE"),
        "issuer-signed answers carry no certs: {out}"
    );
    let req = p.join("req.der");
    let resp = p.join("resp.der");
    openssl(
        p,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    let c = run(Command::new(require("curl"))
        .args(["-s", "--data-binary"])
        .arg(format!("@{}", req.display()))
        .arg("-o")
        .arg(&resp)
        .arg(d.url()));
    assert!(c.status.success());
    let t = check(p, &resp, "ca.pem", &[format!("{serial}=good")]);
    assert!(t.contains("OK signature verifies"), "{t}");
    assert!(!t.contains("delegated"), "{t}");
}

fn with_policy(policy: &str) -> (tempfile::TempDir, Daemon) {
    let dir = demo_pki();
    let cfg = dir.path().join("revocd.toml");
    let text = std::fs::read_to_string(&cfg).expect("read");
    let text = text.replace(
        "[ocsp]\n",
        &format!("[ocsp]\nunknown-serial = \"{policy}\"\n"),
    );
    std::fs::write(&cfg, text).expect("write");
    let d = Daemon::start(&cfg);
    (dir, d)
}

#[test]
fn unknown_serial_policy_unknown_signs_unknown() {
    let (dir, d) = with_policy("unknown");
    let out = ocsp(dir.path(), &d, &["-no_nonce", "-serial", "0x0BADC0DE"]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("0x0BADC0DE: unknown"), "{out}");
}

#[test]
fn unknown_serial_policy_revoked_uses_extended_revoked_definition() {
    let (dir, d) = with_policy("revoked");
    let out = ocsp(
        dir.path(),
        &d,
        &["-no_nonce", "-serial", "0x0BADC0DE", "-resp_text"],
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("0x0BADC0DE: revoked"), "{out}");
    assert!(out.contains("Reason: certificateHold"), "{out}");
    assert!(
        out.contains("Revocation Time: Jan  1 00:00:00 1970 GMT"),
        "{out}"
    );
    // id-pkix-ocsp-extended-revoke is 1.3.6.1.5.5.7.48.1.9, which openssl
    // still names by its old short name "valid".
    assert!(
        out.contains("Response Extensions:\n        valid:"),
        "{out}"
    );
    // A known good serial stays good under this policy.
    let out = ocsp(dir.path(), &d, &["-no_nonce", "-cert", "leaf-good.pem"]);
    assert!(out.contains("leaf-good.pem: good"), "{out}");
}

#[test]
fn zero_negative_and_oversized_serials_get_a_clean_answer() {
    let (dir, mut d) = with_policy("unknown");
    for serial in ["0", "-5", &format!("0x{}", "7F".repeat(21))] {
        let out = ocsp(dir.path(), &d, &["-no_nonce", "-serial", serial]);
        assert!(out.contains("Response verify OK"), "{serial}: {out}");
        assert!(out.contains(": unknown"), "{serial}: {out}");
    }
    assert!(d.is_alive());
    assert!(d.http_admin("GET", "/healthz").is_some_and(|r| r.0 == 200));
    let (status, logs) = d.stop();
    assert!(status.success(), "{status:?}: {logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}
