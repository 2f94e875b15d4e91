//! Deadlines for every stage of a connection: receiving a request head
//! (the slowloris guard, which also bounds an idle keep-alive connection),
//! reading a request body (a time limit plus a minimum rate) and writing a
//! response to a client that does not read.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How a request body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// More bytes than this: refused (413).
    pub max_bytes: usize,
    /// The whole body must arrive within `timeout` plus one second per
    /// `min_rate` bytes received: a large body sent briskly is fine, a
    /// trickle is cut.
    pub timeout: Duration,
    /// Bytes per second (at least 1).
    pub min_rate: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body not received in time (slower than the body deadline allows)")]
    TimedOut,
    #[error("body unreadable: {0}")]
    Unreadable(String),
}

/// Reads a whole request body under `limits`.
pub async fn read_body(mut body: Incoming, limits: BodyLimits) -> Result<Bytes, BodyError> {
    let started = tokio::time::Instant::now();
    let mut buf = BytesMut::new();
    loop {
        let allowed = limits.timeout
            + Duration::from_secs_f64(buf.len() as f64 / limits.min_rate.max(1) as f64);
        let frame = match tokio::time::timeout_at(started + allowed, body.frame()).await {
            Err(_) => return Err(BodyError::TimedOut),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Unreadable(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limits.max_bytes {
                return Err(BodyError::TooLarge(limits.max_bytes));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// When a connection began waiting for its next request head, shared by
/// the connection's service (which marks a request's start and its
/// response) and its stream ([`Deadlines`], which starts the wait when the
/// response is written, as hyper's own timeout did, and enforces it).
#[derive(Debug)]
pub struct HeadWait {
    epoch: Instant,
    /// Milliseconds from `epoch` to the start of the wait, or [`BUSY`] or
    /// [`WRITING`].
    since_ms: AtomicU64,
    /// The connection was cut for a head that did not arrive in time
    /// (hyper reports a failed read on an idle connection as a close).
    overdue: AtomicBool,
}

/// A request is being answered: no head is awaited.
const BUSY: u64 = u64::MAX;
/// Its response is made and not yet written: the wait starts with the
/// write (a large answer to a slow reader is the write deadline's matter).
const WRITING: u64 = u64::MAX - 1;

impl HeadWait {
    /// Waiting for the first head from now (the connection just opened).
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            since_ms: AtomicU64::new(0),
            overdue: AtomicBool::new(false),
        })
    }

    /// A request head arrived whole: no wait until its response is made
    /// (reading its body has its own deadline).
    pub fn request_started(&self) {
        self.since_ms.store(BUSY, Ordering::Relaxed);
    }

    /// The response is made: the wait for the next head starts as it is
    /// written.
    pub fn response_ready(&self) {
        self.since_ms.store(WRITING, Ordering::Relaxed);
    }

    /// Bytes of a response went out: the wait for the next head runs from
    /// now (the last write of a response is when it starts).
    fn written(&self) {
        if self.since_ms.load(Ordering::Relaxed) != BUSY {
            let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(WRITING - 1);
            self.since_ms.store(ms.min(WRITING - 1), Ordering::Relaxed);
        }
    }

    /// Whether the connection was cut for a head not received in time.
    pub fn overdue(&self) -> bool {
        self.overdue.load(Ordering::Relaxed)
    }

    /// When the head awaited now is due, if one is awaited.
    fn due(&self, timeout: Duration) -> Option<Instant> {
        match self.since_ms.load(Ordering::Relaxed) {
            BUSY | WRITING => None,
            ms => Some(self.epoch + Duration::from_millis(ms) + timeout),
        }
    }
}

/// A connection's stream under two deadlines.
///
/// Reads: a request head must arrive whole within `head_timeout` of the
/// wait for it starting ([`HeadWait`]); otherwise reads fail with
/// [`HeadTimedOut`]. One timer per connection is armed for the wait's end
/// and moved on only when it fires, so a connection answering request
/// after request touches the runtime's timer wheel about once per
/// `head_timeout`, not once per request (as hyper's own header timeout
/// does).
///
/// Writes: a write that makes no progress for `write_timeout` (a client
/// that stopped reading) fails with [`WriteTimedOut`].
pub struct Deadlines<S> {
    inner: S,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    head_timeout: Duration,
    head: Arc<HeadWait>,
    head_timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Deadlines<S> {
    pub fn new(
        inner: S,
        head: Arc<HeadWait>,
        head_timeout: Duration,
        write_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            write_timeout,
            stalled: None,
            head_timeout,
            head,
            head_timer: None,
        }
    }

    /// After a read found nothing to read: the error once the awaited head
    /// is overdue; otherwise the timer is armed to wake the connection by
    /// then. While a request is answered no head is awaited, but the timer
    /// stays armed at most `head_timeout` ahead: hyper may not read again
    /// before the client sends, so the timer must already be running when
    /// the wait for the next head begins.
    fn head_overdue(&mut self, cx: &mut Context<'_>) -> Option<std::io::Error> {
        let due = self.head.due(self.head_timeout);
        let timeout = self.head_timeout;
        let next = || due.unwrap_or_else(|| Instant::now() + timeout);
        let timer = self
            .head_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next())));
        // A timer armed earlier fires early: it is moved on, to the head's
        // deadline when one is awaited.
        while timer.as_mut().poll(cx).is_ready() {
            match due {
                Some(due) if Instant::now() >= due => {
                    self.head.overdue.store(true, Ordering::Relaxed);
                    return Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        HeadTimedOut,
                    ));
                }
                _ => timer.as_mut().reset(next()),
            }
        }
        None
    }

    /// After a Pending write: the error once the stall has lasted too long.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let timeout = self.write_timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                WriteTimedOut,
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        r: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx).map(Err),
        }
    }
}

/// The error a write deadline produces (found again when counting).
#[derive(Debug, thiserror::Error)]
#[error("response write made no progress within the write timeout")]
pub struct WriteTimedOut;

/// The error the head deadline produces (found again when counting).
#[derive(Debug, thiserror::Error)]
#[error("request head not received within the header read timeout")]
pub struct HeadTimedOut;

impl<S: AsyncRead + Unpin> AsyncRead for Deadlines<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_pending() {
            if let Some(e) = self.head_overdue(cx) {
                return Poll::Ready(Err(e));
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlines<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.head.written();
        }
        self.progress(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.head.written();
        }
        self.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether a connection error came from the write deadline.
pub fn is_write_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<WriteTimedOut>(e)
}

fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<T>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|i| i.is::<T>()) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}
