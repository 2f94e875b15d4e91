//! The caches of answers signed on demand: what keys them (issuer, signer
//! generation, window, and each CertID's serial, hash and state revision),
//! what an entry is charged, and expiry at its window's end.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::ocsp::answers::signed::Signed;
use crate::pki::HashAlg;
use crate::state::Serial;

/// One cached answer: issuer, window, and per certificate (serial, hash,
/// entry revision). A change bumps the revision, so older answers become
/// unreachable the moment the state changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub(super) issuer: usize,
    /// The issuer's signer generation: a key rotation changes it.
    pub(super) generation: u64,
    pub(super) window: i64,
    pub(super) items: Items,
}

/// The CertIDs of a cached answer: nearly always one, kept inline (no
/// allocation of its own per cache entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Items {
    One(Serial, HashAlg, u64),
    Many(Vec<(Serial, HashAlg, u64)>),
}

impl Items {
    pub(super) fn from_vec(mut v: Vec<(Serial, HashAlg, u64)>) -> Self {
        match v.pop() {
            Some((serial, alg, revision)) if v.is_empty() => Items::One(serial, alg, revision),
            Some(last) => {
                v.push(last);
                Items::Many(v)
            }
            None => Items::Many(v),
        }
    }
}

/// Memory a cache entry takes besides its own bytes: the key, moka's entry
/// (timestamps, deque and timer nodes, hash table slot), `Signed`, allocator
/// slack. Measured with loadtest/presign at 1M serials: about 1,100 bytes of
/// RSS per cached response of about 350 own bytes; charging 600 makes
/// `ocsp.cache-max-bytes` an approximate bound (about 85% of the real use)
/// that still holds this and the next window of 1M serials x 2 hashes.
pub(super) const ENTRY_OVERHEAD: usize = 600;

/// A cached answer is dropped when its window ends: the window is part of
/// its key, so nothing can reach it after that. Without this, answers
/// pre-signed for the next window would outlive it by up to a window under
/// a fixed time-to-live (at 1M serials: 4.88M answers in 5.4 GB at a
/// rollover, against 4.04M in 4.6 GB).
pub(super) struct UntilWindowEnd {
    pub(super) clock: Arc<dyn Clock>,
}

/// Slack after the window end, for a request that read the clock just
/// before it.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);

impl moka::Expiry<CacheKey, Arc<Signed>> for UntilWindowEnd {
    /// While an HSM signer is down, an answer read stays until its
    /// nextUpdate: the next window may find nothing new signed, and the
    /// answers clients ask for are the ones worth keeping.
    fn expire_after_read(
        &self,
        _key: &CacheKey,
        value: &Arc<Signed>,
        _read_at: std::time::Instant,
        duration_until_expiry: Option<Duration>,
        _last_modified_at: std::time::Instant,
    ) -> Option<Duration> {
        if !crate::pki::any_hsm_down() {
            return duration_until_expiry;
        }
        let left = u64::try_from(value.next_update - self.clock.now()).unwrap_or(0);
        Some(Duration::from_secs(left).max(duration_until_expiry.unwrap_or_default()))
    }

    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Signed>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = u64::try_from(value.window_end - self.clock.now()).unwrap_or(0);
        Some(Duration::from_secs(left) + EXPIRY_GRACE)
    }
}
