//! State lookup with 1M and 10M tracked serials, and what each tracked
//! serial costs in memory. `cargo bench --bench state`.
//!
//! Serials are 16 random-looking octets (as CAs issue them); every tenth is
//! revoked. Memory is the growth of the process RSS while the state is
//! built, divided by the serials it holds (printed before the timings).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use revocd::state::{Change, Entry, IssuerState, Reason, Serial, Status};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The i-th serial: 16 octets from a mixing function, top bit clear.
fn serial(i: u64) -> Serial {
    let mut x = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut b = [0u8; 16];
    for chunk in b.chunks_mut(8) {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    b[0] &= 0x7f;
    b[0] |= 0x01;
    Serial::from_content(&b)
}

/// Builds a state of `n` serials the way recovery does (one restore) and
/// reports the RSS it added.
fn build(n: u64) -> (IssuerState, f64) {
    let state = IssuerState::new();
    let before = rss_bytes();
    const CHUNK: u64 = 1_000_000;
    let mut start = 0;
    let mut all = Vec::new();
    while start < n {
        let end = (start + CHUNK).min(n);
        all.extend((start..end).map(|i| {
            let status = if i % 10 == 0 {
                Status::Revoked {
                    at: 1_800_000_000,
                    reason: Reason::KeyCompromise,
                    invalidity_date: None,
                }
            } else {
                Status::Good
            };
            (
                serial(i),
                Entry {
                    not_after: Some(1_900_000_000),
                    status,
                    revision: 0,
                    author: revocd::state::Author::UNRECORDED,
                },
            )
        }));
        start = end;
    }
    state.restore(all);
    let per = (rss_bytes().saturating_sub(before)) as f64 / n as f64;
    (state, per)
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_lookup");
    g.throughput(Throughput::Elements(1));
    for n in [1_000_000u64, 10_000_000] {
        let (state, per) = build(n);
        eprintln!(
            "state: {n} serials tracked, {per:.1} bytes of RSS per serial ({:.0} MB)",
            per * n as f64 / 1e6
        );
        let probes: Vec<Serial> = (0..4096).map(|i| serial((i * 7919) % n)).collect();
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) & 4095;
                state.lookup(std::hint::black_box(&probes[k]))
            })
        });
        // A revocation on a big state: the change path the ledger takes.
        let mut r = 0u64;
        g.bench_with_input(BenchmarkId::new("revoke", n), &n, |b, _| {
            b.iter(|| {
                r += 1;
                state.apply(
                    &Change::Revoke {
                        serial: serial(n + r),
                        at: 1_800_000_000,
                        reason: Reason::Superseded,
                        invalidity_date: None,
                    },
                    revocd::state::Author::UNRECORDED,
                )
            })
        });
        drop(state);
    }
    g.finish();
}

criterion_group! {
    name = state_benches;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(state_benches);
