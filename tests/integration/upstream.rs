//! Upstream sources for a CA revocd does not run: CRLs written by `openssl
//! ca -gencrl` (full, held, released, a serial dropped, foreign and older
//! CRLs refused), a delta CRL made with python `cryptography`, a CRL
//! replaced in place in moto S3 and an AWS Private CA audit report there,
//! answered by a delegated responder the CA issued as AWS Private CA's
//! OCSPSigningCertificate template would.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use revocd::state::Serial;

use crate::support::*;

/// A CA run by `openssl ca` in `dir`: ca.pem/ca.key (P-256), crlnumber, and
/// extensions for leaves and for an OCSP signing certificate (EKU
/// OCSPSigning, keyUsage digitalSignature, id-pkix-ocsp-nocheck: what AWS
/// Private CA's OCSPSigningCertificate/V1 template sets).
struct OpensslCa<'a> {
    dir: &'a Path,
}

impl<'a> OpensslCa<'a> {
    fn new(dir: &'a Path, cn: &str) -> Self {
        std::fs::write(
            dir.join("ca.cnf"),
            "[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndir = .\ndatabase = $dir/index.txt\n\
             new_certs_dir = $dir/newcerts\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n\
             serial = $dir/serial\ncrlnumber = $dir/crlnumber\ndefault_md = sha256\n\
             policy = policy_any\ndefault_days = 30\ndefault_crl_days = 7\nunique_subject = no\n\
             crl_extensions = crl_ext\n[ policy_any ]\ncommonName = supplied\n\
             [ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n\
             [ leaf ]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\n\
             [ ocsp ]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = critical,OCSPSigning\nnoCheck = ignored\n\
             authorityKeyIdentifier = keyid\nsubjectKeyIdentifier = hash\n",
        )
        .expect("cnf");
        for d in ["newcerts", "issued"] {
            std::fs::create_dir_all(dir.join(d)).expect("dir");
        }
        std::fs::write(dir.join("index.txt"), "").expect("index");
        std::fs::write(dir.join("serial"), "5EED1000\n").expect("serial");
        std::fs::write(dir.join("crlnumber"), "1000\n").expect("crlnumber");
        let ca = Self { dir };
        ca.key("ca.key");
        ca.run(&[
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
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ]);
        ca
    }

    fn run(&self, args: &[&str]) -> String {
        openssl(self.dir, args)
    }

    fn key(&self, name: &str) {
        self.run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ]);
    }

    /// Issues `issued/<name>.pem` with `ext`.
    fn issue(&self, name: &str, ext: &str) -> Serial {
        let key = format!("{name}.key");
        self.key(&key);
        let csr = format!("{name}.csr");
        self.run(&[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &csr,
        ]);
        let out = format!("issued/{name}.pem");
        self.run(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-extensions",
            ext,
            "-in",
            &csr,
            "-out",
            &out,
            "-notext",
        ]);
        Serial::from_content(&load_cert(&self.dir.join(&out)).serial)
    }

    fn revoke(&self, name: &str, reason: &str) {
        let cert = format!("issued/{name}.pem");
        let mut args = vec!["ca", "-config", "ca.cnf", "-revoke", &cert];
        if reason == "certificateHold" {
            args.extend(["-crl_hold", "holdInstructionReject"]);
        } else {
            args.extend(["-crl_reason", reason]);
        }
        self.run(&args);
    }

    /// `openssl ca -gencrl` into `out` (PEM).
    fn gencrl(&self, out: &str) {
        let tmp = format!("{out}.tmp");
        self.run(&["ca", "-config", "ca.cnf", "-gencrl", "-out", &tmp]);
        std::fs::rename(self.dir.join(&tmp), self.dir.join(out)).expect("rename");
    }

    /// Edits index.txt so `serial` reads valid again (what an operator's
    /// hand, or a CA losing a record, would do).
    fn unrevoke(&self, serial: &Serial) {
        let path = self.dir.join("index.txt");
        let text = std::fs::read_to_string(&path).expect("index");
        let hex = serial.to_hex();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                if f.len() >= 6 && f[3].eq_ignore_ascii_case(&hex) && f[0] == "R" {
                    format!("V\t{}\t\t{}\t{}\t{}", f[1], f[3], f[4], f[5])
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("index");
    }
}

