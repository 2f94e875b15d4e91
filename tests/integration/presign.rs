//! The pre-signer's limits against the real binary: pre-signing turned off
//! (every answer signed on its first request) and a window that does not fit
//! in the pre-signer's CPU share (an RSA issuer, thousands of serials, a
//! 1-minute window): recently requested serials are pre-signed first, the
//! rest are left to on-demand signing.

use std::time::Duration;

use revocd::clock::{Clock, SystemClock};
use revocd::state::Serial;

use crate::issuers::rsa_ca;
use crate::support::*;

/// Asks over OCSP POST (SHA-1 CertID) and returns the verified status.
fn status(d: &Daemon, ca: &revocd::pki::Cert, serial: &Serial) -> String {
    ocsp_status(d, ca, serial).status
}

#[test]
fn with_presigning_off_every_answer_is_signed_on_its_first_request_then_cached() {
    let dir = demo_pki();
    let p = dir.path();
    let config = std::fs::read_to_string(p.join("revocd.toml")).expect("config");
    let config = config.replace("[ocsp]\n", "[ocsp]\npresign-cpu-share = 0\n");
    std::fs::write(p.join("revocd.toml"), config).expect("config");
    let d = Daemon::start(&p.join("revocd.toml"));
    d.wait_log("pre-signing off");
    assert_eq!(
        metric(&d, "revocd_ocsp_signings_total{why=\"presign\"}"),
        0.0
    );
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("serial");
    assert!(status(&d, &ca, &good) == "good");
    assert_eq!(
        metric(&d, "revocd_ocsp_signings_total{why=\"on_demand\"}"),
        1.0
    );
    let hits = metric(&d, "revocd_ocsp_cache_hits_total");
    for _ in 0..5 {
        assert!(status(&d, &ca, &good) == "good");
    }
    assert_eq!(
        metric(&d, "revocd_ocsp_signings_total{why=\"on_demand\"}"),
        1.0,
        "signed once, then served from the cache"
    );
    assert_eq!(metric(&d, "revocd_ocsp_cache_hits_total"), hits + 5.0);
    assert_eq!(
        metric(&d, "revocd_ocsp_signings_total{why=\"presign\"}"),
        0.0
    );
}

/// Sleeps until the current 60-second window has at least `left` seconds to go.
fn with_time_left_in_minute(left: i64) {
    let now = SystemClock.now();
    if 60 - now.rem_euclid(60) < left {
        std::thread::sleep(Duration::from_secs((60 - now.rem_euclid(60) + 1) as u64));
    }
}

/// Sleeps until the start of the window after the next one begins (+1 s).
fn until_window(start: i64) {
    let now = SystemClock.now();
    if now < start + 1 {
        std::thread::sleep(Duration::from_secs((start + 1 - now) as u64));
    }
}

