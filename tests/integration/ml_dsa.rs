//! Post-quantum issuers (RFC 9881): ML-DSA-44, -65 and -87 demo PKIs from
//! `revocd init --algorithm`, every kind of answer and CRL revocd signs,
//! checked by python `cryptography`, by a second implementation
//! (dilithium-py) and by pkilint; a classical and an ML-DSA issuer side by
//! side in one daemon; `revocd query`, `crl-sync` and the upstream-CRL
//! source verifying ML-DSA signatures (docs/conformance.md 34-36).

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use revocd::pki::{Cert, HashAlg};
use revocd::state::Serial;

use crate::support::*;

/// A GET path for a one-CertID request (RFC 6960 A.1: base64, URL-encoded).
fn get_path(ca: &Cert, serial: &Serial) -> String {
    let b64 = STANDARD.encode(revocd::tools::query::build_request(
        ca,
        serial,
        HashAlg::Sha1,
    ));
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("/{encoded}")
}

fn python_script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn check_ocsp(dir: &Path, resp: &Path, issuer: &str, expects: &[String]) -> String {
    let t = crate::python_client::check(dir, resp, issuer, expects);
    assert!(t.contains("OK signature verifies"), "{t}");
    t
}

/// dilithium-py (and python `cryptography` for certificates and CRLs).
fn check_mldsa(params: &str, ca: &Path, files: &[&Path]) -> String {
    let out = run(Command::new(python())
        .arg(python_script("check_mldsa.py"))
        .arg(params)
        .arg(ca)
        .args(files));
    let t = text(&out);
    assert!(out.status.success(), "dilithium-py: {t}");
    assert!(
        t.matches("verified by dilithium-py").count() >= files.len(),
        "{t}"
    );
    t
}

fn pkilint_ocsp(resp: &Path) {
    let lint = run(Command::new(python().with_file_name("lint_ocsp_response"))
        .args(["lint", "-s", "WARNING", "--document-format", "DER"])
        .arg(resp));
    assert!(
        lint.status.success() && text(&lint).trim().is_empty(),
        "pkilint on {}: {}",
        resp.display(),
        text(&lint)
    );
}

fn pkilint_crl(crl: &Path, kind: &str) {
    let lint = run(Command::new(python().with_file_name("lint_crl"))
        .args(["lint", "-t", "CRL", "-p", "PKIX", "-s", "ERROR"])
        .args(["--document-format", "DER"])
        .arg(crl));
    assert!(
        lint.status.success() && text(&lint).trim().is_empty(),
        "pkilint on the {kind} CRL: {}",
        text(&lint)
    );
}

fn fetch(d: &Daemon, path: &str) -> Option<Vec<u8>> {
    http_get(d.public, path).filter(|r| r.0 == 200).map(|r| r.2)
}

/// The CRLs one daemon publishes in its configured shape, each saved as
/// `<name>.crl` in `dir`: (file, what it is).
fn wait_crls(d: &Daemon, ca: &Cert, shape: &str, dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let want_full = |path: &str, entries: usize| {
        eventually(WAIT_SECS, &format!("{path} with {entries} entries"), || {
            let der = fetch(d, path)?;
            let f = revocd::crl::build::check(&der, ca).ok()?;
            (f.n_entries == entries).then_some(der)
        })
    };
    let mut out = Vec::new();
    let mut save = |name: &str, der: Vec<u8>, what: &str| {
        let file = dir.join(format!("{name}.crl"));
        std::fs::write(&file, der).expect("write CRL");
        out.push((file, what.to_string()));
    };
    match shape {
        "delta" => {
            // The revocation goes to the delta; the base keeps the first.
            let base = want_full("/crl/demo.crl", 1);
            let base_number = revocd::crl::build::check(&base, ca).expect("base").number;
            save("full", base, "full");
            let delta = eventually(WAIT_SECS, "a delta against the base", || {
                let der = fetch(d, "/crl/demo-delta.crl")?;
                let f = revocd::crl::build::check(&der, ca).ok()?;
                (f.is_delta && f.number > base_number && f.n_entries == 1).then_some(der)
            });
            save("delta", delta, "delta");
        }
        "shards" => {
            let total = |v: &serde_json::Value| -> Option<u64> {
                v["shards"]
                    .as_array()?
                    .iter()
                    .map(|s| s["entries"].as_u64())
                    .sum()
            };
            eventually(WAIT_SECS, "a manifest listing both revocations", || {
                let m = fetch(d, "/crl/demo/manifest.json")?;
                let v: serde_json::Value = serde_json::from_slice(&m).ok()?;
                (total(&v)? == 2).then_some(())
            });
            for k in 0..2 {
                let der = fetch(d, &format!("/crl/demo/{k}.crl")).expect("shard");
                revocd::crl::build::check(&der, ca).expect("shard checks");
                save(&format!("shard-{k}"), der, "sharded");
            }
        }
        _ => save("full", want_full("/crl/demo.crl", 2), "full"),
    }
    out
}

