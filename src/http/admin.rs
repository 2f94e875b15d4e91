//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and the admin API
//! under `/v1/` (see `crate::admin`), over TLS when `admin.tls-*` is set.
//! The operator is authenticated from the headers and the client
//! certificate, and the endpoint's scopes checked, before the body is read;
//! a failed authentication is counted against the client's address
//! (`super::guard`), which slows and then refuses it. The same service
//! without the API is the plain `listen.metrics` listener for probes and
//! Prometheus.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};

use super::{body_of, Body};
use crate::admin::AdminApi;
use crate::ledger::Ledger;
use crate::ocsp::Signer;
use crate::shared::Shared;

#[derive(Debug)]
pub struct AdminService {
    pub shared: Shared,
    /// Readiness and the caches' sizes.
    pub signer: Arc<Signer>,
    /// `None`: no API here (the admin API has no operator, or this is the
    /// plain metrics listener).
    pub api: Option<AdminApi>,
    pub ledger: Option<Ledger>,
    /// Request bodies: above `max_bytes` 413 (`admin.max-body-bytes`),
    /// slower than the deadline 408.
    pub body: super::deadline::BodyLimits,
    pub guard: Option<Arc<super::guard::Guard>>,
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body_of(Bytes::from(body)))
        .unwrap_or_default()
}

impl AdminService {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Arc<super::Peer>,
    ) -> Response<Body> {
        let path = req.uri().path().to_string();
        if path.starts_with("/v1/") {
            return self.api(req, &path, &peer).await;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".into(),
                "text/plain",
            );
        }
        match path.as_str() {
            "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
            "/readyz" if self.signer.is_ready() => {
                text(StatusCode::OK, "ready\n".into(), "text/plain")
            }
            "/readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: pre-signing the current window, or draining\n".into(),
                "text/plain",
            ),
            "/metrics" => {
                self.refresh_gauges();
                text(
                    StatusCode::OK,
                    self.shared.metrics.render(),
                    "text/plain; version=0.0.4",
                )
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
        }
    }

    /// Gauges computed at scrape time.
    fn refresh_gauges(&self) {
        let m = &self.shared.metrics;
        for issuer in self.shared.issuers.iter() {
            let (good, revoked) = issuer.state.counts();
            m.issuer_serials
                .with_label_values(&[&issuer.id, "good"])
                .set(good as i64);
            m.issuer_serials
                .with_label_values(&[&issuer.id, "revoked"])
                .set(revoked as i64);
        }
        for issuer in self.shared.issuers.iter() {
            let up = |k: &crate::pki::SigningKey| i64::from(k.is_available());
            m.hsm
                .signer_up
                .with_label_values(&[&issuer.id, "ocsp"])
                .set(up(issuer.signer().key()));
            if let Some(k) = &issuer.crl_key {
                m.hsm
                    .signer_up
                    .with_label_values(&[&issuer.id, "crl"])
                    .set(up(k));
            }
        }
        for hsm in crate::pki::hsm_status() {
            let module = [hsm.path.as_str()];
            m.hsm.up.with_label_values(&module).set(i64::from(hsm.up));
            m.hsm
                .in_flight
                .with_label_values(&module)
                .set(i64::try_from(hsm.in_flight).unwrap_or(i64::MAX));
            for (counter, total) in [
                (&m.hsm.errors, hsm.errors),
                (&m.hsm.reconnects, hsm.reconnects),
            ] {
                let c = counter.with_label_values(&module);
                c.inc_by(total.saturating_sub(c.get()));
            }
        }
        let (_, uncommon_bytes) = self.signer.uncommon_cache_usage();
        m.ocsp
            .uncommon_cache_bytes
            .set(i64::try_from(uncommon_bytes).unwrap_or(i64::MAX));
        let (entries, bytes) = self.signer.cache_usage();
        m.ocsp
            .cached_responses
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        m.ocsp
            .cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        if let Some(ledger) = &self.ledger {
            use std::sync::atomic::Ordering;
            let at = ledger.stats().snapshot_at.load(Ordering::Acquire);
            let now = self.shared.clock.now();
            m.ledger
                .snapshot_age_seconds
                .set(if at == 0 { -1 } else { now - at });
            m.ledger
                .last_sequence
                .set(ledger.stats().last_seq.load(Ordering::Acquire) as i64);
        }
    }

    async fn api(&self, req: Request<Incoming>, path: &str, peer: &super::Peer) -> Response<Body> {
        let json = |status: u16, body: String| {
            Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-store")
                .body(body_of(Bytes::from(body)))
                .unwrap_or_default()
        };
        // The body stays unread on every refusal: close rather than drain.
        let refuse = |mut resp: Response<Body>| {
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            resp
        };
        let access = self.api.as_ref().map(|a| a.access());
        let (Some(api), Some(access)) =
            (self.api.as_ref(), access.as_ref().filter(|a| !a.is_empty()))
        else {
            return refuse(json(
                403,
                "{\"error\": \"the admin API is not served here: configure [[admin.operator]] (or admin.token-file) and use the admin listener\"}\n".into(),
            ));
        };
        let method = req.method().as_str().to_string();
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Authenticate from the headers and the client certificate: a
        // stranger's body is never read.
        let op = match access.authenticate(auth.as_deref(), peer.cert.as_ref()) {
            Ok(op) => op,
            Err(why) => {
                self.shared
                    .metrics
                    .http
                    .requests_rejected
                    .with_label_values(&["admin", "unauthenticated"])
                    .inc();
                if let Some(g) = &self.guard {
                    let delay = g.failed(peer.addr.ip(), why.label(), std::time::Instant::now());
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                }
                tracing::info!(peer = %peer.addr, reason = why.label(), "admin request refused: {why}");
                let mut resp = json(
                    401,
                    format!("{{\"error\": \"{why}\", \"field\": \"authorization\"}}\n"),
                );
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return refuse(resp);
            }
        };
        // Authorised for this endpoint, still before the body.
        if let Err(r) = api.permits(op, &method, path) {
            tracing::info!(operator = %op.name, method, path, status = r.status, "admin request refused");
            return refuse(json(r.status, r.body));
        }
        let body = match super::deadline::read_body(req.into_body(), self.body).await {
            Ok(b) => b,
            Err(super::deadline::BodyError::TimedOut) => {
                self.shared
                    .metrics
                    .http
                    .connection_errors
                    .with_label_values(&["admin", "body_timeout"])
                    .inc();
                return json(
                    408,
                    "{\"error\": \"request body not received in time\"}\n".into(),
                );
            }
            Err(e) => {
                self.shared
                    .metrics
                    .http
                    .requests_rejected
                    .with_label_values(&["admin", "body_too_large"])
                    .inc();
                return json(413, format!("{{\"error\": \"{e}\"}}\n"));
            }
        };
        let r = api.handle(op, &method, path, &body).await;
        json(r.status, r.body)
    }
}
