//! HTTP: the two listeners. Only this module knows hyper. Handlers return
//! complete responses; the serve loop owns connections, header timeouts and
//! graceful draining.

pub mod admin;
pub mod deadline;
pub mod guard;
pub mod public;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::buf::Chain;
use bytes::{Buf, Bytes};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Response bodies: one buffer, or two written one after the other without
/// joining them (an OCSP response's own bytes and its signer's shared
/// certificate field).
pub type Body = Full<Chain<Bytes, Bytes>>;

/// A body of one buffer.
pub fn body_of(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into().chain(Bytes::new()))
}

/// A body of `first` then `second`, written without a copy.
pub fn body_parts(first: Bytes, second: Bytes) -> Body {
    Full::new(first.chain(second))
}

/// How long open connections get to finish after shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Per-listener limits, each a config knob with a metric when it triggers.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Label of the listener in metrics: "public", "admin" or "metrics".
    pub name: &'static str,
    /// Slowloris guard: a client must send its request headers in this time
    /// (also bounds how long an idle keep-alive connection is held, and a
    /// TLS handshake).
    pub header_read_timeout: Duration,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// A response write that makes no progress for this long ends the
    /// connection (a client that sends requests and never reads).
    pub write_timeout: Duration,
    pub metrics: crate::metrics::Metrics,
    /// TLS on this listener (the admin listener with `admin.tls-*`): plain
    /// HTTP then fails the handshake and is never served.
    pub tls: Option<Arc<tls::AdminTls>>,
    /// Addresses refused for failed authentications (the admin listener).
    pub guard: Option<Arc<guard::Guard>>,
}

/// Who is at the other end of a connection.
#[derive(Debug)]
pub struct Peer {
    pub addr: std::net::SocketAddr,
    /// The client certificate the TLS handshake verified, if any.
    pub cert: Option<crate::pki::Cert>,
}

/// Accepts connections until `shutdown` turns true, then drains the open
/// ones under [`DRAIN_DEADLINE`].
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let refused = limits
        .metrics
        .http
        .connections_refused
        .with_label_values(&[limits.name]);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Some(g) = &limits.guard {
                    if g.is_refused(addr.ip(), std::time::Instant::now()) {
                        g.count_refused_connection();
                        drop(stream);
                        continue;
                    }
                }
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    refused.inc();
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (handler, limits, watcher) = (handler.clone(), limits.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let Some(tls) = limits.tls.clone() else {
                        let peer = Arc::new(Peer { addr, cert: None });
                        connection(stream, peer, handler, &limits, watcher).await;
                        drop(slot);
                        return;
                    };
                    let accepted = tokio::time::timeout(
                        limits.header_read_timeout,
                        tls.acceptor.accept(stream),
                    )
                    .await;
                    match accepted {
                        Ok(Ok(stream)) => {
                            let cert = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(|der| crate::pki::Cert::parse(der.as_ref()).ok());
                            let peer = Arc::new(Peer { addr, cert });
                            connection(stream, peer, handler, &limits, watcher).await;
                        }
                        failed => {
                            let why = match failed {
                                Ok(Err(e)) => e.to_string(),
                                _ => "handshake not finished in time".to_string(),
                            };
                            limits
                                .metrics
                                .http.connection_errors
                                .with_label_values(&[limits.name, "tls_handshake"])
                                .inc();
                            if let Some(g) = &limits.guard {
                                g.failed(addr.ip(), "tls_handshake", std::time::Instant::now());
                            }
                            tracing::debug!(peer = %addr, error = %why, "TLS handshake failed");
                        }
                    }
                    drop(slot);
                });
            }
            _ = crate::shutdown::stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!("drain deadline passed with connections still open");
        }
    }
}

/// Serves one connection (plain or TLS) until it ends, under the head,
/// write and drain deadlines.
async fn connection<S, H, F>(
    stream: S,
    peer: Arc<Peer>,
    handler: H,
    limits: &Limits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let open = limits
        .metrics
        .http
        .connections_open
        .with_label_values(&[limits.name]);
    let head = deadline::HeadWait::new();
    let wait = Arc::clone(&head);
    let service = service_fn(move |req| {
        wait.request_started();
        let response = handler(req, Arc::clone(&peer));
        let wait = Arc::clone(&wait);
        async move {
            let response = response.await;
            wait.response_ready();
            Ok::<_, Infallible>(response)
        }
    });
    let stream = deadline::Deadlines::new(
        stream,
        Arc::clone(&head),
        limits.header_read_timeout,
        limits.write_timeout,
    );
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    open.inc();
    let ended = watcher.watch(conn).await;
    let errors = &limits.metrics.http.connection_errors;
    let name = limits.name;
    if head.overdue() {
        errors.with_label_values(&[name, "header_timeout"]).inc();
    } else if let Err(e) = ended {
        let kind = if deadline::is_write_timeout(&e) {
            "write_timeout"
        } else if e.is_parse() || e.is_parse_too_large() {
            "malformed"
        } else {
            "other"
        };
        errors.with_label_values(&[name, kind]).inc();
        tracing::debug!(error = %e, kind, "connection ended with an error");
    }
    open.dec();
}

/// A small listener that answers `GET /metrics` with `render()` and 404
/// otherwise (`revocd crl-sync --metrics-listen`).
pub async fn serve_text<R>(listener: TcpListener, render: R, shutdown: watch::Receiver<bool>)
where
    R: Fn() -> String + Clone + Send + Sync + 'static,
{
    let limits = Limits {
        name: "metrics",
        header_read_timeout: Duration::from_secs(10),
        max_connections: 64,
        write_timeout: Duration::from_secs(10),
        metrics: crate::metrics::Metrics::new(),
        tls: None,
        guard: None,
    };
    let handler = move |req: Request<Incoming>, _: Arc<Peer>| {
        let render = render.clone();
        async move {
            let (status, body) = if req.uri().path() == "/metrics" {
                (hyper::StatusCode::OK, render())
            } else {
                (hyper::StatusCode::NOT_FOUND, "not found\n".to_string())
            };
            Response::builder()
                .status(status)
                .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                .body(body_of(Bytes::from(body)))
                .unwrap_or_default()
        }
    };
    serve(listener, handler, limits, shutdown).await;
}