/// One ML-DSA demo PKI served with CRLs of `shape`; every kind of answer
/// revocd signs, and its CRLs, checked by three verifiers.
fn every_answer_and_crl_verifies(algorithm: &str, params: &str, shape: &str) {
    let dir = demo_pki_with(&["--algorithm", algorithm]);
    let p = dir.path();
    let crl = match shape {
        "delta" => "delta = true\ndebounce = \"1s\"\nmax-delay = \"10m\"\n",
        "shards" => "shards = 2\nurl-base = \"http://crl.example/crl\"\ndebounce = \"1s\"\nmax-delay = \"2s\"\n",
        _ => "debounce = \"1s\"\nmax-delay = \"2s\"\n",
    };
    set_crl(&p.join("revocd.toml"), crl);
    // Nonces echoed (the default ignores them, RFC 9919 3.2.1).
    let config = std::fs::read_to_string(p.join("revocd.toml")).expect("config");
    let config = config.replace("[ocsp]\n", "[ocsp]\nnonce = \"echo\"\n");
    std::fs::write(p.join("revocd.toml"), config).expect("write");
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let good_hex = serial_of(&p.join("leaf-good.pem"));
    let revoked_hex = serial_of(&p.join("leaf-revoked.pem"));
    let good = Serial::from_hex(&good_hex).expect("serial");
    let revoked = Serial::from_hex(&revoked_hex).expect("serial");
    let mut answers: Vec<(std::path::PathBuf, Vec<String>)> = Vec::new();

    // Pre-signed, over GET.
    for (name, serial, expect) in [
        ("good-get", &good, format!("{good_hex}=good")),
        (
            "revoked-get",
            &revoked,
            format!("{revoked_hex}=revoked:keyCompromise"),
        ),
    ] {
        let (status, _, body) = http_get(d.public, &get_path(&ca, serial)).expect("GET");
        assert_eq!(status, 200);
        let file = p.join(format!("{name}.ocsp"));
        std::fs::write(&file, body).expect("write");
        answers.push((file, vec![expect]));
    }
    // Signed on demand: two CertIDs and a nonce to echo (openssl's default).
    let req = p.join("multi.req");
    let out = run(Command::new(require("openssl"))
        .current_dir(p)
        .args(["ocsp", "-issuer", "ca.pem", "-cert", "leaf-good.pem"])
        .args(["-cert", "leaf-revoked.pem", "-reqout"])
        .arg(&req));
    assert!(out.status.success(), "{}", text(&out));
    let req_der = std::fs::read(&req).expect("req");
    let (status, _, body) = ocsp_post(d.public, &req_der).expect("POST");
    assert_eq!(status, 200);
    // openssl ends an unsigned request with its 16-byte nonce: echoed.
    let nonce = &req_der[req_der.len() - 16..];
    assert!(
        body.windows(16).any(|w| w == nonce),
        "the nonce is not echoed"
    );
    let multi = p.join("multi-nonce.ocsp");
    std::fs::write(&multi, &body).expect("write");
    answers.push((
        multi,
        vec![
            format!("{good_hex}=good"),
            format!("{revoked_hex}=revoked:keyCompromise"),
        ],
    ));
    // Signed again after a change.
    revoke(&d, &token(p), &good_hex, "superseded");
    eventually(WAIT_SECS, "the good serial answered revoked", || {
        let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
        try_ocsp_status_at(&d, &ca, &good, now)
            .ok()
            .filter(|v| v.status == "revoked")
    });
    let (_, _, body) = http_get(d.public, &get_path(&ca, &good)).expect("GET");
    let after = p.join("resigned.ocsp");
    std::fs::write(&after, body).expect("write");
    answers.push((after, vec![format!("{good_hex}=revoked:superseded")]));

    for (file, expects) in &answers {
        let t = check_ocsp(p, file, "ca.pem", expects);
        assert!(
            t.contains("OK delegated responder certificate issued by the CA"),
            "{t}"
        );
        pkilint_ocsp(file);
    }
    let crls = wait_crls(&d, &ca, shape, p);
    for (file, what) in &crls {
        pkilint_crl(file, what);
    }
    let full = crls.iter().find(|(_, w)| w == "full");
    if let Some((file, _)) = full {
        let mut expect = vec![format!("{revoked_hex}=keyCompromise")];
        if shape != "delta" {
            expect.push(format!("{good_hex}=superseded"));
        }
        let out = run(Command::new(python())
            .arg(python_script("check_crl.py"))
            .arg(file)
            .arg(p.join("ca.pem"))
            .arg(expect.len().to_string())
            .args(&expect));
        assert!(out.status.success(), "check_crl.py: {}", text(&out));
    }
    let mut files: Vec<&Path> = answers.iter().map(|(f, _)| f.as_path()).collect();
    files.extend(crls.iter().map(|(f, _)| f.as_path()));
    let certs = [
        "ca.pem",
        "responder.pem",
        "leaf-good.pem",
        "leaf-revoked.pem",
    ]
    .map(|c| p.join(c));
    files.extend(certs.iter().map(|c| c.as_path()));
    let t = check_mldsa(params, &p.join("ca.pem"), &files);
    eprintln!("{algorithm} ({shape} CRLs):\n{t}");

    // revocd's own client verifies them too.
    let out = run(Command::new(BIN)
        .args(["query", "--url", &d.url(), "--issuer"])
        .arg(p.join("ca.pem"))
        .arg("--cert")
        .arg(p.join("leaf-revoked.pem"))
        .arg("--get"));
    assert!(
        out.status.success() && text(&out).contains("Response verify OK"),
        "revocd query: {}",
        text(&out)
    );
}

