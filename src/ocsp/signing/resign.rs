//! Signing again after changes, ahead of routine pre-signing.
//!
//! The ledger applies each durable change, and the signer queues the
//! serials of revocations and releases here (`Queue::push`). At the end of
//! each group of changes (`Applier::settle`, before the writer acknowledges
//! them) a small queue is signed at once on the writer's thread, so the
//! next request for an ordinary revocation is a hit; a large one (a mass
//! revocation, a peer's big batch) is left to the workers of [`run`], one
//! per core (the daemon starts them with the signer's `resign_chunk`), so that acknowledging a burst never waits for millions of
//! signatures. The routine pre-signer pauses while the queue holds
//! anything.
//!
//! A queued serial is never answered from its old bytes meanwhile: answers
//! are stored under the entry's revision (the file tables under its
//! status), so a changed serial misses its table and is signed on demand
//! with its new status until the workers reach it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{watch, Notify};

use crate::state::Serial;

/// At most this many queued serials are signed on the writer's thread at
/// the end of a group; more are left to the workers.
pub const SIGN_AT_ONCE: usize = 64;

/// Serials a worker takes at a time.
const CHUNK: usize = 256;

/// What signs a chunk of one issuer's serials again.
pub type SignChunk = Arc<dyn Fn(usize, &[Serial]) + Send + Sync>;

/// The serials waiting to be signed again, oldest first.
#[derive(Debug, Default)]
pub struct Queue {
    items: Mutex<VecDeque<(usize, Serial)>>,
    wake: Notify,
}

impl Queue {
    /// Queues issuer `idx`'s `serial`.
    pub fn push(&self, idx: usize, serial: Serial) {
        self.lock().push_back((idx, serial));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Everything queued, when it is at most `max`.
    pub fn take_if_at_most(&self, max: usize) -> Option<Vec<(usize, Serial)>> {
        let mut items = self.lock();
        (items.len() <= max).then(|| items.drain(..).collect())
    }

    /// Wakes the workers.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Up to `max` serials of one issuer from the front.
    fn take(&self, max: usize) -> Option<(usize, Vec<Serial>)> {
        let mut items = self.lock();
        let idx = items.front()?.0;
        let n = items
            .iter()
            .take(max)
            .take_while(|(i, _)| *i == idx)
            .count();
        Some((idx, items.drain(..n).map(|(_, s)| s).collect()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(usize, Serial)>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Signs what `queue` holds with `workers` workers until shutdown: each
/// takes a chunk of one issuer's serials and runs `sign` on it in the
/// blocking pool (the signer's `resign_chunk`).
pub async fn run(
    queue: Arc<Queue>,
    workers: usize,
    sign: SignChunk,
    shutdown: watch::Receiver<bool>,
) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (queue, sign, shutdown) = (Arc::clone(&queue), Arc::clone(&sign), shutdown.clone());
        set.spawn(async move { work(queue, sign, shutdown).await });
    }
    while set.join_next().await.is_some() {}
}

async fn work(queue: Arc<Queue>, sign: SignChunk, mut shutdown: watch::Receiver<bool>) {
    loop {
        // Registered before looking, so a push and wake in between is seen.
        let woken = queue.wake.notified();
        let Some((idx, serials)) = queue.take(CHUNK) else {
            tokio::select! {
                () = woken => continue,
                () = crate::shutdown::stopped(&mut shutdown) => return,
            }
        };
        let sign = Arc::clone(&sign);
        let _ = tokio::task::spawn_blocking(move || sign(idx, &serials)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(n: u32) -> Serial {
        Serial::from_hex(&format!("{n:X}")).expect("hex")
    }

    #[test]
    fn workers_take_one_issuer_at_a_time_in_order_and_small_queues_are_taken_whole() {
        let q = Queue::default();
        for n in 1..=3 {
            q.push(0, serial(n));
        }
        q.push(1, serial(4));
        q.push(0, serial(5));
        assert_eq!(q.take(2), Some((0, vec![serial(1), serial(2)])));
        assert_eq!(q.take(10), Some((0, vec![serial(3)])));
        assert_eq!(q.take(10), Some((1, vec![serial(4)])));
        assert!(q.take_if_at_most(0).is_none(), "one left is more than 0");
        assert_eq!(q.take_if_at_most(1), Some(vec![(0, serial(5))]));
        assert!(q.is_empty() && q.take(10).is_none());
    }
}
