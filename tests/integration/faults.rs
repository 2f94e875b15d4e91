//! Faults against the real daemon: the ledger's disk full, SIGKILL while a
//! snapshot is being written, the wall clock stepping back and forward, and
//! an object store that answers 500 or is slow. In each, no acknowledged
//! change is lost and the daemon keeps answering.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use revocd::clock::{Clock, SystemClock};
use revocd::state::Serial;

use crate::support::*;

/// A small tmpfs mounted over `dir` while the value lives. Mounting needs
/// root; the suite runs as root (CI included), so this never skips.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir));
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs at {} (needs root): {}",
            dir.display(),
            text(&out)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until it refuses more bytes.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    for chunk in [65_536usize, 4096, 512, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
}

fn revoke_code(d: &Daemon, tok: &str, serial: &str) -> u16 {
    admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/revocations",
        Some(tok),
        &format!(r#"{{"serial": "{serial}", "reason": "keyCompromise"}}"#),
    )
    .map_or(0, |(s, _)| s)
}

/// The status the admin API reports: good, revoked or unknown.
fn admin_status(d: &Daemon, tok: &str, serial: &str) -> String {
    let (_, v) = admin_call(
        d.admin,
        "GET",
        &format!("/v1/issuers/demo/certificates/{serial}"),
        Some(tok),
        "",
    )
    .expect("status call");
    v["status"].as_str().unwrap_or("?").to_string()
}