#[test]
fn ml_dsa_44_answers_and_full_and_delta_crls_verify_with_cryptography_dilithium_py_and_pkilint() {
    every_answer_and_crl_verifies("ml-dsa-44", "44", "delta");
}

#[test]
fn ml_dsa_65_answers_and_sharded_crls_verify_with_cryptography_dilithium_py_and_pkilint() {
    every_answer_and_crl_verifies("ml-dsa-65", "65", "shards");
}

#[test]
fn ml_dsa_87_answers_and_crls_verify_with_cryptography_dilithium_py_and_pkilint() {
    every_answer_and_crl_verifies("ml-dsa-87", "87", "full");
}

/// The migration path: one daemon, a classical issuer and an ML-DSA one,
/// each answering with its own key and publishing its own CRL.
#[test]
fn a_classical_and_an_ml_dsa_issuer_side_by_side_each_sign_with_their_own_key() {
    let classic = demo_pki();
    let pq = demo_pki_with(&["--algorithm", "ml-dsa-44"]);
    let (c, q) = (classic.path(), pq.path());
    let issuer = |id: &str, dir: &Path| {
        format!(
            "[[issuer]]\nid = \"{id}\"\ncertificate = \"{d}/ca.pem\"\nkey = \"{d}/ca.key\"\n\
             responder-certificate = \"{d}/responder.pem\"\nresponder-key = \"{d}/responder.key\"\n\
             index = \"{d}/index.txt\"\n",
            d = dir.display()
        )
    };
    let demo = std::fs::read_to_string(c.join("revocd.toml")).expect("config");
    let head = &demo[..demo.find("[[issuer]]").expect("issuer section")];
    let config = format!("{head}{}\n{}", issuer("classic", c), issuer("pq", q));
    std::fs::write(c.join("revocd.toml"), config).expect("write");
    let d = Daemon::start(&c.join("revocd.toml"));

    for (dir, id, sig_oid) in [
        (c, "classic", revocd::pki::oids::ECDSA_SHA256),
        (q, "pq", revocd::pki::oids::ML_DSA_44),
    ] {
        let ca = load_cert(&dir.join("ca.pem"));
        let revoked = Serial::from_hex(&serial_of(&dir.join("leaf-revoked.pem"))).expect("s");
        let v = ocsp_status(&d, &ca, &revoked);
        assert_eq!(v.status, "revoked", "{id}");
        let (status, _, body) = http_get(d.public, &get_path(&ca, &revoked)).expect("GET");
        assert_eq!(status, 200);
        let file = dir.join(format!("{id}.ocsp"));
        std::fs::write(&file, &body).expect("write");
        let t = check_ocsp(
            dir,
            &file,
            "ca.pem",
            &[format!("{}=revoked:keyCompromise", revoked.to_hex())],
        );
        assert!(
            t.contains("OK delegated responder certificate issued by the CA"),
            "{t}"
        );
        let alg = asn1_signature_oid(&body);
        assert_eq!(
            alg, sig_oid,
            "{id} answers are signed with its own algorithm"
        );
        let crl = eventually(WAIT_SECS, &format!("/crl/{id}.crl"), || {
            fetch(&d, &format!("/crl/{id}.crl"))
        });
        let facts = revocd::crl::build::check(&crl, &ca).expect("CRL verifies with its own CA");
        assert_eq!(facts.n_entries, 1);
        // Each CA's CRL fails against the other's key.
        let other = load_cert(&(if id == "pq" { c } else { q }).join("ca.pem"));
        assert!(revocd::crl::build::check(&crl, &other).is_err());
    }
    // A classical client is unaffected by the ML-DSA issuer beside it.
    let out = openssl(
        c,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf-good.pem",
            "-url",
            &d.url(),
            "-CAfile",
            "ca.pem",
            "-no_nonce",
        ],
    );
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    // An ML-DSA answer's question asked of the classical issuer's CertID
    // is not the same question: unauthorized, never a cross-signed answer.
    let classic_ca = load_cert(&c.join("ca.pem"));
    let pq_serial = Serial::from_hex(&serial_of(&q.join("leaf-good.pem"))).expect("s");
    let der = revocd::tools::query::build_request(&classic_ca, &pq_serial, HashAlg::Sha1);
    let (_, _, body) = ocsp_post(d.public, &der).expect("POST");
    assert_ne!(
        asn1_signature_oid_opt(&body),
        Some(revocd::pki::oids::ML_DSA_44.to_string())
    );
}

