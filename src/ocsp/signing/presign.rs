//! The background pre-signer (docs/design.md: the hot path never signs).
//!
//! At start it signs the current window with every core, for at most
//! `ocsp.startup-presign`; then revocd is ready and the rest goes on at the
//! pre-signer's share of the CPU (`ocsp.presign-cpu-share`). During each
//! window it signs the next one, each serial at a stable offset in the first
//! three quarters of the window, so the work is spread over the window
//! instead of landing at the rollover.
//!
//! When the next window cannot all be signed within the share (an RSA key
//! and millions of serials), it degrades: serials clients asked about in
//! this window or the last go first, then the rest, as fast as the share
//! allows; whatever the rollover finds unsigned is signed on its first
//! request (single flight, within the signing budget).

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::signer::{Signer, Why};
use crate::clock::Window;
use crate::state::Serial;

/// Serials signed per blocking batch.
const BATCH: usize = 256;

/// Fraction of the window over which the next window's signing is spread;
/// the rest is slack before the rollover.
const SPREAD_NUM: i64 = 3;
const SPREAD_DEN: i64 = 4;

/// When, within `window`, the pre-signer signs `serial` for the next window.
/// Stable per serial, spread evenly over the first three quarters.
pub fn due_time(window: Window, issuer: &str, serial: &Serial) -> i64 {
    let spread = ((window.end - window.start) * SPREAD_NUM / SPREAD_DEN).max(1);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    issuer.hash(&mut h);
    serial.hash(&mut h);
    let offset = (h.finish() % u64::try_from(spread).unwrap_or(1)) as i64;
    window.start + offset
}

/// Seconds the pre-signer has, from `now`, to sign the window after
/// `window` at its share. Normally until the spread ends (the first three
/// quarters of `window`), leaving the last quarter as slack. Past that
/// point (revocd started late in a window) every due time has passed and
/// the plan is signed at once: it then has three quarters of what is left
/// before the next window starts, the same slack in proportion. (Counting
/// only to the spread's end gave no time at all, so a start at 15:45 called
/// a plan of two serials too large for the share.)
pub fn presign_time_left(window: Window, now: i64) -> i64 {
    let spread_end = window.start + (window.end - window.start) * SPREAD_NUM / SPREAD_DEN;
    if now < spread_end {
        spread_end - now
    } else {
        (window.end - now).max(0) * SPREAD_NUM / SPREAD_DEN
    }
}

/// How much of the machine the pre-signer may keep busy.
///
/// With file keys the limit is the CPU: `share` of `cores`, and a worker
/// rests after signing so the share holds. With every OCSP key in an HSM the
/// limit is the HSM: `hsm_slots` workers (`pkcs11.max-in-flight`), each
/// mostly waiting on the HSM, without rest. Either way a worker's cost per
/// answer is measured in its wall seconds, and `capacity` is in the same
/// unit (worker-seconds per second), so the plan's estimate compares like
/// with like whether a signature takes 20 µs or a millisecond.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    share: f64,
    cores: usize,
    hsm_slots: Option<usize>,
}

impl Pace {
    pub fn new(share: f64, cores: usize) -> Self {
        Self {
            share: share.clamp(0.0, 1.0),
            cores: cores.max(1),
            hsm_slots: None,
        }
    }

    /// Paced by the HSM: `slots` signings at once.
    pub fn hsm(self, slots: Option<usize>) -> Self {
        Self {
            hsm_slots: slots.map(|s| s.max(1)),
            ..self
        }
    }

    /// Signing tasks run at once.
    pub fn workers(self) -> usize {
        if let Some(slots) = self.hsm_slots {
            return slots;
        }
        let w = (self.share * self.cores as f64).ceil() as usize;
        w.clamp(1, self.cores)
    }

    /// The most workers any pace of this pass may ask for.
    fn max_workers(self) -> usize {
        self.cores.max(self.hsm_slots.unwrap_or(0))
    }

    /// Worker-seconds of signing per second.
    pub fn capacity(self) -> f64 {
        match self.hsm_slots {
            Some(slots) => slots as f64,
            None => self.share * self.cores as f64,
        }
    }

