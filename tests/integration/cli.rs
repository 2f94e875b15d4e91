//! `revocd query` and `revocd check-config` as an operator runs them.

use std::process::Command;

use crate::support::*;

#[test]
fn query_verifies_post_and_get_answers() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    for (cert, status) in [("leaf-good.pem", "good"), ("leaf-revoked.pem", "revoked")] {
        for extra in [&[][..], &["--get"][..], &["--sha256", "--get"][..]] {
            let out = run(Command::new(BIN)
                .current_dir(p)
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
            assert!(out.status.success(), "{t}");
            assert!(t.contains(&format!(": {status}")), "{t}");
            assert!(t.contains("Response verify OK"), "{t}");
        }
    }
    let out = run(Command::new(BIN).current_dir(p).args([
        "query",
        "--url",
        &d.url(),
        "--issuer",
        "ca.pem",
        "--serial",
        "ABCDEF",
    ]));
    assert!(!out.status.success());
    assert!(text(&out).contains("Unauthorized"), "{}", text(&out));
}

#[test]
fn check_config_accepts_init_output_and_every_reference_config() {
    let dir = demo_pki();
    let out = run(Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(dir.path().join("revocd.toml")));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(": OK"));
    // config/ files reference certificates relative to themselves; parse them
    // with the demo PKI copied beside them.
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for entry in std::fs::read_dir(&config_dir).expect("config/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let copy = dir.path().join(path.file_name().expect("name"));
            std::fs::copy(&path, &copy).expect("copy");
            let out = run(Command::new(BIN)
                .args(["check-config", "--config"])
                .arg(&copy));
            assert!(out.status.success(), "{}: {}", path.display(), text(&out));
        }
    }
}

#[test]
fn bad_configs_exit_64_and_name_the_file() {
    let dir = demo_pki();
    let other = demo_pki();
    let p = dir.path();
    let cases = [
        (
            format!(
                "[[issuer]]\nid = \"x\"\ncertificate = \"ca.pem\"\nkey = \"{}\"\n",
                other.path().join("ca.key").display()
            ),
            "does not match certificate",
        ),
        (
            "[[issuer]]\nid = \"x\"\ncertificate = \"ca.pem\"\nresponder-certificate = \"leaf-good.pem\"\nresponder-key = \"leaf-good.key\"\n".to_string(),
            "lacks extendedKeyUsage id-kp-OCSPSigning",
        ),
        (
            format!(
                "[[issuer]]\nid = \"x\"\ncertificate = \"ca.pem\"\nresponder-certificate = \"{}\"\nresponder-key = \"{}\"\n",
                other.path().join("responder.pem").display(),
                other.path().join("responder.key").display()
            ),
            "is not issued by the issuer certificate",
        ),
        (
            "[[issuer]]\nid = \"x\"\ncertificate = \"missing.pem\"\nkey = \"ca.key\"\n".to_string(),
            "missing.pem",
        ),
        (
            "[[issuer]]\nid = \"x\"\ncertificate = \"ca.pem\"\nkey = \"ca.pem\"\n".to_string(),
            "ca.pem",
        ),
    ];
    for (toml, needle) in cases {
        let cfg = p.join("bad.toml");
        std::fs::write(&cfg, &toml).expect("write");
        let out = run(Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&cfg));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(64), "{toml}: {t}");
        assert!(t.contains(needle), "{toml}: expected {needle:?} in {t}");
    }
}

#[test]
fn secrets_readable_by_others_refuse_to_start_unless_told_to_warn() {
    use std::os::unix::fs::PermissionsExt;
    let dir = demo_pki();
    let p = dir.path();
    std::fs::set_permissions(
        p.join("responder.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let out = run(Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(p.join("revocd.toml")));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(64), "{t}");
    assert!(
        t.contains("responder.key is accessible by group or others (mode 644)"),
        "{t}"
    );
    let config = std::fs::read_to_string(p.join("revocd.toml")).expect("read");
    std::fs::write(
        p.join("revocd.toml"),
        format!("{config}\n[security]\nloose-secret-permissions = \"warn\"\n"),
    )
    .expect("write");
    let out = run(Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(p.join("revocd.toml")));
    assert!(out.status.success(), "{}", text(&out));
}
