//! Fleet mode: three real `revocd` processes sharing one ledger in a moto
//! bucket. A revocation through any of them reaches all; 1,000 revocations
//! spread across them survive a restart of every replica; SIGKILL of two
//! replicas during writes loses no acknowledged revocation.
//! (Refusal on a store without conditional writes is in `crl`, on Garage.)

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use revocd::state::Serial;

use crate::support::*;

/// One demo PKI and three replica configs sharing `s3://pki/fleet` on moto
/// (CRLs go to `s3://pki/crls`, so the replicas also race to publish). The
/// ledger store is reached through `support::serial_proxy`, which makes
/// moto's conditional creates atomic as S3's are (see there).
struct Fleet {
    moto: Server,
    store: FaultProxy,
    dir: tempfile::TempDir,
    configs: Vec<PathBuf>,
}

fn fleet() -> Fleet {
    let moto = moto();
    create_bucket(moto.port, "pki");
    let dir = demo_pki();
    let p = dir.path();
    let base = p.join("revocd.toml");
    use_s3(
        &base,
        moto.port,
        "pki/crls",
        "debounce = \"2s\"\nmax-delay = \"4s\"\n",
    );
    let text = std::fs::read_to_string(&base).expect("config");
    let store = serial_proxy(moto.port);
    let configs = (1..=3)
        .map(|n| {
            let path = p.join(format!("replica-{n}.toml"));
            std::fs::write(
                &path,
                format!(
                    "{}\n[fleet]\nstore = \"s3://pki/fleet\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\nallow-http = true\nreplica = \"r{n}\"\n",
                    text.replace("data-dir = \"data\"", &format!("data-dir = \"data-{n}\"")),
                    store.port
                ),
            )
            .expect("replica config");
            path
        })
        .collect();
    Fleet {
        moto,
        store,
        dir,
        configs,
    }
}

impl Fleet {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn start(&self, n: usize) -> Daemon {
        Daemon::start_with(&self.configs[n], &MOTO_ENV, true)
    }

    fn start_all(&self) -> Vec<Daemon> {
        (0..3).map(|n| self.start(n)).collect()
    }
}

