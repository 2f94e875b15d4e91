//! `revocd demo` as a new user runs it. A warning must mean something an
//! operator should act on: a healthy first start logs none, nor an error,
//! whatever the minute of the OCSP window it starts in.

use std::process::{Command, Stdio};

use revocd::clock::{Clock, SystemClock};

use crate::support::*;

/// `revocd demo ARGS` in `dir` with its output in a log book; `env` for
/// libfaketime.
fn spawn_demo(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, std::sync::Arc<LogBook>) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .arg("demo")
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn revocd demo");
    let log = LogBook::new();
    log.follow(child.stderr.take().expect("stderr"));
    log.follow(child.stdout.take().expect("stdout"));
    (child, log)
}

/// SIGTERM, then the exit status and everything the demo printed.
fn stop_demo(mut child: std::process::Child, log: &LogBook) -> (std::process::ExitStatus, String) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(log.wait_closed(WAIT_SECS), "output did not end");
    (status, log.text())
}

/// The WARN and ERROR lines of a demo's output.
fn alarms(all: &str) -> Vec<&str> {
    all.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

/// Issue 24, item 5: a demo started at 15:45 (past three quarters of its
/// 60-minute window) warned that the next window of its 2 serials could not
/// be pre-signed within the CPU share, and every demo warned that its own
/// local CRL directory ignores conditional writes.
#[test]
fn a_fresh_demo_logs_no_warning_or_error_at_any_minute_of_the_window() {
    let lib = libfaketime();
    for minute in [0i64, 30, 45, 59] {
        // The daemon's clock at `minute` past the hour (10 s in), through
        // libfaketime: an offset ahead of the real clock, timers untouched.
        let now = SystemClock.now();
        let target = (now.div_euclid(3600) + 1) * 3600 + minute * 60 + 10;
        let offset = format!("+{}", target - now);
        let dir = tempfile::tempdir().expect("tmp");
        let env = [
            ("LD_PRELOAD", lib.to_str().expect("utf-8")),
            ("FAKETIME", offset.as_str()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ];
        let (child, log) = spawn_demo(dir.path(), &[], &env);
        // Past the start-up, the next window's plan and the first CRL.
        let planned = log.find(WAIT_SECS, |l| {
            l.contains("next window planned") || l.contains("cannot all be pre-signed")
        });
        let published = log.find(WAIT_SECS, |l| l.contains("CRL published"));
        let (status, all) = stop_demo(child, &log);
        assert!(
            planned.is_some() && published.is_some() && status.success(),
            "minute {minute}: {status:?}\n{all}"
        );
        let alarms = alarms(&all);
        assert!(
            alarms.is_empty(),
            "a healthy demo started at minute {minute} of its window raised: {alarms:#?}"
        );
    }
}

/// Issue 30: `revocd demo --algorithm ml-dsa-44` is a post-quantum
/// responder in one command: every key ML-DSA-44, the answers verified by
/// `revocd query`, no warning or error, and the hint that OpenSSL before
/// 3.5 cannot check its answers.
#[test]
fn an_ml_dsa_demo_serves_post_quantum_answers_in_one_command() {
    let dir = tempfile::tempdir().expect("tmp");
    let (child, log) = spawn_demo(dir.path(), &["--algorithm", "ml-dsa-44"], &[]);
    let listening = log
        .find(WAIT_SECS, |l| l.starts_with("revocd: public listener on "))
        .expect("the public listener");
    let url = listening
        .trim()
        .trim_start_matches("revocd: public listener on ")
        .to_string();
    let published = log.find(WAIT_SECS, |l| l.contains("CRL published"));
    let demo = dir.path().join("revocd-demo");
    let ca = load_cert(&demo.join("ca.pem"));
    assert_eq!(ca.key_oid, revocd::pki::oids::ML_DSA_44);
    let query = eventually(WAIT_SECS, "a verified answer", || {
        let out = run(Command::new(BIN)
            .args(["query", "--url", &format!("{url}/"), "--issuer"])
            .arg(demo.join("ca.pem"))
            .arg("--cert")
            .arg(demo.join("leaf-revoked.pem"))
            .arg("--get"));
        out.status.success().then(|| text(&out))
    });
    let (status, all) = stop_demo(child, &log);
    assert!(published.is_some() && status.success(), "{status:?}\n{all}");
    assert!(
        query.contains(": revoked") && query.contains("Response verify OK"),
        "{query}"
    );
    assert!(all.contains("OpenSSL 3.5"), "no ML-DSA hint:\n{all}");
    let alarms = alarms(&all);
    assert!(alarms.is_empty(), "the ML-DSA demo raised: {alarms:#?}");
}
