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

/// Sets `[ocsp]` options in a demo config.
fn ocsp_options(config: &std::path::Path, lines: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = if text.contains("[ocsp]\n") {
        text.replace("[ocsp]\n", &format!("[ocsp]\n{lines}"))
    } else {
        format!("{text}\n[ocsp]\n{lines}")
    };
    std::fs::write(config, text).expect("write");
}

/// Issue 14, item 3: with `ocsp.nonce = "echo"` openssl's nonce (sent by
/// default) comes back, so it prints no "WARNING: no nonce in response",
/// and GnuTLS `ocsptool --ask --nonce`, which insists on it, accepts the
/// answer. Without a nonce the pre-signed answer is served as before.
#[test]
fn nonce_echo_satisfies_openssl_and_gnutls_ocsptool() {
    let dir = demo_pki();
    let p = dir.path();
    ocsp_options(&p.join("revocd.toml"), "nonce = \"echo\"\n");
    let d = Daemon::start(&p.join("revocd.toml"));
    let out = ocsp(p, &d, &["-cert", "leaf-revoked.pem", "-resp_text"]);
    assert_verified(&out);
    assert!(out.contains("leaf-revoked.pem: revoked"), "{out}");
    assert!(out.contains("OCSP Nonce"), "{out}");
    assert!(!out.contains("WARNING: no nonce in response"), "{out}");
    let out = ocsp(
        p,
        &d,
        &["-no_nonce", "-cert", "leaf-good.pem", "-resp_text"],
    );
    assert_verified(&out);
    assert!(!out.contains("OCSP Nonce"), "{out}");
    // GnuTLS: ask with a nonce, verify against the CA.
    let out = run(Command::new(require("ocsptool"))
        .current_dir(p)
        .arg(format!("--ask={}", d.url()))
        .args(["--load-cert", "leaf-good.pem", "--load-issuer", "ca.pem"])
        .args([
            "--load-trust",
            "ca.pem",
            "--nonce",
            "--outfile",
            "gnutls.der",
        ]));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("Nonce:"), "{t}");
    assert!(t.contains("Certificate Status: good"), "{t}");
    assert!(t.contains("Verifying OCSP Response: Success"), "{t}");
    assert!(!t.contains("Could not read response's nonce"), "{t}");
    assert!(metric(&d, "revocd_ocsp_signings_total{why=\"uncommon\"}") >= 2.0);
}

/// RFC 9654: a nonce of more than 128 octets, or not an OCTET STRING, is a
/// malformedRequest; 33 to 128 octets get the answer without a nonce; and a
/// request with an unknown critical extension is refused (RFC 6960 4.4, see
/// ARCHITECTURE: not answered as if the extension were absent).
#[test]
fn long_nonces_and_unknown_critical_request_extensions() {
    use revocd::asn1::*;
    let dir = demo_pki();
    let p = dir.path();
    ocsp_options(&p.join("revocd.toml"), "nonce = \"echo\"\n");
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let good = revocd::state::Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    let request = |ext_oid: &str, critical: bool, value: &[u8]| {
        let alg = revocd::pki::HashAlg::Sha1;
        let cert_id = sequence(&[
            &alg.algorithm_identifier_der(),
            &octet_string(&ca.name_hash(alg)),
            &octet_string(&ca.key_hash(alg)),
            &integer_from_content(good.content()),
        ]);
        let mut parts = vec![oid(&oid_content(ext_oid))];
        if critical {
            parts.push(vec![0x01, 0x01, 0xff]);
        }
        parts.push(octet_string(value));
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let ext = sequence(&refs);
        let exts = tlv(0xa2, &sequence(&[&ext]));
        sequence(&[&sequence(&[&sequence(&[&sequence(&[&cert_id])]), &exts])])
    };
    let post = |der: &[u8]| {
        let mut req = format!(
            "POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
            der.len()
        )
        .into_bytes();
        req.extend_from_slice(der);
        raw_http(d.public, &req).expect("answer")
    };
    let nonce = "1.3.6.1.5.5.7.48.1.2";
    let malformed = [0x30u8, 0x03, 0x0a, 0x01, 0x01];
    for (name, der, want_status, want_malformed) in [
        (
            "129-octet nonce",
            request(nonce, false, &octet_string(&[7u8; 129])),
            400,
            true,
        ),
        (
            "nonce not an OCTET STRING",
            request(nonce, false, &[0x02, 0x01, 0x05]),
            400,
            true,
        ),
        (
            "empty nonce",
            request(nonce, false, &octet_string(&[])),
            400,
            true,
        ),
        (
            "64-octet nonce",
            request(nonce, false, &octet_string(&[7u8; 64])),
            200,
            false,
        ),
        (
            "unknown critical extension",
            request("1.3.6.1.4.1.55555.9", true, &[0x05, 0x00]),
            400,
            true,
        ),
        (
            "unknown non-critical extension",
            request("1.3.6.1.4.1.55555.9", false, &[0x05, 0x00]),
            200,
            false,
        ),
    ] {
        let (status, head, body) = post(&der);
        assert_eq!(status, want_status, "{name}: {head}");
        assert_eq!(body == malformed, want_malformed, "{name}");
        if status == 200 {
            let v = revocd::tools::query::verify(
                &body,
                &ca,
                &good,
                revocd::clock::Clock::now(&revocd::clock::SystemClock),
            )
            .expect("verified");
            assert_eq!(v.status, "good", "{name}");
        }
    }
}