    /// How long a worker rests after `busy` of signing so that all workers
    /// together keep `share` of the cores busy (0.25 of 2 cores: one worker,
    /// resting as long as it signed). No rest when the HSM is the limit.
    pub fn rest_after(self, busy: Duration) -> Duration {
        let (workers, capacity) = (self.workers() as f64, self.capacity());
        if capacity <= 0.0 || capacity >= workers {
            Duration::ZERO
        } else {
            busy.mul_f64(workers / capacity - 1.0)
        }
    }
}

/// One serial to sign, not before `due` (clock seconds).
#[derive(Debug, Clone)]
struct Item {
    due: i64,
    issuer: usize,
    serial: Serial,
}

/// What a pass over a plan did, per issuer.
#[derive(Debug, Default)]
struct Progress {
    signed: Vec<AtomicUsize>,
    /// Serials the window held before the pass (a table loaded at start).
    held: Vec<AtomicUsize>,
    /// (seconds busy, responses signed), for the cost estimate.
    cost: Mutex<Vec<(f64, u64)>>,
}

impl Progress {
    fn new(issuers: usize) -> Self {
        Self {
            signed: (0..issuers).map(|_| AtomicUsize::new(0)).collect(),
            held: (0..issuers).map(|_| AtomicUsize::new(0)).collect(),
            cost: Mutex::new(vec![(0.0, 0); issuers]),
        }
    }

