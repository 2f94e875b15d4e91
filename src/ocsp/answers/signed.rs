//! A signed OCSP answer as it is stored and served ([`Signed`]), and the
//! wire status an entry of the state stands for. The leaf of the OCSP
//! module: the answer tables, the per-thread copies, the signer and the
//! serving stack all hold `Signed`; this file imports none of them.

use bytes::Bytes;

use crate::ocsp::response::CertStatus;
use crate::state::{Entry, Reason, Status};

/// A signed OCSP response ready to be written, with what the HTTP layer
/// needs for its caching headers (docs/conformance.md 20).
///
/// The bytes are held in two parts: what is this response's own, and the
/// signer's `certs` field (the delegated responder certificate, about 60% of
/// a response), which every response of that signer shares in one
/// allocation. The HTTP layer writes both without joining them.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The ETag, then the response's own bytes: one allocation.
    buf: Bytes,
    certs: Bytes,
    pub this_update: i64,
    pub next_update: i64,
    /// End of the window: max-age never runs past it.
    pub window_end: i64,
}

/// A quoted hex SHA-256: `"` + 64 + `"`.
const ETAG_LEN: usize = 66;

impl Signed {
    /// `own` bytes followed by the signer's shared `certs` field.
    pub fn new(
        own: &[u8],
        certs: &Bytes,
        this_update: i64,
        next_update: i64,
        window_end: i64,
    ) -> Self {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(own);
        digest.update(certs);
        let mut buf = Vec::with_capacity(ETAG_LEN + own.len());
        const HEX: &[u8; 16] = b"0123456789abcdef";
        buf.push(b'"');
        for b in digest.finish().as_ref() {
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        }
        buf.push(b'"');
        buf.extend_from_slice(own);
        Self {
            buf: Bytes::from(buf),
            certs: certs.clone(),
            this_update,
            next_update,
            window_end,
        }
    }

    /// From stored parts: `buf` is the ETag then the own bytes, as
    /// [`stored_bytes`](Self::stored_bytes) gave them.
    pub fn from_parts(
        buf: Bytes,
        certs: Bytes,
        this_update: i64,
        next_update: i64,
        window_end: i64,
    ) -> Self {
        Self {
            buf,
            certs,
            this_update,
            next_update,
            window_end,
        }
    }

    /// The same answer, whole (its own bytes then the signer's `certs`) in
    /// one buffer of its own: written with one slice instead of two, and
    /// holding on to no buffer it was carved from. For serving only: its
    /// own bytes include the `certs` field.
    pub fn detached(&self) -> Self {
        let mut buf = Vec::with_capacity(self.buf.len() + self.certs.len());
        buf.extend_from_slice(&self.buf);
        buf.extend_from_slice(&self.certs);
        Self {
            buf: Bytes::from(buf),
            certs: Bytes::new(),
            this_update: self.this_update,
            next_update: self.next_update,
            window_end: self.window_end,
        }
    }

    /// The response's own DER (without the shared `certs`).
    pub fn own_der(&self) -> &[u8] {
        self.own()
    }

    /// The ETag's SHA-256, raw.
    pub fn etag_digest(&self) -> [u8; 32] {
        super::compact::etag_digest(&self.buf[..ETAG_LEN]).unwrap_or([0; 32])
    }

    /// The signer's shared `certs` field.
    pub fn certs(&self) -> &Bytes {
        &self.certs
    }

    /// Strong ETag: quoted hex SHA-256 of the whole response (ASCII, ready
    /// to be a header value).
    pub fn etag(&self) -> Bytes {
        self.buf.slice(..ETAG_LEN)
    }

    fn own(&self) -> &[u8] {
        &self.buf[ETAG_LEN..]
    }

    /// Length of the whole DER response.
    pub fn len(&self) -> usize {
        self.own().len() + self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The response as (own bytes, shared suffix): write one after the other.
    pub fn parts(&self) -> (Bytes, Bytes) {
        (self.buf.slice(ETAG_LEN..), self.certs.clone())
    }

    /// The whole DER response, copied into one buffer.
    pub fn to_der(&self) -> Vec<u8> {
        [self.own(), &self.certs[..]].concat()
    }

    /// Bytes this response holds alone (its own bytes and ETag).
    pub fn own_bytes(&self) -> usize {
        self.buf.len()
    }

    /// When caches must stop using it: the window end, never past nextUpdate.
    pub fn cache_until(&self) -> i64 {
        self.window_end.min(self.next_update)
    }
}

/// The row of `status` in the answer counters (`metrics::tally`).
pub fn status_row(status: &CertStatus) -> u8 {
    match status {
        CertStatus::Good => 0,
        CertStatus::Revoked { .. } => 1,
        CertStatus::Unknown => 2,
    }
}

/// What a state entry says on the wire (an unspecified reason is left out,
/// docs/conformance.md 25).
pub fn wire_status(entry: &Entry) -> CertStatus {
    match entry.status {
        Status::Good => CertStatus::Good,
        Status::Revoked { at, reason, .. } => CertStatus::Revoked {
            at,
            reason: (reason != Reason::Unspecified).then_some(reason),
        },
    }
}
