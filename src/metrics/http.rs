//! The listeners: connections and requests refused before a handler.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;

/// The listeners: connections and requests refused before a handler.
#[derive(Debug, Clone)]
pub struct Http {
    pub connections_open: IntGaugeVec,
    /// Connections closed at once because `listen.max-connections` were open.
    pub connections_refused: IntCounterVec,
    /// Connections hyper ended with an error, by kind (header_timeout:
    /// slowloris or an idle keep-alive cut off; malformed; other).
    pub connection_errors: IntCounterVec,
    /// Requests refused before the handler, by reason (body_too_large).
    pub requests_rejected: IntCounterVec,
}

impl Http {
    pub(super) fn new(r: &Registrar) -> Self {
        Self {
            connections_open: r.gauges("revocd_http_connections_open", "Open connections by listener", &["listener"]),
            connections_refused: r.counters("revocd_http_connections_refused_total", "Connections closed at once because listen.max-connections were open", &["listener"]),
            connection_errors: r.counters("revocd_http_connection_errors_total", "Connections ended with an error, by listener and kind (header_timeout, malformed, other)", &["listener", "kind"]),
            requests_rejected: r.counters("revocd_http_requests_rejected_total", "Requests refused for a limit, by listener and reason (body_too_large)", &["listener", "reason"]),
        }
    }
}
