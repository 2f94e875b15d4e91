//! Hit-path counts kept per thread and summed when scraped.
//!
//! Every answered request moves a handful of counts (a cache hit, its
//! status and hash, its method, the answer's age). As shared prometheus
//! counters, each is a locked add on a cache line every core writes: at
//! 100k requests a second the lines bounce between the cores on every
//! request. Here each thread adds to its own shard (one writer, so a plain
//! load and store, on lines no other core writes) and the scrape sums the
//! shards into the exported families ([`Tallied`]), so a scrape always sees
//! every count already made, from every thread. A thread that exits leaves
//! its counts and, from the next scrape on, no shard.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily};

use crate::pki::HashAlg;

/// Upper bounds of `revocd_ocsp_response_age_seconds`, in seconds.
pub const AGE_BUCKETS: [f64; 9] = [
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 2700.0, 3600.0, 7200.0,
];

/// Methods whose successful requests are tallied, in slot order.
pub const METHODS: [&str; 3] = ["GET", "HEAD", "POST"];
/// Certificate statuses as `revocd_ocsp_answers_total` labels them, in
/// row order (see `status_row`).
pub const STATUSES: [&str; 3] = ["good", "revoked", "unknown"];

const ALGS: usize = HashAlg::ALL.len();
const HITS: usize = 0;
const SUCCESS: usize = HITS + 1;
const ANSWERS: usize = SUCCESS + METHODS.len();
/// One slot per bucket (not cumulative) and one for +Inf.
const AGE: usize = ANSWERS + STATUSES.len() * ALGS;
const AGE_SUM: usize = AGE + AGE_BUCKETS.len() + 1;
const SLOTS: usize = AGE_SUM + 1;

/// One thread's counts, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    counts: [AtomicU64; SLOTS],
}

impl Shard {
    /// Adds `n` to slot `i`. Only the owning thread writes a shard, so a
    /// load and a store suffice; readers see each count whole.
    fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.counts.get(i) {
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        }
    }

    /// One answer's age: its bucket, and the sum (two's complement, so a
    /// negative age subtracts).
    fn add_age(&self, age: i64) {
        self.add(AGE + age_bucket(age), 1);
        self.add(AGE_SUM, age as u64);
    }
}

#[derive(Debug)]
struct Shards {
    /// Distinct per tally, never reused.
    id: u64,
    list: Mutex<Threads>,
}

/// The shards of the threads that count, and what the threads gone since
/// counted (so threads that come and go, like the blocking pool's, leave
/// no shard behind).
#[derive(Debug)]
struct Threads {
    live: Vec<Arc<Shard>>,
    gone: [u64; SLOTS],
}

impl Default for Shards {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            list: Mutex::new(Threads {
                live: Vec::new(),
                gone: [0; SLOTS],
            }),
        }
    }
}

/// The hit path's counts for one [`crate::metrics::Metrics`].
#[derive(Debug, Clone, Default)]
pub struct Tally {
    shards: Arc<Shards>,
}