#[test]
fn a_window_that_does_not_fit_the_cpu_share_presigns_recently_requested_serials_first() {
    const SERIALS: u32 = 4_000;
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    rsa_ca(p);
    // 1-minute windows, 2% of the cores: about 0.04 core-seconds per second
    // for RSA-2048 signatures of about a millisecond each: far less than
    // 4,000 serials x 2 hashes per window.
    let config = std::fs::read_to_string(p.join("revocd.toml")).expect("config");
    let config = format!(
        "data-dir = \"data\"\n[admin]\ntoken-file = \"admin.token\"\n[ocsp]\nwindow = \"1m\"\npresign-cpu-share = 0.02\n\n{config}"
    );
    std::fs::write(p.join("revocd.toml"), config).expect("config");
    std::fs::write(
        p.join("admin.token"),
        "presign-test-token-0123456789abcdef\n",
    )
    .expect("token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            p.join("admin.token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
    }
    let d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let not_after = revocd::clock::rfc3339(SystemClock.now() + 30 * 86_400);
    // Register and ask about the hot serials early in a window, so the next
    // window's plan (drawn as the window after it begins) sees them.
    with_time_left_in_minute(40);
    for chunk in (1..=SERIALS).collect::<Vec<_>>().chunks(1_000) {
        let items: Vec<String> = chunk
            .iter()
            .map(|s| {
                format!(
                    r#"{{"serial": "{:X}", "not_after": "{not_after}"}}"#,
                    0x7000_0000 + s
                )
            })
            .collect();
        let body = format!(r#"{{"certificates": [{}]}}"#, items.join(","));
        let (code, json) = admin_call(
            d.admin,
            "POST",
            "/v1/issuers/rsa/certificates",
            Some(&tok),
            &body,
        )
        .expect("register");
        assert_eq!(code, 200, "{json}");
    }
    let serial = |n: u32| Serial::from_hex(&format!("{:X}", 0x7000_0000 + n)).expect("serial");
    let hot: Vec<Serial> = (1..=SERIALS).step_by(200).map(serial).collect();
    for s in &hot {
        assert!(status(&d, &ca, s) == "good");
    }
    let asked_in = SystemClock.now().div_euclid(60) * 60;
    // The plan for the window after next is drawn when the next one begins:
    // then it is degraded, and the hot serials lead it.
    until_window(asked_in + 60);
    eventually(30, "the next window's plan to be degraded", || {
        (metric(&d, "revocd_ocsp_presign_degraded{issuer=\"rsa\"}") == 1.0).then_some(())
    });
    d.wait_log("cannot all be pre-signed within ocsp.presign-cpu-share");
    // In that window the hot serials are answered from the pre-signed cache:
    // no on-demand signature for any of them.
    until_window(asked_in + 120);
    let before = metric(&d, "revocd_ocsp_signings_total{why=\"on_demand\"}");
    for s in &hot {
        let v = ocsp_status(&d, &ca, s);
        assert_eq!(v.this_update, asked_in + 120, "an answer of the new window");
    }
    assert_eq!(
        metric(&d, "revocd_ocsp_signings_total{why=\"on_demand\"}"),
        before,
        "recently requested serials were pre-signed for the new window"
    );
    // Not everything fit: the rollover left serials to on-demand signing,
    // and one of them is signed on its first request.
    let missed = eventually(
        WAIT_SECS,
        "the rollover to count what it left unsigned",
        || {
            let m = metric(&d, "revocd_ocsp_presign_missed_serials{issuer=\"rsa\"}");
            (m > 0.0).then_some(m)
        },
    );
    assert!(missed < f64::from(SERIALS), "missed {missed}");
    let signed_on_demand = (1..=SERIALS)
        .rev()
        .map(serial)
        .take(400)
        .filter(|s| {
            let n = metric(&d, "revocd_ocsp_signings_total{why=\"on_demand\"}");
            ocsp_status(&d, &ca, s);
            metric(&d, "revocd_ocsp_signings_total{why=\"on_demand\"}") > n
        })
        .count();
    assert!(
        signed_on_demand > 0,
        "some cold serial was left to on-demand signing"
    );
}

#[test]
fn sigterm_during_a_long_startup_presign_exits_promptly() {
    // 40,000 serials of an RSA issuer: the start-up pass needs tens of
    // seconds of both cores; revocd is ready after 1 s and must still stop
    // at once on SIGTERM, not when the pass is done.
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    rsa_ca(p);
    let mut index = std::fs::read_to_string(p.join("index.txt")).expect("index");
    for n in 1..=40_000u32 {
        index.push_str(&format!(
            "V\t301231235959Z\t\t{:X}\tunknown\t/CN=s{n}\n",
            0x6000_0000 + n
        ));
    }
    std::fs::write(p.join("index.txt"), index).expect("index");
    let config = std::fs::read_to_string(p.join("revocd.toml")).expect("config");
    std::fs::write(
        p.join("revocd.toml"),
        format!("data-dir = \"data\"\n[ocsp]\nstartup-presign = \"1s\"\n\n{config}"),
    )
    .expect("config");
    let mut d = Daemon::start(&p.join("revocd.toml"));
    // Ready before the pass is done.
    d.wait_log("pre-signed in part");
    d.signal("TERM");
    let status = d
        .wait_exit(15)
        .expect("revocd still running 15 s after SIGTERM");
    assert!(status.success(), "{status:?}: {}", d.final_logs());
}
