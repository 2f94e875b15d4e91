//! python `cryptography` loads and checks every kind of answer.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn post(d: &Daemon, req: &Path, resp: &Path) {
    let out = run(Command::new(require("curl"))
        .args(["-s", "-S", "--max-time", "10", "--data-binary"])
        .arg(format!("@{}", req.display()))
        .args(["-H", "Content-Type: application/ocsp-request", "-o"])
        .arg(resp)
        .arg(d.url()));
    assert!(out.status.success(), "{}", text(&out));
}

pub fn check(dir: &Path, resp: &Path, issuer: &str, expects: &[String]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_ocsp.py");
    let out = run(Command::new(python())
        .arg(script)
        .arg(resp)
        .arg(dir.join(issuer))
        .args(expects));
    let t = text(&out);
    assert!(out.status.success(), "python check failed:\n{t}");
    t
}

#[test]
fn cryptography_loads_good_revoked_and_multi_answers() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let good = serial_of(&p.join("leaf-good.pem"));
    let revoked = serial_of(&p.join("leaf-revoked.pem"));
    for sha256 in [false, true] {
        for (certs, expects) in [
            (vec!["leaf-good.pem"], vec![format!("{good}=good")]),
            (
                vec!["leaf-revoked.pem"],
                vec![format!("{revoked}=revoked:keyCompromise")],
            ),
            (
                vec!["leaf-good.pem", "leaf-revoked.pem"],
                vec![
                    format!("{good}=good"),
                    format!("{revoked}=revoked:keyCompromise"),
                ],
            ),
        ] {
            let req = p.join("req.der");
            let resp = p.join("resp.der");
            openssl_request(p, &certs, sha256, &req);
            post(&d, &req, &resp);
            let out = check(p, &resp, "ca.pem", &expects);
            assert!(out.contains("OK signature verifies"), "{out}");
            assert!(
                out.contains("OK delegated responder certificate issued by the CA"),
                "{out}"
            );
            assert!(
                out.contains(&format!("OK {} SingleResponse(s)", certs.len())),
                "{out}"
            );
            assert!(out.contains("validity=28800s"), "{out}");
        }
    }
}
