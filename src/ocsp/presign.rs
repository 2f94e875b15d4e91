//! The background pre-signer. At start it signs the current window as fast as
//! the cores allow (revocd is ready after that); then, during each window, it
//! signs the next one, each serial at its own offset so the work is spread
//! over the window instead of landing at the rollover (DESIGN: the hot path
//! never signs).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::responder::{Responder, Why};
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

/// Signs `window` for every known serial of every issuer, using every core.
pub async fn presign_window(responder: &Arc<Responder>, window: Window, why: Why) -> usize {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut total = 0;
    for (idx, issuer) in responder.issuers().iter().enumerate() {
        let serials: Vec<Serial> = issuer.state.serials();
        let chunks: Vec<Vec<Serial>> = serials.chunks(BATCH).map(<[Serial]>::to_vec).collect();
        let mut pending = chunks.into_iter();
        loop {
            let mut set = tokio::task::JoinSet::new();
            for chunk in pending.by_ref().take(workers) {
                let r = Arc::clone(responder);
                set.spawn_blocking(move || r.presign_blocking(idx, window, &chunk, why));
            }
            if set.is_empty() {
                break;
            }
            while let Some(done) = set.join_next().await {
                if let Ok(signed) = done {
                    total += signed.len();
                    responder.store(signed).await;
                }
            }
        }
        responder
            .metrics()
            .ocsp_presigned_serials
            .with_label_values(&[&issuer.id, label(responder, window)])
            .set(i64::try_from(serials.len()).unwrap_or(i64::MAX));
    }
    total
}

fn label(responder: &Responder, window: Window) -> &'static str {
    if window == responder.windows().at(responder.clock().now()) {
        "current"
    } else {
        "next"
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(responder: Arc<Responder>, mut shutdown: watch::Receiver<bool>) {
    let windows = responder.windows();
    let clock = Arc::clone(responder.clock());
    let current = windows.at(clock.now());
    let started = std::time::Instant::now();
    let n = presign_window(&responder, current, Why::Presign).await;
    responder.set_ready();
    tracing::info!(
        responses = n,
        seconds = started.elapsed().as_secs_f64(),
        "current window pre-signed; ready"
    );
    let mut window = current;
    loop {
        let next = windows.next(window);
        // Plan: every serial with its due time in this window.
        let mut plan: Vec<(i64, usize, Serial)> = Vec::new();
        for (idx, issuer) in responder.issuers().iter().enumerate() {
            for serial in issuer.state.serials() {
                plan.push((due_time(window, &issuer.id, &serial), idx, serial));
            }
        }
        plan.sort_by_key(|(due, _, _)| *due);
        let mut done = 0usize;
        let total = plan.len();
        let mut i = 0;
        while i < plan.len() {
            let now = clock.now();
            if now >= next.start {
                break;
            }
            let due = plan[i].0;
            if due > now && !sleep_or_stop(&mut shutdown, due - now).await {
                return;
            }
            // Everything due by now, one issuer at a time, in batches.
            let now = clock.now();
            let mut batch: Vec<Serial> = Vec::new();
            let idx = plan[i].1;
            while i < plan.len() && plan[i].0 <= now && plan[i].1 == idx && batch.len() < BATCH {
                batch.push(plan[i].2.clone());
                i += 1;
            }
            if batch.is_empty() {
                continue;
            }
            let r = Arc::clone(&responder);
            let n = batch.len();
            let signed = tokio::task::spawn_blocking(move || {
                r.presign_blocking(idx, next, &batch, Why::Presign)
            })
            .await
            .unwrap_or_default();
            responder.store(signed).await;
            done += n;
            if let Some(issuer) = responder.issuers().get(idx) {
                responder
                    .metrics()
                    .ocsp_presigned_serials
                    .with_label_values(&[&issuer.id, "next"])
                    .set(i64::try_from(done).unwrap_or(i64::MAX));
            }
        }
        tracing::debug!(
            signed = done,
            planned = total,
            window = next.start,
            "next window pre-signed"
        );
        let now = clock.now();
        if now < next.start && !sleep_or_stop(&mut shutdown, next.start - now).await {
            return;
        }
        // Serials planned but not reached (late start, overload) are signed on demand.
        window = windows.at(clock.now());
    }
}

/// Sleeps `secs` seconds; false if shutdown came first.
async fn sleep_or_stop(shutdown: &mut watch::Receiver<bool>, secs: i64) -> bool {
    let d = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = crate::shutdown::stopped(shutdown) => false,
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
}