thread_local! {
    /// This thread's shard of each tally it has counted into, by the
    /// tally's id (tests and benches run several on one thread).
    static MINE: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

impl Tally {
    /// Runs `f` on this thread's shard, made on first use.
    fn with(&self, f: impl FnOnce(&Shard)) {
        let id = self.shards.id;
        MINE.with(|mine| {
            let mut mine = mine.borrow_mut();
            if let Some((_, s)) = mine.iter().find(|(i, _)| *i == id) {
                return f(s);
            }
            // Shards of tallies dropped since (only this thread holds
            // them) are forgotten.
            mine.retain(|(_, s)| Arc::strong_count(s) > 1);
            let shard = Arc::new(Shard {
                counts: std::array::from_fn(|_| AtomicU64::new(0)),
            });
            self.shards
                .list
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .live
                .push(Arc::clone(&shard));
            f(&shard);
            mine.push((id, shard));
        })
    }

    /// A hit on a pre-signed answer: the hit, its status row, its CertID's
    /// hash and its age in seconds, in one visit to the shard.
    pub fn presigned_hit(&self, row: u8, alg: HashAlg, age: i64) {
        self.with(|s| {
            s.add(HITS, 1);
            s.add(status_slot(row, alg), 1);
            s.add_age(age);
        })
    }

    /// One status (a CertID answered the long way).
    pub fn status(&self, row: u8, alg: HashAlg) {
        self.with(|s| s.add(status_slot(row, alg), 1))
    }

    /// A cache hit the long way.
    pub fn hit(&self) {
        self.with(|s| s.add(HITS, 1))
    }

    /// An answer's age, for one answered the long way.
    pub fn age(&self, age: i64) {
        self.with(|s| s.add_age(age))
    }

    /// One successful request by method (an index into [`METHODS`]).
    pub fn success(&self, method: usize) {
        self.with(|s| s.add(SUCCESS + method.min(METHODS.len() - 1), 1))
    }

    /// Every slot summed over the threads. The shards of threads that have
    /// exited (only this list still holds them) are folded into `gone`.
    fn sums(&self) -> [u64; SLOTS] {
        let mut threads = self.shards.list.lock().unwrap_or_else(|e| e.into_inner());
        let Threads { live, gone } = &mut *threads;
        let add = |out: &mut [u64; SLOTS], shard: &Shard| {
            for (o, c) in out.iter_mut().zip(&shard.counts) {
                *o = o.wrapping_add(c.load(Ordering::Relaxed));
            }
        };
        live.retain(|shard| {
            if Arc::strong_count(shard) > 1 {
                return true;
            }
            // The thread dropped its reference (a release): after this
            // fence its last counts are visible.
            std::sync::atomic::fence(Ordering::Acquire);
            add(gone, shard);
            false
        });
        let mut out = *gone;
        for shard in live.iter() {
            add(&mut out, shard);
        }
        out
    }
}

/// The slot of a status row (see `STATUSES`) and hash.
fn status_slot(row: u8, alg: HashAlg) -> usize {
    let col = HashAlg::ALL.iter().position(|a| *a == alg).unwrap_or(0);
    ANSWERS + usize::from(row).min(STATUSES.len() - 1) * ALGS + col
}

/// The bucket slot of an age (the first bound it does not exceed; +Inf
/// last). Ages are whole seconds, so the comparison is exact.
fn age_bucket(age: i64) -> usize {
    AGE_BUCKETS
        .iter()
        .position(|b| age as f64 <= *b)
        .unwrap_or(AGE_BUCKETS.len())
}

/// Which tallied family a [`Tallied`] collector exports.
#[derive(Debug, Clone, Copy)]
pub enum Family {
    /// `revocd_ocsp_cache_hits_total`
    Hits,
    /// `revocd_ocsp_requests_total`, the `successful` series
    Requests,
    /// `revocd_ocsp_answers_total`
    Answers,
    /// `revocd_ocsp_response_age_seconds`
    Age,
}

/// A registered family plus what the tally holds for it.
pub struct Tallied {
    inner: Box<dyn Collector>,
    tally: Tally,
    family: Family,
}

impl Tallied {
    pub fn new(inner: Box<dyn Collector>, tally: Tally, family: Family) -> Self {
        Self {
            inner,
            tally,
            family,
        }
    }
}

impl Collector for Tallied {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.collect();
        let sums = self.tally.sums();
        for family in &mut families {
            merge(family, self.family, &sums);
        }
        families
    }
}

fn label<'m>(m: &'m proto::Metric, name: &str) -> &'m str {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
        .unwrap_or("")
}

fn add_to_counter(m: &mut proto::Metric, n: u64) {
    let mut c = proto::Counter::default();
    c.set_value(m.get_counter().get_value() + n as f64);
    m.set_counter(c);
}

/// Adds the tallied counts to the series the inner collector exported
/// (the tallied series are made when the responder resolves them, so they
/// are always there).
fn merge(family: &mut MetricFamily, which: Family, sums: &[u64; SLOTS]) {
    for m in family.mut_metric() {
        match which {
            Family::Hits => add_to_counter(m, sums[HITS]),
            Family::Requests => {
                let slot = METHODS.iter().position(|x| *x == label(m, "method"));
                if let (Some(i), "successful") = (slot, label(m, "status")) {
                    add_to_counter(m, sums[SUCCESS + i]);
                }
            }
            Family::Answers => {
                let row = STATUSES.iter().position(|x| *x == label(m, "cert_status"));
                let col = HashAlg::ALL
                    .iter()
                    .position(|a| a.name() == label(m, "hash"));
                if let (Some(r), Some(c)) = (row, col) {
                    add_to_counter(m, sums[ANSWERS + r * ALGS + c]);
                }
            }
            Family::Age => {
                let mut h = m.get_histogram().clone();
                let mut cumulative = 0u64;
                let mut buckets = h.get_bucket().to_vec();
                for (i, b) in buckets.iter_mut().enumerate() {
                    cumulative += sums[AGE + i];
                    b.set_cumulative_count(b.cumulative_count() + cumulative);
                }
                let count: u64 = sums[AGE..AGE_SUM].iter().sum();
                h.set_bucket(buckets);
                h.set_sample_count(h.get_sample_count() + count);
                h.set_sample_sum(h.get_sample_sum() + sums[AGE_SUM] as i64 as f64);
                m.set_histogram(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_that_exit_leave_their_counts_and_no_shard() {
        let tally = Tally::default();
        for _ in 0..5 {
            let t = tally.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    t.hit();
                }
            })
            .join()
            .expect("thread");
        }
        assert_eq!(tally.sums()[HITS], 50);
        let live = |t: &Tally| t.shards.list.lock().expect("lock").live.len();
        assert_eq!(live(&tally), 0);
        tally.hit();
        assert_eq!(tally.sums()[HITS], 51);
        assert_eq!(live(&tally), 1);
    }

    #[test]
    fn ages_fall_into_the_first_bucket_they_do_not_exceed() {
        assert_eq!(age_bucket(-3), 0);
        assert_eq!(age_bucket(1), 0);
        assert_eq!(age_bucket(2), 1);
        assert_eq!(age_bucket(3600), 7);
        assert_eq!(age_bucket(7201), AGE_BUCKETS.len());
    }
}