/// revocd for the CA in `dir`: a delegated responder, no CA key, the given
/// upstream lines, polling every second.
fn config(dir: &Path, issuer_lines: &str, extra: &str) {
    std::fs::write(dir.join("admin.token"), "upstream-test-token-0123456789\n").expect("token");
    for secret in ["admin.token", "responder.key"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join(secret), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    std::fs::write(
        dir.join("revocd.toml"),
        format!(
            "data-dir = \"data\"\n[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [admin]\ntoken-file = \"admin.token\"\n[upstream]\npoll = \"1s\"\n{extra}\n\
             [[issuer]]\nid = \"up\"\ncertificate = \"ca.pem\"\n\
             responder-certificate = \"issued/responder.pem\"\nresponder-key = \"responder.key\"\n\
             {issuer_lines}\n"
        ),
    )
    .expect("config");
}

fn status_within(
    d: &Daemon,
    ca: &revocd::pki::Cert,
    serial: &Serial,
    want: &str,
    secs: u64,
) -> Duration {
    let started = Instant::now();
    eventually(secs, &format!("{} {want}", serial.to_hex()), || {
        let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
        try_ocsp_status_at(d, ca, serial, now)
            .ok()
            .filter(|v| v.status == want)
    });
    started.elapsed()
}

#[test]
fn openssl_ca_crls_feed_ocsp_and_foreign_older_or_forgetting_crls_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    let ca = OpensslCa::new(p, "Upstream test CA");
    ca.issue("responder", "ocsp");
    let leaves: Vec<Serial> = (1..=3)
        .map(|n| ca.issue(&format!("leaf{n}"), "leaf"))
        .collect();
    ca.gencrl("crl.pem");
    config(
        p,
        "upstream-crls = [\"file://crl.pem\"]\nissued-certs = \"issued\"\n",
        "",
    );
    let d = Daemon::start(&p.join("revocd.toml"));
    let cert = load_cert(&p.join("ca.pem"));
    for s in &leaves {
        status_within(&d, &cert, s, "good", WAIT_SECS);
    }

    // A revocation by the CA reaches OCSP within one poll of the new CRL.
    ca.revoke("leaf1", "keyCompromise");
    ca.gencrl("crl.pem");
    let took = status_within(&d, &cert, &leaves[0], "revoked", WAIT_SECS);
    eprintln!("upstream revocation answered revoked {took:?} after the CRL was written (poll 1 s)");
    let v = ocsp_status(&d, &cert, &leaves[0]);
    assert_eq!(v.reason.as_deref(), Some("KeyCompromise"));
    let older = std::fs::read(p.join("crl.pem")).expect("crl");

    // A hold, then its release (the CRL stops listing it).
    ca.revoke("leaf2", "certificateHold");
    ca.gencrl("crl.pem");
    status_within(&d, &cert, &leaves[1], "revoked", WAIT_SECS);
    ca.unrevoke(&leaves[1]);
    ca.gencrl("crl.pem");
    status_within(&d, &cert, &leaves[1], "good", WAIT_SECS);

    // A permanent revocation the CRL forgets is not undone.
    ca.unrevoke(&leaves[0]);
    ca.gencrl("crl.pem");
    eventually(WAIT_SECS, "the vanished serial counted", || {
        (metric(&d, "revocd_upstream_vanished_serials_total") >= 1.0).then_some(())
    });
    assert_eq!(ocsp_status(&d, &cert, &leaves[0]).status, "revoked");

    // An older CRL (a lower number) and one signed by another CA are refused.
    std::fs::write(p.join("crl.pem"), &older).expect("older");
    eventually(WAIT_SECS, "the older CRL refused", || {
        (metric(&d, "revocd_upstream_crls_refused_total") >= 1.0).then_some(())
    });
    let other = tempfile::tempdir().expect("tmp");
    let foreign = OpensslCa::new(other.path(), "Upstream test CA");
    foreign.gencrl("crl.pem");
    std::fs::copy(other.path().join("crl.pem"), p.join("crl.pem")).expect("copy");
    eventually(WAIT_SECS, "the foreign CRL refused", || {
        (metric(&d, "revocd_upstream_crls_refused_total") >= 2.0).then_some(())
    });
    assert_eq!(ocsp_status(&d, &cert, &leaves[1]).status, "good");
    assert_eq!(ocsp_status(&d, &cert, &leaves[0]).status, "revoked");

    // The number floor survives a restart: the older CRL is still refused.
    drop(d);
    std::fs::write(p.join("crl.pem"), &older).expect("older");
    let d = Daemon::start(&p.join("revocd.toml"));
    eventually(WAIT_SECS, "the older CRL refused after a restart", || {
        (metric(&d, "revocd_upstream_crls_refused_total") >= 1.0).then_some(())
    });
    assert_eq!(ocsp_status(&d, &cert, &leaves[1]).status, "good");
}

