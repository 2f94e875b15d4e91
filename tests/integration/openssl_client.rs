//! `openssl ocsp` (POST, HTTP/1.0) against a real daemon from `revocd init`.

use std::process::Command;

use crate::support::*;

pub fn ocsp(dir: &std::path::Path, d: &Daemon, args: &[&str]) -> String {
    let out = run(Command::new(require("openssl"))
        .current_dir(dir)
        .args([
            "ocsp",
            "-issuer",
            "ca.pem",
            "-CAfile",
            "ca.pem",
            "-url",
            &d.url(),
        ])
        .args(args));
    text(&out)
}

fn assert_verified(out: &str) {
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(!out.contains("Status times invalid"), "{out}");
    assert!(!out.contains("Verify Failure"), "{out}");
}

#[test]
fn sha1_two_certificates_in_one_request() {
    let dir = demo_pki();
    let d = Daemon::start(&dir.path().join("revocd.toml"));
    let out = ocsp(
        dir.path(),
        &d,
        &[
            "-no_nonce",
            "-cert",
            "leaf-good.pem",
            "-cert",
            "leaf-revoked.pem",
        ],
    );
    assert_verified(&out);
    assert!(out.contains("leaf-good.pem: good"), "{out}");
    assert!(out.contains("leaf-revoked.pem: revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    assert!(out.contains("Revocation Time:"), "{out}");
}

#[test]
fn sha256_with_and_without_nonce() {
    let dir = demo_pki();
    let d = Daemon::start(&dir.path().join("revocd.toml"));
    for nonce in [true, false] {
        let mut args = vec!["-sha256", "-cert", "leaf-revoked.pem", "-resp_text"];
        if !nonce {
            args.push("-no_nonce");
        }
        let out = ocsp(dir.path(), &d, &args);
        assert_verified(&out);
        assert!(out.contains("leaf-revoked.pem: revoked"), "{out}");
        assert!(out.contains("Hash Algorithm: sha256"), "{out}");
        // Pre-produced answers ignore the nonce (RFC 9919 3.2.1).
        assert!(!out.contains("OCSP Nonce"), "{out}");
        // ResponderID byKey: openssl prints the key hash, not a name.
        let responder_line = out
            .lines()
            .find(|l| l.contains("Responder Id:"))
            .unwrap_or_default();
        assert!(!responder_line.contains("CN="), "{responder_line}");
    }
}

#[test]
fn delegated_responder_certificate_is_the_only_cert() {
    let dir = demo_pki();
    let d = Daemon::start(&dir.path().join("revocd.toml"));
    let out = ocsp(
        dir.path(),
        &d,
        &["-no_nonce", "-cert", "leaf-good.pem", "-resp_text"],
    );
    assert_verified(&out);
    assert_eq!(out.matches("BEGIN CERTIFICATE").count(), 1, "{out}");
    assert!(out.contains("revocd demo OCSP responder"), "{out}");
    assert!(out.contains("OCSP Signing"), "{out}");
}

#[test]
fn unknown_serial_is_unauthorized_by_default() {
    let dir = demo_pki();
    let d = Daemon::start(&dir.path().join("revocd.toml"));
    let out = ocsp(dir.path(), &d, &["-no_nonce", "-serial", "0x0BADC0DE"]);
    assert!(out.contains("Responder Error: unauthorized (6)"), "{out}");
}

#[test]
fn issuer_not_served_is_unauthorized() {
    let dir = demo_pki();
    let other = demo_pki();
    let d = Daemon::start(&dir.path().join("revocd.toml"));
    let out = ocsp(other.path(), &d, &["-no_nonce", "-cert", "leaf-good.pem"]);
    assert!(out.contains("Responder Error: unauthorized (6)"), "{out}");
}
