//! deploy/ checked with the linters that install here (cfn-lint,
//! kubernetes-validate, systemd-analyze), every YAML and JSON parsed, and the
//! metrics the alerts and dashboard use found in a real scrape.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn venv_tool(name: &str) -> PathBuf {
    let p = python().parent().expect("venv bin").join(name);
    assert!(
        p.is_file(),
        "{name} not in the test venv; run ./scripts/test, which installs it"
    );
    p
}

#[test]
fn cloudformation_passes_cfn_lint() {
    for template in ["revocd-cdn.yaml", "revocd-private-ca-events.yaml"] {
        let out =
            run(Command::new(venv_tool("cfn-lint"))
                .arg(deploy().join("cloudformation").join(template)));
        assert!(out.status.success(), "cfn-lint {template}: {}", text(&out));
    }
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate() {
    let out = run(Command::new(venv_tool("kubernetes-validate"))
        .arg(deploy().join("kubernetes/revocd.yaml"))
        .arg(deploy().join("kubernetes/servicemonitor.yaml")));
    let t = text(&out);
    assert!(out.status.success(), "kubernetes-validate: {t}");
    for kind in [
        "deployment/revocd",
        "service/revocd",
        "poddisruptionbudget/revocd",
    ] {
        assert!(t.contains(&format!("passed for resource {kind}")), "{t}");
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let tool = Path::new("/usr/bin/systemd-analyze");
    assert!(tool.is_file(), "systemd-analyze missing");
    let dir = tempfile::tempdir().expect("tmp");
    for name in ["revocd.service", "revocd-crl-sync.service"] {
        let unit = std::fs::read_to_string(deploy().join("systemd").join(name)).expect("unit");
        // verify checks that ExecStart exists: point it at the binary under test.
        let unit = unit.replace("/usr/local/bin/revocd", BIN);
        let path = dir.path().join(name);
        std::fs::write(&path, unit).expect("write");
        let out = run(Command::new(tool).arg("verify").arg(&path));
        let t = text(&out);
        assert!(
            out.status.success() && !t.contains(&format!("{name}:")),
            "systemd-analyze verify {name}: {t}"
        );
    }
}

#[test]
fn every_yaml_and_json_parses_and_uses_real_metrics() {
    let dir = demo_pki();
    let p = dir.path();
    // The demo's own CRL as an upstream source too, so the upstream
    // metrics exist (the issuer table is the config's last), and an SQS
    // queue of Private CA events in moto, for the AWS events metrics.
    let moto = moto();
    let pca_dir = tempfile::tempdir().expect("tmp");
    let queue = crate::aws_events::pca_py(moto.port, &["setup", &pca_dir.path().to_string_lossy()]);
    let config = p.join("revocd.toml");
    let cfg = std::fs::read_to_string(&config).expect("config");
    let (head, issuers) = cfg.split_at(cfg.find("[[issuer]]").expect("an issuer"));
    std::fs::write(
        &config,
        format!(
            "{head}[aws-events]\nqueue = \"{}\"\nwait = \"1s\"\n\n{issuers}upstream-crls = [\"file://crl/demo.crl\"]\naws-pca-arn = \"{}\"\n",
            queue["queue"].as_str().expect("queue"),
            queue["ca"].as_str().expect("ca")
        ),
    )
    .expect("config");
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let d = Daemon::start_with(&p.join("revocd.toml"), &env, true);
    // Real traffic first, so labelled series exist.
    let ca = load_cert(&p.join("ca.pem"));
    let good = revocd::state::Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("hex");
    assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
    eventually(WAIT_SECS, "a CRL", || {
        http_get(d.public, "/crl/demo.crl").filter(|r| r.0 == 200)
    });
    // A labelled series appears once its first event is counted (the
    // first upstream poll, the first publish), which may be after ready:
    // scrape until everything the alerts and the dashboard use is there.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_deploy.py");
    let scrape = p.join("metrics.txt");
    let checked = eventually_ok(WAIT_SECS, "every metric the deploy files use", || {
        let (_, _, metrics) = d.http_admin("GET", "/metrics").ok_or("no scrape")?;
        std::fs::write(&scrape, &metrics).expect("write");
        let out = run(Command::new(python())
            .arg(&script)
            .arg(deploy())
            .arg(&scrape));
        let t = text(&out);
        if out.status.success() {
            Ok(t)
        } else {
            Err(t)
        }
    });
    assert!(checked.contains("all exported"), "{checked}");
}
