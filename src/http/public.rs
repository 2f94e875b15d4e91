//! The public listener: OCSP over GET, HEAD and POST (RFC 6960 A.1, RFC 9919
//! 6-7). Serves the responder's bytes as they are; the one place that maps
//! an answer to HTTP status, body and caching headers is [`to_http`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{body_of, body_parts, Body};
use crate::clock::seconds_until;
use crate::ocsp::{self, Answer, ErrorStatus, Responder};

const OCSP_CONTENT_TYPE: &str = "application/ocsp-response";
const ALLOW: &str = "GET, HEAD, POST";

#[derive(Debug)]
pub struct PublicService {
    pub responder: Arc<Responder>,
    /// GET path prefix, "/" or e.g. "/ocsp".
    pub prefix: String,
    /// POST bodies: size cap (`ocsp.max-request-bytes`), deadline and rate.
    pub body: super::deadline::BodyLimits,
    /// Serves `/crl/<issuer>.crl` when CRLs are configured.
    pub crl: Option<Arc<crate::crl::CrlService>>,
}

/// What the hit path made of a request.
enum AtOnce {
    Answered(Response<Body>),
    /// A GET not pre-signed: the long way from what the hit path learned.
    Missed(ocsp::Miss),
    /// Not a GET of an OCSP path (POST, `/crl/`, undecodable: the long way
    /// says why).
    No,
}

/// How a request failed before reaching the responder.
enum Refused {
    Status(StatusCode, ErrorStatus),
    NotFound,
}

/// What [`PublicService::handle`] returns: a response made at once (a
/// pre-signed answer: no future to store and run), or one still to come.
pub enum Handled {
    Ready(Option<Response<Body>>),
    Pending(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Handled {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        match self.get_mut() {
            Handled::Ready(response) => Poll::Ready(response.take().unwrap_or_else(|| {
                let mut r = Response::new(body_of(Bytes::new()));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            })),
            Handled::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl PublicService {
    /// Answers one request. A GET or HEAD whose answer is pre-signed is
    /// answered here and now, touching nothing another core writes; any
    /// other request goes on in a future.
    pub fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Handled {
        match self.answer_at_once(&req) {
            AtOnce::Answered(response) => Handled::Ready(Some(response)),
            AtOnce::Missed(miss) => {
                Handled::Pending(Box::pin(Arc::clone(self).answer_missed(req, miss)))
            }
            AtOnce::No => Handled::Pending(Box::pin(Arc::clone(self).handle_any(req))),
        }
    }

    /// A GET or HEAD through the hit path: answered, or decoded for the
    /// long way (so its path is decoded and its answer looked up once).
    fn answer_at_once(&self, req: &Request<Incoming>) -> AtOnce {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return AtOnce::No;
        }
        let path = req.uri().path();
        if path.starts_with("/crl/") {
            return AtOnce::No;
        }
        let Ok(rest) = self.get_path(path) else {
            return AtOnce::No;
        };
        let now = self.responder.clock().now();
        match self.responder.respond_get(rest, now) {
            ocsp::Get::Hit(answer) => {
                let if_none_match = req.headers().get(header::IF_NONE_MATCH);
                AtOnce::Answered(self.finish(Ok(answer), now, req.method(), if_none_match))
            }
            ocsp::Get::Miss(miss) => AtOnce::Missed(miss),
            ocsp::Get::Undecodable => AtOnce::No,
        }
    }

    /// The long way for a GET the hit path did not answer.
    async fn answer_missed(
        self: Arc<Self>,
        req: Request<Incoming>,
        miss: ocsp::Miss,
    ) -> Response<Body> {
        let now = self.responder.clock().now();
        let answer = self.responder.respond_miss(miss, now).await;
        let if_none_match = req.headers().get(header::IF_NONE_MATCH);
        self.finish(Ok(answer), now, req.method(), if_none_match)
    }

    async fn handle_any(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if let Some(name) = req.uri().path().strip_prefix("/crl/") {
            return self.crl(&req, name);
        }
        let method = req.method().clone();
        let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
        let mut path_der = [0u8; ocsp::GET_DER_INLINE];
        let answer = match self.request_der(req, &mut path_der).await {
            Ok(der) => Ok(self.responder.respond(der.bytes()).await),
            Err(r) => Err(r),
        };
        let now = self.responder.clock().now();
        self.finish(answer, now, &method, if_none_match.as_ref())
    }

    /// The HTTP response for what the responder answered (or why the
    /// request never reached it), counted.
    fn finish(
        &self,
        answer: Result<Answer, Refused>,
        now: i64,
        method: &Method,
        if_none_match: Option<&HeaderValue>,
    ) -> Response<Body> {
        let head = *method == Method::HEAD;
        let (response, status_label) = match answer {
            Ok(a) => {
                let label = match &a {
                    Answer::Signed(_) => "successful",
                    Answer::Error(e) => e.name(),
                };
                (to_http(&a, now, head, if_none_match), label)
            }
            Err(Refused::Status(code, e)) => (error_response(code, e, head), e.name()),
            Err(Refused::NotFound) => (not_found(), "not_found"),
        };
        let method_label = match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            _ => "other",
        };
        self.responder.count_request(method_label, status_label);
        response
    }

    /// What follows the configured GET prefix in `path`.
    fn get_path<'p>(&self, path: &'p str) -> Result<&'p str, Refused> {
        if self.prefix == "/" {
            return Ok(path);
        }
        match path.strip_prefix(self.prefix.trim_end_matches('/')) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => Ok(rest),
            _ => Err(Refused::NotFound),
        }
    }

    /// The DER OCSPRequest carried by a GET path (decoded into `path_der`
    /// when it fits) or a POST body.
    async fn request_der<'b>(
        &self,
        req: Request<Incoming>,
        path_der: &'b mut [u8],
    ) -> Result<Der<'b>, Refused> {
        let malformed = Refused::Status(StatusCode::BAD_REQUEST, ErrorStatus::MalformedRequest);
        match *req.method() {
            Method::GET | Method::HEAD => {
                let rest = self.get_path(req.uri().path())?;
                ocsp::request::decode_get_path_in(rest, path_der)
                    .map(Der::Path)
                    .map_err(|e| {
                        tracing::debug!(error = %e, "undecodable OCSP GET path");
                        malformed
                    })
            }
            Method::POST => {
                let too_large = || {
                    self.responder
                        .metrics()
                        .http
                        .requests_rejected
                        .with_label_values(&["public", "body_too_large"])
                        .inc();
                    Refused::Status(StatusCode::PAYLOAD_TOO_LARGE, ErrorStatus::MalformedRequest)
                };
                let limit = self.body.max_bytes;
                if req
                    .body()
                    .size_hint()
                    .exact()
                    .or_else(|| declared_length(&req))
                    .is_some_and(|n| n > limit as u64)
                {
                    return Err(too_large());
                }
                match super::deadline::read_body(req.into_body(), self.body).await {
                    Ok(body) => Ok(Der::Body(body)),
                    Err(super::deadline::BodyError::TooLarge(_)) => Err(too_large()),
                    Err(super::deadline::BodyError::TimedOut) => {
                        self.responder
                            .metrics()
                            .http
                            .connection_errors
                            .with_label_values(&["public", "body_timeout"])
                            .inc();
                        Err(Refused::Status(
                            StatusCode::REQUEST_TIMEOUT,
                            ErrorStatus::MalformedRequest,
                        ))
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "request body could not be read");
                        Err(malformed)
                    }
                }
            }
            _ => Err(Refused::Status(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorStatus::MalformedRequest,
            )),
        }
    }
}