fn revoke_via(admin: SocketAddr, tok: &str, serial: &str) -> u16 {
    admin_call(
        admin,
        "POST",
        "/v1/issuers/demo/revocations",
        Some(tok),
        &format!(r#"{{"serial": "{serial}", "reason": "keyCompromise"}}"#),
    )
    .map_or(0, |(s, _)| s)
}

fn status_via(d: &Daemon, tok: &str, serial: &str) -> String {
    admin_call(
        d.admin,
        "GET",
        &format!("/v1/issuers/demo/certificates/{serial}"),
        Some(tok),
        "",
    )
    .map(|(_, v)| v["status"].as_str().unwrap_or("?").to_string())
    .unwrap_or_default()
}

/// revocd_issuer_serials{issuer="demo",status="revoked"}.
fn revoked_count(d: &Daemon) -> u64 {
    let (_, _, body) = d.http_admin("GET", "/metrics").unwrap_or_default();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| {
            l.strip_prefix("revocd_issuer_serials{issuer=\"demo\",status=\"revoked\"} ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn a_revocation_through_any_replica_is_answered_as_revoked_by_all_three_within_two_seconds() {
    let f = fleet();
    let p = f.path();
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let replicas = f.start_all();
    let mut seen_after = Vec::new();
    for (i, via) in replicas.iter().enumerate() {
        let serial = format!("F1EE7{i}");
        assert_eq!(revoke_via(via.admin, &tok, &serial), 200);
        let acked = Instant::now();
        let s = Serial::from_hex(&serial).expect("hex");
        // The fleet.poll default is 1 s; the README promises visibility within
        // 2 s. That is measured (printed below, and by loadtest), not
        // asserted: a test bounded by wall time fails on a busy machine.
        eventually(
            WAIT_SECS,
            &format!("{serial} revoked on every replica"),
            || {
                replicas
                    .iter()
                    .all(|d| {
                        let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
                        try_ocsp_status_at(d, &ca, &s, now).is_ok_and(|v| v.status == "revoked")
                    })
                    .then_some(())
            },
        );
        seen_after.push(acked.elapsed());
    }
    eprintln!("revocation visible on all three replicas after {seen_after:?}");
    for d in &replicas {
        metric_reaches(
            d,
            "revocd_fleet_batches_applied_total{source=\"peer\"}",
            2.0,
        );
        eventually(WAIT_SECS, "no lag", || {
            (metric(d, "revocd_fleet_lag_batches") == 0.0).then_some(())
        });
    }
    // The replicas also race to publish CRLs; conditional writes leave one
    // CRL holding all three revocations.
    let crl = eventually(60, "a CRL with the three fleet revocations", || {
        let (_, _, body) = moto_get(f.moto.port, "/pki/crls/demo.crl").filter(|r| r.0 == 200)?;
        let entries = revocd::crl::build::entries_of(&body).ok()?;
        let serials: BTreeSet<String> = entries.iter().map(|e| e.serial.to_hex()).collect();
        (0..3)
            .all(|i| serials.contains(&format!("F1EE7{i}")))
            .then_some(body)
    });
    revocd::crl::build::check(&crl, &ca).expect("the published CRL verifies");
}

#[test]
fn a_thousand_revocations_spread_across_three_replicas_are_all_present_after_a_restart() {
    let f = fleet();
    let p = f.path();
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let mut replicas = f.start_all();
    let admins: Vec<SocketAddr> = replicas.iter().map(|d| d.admin).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<BTreeSet<usize>>> = Arc::default();
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let (next, acked, admins, tok) =
                (next.clone(), acked.clone(), admins.clone(), tok.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= 1000 {
                    return;
                }
                let code = revoke_via(admins[i % 3], &tok, &format!("{:X}", 0x10_0000 + i));
                if code == 200 {
                    acked.lock().expect("lock").insert(i);
                } else {
                    eprintln!("revocation {i} via replica {}: {code}", i % 3);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(acked.len(), 1000, "every revocation is accepted");
    // 1,000 plus the demo's revoked leaf, on every replica.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !replicas.iter().all(|d| revoked_count(d) == 1001) {
        if Instant::now() > deadline {
            let state: Vec<String> = replicas
                .iter()
                .map(|d| {
                    let logs = d.logs();
                    let tail: Vec<&str> = logs.lines().rev().take(15).collect();
                    format!(
                        "revoked {} applied {} head {} lag {} store errors {} conflicts {}\n{}",
                        revoked_count(d),
                        metric(d, "revocd_fleet_applied_sequence"),
                        metric(d, "revocd_fleet_head_sequence"),
                        metric(d, "revocd_fleet_lag_batches"),
                        metric(d, "revocd_fleet_store_errors_total"),
                        metric(d, "revocd_fleet_write_conflicts_total"),
                        tail.join("\n")
                    )
                })
                .collect();
            panic!(
                "replicas did not converge in 30 s:\n{}",
                state.join("\n----\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let conflicts: f64 = replicas
        .iter()
        .map(|d| metric(d, "revocd_fleet_write_conflicts_total"))
        .sum();
    eprintln!("write conflicts across the three replicas: {conflicts}");
    for d in &mut replicas {
        d.kill();
    }
    drop(replicas);
    let replicas = f.start_all();
    for d in &replicas {
        assert_eq!(revoked_count(d), 1001, "after the restart");
    }
    for i in &acked {
        let serial = format!("{:X}", 0x10_0000 + i);
        assert_eq!(
            status_via(&replicas[i % 3], &tok, &serial),
            "revoked",
            "{serial}"
        );
    }
    let s = Serial::from_hex(&format!("{:X}", 0x10_0000 + 999)).expect("hex");
    for d in &replicas {
        assert_eq!(ocsp_status(d, &ca, &s).status, "revoked");
    }
}

#[test]
fn two_replicas_killed_during_writes_lose_no_acknowledged_revocation() {
    let f = fleet();
    let p = f.path();
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let mut replicas = f.start_all();
    let admins: Vec<SocketAddr> = replicas.iter().map(|d| d.admin).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeSet<usize>>> = Arc::default();
    let threads: Vec<_> = (0..9)
        .map(|t| {
            let (next, acked, admins, tok, stop) = (
                next.clone(),
                acked.clone(),
                admins.clone(),
                tok.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if revoke_via(admins[t % 3], &tok, &format!("{:X}", 0x20_0000 + i)) == 200 {
                        acked.lock().expect("lock").insert(i);
                    }
                }
            })
        })
        .collect();
    eventually(60, "300 acknowledged revocations", || {
        (acked.lock().expect("lock").len() >= 300).then_some(())
    });
    replicas[1].kill();
    replicas[2].kill();
    // The survivor keeps taking writes for a while.
    let at_kill = acked.lock().expect("lock").len();
    eventually(30, "more revocations through the survivor", || {
        (acked.lock().expect("lock").len() >= at_kill + 100).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("client");
    }
    let acked = acked.lock().expect("lock").clone();
    let survivor = &replicas[0];
    // Everything acknowledged by any replica reaches the survivor.
    eventually(
        30,
        "the survivor holding every acknowledged revocation",
        || {
            acked
                .iter()
                .all(|i| status_via(survivor, &tok, &format!("{:X}", 0x20_0000 + i)) == "revoked")
                .then_some(())
        },
    );
    let good = serial_of(&p.join("leaf-good.pem"));
    assert_eq!(
        ocsp_status(survivor, &ca, &Serial::from_hex(&good).expect("hex")).status,
        "good",
        "the survivor keeps serving"
    );
    // The killed replicas come back with everything.
    let back = [f.start(1), f.start(2)];
    for d in &back {
        for i in &acked {
            assert_eq!(
                status_via(d, &tok, &format!("{:X}", 0x20_0000 + i)),
                "revoked"
            );
        }
    }
    eprintln!(
        "{} revocations acknowledged, {} after two of three replicas were killed",
        acked.len(),
        acked.len() - at_kill
    );
}

#[test]
fn an_idle_replica_costs_one_304_per_poll() {
    let f = fleet();
    // Replica 1 reaches the ledger store through a proxy that records every
    // answer's status (its CRLs still go to moto directly).
    let proxy = fault_proxy(f.store.port);
    let config = &f.configs[0];
    let text = std::fs::read_to_string(config).expect("config");
    let fleet_at = text.find("[fleet]").expect("fleet section");
    let (head, tail) = text.split_at(fleet_at);
    std::fs::write(
        config,
        format!(
            "{head}{}",
            tail.replace(
                &format!("127.0.0.1:{}", f.store.port),
                &format!("127.0.0.1:{}", proxy.port)
            )
        ),
    )
    .expect("config");
    let d = f.start(0);
    // Past start-up (recovery reads, the first polls), then six polls made
    // while nothing happens.
    let seen = || proxy.statuses.lock().expect("lock").len();
    let ready = seen();
    let settled = eventually(WAIT_SECS, "the first polls after start", || {
        let n = seen();
        (n >= ready + 2).then_some(n)
    });
    eventually(WAIT_SECS, "six idle polls", || {
        (seen() >= settled + 6).then_some(())
    });
    let idle: Vec<u16> = proxy.statuses.lock().expect("lock")[settled..].to_vec();
    let not_modified = idle.iter().filter(|&&s| s == 304).count();
    // Head reads are 304s; every 10th poll also probes the next batch (404).
    assert!(
        idle.iter().all(|&s| s == 304 || s == 404) && not_modified * 2 >= idle.len(),
        "idle polls: {idle:?}"
    );
    assert_eq!(metric(&d, "revocd_fleet_store_errors_total"), 0.0);
}

/// Issue 13, item 8: a batch object that fails its checksum is never
/// skipped. A running follower stops applying at it, sets
/// `revocd_fleet_corrupt_batch` and keeps serving what it has; writes wait
/// (503) rather than build on it; `ledger verify` names it; a replica
/// starting against it refuses to start.
#[test]
fn a_corrupt_fleet_batch_is_never_skipped_and_followers_keep_serving() {
    let f = fleet();
    let tok = token(f.path());
    let ca = load_cert(&f.path().join("ca.pem"));
    let r1 = f.start(0);
    let r2 = f.start(1);
    assert_eq!(revoke_via(r1.admin, &tok, "0A01"), 200);
    eventually(30, "r2 applies the revocation", || {
        (status_via(&r2, &tok, "0A01") == "revoked").then_some(())
    });
    let applied = metric(&r2, "revocd_fleet_applied_sequence") as u64;
    // The fleet ledger as JSON lines: every batch's records, in order.
    let dump = |expect_ok: bool| {
        let out = run(Command::new(BIN)
            .args(["ledger", "dump", "--config"])
            .arg(&f.configs[2])
            .envs(MOTO_ENV));
        assert_eq!(out.status.success(), expect_ok, "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let lines = dump(true);
    // ... attributed to the operator who made it (the demo's `admin`), and
    // the index import at start to `index`.
    assert!(
        lines.lines().any(|l| l.contains("\"serial\":\"0A01\"")
            && l.contains("\"change\":\"revoke\"")
            && l.contains("\"author\":\"admin\"")),
        "{lines}"
    );
    assert!(
        lines
            .lines()
            .all(|l| !l.contains("\"author\":\"unattributed\"")),
        "{lines}"
    );
    // Another writer's batch at the next position, damaged in the store: the
    // last batch's bytes with one byte flipped (its checksum fails).
    let next = applied + 1;
    // (object_store keeps the name `ledger/<seq>` as one path segment, so the
    // key in the bucket is `fleet/ledger%2F<seq>`.)
    let (_, _, mut bytes) = moto_get(f.moto.port, &format!("/pki/fleet/ledger%252F{applied:020}"))
        .filter(|r| r.0 == 200)
        .unwrap_or_else(|| {
            panic!(
                "the last batch; the bucket holds {:?}",
                moto_get(f.moto.port, "/pki?list-type=2")
                    .map(|r| String::from_utf8_lossy(&r.2).to_string())
            )
        });
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let damaged = f.path().join("damaged-batch");
    std::fs::write(&damaged, &bytes).expect("write");
    let out = run(Command::new(require("curl"))
        .args([
            "-s",
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", damaged.display()))
        .arg(format!(
            "http://127.0.0.1:{}/pki/fleet/ledger%252F{next:020}",
            f.moto.port
        )));
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + std::time::Duration::from_secs(40);
    while metric(&r2, "revocd_fleet_corrupt_batch") as u64 != next {
        assert!(
            Instant::now() < deadline,
            "r2 never reported batch {next} as corrupt: {}\nstore: {:?}",
            r2.logs(),
            moto_get(f.moto.port, &format!("/pki/fleet/ledger%252F{next:020}"))
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A write cannot build on it: refused, not acknowledged.
    assert_eq!(revoke_via(r1.admin, &tok, "0A02"), 503);
    // Both keep serving what they have.
    for d in [&r1, &r2] {
        assert_eq!(
            ocsp_status(d, &ca, &Serial::from_hex("0A01").expect("hex")).status,
            "revoked"
        );
    }
    let verify = run(Command::new(BIN)
        .args(["ledger", "verify", "--config"])
        .arg(&f.configs[2])
        .envs(MOTO_ENV));
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).contains(&format!("ledger batch {next} in the store is corrupt")),
        "{}",
        text(&verify)
    );
    dump(false);
    let (code, logs) = serve_until_exit(&f.configs[2], &MOTO_ENV, 60);
    assert_eq!(
        code,
        Some(1),
        "a replica must not start past a corrupt batch: {logs}"
    );
    assert!(logs.contains("corrupt"), "{logs}");
}