fn metrics(d: &Daemon) -> String {
    let (_, _, body) = d.http_admin("GET", "/metrics").expect("metrics");
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of one sample line, e.g. `revocd_ledger_write_errors_total`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn hex(s: &str) -> Serial {
    Serial::from_hex(s).expect("hex serial")
}

#[test]
fn a_full_ledger_disk_refuses_revocations_with_503_and_loses_none() {
    let dir = demo_pki();
    let p = dir.path();
    let _fs = Tmpfs::mount(&p.join("data"), "512k");
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let mut d = Daemon::start(&p.join("revocd.toml"));
    let mut acked = Vec::new();
    for i in 1..=5 {
        let serial = format!("F{i:04X}");
        assert_eq!(revoke_code(&d, &tok, &serial), 200);
        acked.push(serial);
    }
    fill(&p.join("data/filler"));
    // Appends may still fit in the ledger file's last page; once it is full
    // every revocation is refused and none is acknowledged.
    let mut refused = None;
    for i in 0x100..0x2100 {
        let serial = format!("F{i:04X}");
        match revoke_code(&d, &tok, &serial) {
            200 => acked.push(serial),
            503 => {
                refused = Some(serial);
                break;
            }
            other => panic!("revoking {serial} on a full disk: unexpected {other}"),
        }
    }
    let refused = refused.expect("a revocation refused once the disk is full");
    assert_eq!(
        admin_status(&d, &tok, &refused),
        "unknown",
        "a refused revocation is not applied in memory"
    );
    assert_eq!(revoke_code(&d, &tok, "EEEEEE"), 503, "still full");
    let m = metrics(&d);
    assert!(
        sample(&m, "revocd_ledger_write_errors_total").unwrap_or(0.0) >= 2.0,
        "write errors are counted:\n{m}"
    );
    // OCSP keeps answering, for the old state and the acknowledged changes.
    let good = serial_of(&p.join("leaf-good.pem"));
    assert_eq!(ocsp_status(&d, &ca, &hex(&good)).status, "good");
    assert_eq!(ocsp_status(&d, &ca, &hex(&acked[0])).status, "revoked");
    // Space comes back: the same revocation goes through.
    std::fs::remove_file(p.join("data/filler")).expect("free the disk");
    assert_eq!(revoke_code(&d, &tok, &refused), 200);
    acked.push(refused);
    // After a SIGKILL, exactly the acknowledged revocations are there.
    d.kill();
    let d = Daemon::start(&p.join("revocd.toml"));
    for s in &acked {
        assert_eq!(admin_status(&d, &tok, s), "revoked", "{s} after restart");
    }
    assert_eq!(admin_status(&d, &tok, "EEEEEE"), "unknown");
    assert_eq!(ocsp_status(&d, &ca, &hex(&good)).status, "good");
}

/// Files in `dir` whose name ends in `.tmp`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_while_a_snapshot_is_written_loses_nothing() {
    const BATCH: u32 = 1000;
    let dir = demo_pki();
    let p = dir.path();
    let config = p.join("revocd.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("\n[ledger]\nsnapshot-every = 2500\n");
    std::fs::write(&config, text).expect("config");
    let tok = token(p);
    let data = p.join("data/ledger");
    let not_after = revocd::clock::rfc3339(SystemClock.now() + 86_400 * 30);
    // Each snapshot waits 3 s between its temp file and the rename, so the
    // SIGKILL below lands inside the write every time.
    let pause = [("REVOCD_FAULT_SNAPSHOT_PAUSE_MS", "3000")];
    // Acknowledged registrations (by batch start) and revocations.
    let registered: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    let revoked: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    for round in 0..3u32 {
        let mut d = Daemon::start_live(&config, &pause);
        assert!(
            temp_files(&data).is_empty(),
            "start-up removes stray temp files"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (registered, revoked, stop, tok, not_after) = (
                registered.clone(),
                revoked.clone(),
                stop.clone(),
                tok.clone(),
                not_after.clone(),
            );
            let admin = d.admin;
            std::thread::spawn(move || {
                for b in 0..10 {
                    let start = (round * 10 + b + 1) * BATCH;
                    let items: Vec<String> = (start..start + BATCH)
                        .map(|s| format!(r#"{{"serial": "{s:X}", "not_after": "{not_after}"}}"#))
                        .collect();
                    let body = format!(r#"{{"certificates": [{}]}}"#, items.join(","));
                    match admin_call(
                        admin,
                        "POST",
                        "/v1/issuers/demo/certificates",
                        Some(&tok),
                        &body,
                    ) {
                        Some((200, _)) => registered.lock().expect("lock").insert(start),
                        _ => return,
                    };
                    for serial in [start + b, start + BATCH / 2] {
                        let revoke =
                            format!(r#"{{"serial": "{serial:X}", "reason": "superseded"}}"#);
                        match admin_call(
                            admin,
                            "POST",
                            "/v1/issuers/demo/revocations",
                            Some(&tok),
                            &revoke,
                        ) {
                            Some((200, _)) => revoked.lock().expect("lock").insert(serial),
                            _ => return,
                        };
                    }
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
            })
        };
        let torn = eventually(60, "a snapshot being written", || {
            let t = temp_files(&data);
            (!t.is_empty()).then_some(t)
        });
        d.kill();
        stop.store(true, Ordering::SeqCst);
        writer.join().expect("writer");
        assert_eq!(
            temp_files(&data),
            torn,
            "killed while {torn:?} was being written"
        );

        // Every acknowledged change is there after the restart.
        let d = Daemon::start_live(&config, &[]);
        assert!(
            temp_files(&data).is_empty(),
            "recovery removes the torn snapshot"
        );
        for &start in registered.lock().expect("lock").iter() {
            for s in [start, start + BATCH - 1] {
                let st = admin_status(&d, &tok, &format!("{s:X}"));
                assert_ne!(
                    st, "unknown",
                    "registered serial {s:X} lost (round {round})"
                );
            }
        }
        for &s in revoked.lock().expect("lock").iter() {
            assert_eq!(
                admin_status(&d, &tok, &format!("{s:X}")),
                "revoked",
                "revocation of {s:X} lost (round {round})"
            );
        }
        let m = metrics(&d);
        let tracked: f64 = m
            .lines()
            .filter(|l| l.starts_with("revocd_issuer_serials{issuer=\"demo\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let expected = registered.lock().expect("lock").len() as f64 * f64::from(BATCH);
        assert!(
            tracked >= expected,
            "{tracked} serials tracked, at least {expected} acknowledged (round {round})"
        );
    }
}

/// What a verified CRL says.
struct Crl {
    number: u64,
    serials: Vec<Serial>,
}

/// Parses and verifies a CRL against the CA.
fn crl_of(der: &[u8], ca: &revocd::pki::Cert) -> Option<Crl> {
    let facts = revocd::crl::build::check(der, ca).ok()?;
    let entries = revocd::crl::build::entries_of(der).ok()?;
    Some(Crl {
        number: facts.number,
        serials: entries.into_iter().map(|e| e.serial).collect(),
    })
}

/// The live CRL as revocd serves it at `/crl/demo.crl`.
fn served_crl(d: &Daemon, ca: &revocd::pki::Cert) -> Option<Crl> {
    let (status, _, body) = http_get(d.public, "/crl/demo.crl")?;
    (status == 200).then_some(())?;
    crl_of(&body, ca)
}

fn publish_now(d: &Daemon, tok: &str) {
    let (s, v) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/crl/publish",
        Some(tok),
        "",
    )
    .expect("publish");
    assert!(s == 200 || s == 202, "publish: {s} {v}");
}

#[test]
fn the_wall_clock_stepping_back_and_forward_loses_nothing_and_keeps_answering() {
    let dir = demo_pki();
    let p = dir.path();
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let offset_file = p.join("clock-offset");
    let step = |secs: i64| std::fs::write(&offset_file, format!("{secs:+}\n")).expect("offset");
    step(0);
    let lib = libfaketime();
    let env = [
        ("LD_PRELOAD", lib.to_str().expect("utf-8 path")),
        (
            "FAKETIME_TIMESTAMP_FILE",
            offset_file.to_str().expect("utf-8 path"),
        ),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let mut d = Daemon::start_with(&p.join("revocd.toml"), &env, true);
    let real = || SystemClock.now();
    let (a, b, c) = ("A1A1", "B2B2", "C3C3");

    assert_eq!(revoke_code(&d, &tok, a), 200);
    publish_now(&d, &tok);
    let first = eventually(WAIT_SECS, "a CRL with the first revocation", || {
        served_crl(&d, &ca).filter(|f| f.serials.contains(&hex(a)))
    });

    // Two hours back: answers move to the earlier window and still verify.
    step(-7200);
    let v = eventually(WAIT_SECS, "an answer from the earlier window", || {
        let v = ocsp_status_at(&d, &ca, &hex(a), real() - 7200);
        (v.this_update <= real() - 7200).then_some(v)
    });
    assert_eq!(v.status, "revoked");
    assert_eq!(revoke_code(&d, &tok, b), 200, "revocations go on");
    let vb = ocsp_status_at(&d, &ca, &hex(b), real() - 7200);
    assert_eq!(vb.status, "revoked");
    let at = vb.revoked_at.expect("revocation time");
    assert!(
        (at - (real() - 7200)).abs() < 120,
        "revoked at the daemon's time: {at}"
    );
    publish_now(&d, &tok);
    let second = eventually(
        WAIT_SECS,
        "a CRL with the revocation made in the past",
        || served_crl(&d, &ca).filter(|f| f.serials.contains(&hex(b))),
    );
    assert!(
        second.number > first.number,
        "the CRL number never goes down: {} after {}",
        second.number,
        first.number
    );
    assert!(second.serials.contains(&hex(a)));

    // A day forward: the same, in the later window.
    step(86_400);
    let v = eventually(WAIT_SECS, "an answer from the later window", || {
        let v = ocsp_status_at(&d, &ca, &hex(b), real() + 86_400);
        (v.this_update >= real() + 86_400 - 3600).then_some(v)
    });
    assert_eq!(v.status, "revoked");
    assert_eq!(revoke_code(&d, &tok, c), 200);
    publish_now(&d, &tok);
    let third = eventually(WAIT_SECS, "a CRL after the step forward", || {
        served_crl(&d, &ca).filter(|f| f.serials.contains(&hex(c)))
    });
    assert!(third.number > second.number);

    // Back to true time and a restart without the fake clock: nothing lost,
    // and the CRL number still only goes up.
    step(0);
    d.kill();
    let d = Daemon::start(&p.join("revocd.toml"));
    for s in [a, b, c] {
        assert_eq!(ocsp_status(&d, &ca, &hex(s)).status, "revoked", "{s}");
    }
    publish_now(&d, &tok);
    let fourth = eventually(WAIT_SECS, "a CRL after the restart", || {
        served_crl(&d, &ca).filter(|f| f.number > third.number)
    });
    for s in [a, b, c] {
        assert!(fourth.serials.contains(&hex(s)), "{s} on the CRL");
    }
}

#[test]
fn an_object_store_failing_or_slow_delays_crls_but_loses_nothing() {
    let moto = moto();
    create_bucket(moto.port, "pki");
    let proxy = fault_proxy(moto.port);

    let dir = demo_pki();
    let p = dir.path();
    use_s3(
        &p.join("revocd.toml"),
        proxy.port,
        "pki/crls",
        "debounce = \"1s\"\nmax-delay = \"1s\"\n",
    );
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let d = Daemon::start_with(&p.join("revocd.toml"), &MOTO_ENV, true);
    let stored = || {
        let (_, _, body) = moto_get(moto.port, "/pki/crls/demo.crl").filter(|r| r.0 == 200)?;
        crl_of(&body, &ca)
    };
    let before = eventually(30, "the first CRL in the store", stored);

    // The store answers 500 to everything.
    proxy.mode.store(FAIL, Ordering::SeqCst);
    let good = serial_of(&p.join("leaf-good.pem"));
    assert_eq!(
        revoke_code(&d, &tok, &good),
        200,
        "revocations are accepted"
    );
    assert_eq!(ocsp_status(&d, &ca, &hex(&good)).status, "revoked");
    eventually(60, "a failed publish counted", || {
        metrics(&d)
            .contains("revocd_crl_publishes_total{issuer=\"demo\",result=\"error\"}")
            .then_some(())
    });
    let during = stored().expect("the old CRL stays in the store");
    assert_eq!(during.number, before.number, "nothing half-written");
    assert!(!during.serials.contains(&hex(&good)));

    // The store is slow (3 s per request): publishing still gets through,
    // and OCSP answers meanwhile.
    proxy.mode.store(SLOW, Ordering::SeqCst);
    assert_eq!(ocsp_status(&d, &ca, &hex(&good)).status, "revoked");
    let after = eventually(
        120,
        "the CRL with the revocation through a slow store",
        || stored().filter(|f| f.serials.contains(&hex(&good))),
    );
    assert!(after.number > before.number);
    proxy.mode.store(PASS, Ordering::SeqCst);
    assert_eq!(ocsp_status(&d, &ca, &hex(&good)).status, "revoked");
}
