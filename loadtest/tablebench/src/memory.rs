//! revocd-memory: bytes allocated per pre-signed answer, counted in
//! process by a global allocator that tracks live bytes (allocator slack
//! and memory a freed table leaves behind, which blur RSS, are not in it).
//!
//! Builds a real `revocd init` PKI (a delegated responder of ALGORITHM:
//! ecdsa-p256 by default, or ml-dsa-44/65/87),
//! registers SERIALS serials in the issuer's state, then pre-signs the
//! current window under SHA-1 and SHA-256 into the answer store, in memory
//! or in files, and reports: live bytes per serial of state, live bytes per
//! answer in the store (all told: index, answers, chunk slack), and the
//! process RSS for comparison.
//!
//! With WINDOWS = 2 the next window is pre-signed too (four answers a
//! serial: what a daemon holds during the second half of a window).
//!
//! Also reports one answer's DER size as served (with and without the
//! responder certificate every answer of the signer carries, which the
//! store keeps once), to compare the bytes per answer with.
//!
//!   revocd-memory SERIALS [memory|files] [WINDOWS=1] [ALGORITHM=ecdsa-p256]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use revocd::clock::{Clock, SystemClock};
use revocd::metrics::Metrics;
use revocd::ocsp::Signer;
use revocd::ocsp::Why;
use revocd::state::{Change, Serial};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only the
// live byte count is kept beside it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0)
        / 1024
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().context("SERIALS")?.parse()?;
    let tables = args.next().unwrap_or_else(|| "memory".into());
    let windows: usize = args.next().map_or(Ok(1), |w| w.parse())?;
    let algorithm = match args.next() {
        Some(a) => <revocd::tools::demo::Algorithm as clap::ValueEnum>::from_str(&a, true)
            .map_err(|e| anyhow::anyhow!("ALGORITHM: {e}"))?,
        None => Default::default(),
    };
    let dir = tempfile_dir()?;
    let out = revocd::tools::demo::init(&revocd::tools::demo::InitOptions {
        dir: dir.clone(),
        listen: "127.0.0.1:8080".into(),
        admin_listen: "127.0.0.1:9090".into(),
        force: false,
        algorithm,
    })?;
    let (config, issuers) = revocd::daemon::load(&out.config, SystemClock.now())?;
    let signer = Signer::new(
        revocd::issuer::Issuers::new(issuers),
        &config.ocsp,
        Arc::new(SystemClock),
        Metrics::new(),
    );
    if tables == "files" {
        signer.use_answer_files(dir.join("answers"));
    }
    let base = live();
    let state = &signer.issuers()[0].state;
    for i in 0..n {
        let serial = Serial::from_content(&(0x1000_0000u64 + u64::from(i)).to_be_bytes());
        state
            .apply(
                &Change::Register {
                    serial,
                    not_after: 1_900_000_000,
                },
                revocd::state::Author::UNRECORDED,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let with_state = live();
    let current = signer.windows().at(SystemClock.now());
    let serials = state.serials();
    let listed = live();
    let t = Instant::now();
    let sample = signer.presign_blocking(0, current, &serials[..1], Why::Presign);
    let sample = &sample.first().context("a sample answer")?.signed;
    let (der_len, own_len) = (sample.len(), sample.own_der().len());
    let mut window = current;
    for _ in 0..windows {
        signer.reserve_window(window, serials.len());
        std::thread::scope(|s| {
            for part in serials.chunks(serials.len().div_ceil(2).max(1)) {
                let r = &signer;
                s.spawn(move || {
                    for batch in part.chunks(256) {
                        let signed = r.presign_blocking(0, window, batch, Why::Presign);
                        r.store(window, signed);
                    }
                });
            }
        });
        signer.seal_window(window);
        window = signer.windows().next(window);
    }
    let stored = live();
    let (answers, answer_bytes) = signer.cache_usage();
    println!(
        "{n} serials, answer tables in {tables}, {windows} window(s): {answers} answers pre-signed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!(
        "  one answer: {der_len} bytes DER as served, {own_len} without the responder certificate ({algorithm:?})"
    );
    println!(
        "  state: {:.1} live bytes per serial",
        (with_state - base) as f64 / f64::from(n)
    );
    println!(
        "  answer store: {:.1} live bytes per answer all told ({:.1} of them the answers' own bytes in memory{})",
        (stored - listed) as f64 / answers as f64,
        if tables == "files" { 0.0 } else { answer_bytes as f64 / answers as f64 },
        if tables == "files" {
            format!("; {:.1} bytes per answer in the file", answer_bytes as f64 / answers as f64)
        } else {
            String::new()
        }
    );
    println!(
        "  state + store: {:.1} live bytes per answer; process RSS {} MiB",
        (stored - listed + with_state - base) as f64 / answers as f64,
        rss_mib()
    );
    drop(serials);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("revocd-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
