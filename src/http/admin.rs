//! The admin listener: `/healthz`, `/readyz`, `/metrics`. (The admin API
//! joins it with the ledger.)

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};

use super::Body;
use crate::ocsp::Responder;

pub async fn handle(
    responder: Arc<Responder>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" if responder.is_ready() => text(StatusCode::OK, "ready\n".into(), "text/plain"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "pre-signing the current window\n".into(),
            "text/plain",
        ),
        "/metrics" => text(
            StatusCode::OK,
            responder.metrics().render(),
            "text/plain; version=0.0.4",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}