#[test]
fn a_delta_crl_from_python_cryptography_applies_on_its_base() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    let ca = OpensslCa::new(p, "Delta test CA");
    ca.issue("responder", "ocsp");
    let leaves: Vec<Serial> = (1..=3)
        .map(|n| ca.issue(&format!("leaf{n}"), "leaf"))
        .collect();
    ca.revoke("leaf1", "certificateHold");
    ca.gencrl("base.pem");
    let base_number = revocd::crl::build::check(
        &revocd::tools::sync::crl_der(&std::fs::read(p.join("base.pem")).expect("base"))
            .expect("der"),
        &load_cert(&p.join("ca.pem")),
    )
    .expect("base")
    .number;
    let delta = |base: u64, number: u64, entries: &[String]| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/make_delta.py");
        let out = run(Command::new(python())
            .current_dir(p)
            .arg(script)
            .args([
                "ca.pem",
                "ca.key",
                &base.to_string(),
                &number.to_string(),
                "delta.tmp",
            ])
            .args(entries));
        assert!(out.status.success(), "{}", text(&out));
        std::fs::rename(p.join("delta.tmp"), p.join("delta.crl")).expect("rename");
    };
    // A delta for a base revocd has not seen yet waits.
    delta(
        base_number + 5,
        base_number + 6,
        &[format!("{}=keyCompromise", leaves[2].to_hex())],
    );
    config(
        p,
        "upstream-crls = [\"file://base.pem\", \"file://delta.crl\"]\nissued-certs = \"issued\"\n",
        "",
    );
    let d = Daemon::start(&p.join("revocd.toml"));
    let cert = load_cert(&p.join("ca.pem"));
    status_within(&d, &cert, &leaves[0], "revoked", WAIT_SECS);
    eventually(WAIT_SECS, "the early delta waiting", || {
        (metric(
            &d,
            "revocd_upstream_polls_total{issuer=\"up\",kind=\"crl\",result=\"waiting\"}",
        ) >= 1.0)
            .then_some(())
    });
    assert_eq!(ocsp_status(&d, &cert, &leaves[2]).status, "good");
    // A delta on the applied base: one new revocation, and the hold lifted
    // with removeFromCRL.
    delta(
        base_number,
        base_number + 1,
        &[
            format!("{}=superseded", leaves[1].to_hex()),
            format!("{}=removeFromCRL", leaves[0].to_hex()),
        ],
    );
    status_within(&d, &cert, &leaves[1], "revoked", WAIT_SECS);
    status_within(&d, &cert, &leaves[0], "good", WAIT_SECS);
    assert_eq!(ocsp_status(&d, &cert, &leaves[2]).status, "good");
}

/// Puts `file` at `bucket/key` in moto with boto3; the new ETag.
fn s3_put(port: u16, key: &str, file: &Path) -> String {
    let (bucket, key) = key.split_once('/').expect("bucket/key");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/s3_put.py");
    let out = run(Command::new(python())
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .args([bucket, key])
        .arg(file));
    let t = text(&out);
    assert!(out.status.success(), "PUT {bucket}/{key}: {t}");
    t.trim().to_string()
}

