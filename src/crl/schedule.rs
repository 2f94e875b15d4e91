//! When to publish a CRL: pure decisions on an injected clock.
//!
//! - a change starts a debounce: publish `debounce` after the last change,
//!   but no later than `max_delay` after the first unpublished one;
//! - with nothing changed, re-issue at half the CRL validity;
//! - a failed attempt retries with exponential backoff and jitter.

/// Why a publish is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing published yet (start-up).
    Initial,
    Debounced,
    MaxDelay,
    /// Half the validity has passed with no change.
    Reissue,
    Retry,
    /// An operator asked (admin API).
    Requested,
}

impl Due {
    pub fn label(self) -> &'static str {
        match self {
            Due::Initial => "initial",
            Due::Debounced => "debounced",
            Due::MaxDelay => "max_delay",
            Due::Reissue => "reissue",
            Due::Retry => "retry",
            Due::Requested => "requested",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub debounce: i64,
    pub max_delay: i64,
    pub validity: i64,
    /// First and longest retry delay.
    pub retry_min: i64,
    pub retry_max: i64,
    /// State revision the live CRL was built from (`None`: nothing live).
    published_revision: Option<u64>,
    /// thisUpdate of the live CRL.
    published_at: Option<i64>,
    /// When a change not on the live CRL was first and last seen.
    first_change: Option<i64>,
    last_change: Option<i64>,
    seen_revision: u64,
    failures: u32,
    retry_at: Option<i64>,
    requested: bool,
}

impl Schedule {
    pub fn new(debounce: i64, max_delay: i64, validity: i64) -> Self {
        Self {
            debounce,
            max_delay,
            validity,
            retry_min: 5,
            retry_max: 300,
            published_revision: None,
            published_at: None,
            first_change: None,
            last_change: None,
            seen_revision: 0,
            failures: 0,
            retry_at: None,
            requested: false,
        }
    }

    /// A CRL is already live (read from the store at start): it covers
    /// `revision` if the state has not changed since.
    pub fn live(&mut self, this_update: i64, revision: u64) {
        self.published_at = Some(this_update);
        self.published_revision = Some(revision);
        self.seen_revision = revision;
    }

    /// Tells the schedule the state's revision at `now`.
    pub fn observe(&mut self, revision: u64, now: i64) {
        if revision != self.seen_revision {
            self.seen_revision = revision;
            if self.published_revision != Some(revision) {
                self.first_change.get_or_insert(now);
                self.last_change = Some(now);
            }
        }
    }

    /// The live CRL lacks a change the state holds (reconciliation): an
    /// unpublished change first seen `now`, unless one is already pending.
    pub fn unpublished(&mut self, now: i64) {
        if self.first_change.is_none() {
            self.first_change = Some(now);
            self.last_change = Some(now);
        }
        self.published_revision = None;
    }

    pub fn request(&mut self) {
        self.requested = true;
    }

    /// Whether a publish is due at `now`, and why.
    pub fn due(&self, now: i64) -> Option<Due> {
        if let Some(at) = self.retry_at {
            return (now >= at).then_some(Due::Retry);
        }
        if self.requested {
            return Some(Due::Requested);
        }
        let Some(published_at) = self.published_at else {
            return Some(Due::Initial);
        };
        if let (Some(first), Some(last)) = (self.first_change, self.last_change) {
            if now >= first + self.max_delay {
                return Some(Due::MaxDelay);
            }
            if now >= last + self.debounce {
                return Some(Due::Debounced);
            }
        }
        (now >= published_at + self.validity / 2).then_some(Due::Reissue)
    }

    /// The earliest time something may become due (for sleeping).
    pub fn next_check(&self, now: i64) -> i64 {
        let mut t = now + 60;
        if let Some(at) = self.retry_at {
            return at.max(now);
        }
        if let (Some(first), Some(last)) = (self.first_change, self.last_change) {
            t = t.min(first + self.max_delay).min(last + self.debounce);
        }
        if let Some(p) = self.published_at {
            t = t.min(p + self.validity / 2);
        }
        t.max(now)
    }

