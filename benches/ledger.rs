//! Ledger figures against the real daemon (a report, not a timed test):
//!
//! 1. revocations per second through the admin API (64 concurrent clients);
//! 2. start-up time to ready with 1M registered certificates and 100k
//!    revocations, from a snapshot and from a ledger log alone.
//!
//! `cargo bench --bench ledger` (set LEDGER_BENCH_CERTS to scale part 2).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use revocd::clock::{Clock, SystemClock};
use revocd::ledger::record::{self, Record};
use revocd::state::{Change, Entry, Reason, Serial, Status};

const BIN: &str = env!("CARGO_BIN_EXE_revocd");

fn start(config: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut admin = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(a) = line.strip_prefix("revocd: admin listener on http://") {
            admin = a.parse().ok();
            break;
        }
    }
    (child, admin.expect("admin address"))
}

fn call(addr: SocketAddr, req: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn wait_ready(admin: SocketAddr) {
    while call(admin, "GET /readyz HTTP/1.0\r\n\r\n") != Some(200) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn init(dir: &Path) -> std::path::PathBuf {
    revocd::tools::demo::init(&revocd::tools::demo::InitOptions {
        dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        force: false,
        algorithm: Default::default(),
    })
    .expect("init")
    .config
}

fn revocations_per_second() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = init(dir.path());
    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("token");
    let (mut child, admin) = start(&config);
    wait_ready(admin);
    let total = 20_000usize;
    let next = Arc::new(AtomicUsize::new(1));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (next, ok, token) = (next.clone(), ok.clone(), token.trim().to_string());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i > total {
                    return;
                }
                let body = format!(r#"{{"serial": "{i:X}", "reason": "keyCompromise"}}"#);
                let req = format!(
                    "POST /v1/issuers/demo/revocations HTTP/1.0\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if call(admin, &req) == Some(200) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    let secs = started.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    println!(
        "admin API: {n} revocations acknowledged (fsynced) in {secs:.2} s = {:.0} revocations/s (64 clients, one HTTP/1.0 connection per request)",
        n as f64 / secs
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn entries(n_certs: u32, n_revoked: u32, now: i64) -> Vec<(Serial, Entry)> {
    (1..=n_certs)
        .map(|i| {
            let serial =
                Serial::from_hex(&format!("{:X}", 0x1000_0000u64 + u64::from(i))).expect("hex");
            let status = if i <= n_revoked {
                Status::Revoked {
                    at: now - 86_400,
                    reason: Reason::KeyCompromise,
                    invalidity_date: None,
                }
            } else {
                Status::Good
            };
            (
                serial,
                Entry {
                    not_after: Some(now + 90 * 86_400),
                    status,
                    revision: 0,
                    author: revocd::state::Author::named("bench"),
                },
            )
        })
        .collect()
}

fn startup(n_certs: u32, n_revoked: u32, from_snapshot: bool) {
    let dir = tempfile::tempdir().expect("tmp");
    let config = init(dir.path());
    let ledger_dir = dir.path().join("data/ledger");
    std::fs::create_dir_all(&ledger_dir).expect("dir");
    let now = SystemClock.now();
    let es = entries(n_certs, n_revoked, now);
    if from_snapshot {
        revocd::ledger::write_snapshot(
            &ledger_dir,
            u64::from(n_certs),
            &[("demo".to_string(), es)],
        )
        .expect("snapshot");
    } else {
        let mut buf = record::LOG_MAGIC.to_vec();
        let mut seq = 0;
        for (serial, e) in &es {
            seq += 1;
            let change = Change::Register {
                serial: serial.clone(),
                not_after: e.not_after.unwrap_or(now),
            };
            record::encode(
                &Record {
                    seq,
                    issuer: "demo".into(),
                    change,
                    author: "bench".into(),
                },
                &mut buf,
            );
            if let Status::Revoked { at, reason, .. } = e.status {
                seq += 1;
                let change = Change::Revoke {
                    serial: serial.clone(),
                    at,
                    reason,
                    invalidity_date: None,
                };
                record::encode(
                    &Record {
                        seq,
                        issuer: "demo".into(),
                        change,
                        author: "bench".into(),
                    },
                    &mut buf,
                );
            }
        }
        std::fs::write(ledger_dir.join("log-00000000000000000001.rvl"), buf).expect("log");
    }
    let started = Instant::now();
    let (mut child, admin) = start(&config);
    wait_ready(admin);
    let ready = started.elapsed().as_secs_f64();
    let mut s = TcpStream::connect(admin).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("write");
    let mut m = String::new();
    s.read_to_string(&mut m).expect("read");
    let replay = m
        .lines()
        .find_map(|l| l.strip_prefix("revocd_ledger_replay_seconds "))
        .unwrap_or("?");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!(
        "start-up from {}: {n_certs} certificates, {n_revoked} revoked: state rebuilt in {replay} s, ready (current window pre-signed, 2 hashes) in {ready:.1} s; {rss}",
        if from_snapshot { "a snapshot" } else { "the ledger log alone" }
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: u32 = std::env::var("LEDGER_BENCH_CERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    revocations_per_second();
    startup(n, n / 10, true);
    startup(n, n / 10, false);
}
