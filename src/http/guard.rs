//! Guessing does not pay: failed admin authentications are counted per
//! client address. After a few, each further failure is answered later
//! (doubling up to 5 s); after 20 within a minute the address is refused
//! outright for 5 minutes, at accept, before a TLS handshake or a header is
//! read. Operators at other addresses are not affected. Pure bookkeeping
//! with an injected time; the `http` layer applies what it says.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures free of any delay.
const FREE: u32 = 3;
/// Failures within `WINDOW` that get an address refused.
const LIMIT: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);
const REFUSED_FOR: Duration = Duration::from_secs(300);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses tracked at most; beyond, entries whose window is over are
/// dropped first, and a new address that still finds no room is not
/// tracked (it still gets 401 each time).
const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    since: Instant,
    refused_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Guard {
    strikes: Mutex<HashMap<IpAddr, Strikes>>,
    /// Failed authentications by reason (missing, bad_token,
    /// unknown_certificate, tls_handshake).
    failures: prometheus::IntCounterVec,
    /// Connections from refused addresses, closed at accept.
    refused_connections: prometheus::IntCounter,
    refused_addresses: prometheus::IntGauge,
}

impl Guard {
    /// A guard whose metrics are registered with `metrics`.
    pub fn new(metrics: &crate::metrics::Metrics) -> Self {
        let g = Self {
            strikes: Mutex::default(),
            failures: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "revocd_admin_auth_failures_total",
                    "Failed admin authentications, by reason (missing, bad_token, unknown_certificate, tls_handshake)",
                ),
                &["reason"],
            )
            .expect("static metric"),
            refused_connections: prometheus::IntCounter::new(
                "revocd_admin_refused_connections_total",
                "Admin connections closed at accept: their address failed to authenticate too often",
            )
            .expect("static metric"),
            refused_addresses: prometheus::IntGauge::new(
                "revocd_admin_refused_addresses",
                "Client addresses the admin listener refuses now, for failed authentications",
            )
            .expect("static metric"),
        };
        for reason in [
            "missing",
            "bad_token",
            "unknown_certificate",
            "tls_handshake",
        ] {
            g.failures.with_label_values(&[reason]);
        }
        for c in [
            Box::new(g.failures.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(g.refused_connections.clone()),
            Box::new(g.refused_addresses.clone()),
        ] {
            if let Err(e) = metrics.register(c) {
                tracing::error!(error = %e, "admin guard metrics not registered");
            }
        }
        g
    }

    pub fn count_refused_connection(&self) {
        self.refused_connections.inc();
    }

    /// Whether `addr` is refused at `now`.
    pub fn is_refused(&self, addr: IpAddr, now: Instant) -> bool {
        let strikes = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        strikes
            .get(&addr)
            .and_then(|s| s.refused_until)
            .is_some_and(|until| now < until)
    }

    /// Records a failed authentication from `addr` (`reason` for the
    /// metric); how long to wait before answering it.
    pub fn failed(&self, addr: IpAddr, reason: &str, now: Instant) -> Duration {
        self.failures.with_label_values(&[reason]).inc();
        let delay = self.strike(addr, now);
        self.refused_addresses
            .set(i64::try_from(self.refused(now)).unwrap_or(i64::MAX));
        delay
    }

    fn strike(&self, addr: IpAddr, now: Instant) -> Duration {
        let mut strikes = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        if strikes.len() >= MAX_TRACKED && !strikes.contains_key(&addr) {
            strikes.retain(|_, s| {
                now.duration_since(s.since) < WINDOW || s.refused_until.is_some_and(|u| now < u)
            });
            if strikes.len() >= MAX_TRACKED {
                return Duration::ZERO;
            }
        }
        let s = strikes.entry(addr).or_insert(Strikes {
            count: 0,
            since: now,
            refused_until: None,
        });
        if now.duration_since(s.since) >= WINDOW && s.refused_until.is_none_or(|u| now >= u) {
            *s = Strikes {
                count: 0,
                since: now,
                refused_until: None,
            };
        }
        s.count += 1;
        if s.count >= LIMIT && s.refused_until.is_none_or(|u| now >= u) {
            s.refused_until = Some(now + REFUSED_FOR);
            tracing::warn!(address = %addr, failures = s.count, refused_s = REFUSED_FOR.as_secs(), "admin: too many failed authentications; address refused");
        }
        match s.count.checked_sub(FREE) {
            None | Some(0) => Duration::ZERO,
            Some(n) => {
                (Duration::from_millis(250) * 2u32.saturating_pow(n.min(8) - 1)).min(MAX_DELAY)
            }
        }
    }

    /// Addresses refused at `now` (for the gauge).
    pub fn refused(&self, now: Instant) -> usize {
        let strikes = self.strikes.lock().unwrap_or_else(|p| p.into_inner());
        strikes
            .values()
            .filter(|s| s.refused_until.is_some_and(|u| now < u))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_then_refuse_one_address_and_no_other() {
        let g = Guard::new(&crate::metrics::Metrics::new());
        let bad: IpAddr = "127.0.0.2".parse().expect("ip");
        let good: IpAddr = "127.0.0.1".parse().expect("ip");
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..LIMIT).map(|_| g.failed(bad, "bad_token", t0)).collect();
        assert_eq!(delays[..3], [Duration::ZERO; 3]);
        assert_eq!(delays[3], Duration::from_millis(250));
        assert_eq!(delays[4], Duration::from_millis(500));
        assert_eq!(*delays.last().expect("some"), MAX_DELAY);
        assert!(g.is_refused(bad, t0));
        assert!(!g.is_refused(good, t0));
        assert_eq!(g.refused(t0), 1);
        // Refused for five minutes, then counted afresh.
        assert!(g.is_refused(bad, t0 + REFUSED_FOR - Duration::from_secs(1)));
        let later = t0 + REFUSED_FOR + Duration::from_secs(1);
        assert!(!g.is_refused(bad, later));
        assert_eq!(g.failed(bad, "bad_token", later), Duration::ZERO);
    }

    #[test]
    fn failures_spread_beyond_the_window_never_refuse() {
        let g = Guard::new(&crate::metrics::Metrics::new());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let mut t = Instant::now();
        for _ in 0..100 {
            g.failed(a, "missing", t);
            t += Duration::from_secs(5);
        }
        assert!(!g.is_refused(a, t));
    }
}