/// The signatureAlgorithm OID of a successful OCSPResponse's BasicOCSPResponse.
fn asn1_signature_oid(der: &[u8]) -> String {
    asn1_signature_oid_opt(der).expect("a BasicOCSPResponse")
}

fn asn1_signature_oid_opt(der: &[u8]) -> Option<String> {
    use rasn_ocsp::{BasicOcspResponse, OcspResponse};
    let resp: OcspResponse = rasn::der::decode(der).ok()?;
    let bytes = resp.bytes?;
    let basic: BasicOcspResponse = rasn::der::decode(&bytes.response).ok()?;
    Some(
        basic
            .signature_algorithm
            .algorithm
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// `crl-sync` installs an ML-DSA CRL and refuses one whose signature was
/// tampered with; a second revocd answers OCSP for the ML-DSA CA from its
/// CRLs alone (the upstream-CRL source), with the CA's delegated responder.
#[test]
fn crl_sync_and_the_upstream_source_verify_ml_dsa_crls() {
    let dir = demo_pki_with(&["--algorithm", "ml-dsa-65"]);
    let p = dir.path();
    set_crl(
        &p.join("revocd.toml"),
        "debounce = \"1s\"\nmax-delay = \"2s\"\n",
    );
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let store_crl = p.join("crl/demo.crl");
    let first = eventually(WAIT_SECS, "the first CRL", || {
        std::fs::read(&store_crl).ok()
    });

    // crl-sync: the real CRL installs, a flipped signature byte does not.
    let source = p.join("source.crl");
    let out_file = p.join("out.crl");
    let sync = |der: &[u8]| {
        std::fs::write(&source, der).expect("source");
        run(Command::new(BIN)
            .args(["crl-sync", "--once", "--source"])
            .arg(format!("file://{}", source.display()))
            .arg("--ca")
            .arg(p.join("ca.pem"))
            .arg("--out")
            .arg(&out_file)
            .args(["--format", "der"]))
    };
    let ok = sync(&first);
    assert!(ok.status.success(), "crl-sync: {}", text(&ok));
    assert_eq!(std::fs::read(&out_file).expect("installed"), first);
    let mut tampered = first.clone();
    let at = tampered.len() - 100;
    tampered[at] ^= 0x01;
    let refused = sync(&tampered);
    assert!(
        !refused.status.success(),
        "a tampered ML-DSA CRL was installed"
    );
    assert!(
        text(&refused).to_lowercase().contains("signature"),
        "{}",
        text(&refused)
    );
    assert_eq!(std::fs::read(&out_file).expect("kept"), first);

    // A second revocd: no CA key, the ML-DSA CA's CRLs as its source.
    let up = tempfile::tempdir().expect("tmp");
    let u = up.path();
    write_admin_token(u, "upstream-test-token-0123456789");
    std::fs::write(
        u.join("revocd.toml"),
        format!(
            "data-dir = \"data\"\n[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [admin]\ntoken-file = \"admin.token\"\n[upstream]\npoll = \"1s\"\n\
             [[issuer]]\nid = \"up\"\ncertificate = \"{d}/ca.pem\"\n\
             responder-certificate = \"{d}/responder.pem\"\nresponder-key = \"{d}/responder.key\"\n\
             upstream-crls = [\"file://{d}/crl/demo.crl\"]\n",
            d = p.display()
        ),
    )
    .expect("config");
    let u_daemon = Daemon::start(&u.join("revocd.toml"));
    let revoked = Serial::from_hex(&serial_of(&p.join("leaf-revoked.pem"))).expect("s");
    let good_hex = serial_of(&p.join("leaf-good.pem"));
    let good = Serial::from_hex(&good_hex).expect("s");
    let status = |serial: &Serial| {
        let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
        try_ocsp_status_at(&u_daemon, &ca, serial, now)
            .ok()
            .map(|v| v.status)
    };
    eventually(WAIT_SECS, "the CRL's revocation answered upstream", || {
        (status(&revoked)? == "revoked").then_some(())
    });
    // A revocation at the ML-DSA CA reaches the upstream responder.
    revoke(&d, &token(p), &good_hex, "keyCompromise");
    eventually(WAIT_SECS, "a new revocation answered upstream", || {
        (status(&good)? == "revoked").then_some(())
    });
    // A tampered CRL at the source is refused and changes nothing.
    let current = std::fs::read(&store_crl).expect("crl");
    let mut bad = current.clone();
    let at = bad.len() - 50;
    bad[at] ^= 0x01;
    std::fs::write(&store_crl, &bad).expect("tamper");
    u_daemon.wait_log_where("the tampered CRL refused", |l| {
        l.contains("up") && l.to_lowercase().contains("signature")
    });
    assert_eq!(status(&good).as_deref(), Some("revoked"));
}

/// A CA whose key and certificate python `cryptography` made (its PKCS#8,
/// the seed form) signs revocd's answers and CRL itself (no delegated
/// responder), and `cryptography` and dilithium-py verify them.
#[test]
fn an_ml_dsa_ca_made_by_python_cryptography_signs_answers_and_crls() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    let made = run(Command::new(python())
        .arg(python_script("make_mldsa_ca.py"))
        .arg(p)
        .arg("65"));
    assert!(made.status.success(), "{}", text(&made));
    write_admin_token(p, "mldsa-test-token-0123456789abcdef");
    std::fs::write(
        p.join("revocd.toml"),
        "data-dir = \"data\"\n[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [admin]\ntoken-file = \"admin.token\"\n[crl]\nstore = \"file://crl\"\n\
         debounce = \"1s\"\nmax-delay = \"2s\"\n\
         [[issuer]]\nid = \"demo\"\ncertificate = \"ca.pem\"\nkey = \"ca.key\"\n",
    )
    .expect("config");
    let check = run(Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(p.join("revocd.toml")));
    assert!(
        check.status.success() && text(&check).contains("ml-dsa-65"),
        "check-config: {}",
        text(&check)
    );
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    revoke(&d, &token(p), "5EC0DE", "keyCompromise");
    let serial = Serial::from_hex("5EC0DE").expect("serial");
    assert_eq!(ocsp_status(&d, &ca, &serial).status, "revoked");
    let (status, _, body) = http_get(d.public, &get_path(&ca, &serial)).expect("GET");
    assert_eq!(status, 200);
    let answer = p.join("answer.ocsp");
    std::fs::write(&answer, &body).expect("write");
    let t = check_ocsp(
        p,
        &answer,
        "ca.pem",
        &["5EC0DE=revoked:keyCompromise".to_string()],
    );
    assert!(!t.contains("delegated"), "the CA signs itself: {t}");
    let crl = eventually(WAIT_SECS, "a CRL listing the revocation", || {
        let der = fetch(&d, "/crl/demo.crl")?;
        let f = revocd::crl::build::check(&der, &ca).ok()?;
        (f.n_entries == 1).then_some(der)
    });
    let crl_file = p.join("demo.crl");
    std::fs::write(&crl_file, crl).expect("write");
    check_mldsa("65", &p.join("ca.pem"), &[&answer, &crl_file]);
}
