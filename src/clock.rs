//! Time as revocd sees it: an injectable clock and the OCSP window arithmetic.
//!
//! Every OCSP time is a whole second (docs/conformance.md 15), so the clock hands out
//! Unix seconds and nothing finer.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in whole Unix seconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(now)))
    }
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The fixed grid of OCSP windows: window `k` covers `[k * len, (k + 1) * len)`.
///
/// A response made for window `k` has thisUpdate = producedAt = the window start
/// and is cacheable until the window end (docs/design.md: Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    len: i64,
}

/// One window on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub index: i64,
    pub start: i64,
    pub end: i64,
}

impl Windows {
    /// `len_secs` must be positive; config validation guarantees it.
    pub fn new(len_secs: u64) -> Self {
        Self {
            len: i64::try_from(len_secs.max(1)).unwrap_or(i64::MAX),
        }
    }

    pub fn len_secs(&self) -> i64 {
        self.len
    }

    /// The window holding the instant `now`.
    pub fn at(&self, now: i64) -> Window {
        self.by_index(now.div_euclid(self.len))
    }

    pub fn by_index(&self, index: i64) -> Window {
        let start = index.saturating_mul(self.len);
        Window {
            index,
            start,
            end: start.saturating_add(self.len),
        }
    }

    /// The window after `w`.
    pub fn next(&self, w: Window) -> Window {
        self.by_index(w.index + 1)
    }
}

/// Seconds from `now` until `end`, never negative.
pub fn seconds_until(now: i64, end: i64) -> u64 {
    u64::try_from(end.saturating_sub(now)).unwrap_or(0)
}

/// A Unix time as RFC 3339 (`2026-11-22T11:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// An RFC 3339 time (`2026-11-22T11:00:00Z`, any offset) as Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_boundaries_are_half_open() {
        let w = Windows::new(3600);
        assert_eq!(w.at(0).start, 0);
        assert_eq!(w.at(3599).start, 0);
        assert_eq!(w.at(3600).start, 3600);
        assert_eq!(w.at(3600).end, 7200);
        assert_eq!(w.at(-1).start, -3600);
    }

    #[test]
    fn manual_clock_drives_windows() {
        let clock = ManualClock::new(1_700_000_000);
        let w = Windows::new(3600);
        let first = w.at(clock.now());
        assert_eq!(first.start % 3600, 0);
        assert!(first.start <= clock.now() && clock.now() < first.end);
        clock.set(first.end - 1);
        assert_eq!(w.at(clock.now()), first);
        clock.advance(1);
        assert_eq!(w.at(clock.now()), w.next(first));
        assert_eq!(seconds_until(clock.now(), first.end), 0);
        assert_eq!(seconds_until(first.start, first.end), 3600);
    }

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(parse_rfc3339(&rfc3339(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2026-12-04T10:00:03+01:00"),
            Some(1_796_374_803)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
