//! `revocd demo` as a new user runs it. A warning must mean something an
//! operator should act on: a healthy first start logs none, nor an error,
//! whatever the minute of the OCSP window it starts in.

use std::process::{Command, Stdio};

use revocd::clock::{Clock, SystemClock};

use crate::support::*;

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
        let mut child = Command::new(BIN)
            .current_dir(dir.path())
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .env("LD_PRELOAD", &lib)
            .env("FAKETIME", &offset)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn revocd demo");
        let log = LogBook::new();
        log.follow(child.stderr.take().expect("stderr"));
        log.follow(child.stdout.take().expect("stdout"));
        // Past the start-up, the next window's plan and the first CRL.
        let planned = log.find(WAIT_SECS, |l| {
            l.contains("next window planned") || l.contains("cannot all be pre-signed")
        });
        let published = log.find(WAIT_SECS, |l| l.contains("CRL published"));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("wait");
        assert!(log.wait_closed(WAIT_SECS), "output did not end");
        let all = log.text();
        assert!(
            planned.is_some() && published.is_some() && status.success(),
            "minute {minute}: {status:?}\n{all}"
        );
        let alarms: Vec<&str> = all
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        assert!(
            alarms.is_empty(),
            "a healthy demo started at minute {minute} of its window raised: {alarms:#?}"
        );
    }
}
