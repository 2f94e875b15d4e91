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
    let out =
        run(Command::new(venv_tool("cfn-lint"))
            .arg(deploy().join("cloudformation/revocd-cdn.yaml")));
    assert!(out.status.success(), "cfn-lint: {}", text(&out));
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
    // metrics exist (the issuer table is the config's last).
    let config = p.join("revocd.toml");
    let cfg = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!("{cfg}upstream-crls = [\"file://crl/demo.crl\"]\n"),
    )
    .expect("config");
    let d = Daemon::start(&p.join("revocd.toml"));
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
    let mut last = String::new();
    let checked = eventually(WAIT_SECS, "every metric the deploy files use", || {
        let (_, _, metrics) = d.http_admin("GET", "/metrics")?;
        std::fs::write(&scrape, &metrics).expect("write");
        let out = run(Command::new(python())
            .arg(&script)
            .arg(deploy())
            .arg(&scrape));
        last = text(&out);
        out.status.success().then(|| last.clone())
    });
    assert!(checked.contains("all exported"), "{checked}\n{last}");
}
