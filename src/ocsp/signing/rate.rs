//! A token bucket: at most `rate` events a second on average, `burst` at
//! once. Pure apart from the lock; time is passed in.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Tokens left and when they were counted.
    state: Mutex<(f64, Option<Instant>)>,
}

impl TokenBucket {
    /// Starts full.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            state: Mutex::new((burst.max(1.0), None)),
        }
    }

    /// Takes one token at `now` if there is one.
    pub fn try_take(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let refilled = match last {
            Some(t) => (tokens + now.saturating_duration_since(t).as_secs_f64() * self.rate)
                .min(self.burst),
            None => tokens,
        };
        if refilled >= 1.0 {
            *s = (refilled - 1.0, Some(now));
            true
        } else {
            *s = (refilled, Some(now));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let b = TokenBucket::new(10.0, 10.0);
        let t0 = Instant::now();
        assert_eq!((0..20).filter(|_| b.try_take(t0)).count(), 10);
        // 0.5 s later: five more.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| b.try_take(t1)).count(), 5);
        // Idle for a minute: no more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..50).filter(|_| b.try_take(t2)).count(), 10);
    }
}