    fn signed(&self, idx: usize) -> usize {
        self.signed
            .get(idx)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

/// One pass: `items` (in order) signed for `window` by `pace.workers()`
/// workers, each item not before its due time, until the queue is empty,
/// `stop_at` (clock seconds) passes or shutdown. `pace` may change while it
/// runs (start-up: every core until ready, then the share).
struct Pass {
    signer: Arc<Signer>,
    window: Window,
    queue: Mutex<VecDeque<Item>>,
    pace: watch::Receiver<Pace>,
    stop_at: i64,
    progress: Progress,
    label: &'static str,
    why: Why,
}

impl Pass {
    fn new(
        signer: &Arc<Signer>,
        window: Window,
        items: Vec<Item>,
        pace: watch::Receiver<Pace>,
        stop_at: i64,
        label: &'static str,
        why: Why,
    ) -> Arc<Self> {
        signer.reserve_window(window, items.len());
        Arc::new(Self {
            progress: Progress::new(signer.issuers().len()),
            signer: Arc::clone(signer),
            window,
            queue: Mutex::new(items.into()),
            pace,
            stop_at,
            label,
            why,
        })
    }

    /// Runs the workers until the pass is over; returns the items left.
    async fn run(self: &Arc<Self>, shutdown: &watch::Receiver<bool>) -> Vec<Item> {
        let mut set = tokio::task::JoinSet::new();
        let max = self.pace.borrow().max_workers();
        for worker in 0..max {
            let (pass, shutdown) = (Arc::clone(self), shutdown.clone());
            set.spawn(async move { pass.work(worker, shutdown).await });
        }
        while set.join_next().await.is_some() {}
        // The pass is over (done, out of time or stopped): a window written
        // to a file is sealed, so a restart finds it.
        let (r, window) = (Arc::clone(&self.signer), self.window);
        let _ = tokio::task::spawn_blocking(move || r.seal_window(window)).await;
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.drain(..).collect()
    }

    async fn work(self: Arc<Self>, worker: usize, mut shutdown: watch::Receiver<bool>) {
        let clock = Arc::clone(self.signer.clock());
        let mut pace_changes = self.pace.clone();
        loop {
            let pace = *pace_changes.borrow_and_update();
            let now = clock.now();
            if now >= self.stop_at || *shutdown.borrow() {
                return;
            }
            if worker >= pace.workers() {
                // Not needed at this pace: look again when it changes, or in
                // a second to see whether the pass is over.
                if self.is_empty() {
                    return;
                }
                tokio::select! {
                    _ = pace_changes.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = crate::shutdown::stopped(&mut shutdown) => return,
                }
                continue;
            }
            if !self.signer.resign_queue().is_empty() {
                // Answers a change made stale come first (`resign`).
                if !sleep_or_stop(&mut shutdown, Duration::from_millis(200)).await {
                    return;
                }
                continue;
            }
            if self.front_signer_down() {
                // Its HSM is down: signing now would only fail and lose the
                // items. Keep them and look again in a second.
                if !sleep_or_stop(&mut shutdown, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
            let (batch, idx, wait_until) = self.take(now);
            if batch.is_empty() {
                let Some(due) = wait_until else { return };
                let secs = (due.min(self.stop_at) - now).max(1);
                if !sleep_or_stop(&mut shutdown, Duration::from_secs(secs as u64)).await {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            let r = Arc::clone(&self.signer);
            let (window, n, why) = (self.window, batch.len(), self.why);
            // Stored in the blocking pool too: with file tables it writes.
            let responses = tokio::task::spawn_blocking(move || {
                let signed = r.presign_blocking(idx, window, &batch, why);
                let n = signed.len();
                r.store(window, signed);
                n
            })
            .await
            .unwrap_or_default();
            let busy = started.elapsed();
            self.account(idx, n, responses, busy);
            // Rest, but not past the end of the pass.
            let left = Duration::from_secs(u64::try_from(self.stop_at - clock.now()).unwrap_or(0));
            let rest = pace.rest_after(busy).min(left);
            if !rest.is_zero() && !sleep_or_stop(&mut shutdown, rest).await {
                return;
            }
        }
    }

    /// Whether the signer of the next item's issuer cannot sign now.
    fn front_signer_down(&self) -> bool {
        if !crate::pki::any_hsm_down() {
            return false;
        }
        let front = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .front()
            .map(|item| item.issuer);
        front
            .and_then(|idx| self.signer.issuers().get(idx))
            .is_some_and(|i| !i.signer().key().is_available())
    }

    fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// The next batch: items due by `now`, of one issuer, up to BATCH; or
    /// when the first item is not due yet, its due time.
    fn take(&self, now: i64) -> (Vec<Serial>, usize, Option<i64>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(first) = queue.front() else {
            return (Vec::new(), 0, None);
        };
        if first.due > now {
            return (Vec::new(), 0, Some(first.due));
        }
        let idx = first.issuer;
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            match queue.front() {
                Some(item) if item.due <= now && item.issuer == idx => {
                    if let Some(item) = queue.pop_front() {
                        batch.push(item.serial);
                    }
                }
                _ => break,
            }
        }
        (batch, idx, None)
    }

    fn account(&self, idx: usize, serials: usize, responses: usize, busy: Duration) {
        let m = self.signer.metrics();
        m.ocsp.presign_busy_seconds.inc_by(busy.as_secs_f64());
        let done = self.progress.signed[idx].fetch_add(serials, Ordering::Relaxed)
            + serials
            + self.progress.held[idx].load(Ordering::Relaxed);
        if let Some(issuer) = self.signer.issuers().get(idx) {
            m.ocsp
                .presigned_serials
                .with_label_values(&[&issuer.id, self.label])
                .set(i64::try_from(done).unwrap_or(i64::MAX));
        }
        let mut cost = self
            .progress
            .cost
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cost.get_mut(idx) {
            c.0 += busy.as_secs_f64();
            c.1 += responses as u64;
        }
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Every known serial of every issuer that `window` does not hold yet
/// (a table loaded at start holds most), due at once.
fn everything(signer: &Signer, window: Window) -> Vec<Item> {
    let mut items = Vec::new();
    for (idx, issuer) in signer.issuers().iter().enumerate() {
        let mut serials = issuer.state.serials();
        retain_unsigned(signer, window, idx, &mut serials);
        items.extend(serials.into_iter().map(|serial| Item {
            due: 0,
            issuer: idx,
            serial,
        }));
    }
    items
}

/// Keeps the serials `window` holds no answer for, on every core.
fn retain_unsigned(signer: &Signer, window: Window, idx: usize, serials: &mut Vec<Serial>) {
    let parts = cores();
    let chunk = serials.len().div_ceil(parts).max(1);
    let held: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = serials
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|s| signer.presigned_already(window, idx, s))
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if held.len() == serials.len() {
        let mut held = held.into_iter();
        serials.retain(|_| !held.next().unwrap_or(false));
    }
}

/// Signs `window` for every known serial of every issuer, using every core.
/// Returns how many serials were signed.
pub async fn presign_window(signer: &Arc<Signer>, window: Window, why: Why) -> usize {
    let slots = signer.presign_hsm_slots();
    let (_pace, pace_rx) = watch::channel(Pace::new(1.0, cores()).hsm(slots));
    let (_stop, shutdown) = watch::channel(false);
    let pass = Pass::new(
        signer,
        window,
        everything(signer, window),
        pace_rx,
        i64::MAX,
        "current",
        why,
    );
    pass.run(&shutdown).await;
    (0..signer.issuers().len())
        .map(|i| pass.progress.signed(i))
        .sum()
}

/// Runs until `shutdown` turns true: the current window at start, then
/// each next window during the one before it.
pub async fn run(signer: Arc<Signer>, mut shutdown: watch::Receiver<bool>) {
    let share = signer.presign_cpu_share();
    if share <= 0.0 {
        tracing::info!(
            "pre-signing off (ocsp.presign-cpu-share = 0): every answer is signed on its first request; ready"
        );
        signer.set_ready();
        crate::shutdown::stopped(&mut shutdown).await;
        return;
    }
    let pace = Pace::new(share, cores()).hsm(signer.presign_hsm_slots());
    let Some((mut window, mut cost)) = start_up(&signer, pace, &shutdown).await else {
        return;
    };
    let windows = signer.windows();
    let clock = Arc::clone(signer.clock());
    let mut first_window = true;
    loop {
        if !first_window {
            for i in 0..signer.issuers().len() {
                signer.requested(i).begin(window.index);
            }
        }
        first_window = false;
        let next = windows.next(window);
        if !presign_next(&signer, window, pace, &mut cost, &shutdown).await {
            return;
        }
        let now = clock.now();
        if now < next.start
            && !sleep_or_stop(
                &mut shutdown,
                Duration::from_secs((next.start - now) as u64),
            )
            .await
        {
            return;
        }
        // Serials planned but not reached (late start, overload) are signed
        // on demand.
        window = windows.at(clock.now());
    }
}

/// Start-up: the current window with every core, until done or until
/// `startup-presign` has passed; then ready, and the rest at `pace`.
/// Returns the current window and the cost of one response per issuer in
/// CPU-seconds, or `None` at shutdown.
async fn start_up(
    signer: &Arc<Signer>,
    pace: Pace,
    shutdown: &watch::Receiver<bool>,
) -> Option<(Window, Vec<f64>)> {
    let issuers = signer.issuers().len();
    let current = signer.windows().at(signer.clock().now());
    let started = Instant::now();
    let (pace_tx, pace_rx) =
        watch::channel(Pace::new(1.0, cores()).hsm(signer.presign_hsm_slots()));
    let r = Arc::clone(signer);
    let items = tokio::task::spawn_blocking(move || everything(&r, current))
        .await
        .unwrap_or_default();
    let mut to_sign = vec![0usize; issuers];
    for item in &items {
        to_sign[item.issuer] += 1;
    }
    let pass = Pass::new(
        signer,
        current,
        items,
        pace_rx,
        current.end,
        "current",
        Why::Presign,
    );
    let mut held_total = 0;
    for (idx, issuer) in signer.issuers().iter().enumerate() {
        let held = issuer.state.len().saturating_sub(to_sign[idx]);
        held_total += held;
        pass.progress.held[idx].store(held, Ordering::Relaxed);
        signer
            .metrics()
            .ocsp
            .presigned_serials
            .with_label_values(&[&issuer.id, "current"])
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }
    let mut first = {
        let (pass, shutdown) = (Arc::clone(&pass), shutdown.clone());
        tokio::spawn(async move { pass.run(&shutdown).await })
    };
    let finished = tokio::select! {
        _ = &mut first => true,
        () = tokio::time::sleep(signer.startup_presign()) => false,
    };
    let signed: usize = (0..issuers).map(|i| pass.progress.signed(i)).sum();
    tracing::info!(
        signed_serials = signed,
        loaded_serials = held_total,
        complete = finished,
        seconds = started.elapsed().as_secs_f64(),
        "current window pre-signed{}; ready",
        if finished {
            ""
        } else {
            " in part (the rest goes on at ocsp.presign-cpu-share; misses are signed on demand)"
        }
    );
    signer.set_ready();
    let _ = pace_tx.send(pace);
    if !finished {
        let _ = first.await;
    }
    if *shutdown.borrow() {
        return None;
    }
    // Cost per response per issuer: measured by the pass; where it signed
    // too little to tell, timed on a few throwaway signatures (off the
    // reactor: RSA takes milliseconds).
    let mut cost = vec![f64::NAN; issuers];
    update_cost(&mut cost, &pass.progress);
    let r = Arc::clone(signer);
    let cost = tokio::task::spawn_blocking(move || {
        cost.iter()
            .enumerate()
            .map(|(i, c)| if c.is_nan() { r.calibrate(i) } else { *c })
            .collect()
    })
    .await
    .unwrap_or_else(|_| vec![0.0; issuers]);
    Some((current, cost))
}

/// Plans the window after `window` within what `pace` allows in the time
/// left, and signs it; `cost` learns from the pass. False at shutdown.
async fn presign_next(
    signer: &Arc<Signer>,
    window: Window,
    pace: Pace,
    cost: &mut [f64],
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let next = signer.windows().next(window);
    let now = signer.clock().now();
    // Drawing the plan walks every serial (about a second at 1M): off the
    // reactor.
    let capacity = pace.capacity() * presign_time_left(window, now) as f64;
    let (r, costs) = (Arc::clone(signer), cost.to_vec());
    let drawn = tokio::task::spawn_blocking(move || draw(&r, window, &costs, capacity)).await;
    let Ok((plan, hot_count, estimate, degraded)) = drawn else {
        return false;
    };
    if degraded {
        tracing::warn!(
            serials = plan.len(),
            recently_requested = hot_count,
            estimate_cpu_seconds = estimate,
            budget_cpu_seconds = capacity,
            "the next window cannot all be pre-signed within ocsp.presign-cpu-share: recently requested serials first, the rest on demand"
        );
    } else {
        tracing::info!(
            serials = plan.len(),
            estimate_cpu_seconds = estimate,
            budget_cpu_seconds = capacity,
            window = next.start,
            "next window planned within ocsp.presign-cpu-share"
        );
    }
    let ocsp = &signer.metrics().ocsp;
    for issuer in signer.issuers().iter() {
        ocsp.presign_degraded
            .with_label_values(&[&issuer.id])
            .set(i64::from(degraded));
        ocsp.presigned_serials
            .with_label_values(&[&issuer.id, "next"])
            .set(0);
    }
    let planned = plan.len();
    let (_pace, pace_rx) = watch::channel(pace);
    let pass = Pass::new(
        signer,
        next,
        plan,
        pace_rx,
        next.start,
        "next",
        Why::Presign,
    );
    let left = pass.run(shutdown).await;
    if *shutdown.borrow() {
        return false;
    }
    update_cost(cost, &pass.progress);
    for (idx, issuer) in signer.issuers().iter().enumerate() {
        let missed = left.iter().filter(|i| i.issuer == idx).count();
        ocsp.presign_missed
            .with_label_values(&[&issuer.id])
            .set(i64::try_from(missed).unwrap_or(i64::MAX));
    }
    tracing::info!(
        planned,
        unsigned = left.len(),
        degraded,
        window = next.start,
        "next window pre-signed"
    );
    true
}

/// The plan for the window after `window`: every serial with its due time,
/// ordered (see `order`); also how many recently requested serials lead it,
/// the estimated signing cost in CPU-seconds and whether it exceeds
/// `capacity`.
fn draw(
    signer: &Signer,
    window: Window,
    cost: &[f64],
    capacity: f64,
) -> (Vec<Item>, usize, f64, bool) {
    let mut plan: Vec<Item> = Vec::new();
    let mut counts = Vec::new();
    let next = signer.windows().next(window);
    for (idx, issuer) in signer.issuers().iter().enumerate() {
        // What a table loaded at start already holds is not signed again.
        let mut serials = issuer.state.serials();
        retain_unsigned(signer, next, idx, &mut serials);
        counts.push(serials.len());
        plan.extend(serials.into_iter().map(|serial| Item {
            due: due_time(window, &issuer.id, &serial),
            issuer: idx,
            serial,
        }));
    }
    let estimate = estimate(&counts, signer.presign_hashes().len(), cost);
    let degraded = estimate > capacity;
    let (plan, hot_count) = order(plan, degraded, |i| {
        signer.requested(i.issuer).recently(&i.serial)
    });
    (plan, hot_count, estimate, degraded)
}

/// Worker-seconds to sign `counts[i]` serials of each issuer under `hashes`
/// hash algorithms at `cost[i]` seconds per answer.
fn estimate(counts: &[usize], hashes: usize, cost: &[f64]) -> f64 {
    counts
        .iter()
        .zip(cost)
        .map(|(n, c)| *n as f64 * hashes as f64 * c)
        .sum()
}

/// The order a window's plan is signed in. Normally by due time (the
/// spread). Degraded: serials `hot` says were requested lately first, then
/// the rest, each group in due order, all due at once (as fast as the share
/// allows). Returns the plan and how many hot serials lead it.
fn order(mut plan: Vec<Item>, degraded: bool, hot: impl Fn(&Item) -> bool) -> (Vec<Item>, usize) {
    if !degraded {
        plan.sort_by_key(|i| i.due);
        return (plan, 0);
    }
    let mut keyed: Vec<(bool, Item)> = plan.into_iter().map(|i| (!hot(&i), i)).collect();
    keyed.sort_by_key(|(cold, item)| (*cold, item.due));
    let hot_count = keyed.iter().take_while(|(cold, _)| !cold).count();
    let plan = keyed
        .into_iter()
        .map(|(_, mut item)| {
            item.due = 0;
            item
        })
        .collect();
    (plan, hot_count)
}

/// Moves each issuer's cost per response towards what `progress` measured.
fn update_cost(cost: &mut [f64], progress: &Progress) {
    let measured = progress.cost.lock().unwrap_or_else(PoisonError::into_inner);
    for (c, (busy, n)) in cost.iter_mut().zip(measured.iter()) {
        if *n >= 16 {
            *c = busy / *n as f64;
        }
    }
}

/// Sleeps `d`; false if shutdown came first.
async fn sleep_or_stop(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = crate::shutdown::stopped(shutdown) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Windows;

    #[test]
    fn due_times_fall_in_the_first_three_quarters_and_spread() {
        let w = Windows::new(3600).at(1_700_000_000);
        let mut buckets = [0usize; 4];
        for n in 1..2000u32 {
            let s = Serial::from_hex(&format!("{n:x}")).expect("hex");
            let due = due_time(w, "demo", &s);
            assert!(due >= w.start && due < w.start + 2700, "{due}");
            assert_eq!(due, due_time(w, "demo", &s), "stable");
            buckets[((due - w.start) / 900) as usize] += 1;
        }
        assert_eq!(buckets[3], 0);
        for b in &buckets[..3] {
            assert!(*b > 500, "{buckets:?}");
        }
    }

    #[test]
    fn a_start_late_in_the_window_still_has_time_to_presign_the_next() {
        let w = Windows::new(3600).at(1_700_000_000);
        // Inside the spread: until it ends.
        assert_eq!(presign_time_left(w, w.start), 2700);
        assert_eq!(presign_time_left(w, w.start + 2000), 700);
        // Past it (a start at 15:45 of a 15:00-16:00 window): three quarters
        // of the 15 minutes left, not zero.
        assert_eq!(presign_time_left(w, w.start + 2700), 675);
        assert_eq!(presign_time_left(w, w.start + 3599), 0);
        assert_eq!(presign_time_left(w, w.end + 10), 0);
    }

    fn item(due: i64, n: u32) -> Item {
        Item {
            due,
            issuer: 0,
            serial: Serial::from_hex(&format!("{n:x}")).expect("hex"),
        }
    }

    #[test]
    fn a_plan_within_budget_follows_the_spread() {
        let plan = vec![item(30, 1), item(10, 2), item(20, 3)];
        let (plan, hot) = order(plan, false, |_| true);
        assert_eq!(plan.iter().map(|i| i.due).collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(hot, 0);
    }

    #[test]
    fn a_degraded_plan_signs_recently_requested_serials_first_and_at_once() {
        let plan = vec![item(30, 1), item(10, 2), item(20, 3), item(5, 4)];
        let hot = |i: &Item| {
            i.serial == Serial::from_hex("01").expect("hex")
                || i.serial == Serial::from_hex("03").expect("hex")
        };
        let (plan, hot_count) = order(plan, true, hot);
        let serials: Vec<String> = plan.iter().map(|i| i.serial.to_hex()).collect();
        assert_eq!(
            serials,
            ["03", "01", "04", "02"],
            "hot by due, then cold by due"
        );
        assert_eq!(hot_count, 2);
        assert!(plan.iter().all(|i| i.due == 0));
    }

    #[test]
    fn pace_keeps_the_share_of_the_cores() {
        let busy = Duration::from_millis(100);
        // Half of 2 cores: one worker, never resting.
        let p = Pace::new(0.5, 2);
        assert_eq!((p.workers(), p.rest_after(busy)), (1, Duration::ZERO));
        // A quarter of 2 cores: one worker resting as long as it signed.
        let p = Pace::new(0.25, 2);
        assert_eq!((p.workers(), p.rest_after(busy)), (1, busy));
        // 0.3 of 8 cores = 2.4 cores: 3 workers, each busy 80% of the time.
        let p = Pace::new(0.3, 8);
        assert_eq!(p.workers(), 3);
        let rest = p.rest_after(busy).as_secs_f64();
        let duty = 0.1 / (0.1 + rest);
        assert!((duty * 3.0 - 2.4).abs() < 1e-9, "{duty}");
        // Every core: all workers, no rest.
        let p = Pace::new(1.0, 4);
        assert_eq!((p.workers(), p.rest_after(busy)), (4, Duration::ZERO));
    }

    #[test]
    fn the_plan_stays_right_when_a_signature_takes_a_millisecond() {
        // 1M serials, SHA-1 and SHA-256, a 60-minute window: the plan has
        // the first three quarters, 2,700 s.
        let spread = 2_700.0;
        let (counts, hashes) = ([1_000_000], 2);
        // A file key at 20 µs: 40 worker-seconds, far inside a quarter of
        // two cores (1,350 worker-seconds).
        let file = Pace::new(0.25, 2);
        assert!(estimate(&counts, hashes, &[20e-6]) < file.capacity() * spread);
        // An HSM at 1 ms per signature: 2,000 worker-seconds. Paced as CPU
        // work it would not fit, and the plan says so (degraded)...
        let at_1ms = estimate(&counts, hashes, &[1e-3]);
        assert!((at_1ms - 2_000.0).abs() < 1e-6);
        assert!(at_1ms > file.capacity() * spread);
        // ...but the HSM is the limit, not the CPU: 4 signings in flight
        // (10,800 worker-seconds) fit it in 500 s, without resting.
        let hsm = Pace::new(0.25, 2).hsm(Some(4));
        assert_eq!(hsm.workers(), 4);
        assert_eq!(hsm.rest_after(Duration::from_secs(1)), Duration::ZERO);
        assert!(at_1ms < hsm.capacity() * spread);
        assert!((at_1ms / hsm.capacity() - 500.0).abs() < 1e-6);
        // With one session only (SoftHSM on revocd's own cores) the
        // estimate exceeds the window and the plan degrades: recently
        // requested serials first.
        let one = Pace::new(0.25, 2).hsm(Some(1));
        assert!(at_1ms < one.capacity() * spread);
        assert!(estimate(&counts, hashes, &[2e-3]) > one.capacity() * spread);
        assert_eq!(
            one.max_workers(),
            2,
            "the pass starts enough workers for any pace"
        );
    }
}
