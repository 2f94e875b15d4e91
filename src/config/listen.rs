//! `[listen]`: the addresses revocd serves on and the limits every
//! connection lives under.

use std::net::SocketAddr;
use std::time::Duration;

use super::check::Check;
use super::defaults;
use super::raw::RawListen;

#[derive(Debug, Clone)]
pub struct Listen {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// A plain-HTTP listener for `/healthz`, `/readyz` and `/metrics` only
    /// (probes and Prometheus when the admin listener requires client
    /// certificates).
    pub metrics: Option<SocketAddr>,
    /// Slowloris guard: how long a client may take to send its headers.
    pub header_read_timeout: Duration,
    /// Connections open at once per listener; more are closed at once.
    pub max_connections: usize,
    /// A request body must arrive within this, plus one second per
    /// `body_min_rate` bytes received (slow-body guard, both listeners).
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up beyond `body_timeout`.
    pub body_min_rate: u64,
    /// A response write stalled this long (a client that does not read)
    /// ends the connection.
    pub write_timeout: Duration,
}

pub(super) fn listen(raw: RawListen, c: &mut Check) -> Listen {
    Listen {
        public: c.addr("listen.public", raw.public, defaults::PUBLIC_LISTEN),
        admin: c.addr("listen.admin", raw.admin, defaults::ADMIN_LISTEN),
        metrics: raw.metrics.map(|m| c.addr("listen.metrics", Some(m), "")),
        header_read_timeout: c.duration(
            "listen.header-read-timeout",
            raw.header_read_timeout,
            defaults::HEADER_READ_TIMEOUT,
        ),
        max_connections: c.positive(
            "listen.max-connections",
            raw.max_connections,
            defaults::MAX_CONNECTIONS,
        ),
        body_timeout: c.duration(
            "listen.body-timeout",
            raw.body_timeout,
            defaults::BODY_TIMEOUT,
        ),
        body_min_rate: match raw.body_min_rate {
            Some(0) => {
                c.error("listen.body-min-rate: must be at least 1 byte per second");
                defaults::BODY_MIN_RATE
            }
            Some(n) => n,
            None => defaults::BODY_MIN_RATE,
        },
        write_timeout: c.duration(
            "listen.write-timeout",
            raw.write_timeout,
            defaults::WRITE_TIMEOUT,
        ),
    }
}