/// A request's DER: from the GET path, or the POST body as read.
enum Der<'b> {
    Path(Cow<'b, [u8]>),
    Body(Bytes),
}

impl Der<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Der::Path(p) => p,
            Der::Body(b) => b,
        }
    }
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn http_date(unix: i64) -> HeaderValue {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).unwrap_or(HeaderValue::from_static(""))
}

type Memo = RefCell<Option<(i64, HeaderValue)>>;

thread_local! {
    static LAST_MODIFIED: Memo = const { RefCell::new(None) };
    static EXPIRES: Memo = const { RefCell::new(None) };
    static CACHE_CONTROL: Memo = const { RefCell::new(None) };
}

/// The header value for `key`, formatted only when it differs from the one
/// this thread formatted last. Within a window nearly every answer has the
/// same Last-Modified and Expires and (per second) max-age, so the hit
/// path formats nothing (docs/design.md: the hot path never signs).
fn memo(
    cell: &'static std::thread::LocalKey<Memo>,
    key: i64,
    make: impl FnOnce(i64) -> HeaderValue,
) -> HeaderValue {
    cell.with(|m| {
        let mut m = m.borrow_mut();
        match &*m {
            Some((k, v)) if *k == key => v.clone(),
            _ => {
                let v = make(key);
                *m = Some((key, v.clone()));
                v
            }
        }
    })
}

fn cache_control(max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "max-age={max_age}, public, no-transform, must-revalidate"
    ))
    .unwrap_or(HeaderValue::from_static("no-cache"))
}