    /// A CRL built from `revision` with thisUpdate `this_update` is live.
    pub fn published(&mut self, this_update: i64, revision: u64) {
        self.published_at = Some(this_update);
        self.published_revision = Some(revision);
        self.failures = 0;
        self.retry_at = None;
        self.requested = false;
        if self.seen_revision == revision {
            self.first_change = None;
            self.last_change = None;
        } else {
            // Changes arrived while building: they start a new debounce.
            self.first_change = self.last_change;
        }
    }

    /// An attempt failed at `now`; `jitter` in [0, 1) spreads retries.
    pub fn failed(&mut self, now: i64, jitter: f64) {
        self.failures = self.failures.saturating_add(1);
        let base = self
            .retry_min
            .saturating_mul(1i64 << self.failures.min(20).saturating_sub(1))
            .min(self.retry_max);
        let spread = (base as f64 * 0.5 * jitter) as i64;
        self.retry_at = Some(now + base + spread);
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether changes are waiting for a CRL.
    pub fn has_unpublished(&self) -> bool {
        self.first_change.is_some() || self.published_at.is_none()
    }

    /// When the oldest unpublished change was seen.
    pub fn first_change(&self) -> Option<i64> {
        self.first_change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60;

    fn run(
        s: &mut Schedule,
        from: i64,
        to: i64,
        changes: &[i64],
        rev: &mut u64,
    ) -> Vec<(i64, Due)> {
        let mut out = Vec::new();
        for now in from..to {
            if changes.contains(&now) {
                *rev += 1;
            }
            s.observe(*rev, now);
            if let Some(due) = s.due(now) {
                s.published(now, *rev);
                out.push((now, due));
            }
        }
        out
    }

    #[test]
    fn fifty_revocations_within_a_minute_give_one_crl() {
        let mut s = Schedule::new(5 * MIN, 15 * MIN, 7 * 86_400);
        s.live(0, 0);
        let changes: Vec<i64> = (0..50).map(|i| 1000 + i).collect();
        let mut rev = 0;
        let published = run(&mut s, 1, 3000, &changes, &mut rev);
        assert_eq!(published, vec![(1049 + 5 * MIN, Due::Debounced)]);
    }

    #[test]
    fn a_steady_trickle_still_publishes_by_max_delay() {
        let mut s = Schedule::new(5 * MIN, 15 * MIN, 7 * 86_400);
        s.live(0, 0);
        // One revocation a minute for an hour: the debounce never expires.
        let changes: Vec<i64> = (0..60).map(|i| 100 + i * MIN).collect();
        let mut rev = 0;
        let published = run(&mut s, 1, 100 + 60 * MIN, &changes, &mut rev);
        assert!(published.len() >= 3, "{published:?}");
        assert!(
            published.iter().all(|(_, d)| *d == Due::MaxDelay),
            "{published:?}"
        );
        let first = published[0].0;
        assert_eq!(first, 100 + 15 * MIN);
    }

    #[test]
    fn unchanged_crls_are_reissued_at_half_validity() {
        let mut s = Schedule::new(5 * MIN, 15 * MIN, 7 * 86_400);
        s.live(0, 7);
        assert_eq!(s.due(3 * 86_400), None);
        assert_eq!(s.due(7 * 86_400 / 2), Some(Due::Reissue));
        assert_eq!(s.next_check(100), 160);
    }

    #[test]
    fn nothing_live_publishes_at_once() {
        let s = Schedule::new(300, 900, 86_400);
        assert_eq!(s.due(0), Some(Due::Initial));
    }

    #[test]
    fn failures_back_off_exponentially_with_a_cap() {
        let mut s = Schedule::new(300, 900, 86_400);
        s.live(0, 0);
        s.request();
        let mut delays = Vec::new();
        for _ in 0..10 {
            s.failed(1000, 0.0);
            delays.push(s.next_check(1000) - 1000);
        }
        assert_eq!(&delays[..5], &[5, 10, 20, 40, 80]);
        assert_eq!(*delays.last().expect("last"), 300);
        assert_eq!(s.due(1299), None);
        assert_eq!(s.due(1300), Some(Due::Retry));
        s.failed(1000, 0.99);
        assert!(s.next_check(1000) - 1000 > 300, "jitter adds up to half");
    }
}