#[test]
fn aws_private_ca_flow_crl_replaced_in_moto_s3_and_an_audit_report_there() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    let ca = OpensslCa::new(p, "AWS Private CA test");
    ca.issue("responder", "ocsp");
    let leaves: Vec<Serial> = (1..=2)
        .map(|n| ca.issue(&format!("leaf{n}"), "leaf"))
        .collect();
    ca.gencrl("crl.pem");
    let der =
        revocd::tools::sync::crl_der(&std::fs::read(p.join("crl.pem")).expect("crl")).expect("der");
    std::fs::write(p.join("crl.der"), &der).expect("der");
    let s3 = moto();
    create_bucket(s3.port, "pca-crls");
    // AWS Private CA writes crl/<CA_ID>.crl (DER) and audit-report/<CA_ID>/<UUID>.json.
    let first_etag = s3_put(s3.port, "pca-crls/crl/ca-0001.crl", &p.join("crl.der"));
    let report = |n: usize, serials: &[&Serial], name: &str| {
        let items: Vec<String> = serials
            .iter()
            .map(|s| {
                let hex = s.to_hex().to_lowercase();
                let colons: Vec<&str> = (0..hex.len()).step_by(2).map(|i| &hex[i..i + 2]).collect();
                format!(
                    "{{\"awsAccountId\":\"123456789012\",\"certificateArn\":\"arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/ca-0001/certificate/{n}\",\"serial\":\"{}\",\"subject\":\"CN=x\",\"notBefore\":\"2026-01-01T00:00:00+0000\",\"notAfter\":\"2030-01-01T00:00:00+0000\",\"issuedAt\":\"2026-01-01T00:00:01+0000\"}}",
                    colons.join(":")
                )
            })
            .collect();
        let path = p.join(name);
        std::fs::write(&path, format!("[{}]", items.join(","))).expect("report");
        path
    };
    let r1 = report(1, &[&leaves[0]], "r1.json");
    s3_put(
        s3.port,
        "pca-crls/audit-report/ca-0001/11111111-aaaa.json",
        &r1,
    );
    config(
        p,
        "upstream-crls = [\"s3://pca-crls/crl/ca-0001.crl\"]\naudit-reports = [\"s3://pca-crls/audit-report/ca-0001/\"]\n",
        &format!("endpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\nallow-http = true\n", s3.port),
    );
    let d = Daemon::start_with(&p.join("revocd.toml"), &MOTO_ENV, true);
    let cert = load_cert(&p.join("ca.pem"));
    // Issued per the report; the other serial is unknown to revocd.
    status_within(&d, &cert, &leaves[0], "good", WAIT_SECS);
    let unknown = try_ocsp_status_at(
        &d,
        &cert,
        &leaves[1],
        revocd::clock::Clock::now(&revocd::clock::SystemClock),
    );
    assert!(
        unknown.is_err(),
        "not in any issuance source yet: unauthorized"
    );
    // A newer report (a new object under the prefix) adds the second one.
    // S3 keeps LastModified in whole seconds: the new report must be in a
    // later second than the first.
    until_after_second(revocd::clock::Clock::now(&revocd::clock::SystemClock));
    let r2 = report(2, &[&leaves[0], &leaves[1]], "r2.json");
    s3_put(
        s3.port,
        "pca-crls/audit-report/ca-0001/22222222-bbbb.json",
        &r2,
    );
    status_within(&d, &cert, &leaves[1], "good", WAIT_SECS);
    // The CA revokes; its CRL is replaced in place, with a new ETag.
    ca.revoke("leaf2", "keyCompromise");
    ca.gencrl("crl.pem");
    let der =
        revocd::tools::sync::crl_der(&std::fs::read(p.join("crl.pem")).expect("crl")).expect("der");
    std::fs::write(p.join("crl.der"), &der).expect("der");
    let second_etag = s3_put(s3.port, "pca-crls/crl/ca-0001.crl", &p.join("crl.der"));
    assert_ne!(first_etag, second_etag);
    let took = status_within(&d, &cert, &leaves[1], "revoked", WAIT_SECS);
    eprintln!("S3 CRL replacement answered revoked after {took:?} (poll 1 s)");
    // Unchanged objects cost a 304 each poll.
    let before = metric(
        &d,
        "revocd_upstream_polls_total{issuer=\"up\",kind=\"crl\",result=\"unchanged\"}",
    );
    metric_reaches(
        &d,
        "revocd_upstream_polls_total{issuer=\"up\",kind=\"crl\",result=\"unchanged\"}",
        before + 1.0,
    );
    // The delegated responder's answers satisfy openssl.
    let out = run(Command::new(require("openssl"))
        .current_dir(p)
        .args([
            "ocsp",
            "-issuer",
            "ca.pem",
            "-CAfile",
            "ca.pem",
            "-no_nonce",
            "-url",
        ])
        .arg(d.url())
        .args(["-cert", "issued/leaf2.pem"]));
    let t = text(&out);
    assert!(
        t.contains("Response verify OK") && t.contains("issued/leaf2.pem: revoked"),
        "{t}"
    );
}