/// Maps a responder answer to HTTP (docs/conformance.md 19-21).
pub fn to_http(
    answer: &Answer,
    now: i64,
    head: bool,
    if_none_match: Option<&HeaderValue>,
) -> Response<Body> {
    let signed = match answer {
        Answer::Signed(s) => s,
        Answer::Error(e) => {
            let code = match e {
                ErrorStatus::MalformedRequest => StatusCode::BAD_REQUEST,
                ErrorStatus::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorStatus::TryLater => StatusCode::SERVICE_UNAVAILABLE,
                ErrorStatus::SigRequired | ErrorStatus::Unauthorized => StatusCode::OK,
            };
            return error_response(code, *e, head);
        }
    };
    let matches = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || signed.etag() == t.as_bytes())
        });
    let mut response = if matches {
        let mut r = Response::new(body_of(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if head {
        Response::new(body_of(Bytes::new()))
    } else {
        let (own, certs) = signed.parts();
        Response::new(body_parts(own, certs))
    };
    // max-age runs to the window end and never past nextUpdate.
    let until = signed.cache_until();
    let max_age = i64::try_from(seconds_until(now, until)).unwrap_or(0);
    let h = response.headers_mut();
    h.reserve(6);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OCSP_CONTENT_TYPE),
    );
    h.insert(
        header::CACHE_CONTROL,
        memo(&CACHE_CONTROL, max_age, cache_control),
    );
    h.insert(
        header::LAST_MODIFIED,
        memo(&LAST_MODIFIED, signed.this_update, http_date),
    );
    h.insert(
        header::EXPIRES,
        memo(&EXPIRES, now.saturating_add(max_age), http_date),
    );
    if let Ok(etag) = HeaderValue::from_maybe_shared(signed.etag()) {
        h.insert(header::ETAG, etag);
    }
    // hyper writes Date (the system clock, formatted once a second) and,
    // for a body, Content-Length from its size; a HEAD answer states the
    // length its GET would have.
    if head && !matches {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(signed.len()));
    }
    response
}

impl PublicService {
    /// `GET|HEAD /crl/<issuer>.crl`: the live CRL, DER, with ETag and 304
    /// (docs/conformance.md 28), so revocd can be a CDN origin itself.
    fn crl(&self, req: &Request<Incoming>, name: &str) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !head {
            let mut r = not_found();
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let listed = match (
            name.strip_suffix("/manifest.json"),
            name.strip_suffix("/urls.json"),
        ) {
            (Some(id), _) => Some(self.crl.as_ref().and_then(|c| c.manifest(id))),
            (None, Some(id)) => Some(self.crl.as_ref().and_then(|c| c.urls_json(id))),
            (None, None) => None,
        };
        if let Some(json) = listed {
            return match json {
                Some(m) => Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .header(header::CONTENT_LENGTH, m.len())
                    .body(body_of(if head { Bytes::new() } else { m }))
                    .unwrap_or_default(),
                None => not_found(),
            };
        }
        let live = self.crl.as_ref().and_then(|c| c.live(name));
        let (Some(live), Some(svc)) = (live, &self.crl) else {
            return not_found();
        };
        let now = self.responder.clock().now();
        let mut b = Response::builder()
            .header(header::CONTENT_TYPE, crate::crl::CONTENT_TYPE)
            .header(
                header::CACHE_CONTROL,
                format!("public, max-age={}", svc.cache_max_age()),
            )
            .header(header::ETAG, live.etag.as_str())
            .header(header::LAST_MODIFIED, http_date(live.this_update))
            .header(header::DATE, http_date(now));
        let matches = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == live.etag || t.trim() == "*")
            });
        if matches {
            b = b.status(StatusCode::NOT_MODIFIED);
            return b.body(body_of(Bytes::new())).unwrap_or_default();
        }
        b = b.header(header::CONTENT_LENGTH, live.der.len());
        let body = if head { Bytes::new() } else { live.der };
        b.body(body_of(body)).unwrap_or_default()
    }
}

/// A 5-byte OCSP error with a non-cacheable HTTP response.
fn error_response(code: StatusCode, e: ErrorStatus, head: bool) -> Response<Body> {
    let der = e.der();
    let mut b = Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, OCSP_CONTENT_TYPE)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONTENT_LENGTH, der.len());
    if code == StatusCode::METHOD_NOT_ALLOWED {
        b = b.header(header::ALLOW, ALLOW);
    }
    if code == StatusCode::SERVICE_UNAVAILABLE {
        b = b.header(header::RETRY_AFTER, "1");
    }
    let body = if head {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(&der)
    };
    b.body(body_of(body)).unwrap_or_default()
}

fn not_found() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body_of(Bytes::from_static(b"not found\n")))
        .unwrap_or_default()
}
