//! The responder: one method, [`Responder::respond`], from request bytes to
//! response bytes. Behind it, like Boulder's stack: is the issuer ours? ->
//! pre-signed cache -> on-demand signer (single flight per key, bounded by the
//! signing budget, tryLater beyond it). The HTTP layer only writes the bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use prometheus::{Histogram, IntCounter};
use tokio::sync::Semaphore;

use super::hot;
use super::request;
use super::requested::Requested;
use super::response::{self, CertStatus, ErrorStatus, ResponseBody, ResponseSigner, SingleAnswer};
pub use super::store::Presigned;
use crate::clock::{Clock, Window, Windows};
use crate::config::{NonceMode, Ocsp, UnknownSerialPolicy};
use crate::issuer::{Issuer, Issuers};
use crate::ledger::record::IssuerEntries;
use crate::ledger::{Applier, ApplyError};
use crate::metrics::{tally, Metrics};
use crate::pki::{HashAlg, SignError};
use crate::state::{Applied, Change, Entry, Reason, Serial, Status};

/// A signed OCSP response ready to be written, with what the HTTP layer
/// needs for its caching headers (CONFORMANCE 20).
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

/// Memory a cache entry takes besides its own bytes: the key, moka's entry
/// (timestamps, deque and timer nodes, hash table slot), `Signed`, allocator
/// slack. Measured with loadtest/presign at 1M serials: about 1,100 bytes of
/// RSS per cached response of about 350 own bytes; charging 600 makes
/// `ocsp.cache-max-bytes` an approximate bound (about 85% of the real use)
/// that still holds this and the next window of 1M serials x 2 hashes.
const ENTRY_OVERHEAD: usize = 600;

/// A quoted hex SHA-256: `"` + 64 + `"`.
const ETAG_LEN: usize = 66;

impl Signed {
    /// `own` bytes followed by the signer's shared `certs` field.
    fn new(own: &[u8], certs: &Bytes, this_update: i64, next_update: i64, window_end: i64) -> Self {
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
    pub(super) fn from_parts(
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
    pub(super) fn detached(&self) -> Self {
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
    pub(super) fn own_der(&self) -> &[u8] {
        self.own()
    }

    /// The ETag's SHA-256, raw.
    pub(super) fn etag_digest(&self) -> [u8; 32] {
        super::compact::etag_digest(&self.buf[..ETAG_LEN]).unwrap_or([0; 32])
    }

    /// The signer's shared `certs` field.
    pub(super) fn certs(&self) -> &Bytes {
        &self.certs
    }

    #[cfg(test)]
    pub(super) fn new_for_tests(
        own: &[u8],
        certs: &Bytes,
        this_update: i64,
        next_update: i64,
        window_end: i64,
    ) -> Self {
        Self::new(own, certs, this_update, next_update, window_end)
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

/// The issuers a responder is built on: shared with the CRL service, or a
/// plain list (tests, tools).
pub struct IssuersArg(Arc<Issuers>);

impl From<Arc<Issuers>> for IssuersArg {
    fn from(i: Arc<Issuers>) -> Self {
        Self(i)
    }
}

impl From<Vec<Issuer>> for IssuersArg {
    fn from(list: Vec<Issuer>) -> Self {
        Self(Issuers::new(list))
    }
}

/// What the responder answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Signed(Signed),
    Error(ErrorStatus),
}

/// Why a signature is made, for metrics.
#[derive(Debug, Clone, Copy)]
pub enum Why {
    Presign,
    OnDemand,
    Change,
    /// A request no ordinary client needs: several CertIDs, a serial the
    /// state does not know, a nonce to echo.
    Uncommon,
}

impl Why {
    const ALL: [Why; 4] = [Why::Presign, Why::OnDemand, Why::Change, Why::Uncommon];

    fn label(self) -> &'static str {
        match self {
            Why::Presign => "presign",
            Why::OnDemand => "on_demand",
            Why::Change => "change",
            Why::Uncommon => "uncommon",
        }
    }
}

/// Which limits a signing on a miss runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// One known serial: the main cache and `ocsp.signing-budget`.
    Common,
    /// Only strangers need it: its own cache, budget and rate.
    Uncommon,
}

/// The limits and the cache of uncommon requests, apart from the main ones
/// so that strangers can neither drive signing nor evict pre-signed answers.
struct UncommonLimits {
    cache: Cache<CacheKey, Arc<Signed>>,
    budget: Arc<Semaphore>,
    rate: super::rate::TokenBucket,
}

/// One cached answer: issuer, window, and per certificate (serial, hash,
/// entry revision). A change bumps the revision, so older answers become
/// unreachable the moment the state changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    issuer: usize,
    /// The issuer's signer generation: a key rotation changes it.
    generation: u64,
    window: i64,
    items: Items,
}

/// The CertIDs of a cached answer: nearly always one, kept inline (no
/// allocation of its own per cache entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Items {
    One(Serial, HashAlg, u64),
    Many(Vec<(Serial, HashAlg, u64)>),
}

impl Items {
    fn from_vec(mut v: Vec<(Serial, HashAlg, u64)>) -> Self {
        match v.pop() {
            Some((serial, alg, revision)) if v.is_empty() => Items::One(serial, alg, revision),
            Some(last) => {
                v.push(last);
                Items::Many(v)
            }
            None => Items::Many(v),
        }
    }
}

/// An issuer a CertID's issuerKeyHash may point to.
#[derive(Debug)]
struct Candidate {
    issuer: usize,
    alg: HashAlg,
    name_hash: Vec<u8>,
}

/// Per issuer, the CertID hashes under each algorithm, computed once.
#[derive(Debug)]
struct IssuerHashes {
    by_alg: Vec<(HashAlg, Vec<u8>, Vec<u8>)>,
}

impl IssuerHashes {
    fn of(&self, alg: HashAlg) -> (&[u8], &[u8]) {
        self.by_alg
            .iter()
            .find(|(a, _, _)| *a == alg)
            .map(|(_, n, k)| (n.as_slice(), k.as_slice()))
            .unwrap_or((&[], &[]))
    }
}

pub struct Responder {
    issuers: Arc<Issuers>,
    hashes: Vec<IssuerHashes>,
    /// issuerKeyHash -> the issuers and hash algorithms it stands for.
    by_key_hash: HashMap<Vec<u8>, Vec<Candidate>>,
    windows: Windows,
    validity: i64,
    clock: Arc<dyn Clock>,
    cache: Cache<CacheKey, Arc<Signed>>,
    /// Pre-signed single-CertID answers, one table per window.
    store: super::store::AnswerStore,
    /// This responder's answers in the threads' hot answers (`hot`).
    id: u64,
    budget: Arc<Semaphore>,
    max_certs: usize,
    presign_hashes: Vec<HashAlg>,
    presign_cpu_share: f64,
    startup_presign: Duration,
    /// Per issuer, which serials were asked about lately (pre-signing order).
    requested: Vec<Requested>,
    metrics: Metrics,
    /// `ocsp_signings` and `ocsp_signing_seconds` per `Why::ALL`.
    sign_counters: [(IntCounter, Histogram); 4],
    uncommon: UncommonLimits,
    nonce: NonceMode,
    ready: AtomicBool,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("issuers", &self.issuers.len())
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl Responder {
    pub fn new(
        issuers: impl Into<IssuersArg>,
        ocsp: &Ocsp,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Arc<Self> {
        let issuers = issuers.into().0;
        let windows = Windows::new(ocsp.window.as_secs());
        let mut by_key_hash: HashMap<Vec<u8>, Vec<Candidate>> = HashMap::new();
        let mut hashes = Vec::new();
        for (i, issuer) in issuers.iter().enumerate() {
            let mut by_alg = Vec::new();
            for alg in HashAlg::ALL {
                let (name, key) = issuer.hashes(alg);
                by_key_hash.entry(key.clone()).or_default().push(Candidate {
                    issuer: i,
                    alg,
                    name_hash: name.clone(),
                });
                by_alg.push((alg, name, key));
            }
            hashes.push(IssuerHashes { by_alg });
        }
        // The series the hit path tallies (`metrics::tally`) exist from the
        // start, at zero, as the scrape adds the tallies to them.
        for status in tally::STATUSES {
            for alg in HashAlg::ALL {
                metrics
                    .ocsp_answers
                    .with_label_values(&[status, alg.name()]);
            }
        }
        for method in tally::METHODS {
            metrics
                .ocsp_requests
                .with_label_values(&[method, "successful"]);
        }
        // An entry lives through the window before its own (pre-signed
        // ahead) and its own window.
        let ttl = Duration::from_secs(2 * ocsp.window.as_secs() + 60);
        let answers = |max_bytes: u64| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_k: &CacheKey, v: &Arc<Signed>| {
                    u32::try_from(v.own_bytes() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .expire_after(UntilWindowEnd {
                    clock: Arc::clone(&clock),
                })
                .build()
        };
        let cache = answers(ocsp.cache_max_bytes);
        let uncommon_cache = answers(ocsp.uncommon_cache_bytes);
        let requested = issuers.iter().map(|_| Requested::default()).collect();
        Arc::new(Self {
            issuers,
            requested,
            hashes,
            by_key_hash,
            windows,
            validity: i64::try_from(ocsp.validity.as_secs()).unwrap_or(i64::MAX),
            clock,
            cache,
            store: super::store::AnswerStore::default(),
            id: hot::next_owner(),
            budget: Arc::new(Semaphore::new(ocsp.signing_budget)),
            max_certs: ocsp.max_certs_per_request,
            presign_hashes: ocsp.presign_hashes.clone(),
            presign_cpu_share: ocsp.presign_cpu_share,
            startup_presign: ocsp.startup_presign,
            sign_counters: Why::ALL.map(|why| {
                (
                    metrics.ocsp_signings.with_label_values(&[why.label()]),
                    metrics
                        .ocsp_signing_seconds
                        .with_label_values(&[why.label()]),
                )
            }),
            uncommon: UncommonLimits {
                cache: uncommon_cache,
                budget: Arc::new(Semaphore::new(ocsp.uncommon_signing_budget)),
                rate: super::rate::TokenBucket::new(
                    ocsp.uncommon_signing_rate,
                    ocsp.uncommon_signing_rate,
                ),
            },
            nonce: ocsp.nonce,
            metrics,
            ready: AtomicBool::new(false),
        })
    }

    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    pub fn issuer_index(&self, id: &str) -> Option<usize> {
        self.issuers.index(id)
    }

    pub fn windows(&self) -> Windows {
        self.windows
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn presign_hashes(&self) -> &[HashAlg] {
        &self.presign_hashes
    }

    /// `ocsp.presign-cpu-share`: 0 turns the background pre-signer off.
    /// When every issuer's OCSP key is in an HSM: how many signings the
    /// pre-signer may keep in flight (`pkcs11.max-in-flight`); the HSM, not
    /// the CPU share, is then its limit.
    pub fn presign_hsm_slots(&self) -> Option<usize> {
        let slots: Option<Vec<usize>> = self
            .issuers
            .iter()
            .map(|i| i.signer().key().hsm_slots())
            .collect();
        slots.and_then(|s| s.into_iter().min())
    }

    pub fn presign_cpu_share(&self) -> f64 {
        self.presign_cpu_share
    }

    /// `ocsp.startup-presign`: the longest start-up waits for pre-signing.
    pub fn startup_presign(&self) -> Duration {
        self.startup_presign
    }

    /// Which of issuer `idx`'s serials were asked about lately.
    pub fn requested(&self, idx: usize) -> &Requested {
        &self.requested[idx]
    }

    /// Seconds one response of issuer `idx` takes to encode and sign, timed
    /// on a few throwaway responses (the pre-signer's first cost estimate).
    pub fn calibrate(&self, idx: usize) -> f64 {
        const ROUNDS: u32 = 4;
        let window = self.windows.at(self.clock.now());
        let serial = Serial::from_hex("01").expect("static serial");
        let item = [(serial, HashAlg::Sha256, CertStatus::Good)];
        let signer = self.issuers[idx].signer();
        let started = Instant::now();
        for _ in 0..ROUNDS {
            let _ = self.encode(idx, &signer, window, &item, None);
        }
        started.elapsed().as_secs_f64() / f64::from(ROUNDS)
    }

    /// Ready once the current window is pre-signed, or `startup_presign`
    /// has passed (see `ocsp::presign::run`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        self.metrics.ready.set(1);
    }

    /// Readiness off at shutdown, so load balancers stop sending first.
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::Release);
        self.metrics.ready.set(0);
    }

    /// The hit path alone: the answer when `der` is a single-CertID request
    /// (decoded in place, nothing allocated) whose pre-signed answer is
    /// held for the serial's current state at `now` (the clock's); `None`
    /// sends it to [`respond`](Self::respond). Never waits, never signs.
    pub fn respond_hot(&self, der: &[u8], now: i64) -> Option<Answer> {
        let asked = self.asked(der)?;
        self.presigned_hit(&asked, self.windows.at(now), now)
            .map(Answer::Signed)
    }

    /// [`respond_hot`](Self::respond_hot) for a GET path (what follows the
    /// listener's prefix). A path this thread resolved before is not
    /// decoded again ([`hot::asked`]).
    pub fn respond_hot_path(&self, path: &str, now: i64) -> Option<Answer> {
        let asked = match hot::asked(self.id, path) {
            Some(asked) => asked,
            None => {
                let mut buf = [0u8; request::GET_DER_INLINE];
                let der = request::decode_get_path_in(path, &mut buf).ok()?;
                let asked = self.asked(&der)?;
                hot::remember(self.id, path, asked);
                asked
            }
        };
        self.presigned_hit(&asked, self.windows.at(now), now)
            .map(Answer::Signed)
    }

    /// The issuer, hash and serial of a request of the plain single-CertID
    /// shape to an issuer of ours.
    fn asked(&self, der: &[u8]) -> Option<hot::Asked> {
        let one = request::decode_single(der).filter(|_| self.max_certs >= 1)?;
        let idx = self.find_issuer(one.hash, one.name_hash, one.key_hash)?;
        hot::Asked::new(idx, one.hash, one.serial)
    }

    /// Answers one DER OCSPRequest. Never signs on a cache hit.
    pub async fn respond(self: &Arc<Self>, der: &[u8]) -> Answer {
        let now = self.clock.now();
        if let Some(hit) = self.respond_hot(der, now) {
            return hit;
        }
        let window = self.windows.at(now);
        let req = match request::decode_der(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return Answer::Error(ErrorStatus::MalformedRequest);
            }
        };
        if let Some(oid) = &req.unknown_critical {
            // RFC 6960 4.4: a critical extension revocd does not understand
            // is not answered as if it were absent.
            tracing::debug!(oid, "request with an unknown critical extension");
            return Answer::Error(ErrorStatus::MalformedRequest);
        }
        if req.queries.len() > self.max_certs {
            return Answer::Error(ErrorStatus::Unauthorized);
        }
        let nonce = match (self.nonce, &req.nonce) {
            (NonceMode::Echo, Some(v)) => match request::nonce_length(v) {
                request::NonceLength::Echo => Some(v.clone()),
                request::NonceLength::AnswerWithout => None,
                request::NonceLength::Malformed => {
                    return Answer::Error(ErrorStatus::MalformedRequest)
                }
            },
            _ => None,
        };
        if let (None, [q]) = (&nonce, req.queries.as_slice()) {
            let asked = q.hash.and_then(|alg| {
                let idx = self.find_issuer(alg, &q.name_hash, &q.key_hash)?;
                hot::Asked::new(idx, alg, q.serial.content())
            });
            if let Some(hit) = asked.and_then(|a| self.presigned_hit(&a, window, now)) {
                return Answer::Signed(hit);
            }
        }
        let mut class = if req.queries.len() > 1 {
            Class::Uncommon
        } else {
            Class::Common
        };
        let mut issuer = None;
        let mut items = Vec::with_capacity(req.queries.len());
        let mut job = Vec::with_capacity(req.queries.len());
        for q in &req.queries {
            // Filter: is this issuer ours, under a hash we answer for?
            let Some(alg) = q.hash else {
                return Answer::Error(ErrorStatus::Unauthorized);
            };
            let Some(idx) = self.find_issuer(alg, &q.name_hash, &q.key_hash) else {
                return Answer::Error(ErrorStatus::Unauthorized);
            };
            // One response has one signer: all CertIDs must share the issuer.
            if issuer.is_some_and(|i| i != idx) {
                return Answer::Error(ErrorStatus::Unauthorized);
            }
            issuer = Some(idx);
            let Some((status, revision, known)) = self.status_of(idx, &q.serial) else {
                return Answer::Error(ErrorStatus::Unauthorized);
            };
            if !known {
                class = Class::Uncommon;
            }
            self.requested[idx].mark(window.index, &q.serial);
            self.count_answer(&status, alg);
            items.push((q.serial.clone(), alg, revision));
            job.push((q.serial.clone(), alg, status));
        }
        let Some(issuer) = issuer else {
            return Answer::Error(ErrorStatus::MalformedRequest);
        };
        if let Some(nonce) = nonce {
            return match self.sign_with_nonce(issuer, window, job, nonce).await {
                Ok(signed) => Answer::Signed(signed),
                Err(status) => Answer::Error(status),
            };
        }
        let key = CacheKey {
            issuer,
            generation: self.issuers[issuer].generation(),
            window: window.index,
            items: Items::from_vec(items),
        };
        match self.cached_or_signed(key, job, class).await {
            Ok(signed) => {
                let age = self.clock.now().saturating_sub(signed.this_update);
                self.metrics.tally.age(age);
                Answer::Signed(signed)
            }
            Err(status) => Answer::Error(status),
        }
    }

    /// The hit path: one CertID of a known serial whose pre-signed answer
    /// for this state is in the window's table. Allocates the serial's
    /// lookup key only (the answer is expanded into a per-thread arena);
    /// anything else goes the long way.
    fn presigned_hit(&self, asked: &hot::Asked, window: Window, now: i64) -> Option<Signed> {
        let (idx, alg, serial) = (asked.issuer, asked.alg, asked.serial());
        let issuer = &self.issuers[idx];
        // Both before the state: a change or rotation after this point
        // moves them, so what is kept under them is never stale.
        let stamp = issuer.state.stamp(serial);
        let generation = issuer.generation();
        let hot_key = hot::Key::new(self.id, window.index, generation, idx, alg, serial);
        let (hit, status_row) = match hot_key.as_ref().and_then(|k| hot::get(k, stamp)) {
            Some(kept) => kept,
            None => {
                let owned = &Serial::from_content(serial);
                let entry = issuer.state.lookup(owned)?;
                let status = wire_status(&entry);
                let hit = self.store.get(
                    window.index,
                    idx,
                    alg,
                    owned,
                    entry.revision,
                    generation,
                    &status,
                )?;
                let row = status_row(&status);
                if let Some(k) = hot_key {
                    hot::put(k, stamp, row, &hit);
                }
                (hit, row)
            }
        };
        self.requested[idx].mark_content(window.index, serial);
        let age = now.saturating_sub(hit.this_update);
        self.metrics.tally.presigned_hit(status_row, alg, age);
        Some(hit)
    }

    fn count_answer(&self, status: &CertStatus, alg: HashAlg) {
        self.metrics.tally.status(status_row(status), alg);
    }

    /// Counts one OCSP request in `revocd_ocsp_requests_total`.
    pub fn count_request(&self, method: &'static str, status: &'static str) {
        let tallied = match status {
            "successful" => tally::METHODS.iter().position(|m| *m == method),
            _ => None,
        };
        match tallied {
            Some(i) => self.metrics.tally.success(i),
            None => self
                .metrics
                .ocsp_requests
                .with_label_values(&[method, status])
                .inc(),
        }
    }

    fn find_issuer(&self, alg: HashAlg, name_hash: &[u8], key_hash: &[u8]) -> Option<usize> {
        self.by_key_hash
            .get(key_hash)?
            .iter()
            .find(|c| c.alg == alg && c.name_hash == name_hash)
            .map(|c| c.issuer)
    }

    /// The wire status of `serial`, the revision it was read at and whether
    /// the state knows the serial, or `None` when the unknown-serial policy
    /// says `unauthorized`.
    fn status_of(&self, issuer: usize, serial: &Serial) -> Option<(CertStatus, u64, bool)> {
        let i = &self.issuers[issuer];
        match i.state.lookup(serial) {
            Some(entry) => Some((wire_status(&entry), entry.revision, true)),
            None => match i.unknown_serial {
                UnknownSerialPolicy::Unauthorized => None,
                UnknownSerialPolicy::Unknown => Some((CertStatus::Unknown, 0, false)),
                UnknownSerialPolicy::Revoked => Some((
                    CertStatus::Revoked {
                        at: 0,
                        reason: Some(Reason::CertificateHold),
                    },
                    0,
                    false,
                )),
            },
        }
    }

    /// Takes a signing slot for an uncommon request: a token of the rate
    /// and a permit of the budget, or `tryLater`.
    fn uncommon_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ErrorStatus> {
        if !self.uncommon.rate.try_take(Instant::now()) {
            self.metrics
                .ocsp_uncommon_shed
                .with_label_values(&["rate"])
                .inc();
            return Err(ErrorStatus::TryLater);
        }
        Arc::clone(&self.uncommon.budget)
            .try_acquire_owned()
            .map_err(|_| {
                self.metrics
                    .ocsp_uncommon_shed
                    .with_label_values(&["budget"])
                    .inc();
                ErrorStatus::TryLater
            })
    }

    /// A fresh answer echoing the request's nonce (RFC 9654): never cached,
    /// under the uncommon budget and rate.
    async fn sign_with_nonce(
        self: &Arc<Self>,
        issuer: usize,
        window: Window,
        job: Vec<(Serial, HashAlg, CertStatus)>,
        nonce: Vec<u8>,
    ) -> Result<Signed, ErrorStatus> {
        let permit = self.uncommon_slot()?;
        let this = Arc::clone(self);
        let signed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let signer = this.issuers[issuer].signer();
            this.sign(issuer, &signer, window, &job, Some(&nonce), Why::Uncommon)
        })
        .await
        .map_err(|_| ErrorStatus::InternalError)??;
        Ok(signed)
    }

    /// Bytes and entries of the uncommon requests' cache.
    pub fn uncommon_cache_usage(&self) -> (u64, u64) {
        (
            self.uncommon.cache.entry_count(),
            self.uncommon.cache.weighted_size(),
        )
    }

    /// Cache hit, or one signing per key however many requests wait (moka's
    /// single flight), bounded by the signing budget. The signing runs in its
    /// own task so it completes and fills the cache even if the client left.
    async fn cached_or_signed(
        self: &Arc<Self>,
        key: CacheKey,
        job: Vec<(Serial, HashAlg, CertStatus)>,
        class: Class,
    ) -> Result<Signed, ErrorStatus> {
        // One CertID: its status, for a file table's claim check.
        let status = job.first().map(|(_, _, status)| status.clone());
        let table_hit = |key: &CacheKey| self.table_hit(key, status.as_ref()?);
        if let (Class::Common, Some(hit)) = (class, table_hit(&key)) {
            self.metrics.tally.hit();
            return Ok(hit);
        }
        let cache = match class {
            Class::Common => &self.cache,
            Class::Uncommon => &self.uncommon.cache,
        };
        if let Some(hit) = cache.get(&key).await {
            self.metrics.tally.hit();
            return Ok((*hit).clone());
        }
        self.metrics.ocsp_cache_misses.inc();
        let stale = matches!(class, Class::Common).then(|| CacheKey {
            window: key.window - 1,
            ..key.clone()
        });
        let result = self.sign_into_cache(key, job, class).await;
        let (Err(ErrorStatus::TryLater), Some(stale)) = (&result, stale) else {
            return result;
        };
        // The signer cannot sign now (its HSM is down): the previous
        // window's answer for the same revision of this serial is still
        // true and still valid, so it is served until its nextUpdate, as
        // Boulder serves stale-but-valid answers.
        let old = match table_hit(&stale) {
            Some(old) => Some(old),
            None => self.cache.get(&stale).await.map(|a| (*a).clone()),
        };
        match old {
            Some(old) if old.next_update > self.clock.now() => {
                self.metrics.ocsp_stale_served.inc();
                Ok(old)
            }
            _ => result,
        }
    }

    /// A pre-signed answer for a single-CertID `key` from the answer store.
    fn table_hit(&self, key: &CacheKey, status: &CertStatus) -> Option<Signed> {
        let Items::One(serial, alg, revision) = &key.items else {
            return None;
        };
        self.store.get(
            key.window,
            key.issuer,
            *alg,
            serial,
            *revision,
            key.generation,
            status,
        )
    }

    /// Signs `job` under `key` into its cache (single flight).
    async fn sign_into_cache(
        self: &Arc<Self>,
        key: CacheKey,
        job: Vec<(Serial, HashAlg, CertStatus)>,
        class: Class,
    ) -> Result<Signed, ErrorStatus> {
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let window = this.windows.by_index(key.window);
            let issuer = key.issuer;
            let signer = Arc::clone(&this);
            let cache = match class {
                Class::Common => &this.cache,
                Class::Uncommon => &this.uncommon.cache,
            };
            cache
                .try_get_with(key, async move {
                    let permit = match class {
                        Class::Common => {
                            let Ok(p) = Arc::clone(&signer.budget).try_acquire_owned() else {
                                signer.metrics.ocsp_signing_shed.inc();
                                return Err(ErrorStatus::TryLater);
                            };
                            p
                        }
                        Class::Uncommon => signer.uncommon_slot()?,
                    };
                    signer.metrics.ocsp_signing_in_flight.inc();
                    let s = Arc::clone(&signer);
                    let why = match class {
                        Class::Common => Why::OnDemand,
                        Class::Uncommon => Why::Uncommon,
                    };
                    let result = tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        let signer = s.issuers[issuer].signer();
                        s.sign(issuer, &signer, window, &job, None, why)
                    })
                    .await;
                    signer.metrics.ocsp_signing_in_flight.dec();
                    result
                        .map_err(|_| ErrorStatus::InternalError)?
                        .map(Arc::new)
                })
                .await
                .map_err(|e| *e)
        });
        task.await
            .unwrap_or(Err(ErrorStatus::InternalError))
            .map(|a| (*a).clone())
    }

    /// Encodes and signs one response, counted in the signing metrics.
    /// CPU-bound: call off the reactor.
    fn sign(
        &self,
        issuer: usize,
        signer: &ResponseSigner,
        window: Window,
        items: &[(Serial, HashAlg, CertStatus)],
        nonce: Option<&[u8]>,
        why: Why,
    ) -> Result<Signed, ErrorStatus> {
        let started = Instant::now();
        let signed = self.encode(issuer, signer, window, items, nonce)?;
        let (count, seconds) = &self.sign_counters[why as usize];
        count.inc();
        seconds.observe(started.elapsed().as_secs_f64());
        Ok(signed)
    }

    /// Encodes and signs one response.
    fn encode(
        &self,
        issuer: usize,
        signer: &ResponseSigner,
        window: Window,
        items: &[(Serial, HashAlg, CertStatus)],
        nonce: Option<&[u8]>,
    ) -> Result<Signed, ErrorStatus> {
        let i = &self.issuers[issuer];
        // An answer never claims its status held before it was signed
        // (RFC 6960 4.2.2.1): one signed during its window, after a change or
        // on demand, carries the signing time; one signed ahead of its
        // window carries the window's start.
        let this_update = window.start.max(self.clock.now());
        let next_update = this_update
            .saturating_add(self.validity)
            .min(signer.not_after());
        if next_update <= this_update {
            tracing::error!(issuer = %i.id, "signer certificate has expired; cannot sign");
            return Err(ErrorStatus::InternalError);
        }
        let answers = items
            .iter()
            .map(|(serial, alg, status)| {
                let (name_hash, key_hash) = self.hashes[issuer].of(*alg);
                SingleAnswer {
                    cert_id: response::cert_id_der(*alg, name_hash, key_hash, serial),
                    status: status.clone(),
                    this_update,
                    next_update,
                }
            })
            .collect();
        let body = ResponseBody {
            produced_at: this_update,
            answers,
            extended_revoke: i.unknown_serial == UnknownSerialPolicy::Revoked,
            nonce: nonce.map(<[u8]>::to_vec),
        };
        let own = response::encode_signed_own(signer, &body).map_err(|e| match e {
            // The HSM is down or saturated: nothing signed, nothing wrong
            // with the request (RFC 6960 tryLater).
            SignError::Unavailable => ErrorStatus::TryLater,
            SignError::Failed => {
                tracing::error!(issuer = %i.id, error = %e, "signing an OCSP response failed");
                ErrorStatus::InternalError
            }
        })?;
        Ok(Signed::new(
            &own,
            signer.certs_field(),
            this_update,
            next_update,
            window.end,
        ))
    }

    /// Signs `window`'s responses for `serials` of `issuer` under every
    /// pre-signed hash algorithm and stores them. Reads each serial's status
    /// now, so a change made since the plan was drawn is honoured.
    /// Returns how many serials were signed. CPU-bound.
    pub fn presign_blocking(
        &self,
        issuer: usize,
        window: Window,
        serials: &[Serial],
        why: Why,
    ) -> Vec<Presigned> {
        let i = &self.issuers[issuer];
        self.presign_with(issuer, &i.signer(), i.generation(), window, serials, why)
    }

    /// `presign_blocking` with a given signer and generation (key rotation).
    fn presign_with(
        &self,
        issuer: usize,
        signer: &ResponseSigner,
        generation: u64,
        window: Window,
        serials: &[Serial],
        why: Why,
    ) -> Vec<Presigned> {
        let mut out = Vec::with_capacity(serials.len() * self.presign_hashes.len());
        let mut responder_key_sha1 = [0u8; 20];
        if let Some(h) = signer.key_hash().get(..20) {
            responder_key_sha1.copy_from_slice(h);
        }
        for serial in serials {
            let Some((status, revision, _)) = self.status_of(issuer, serial) else {
                continue;
            };
            for alg in &self.presign_hashes {
                let item = vec![(serial.clone(), *alg, status.clone())];
                if let Ok(signed) = self.sign(issuer, signer, window, &item, None, why) {
                    out.push(Presigned {
                        issuer,
                        alg: *alg,
                        serial: serial.clone(),
                        revision,
                        generation,
                        claim: status.clone(),
                        responder_key_sha1,
                        signed,
                    });
                }
            }
        }
        out
    }

    /// Keeps answers pre-signed for `window` in its table.
    pub fn store(&self, window: Window, signed: Vec<Presigned>) {
        self.store.insert(window, signed);
    }

    /// Sizes `window`'s answer table for `serials` serials under every
    /// pre-signed hash, before the pre-signer fills it.
    pub fn reserve_window(&self, window: Window, serials: usize) {
        self.store
            .reserve(window, serials * self.presign_hashes.len());
    }

    /// Keeps pre-signed answers in one file per window in `dir` (see
    /// `filetable`); call before the pre-signer starts.
    pub fn use_answer_files(&self, dir: std::path::PathBuf) {
        let issuers = self
            .issuers
            .iter()
            .map(|i| {
                let mut key_sha1 = [0u8; 20];
                let (_, key) = i.hashes(HashAlg::Sha1);
                if let Some(k) = key.get(..20) {
                    key_sha1.copy_from_slice(k);
                }
                super::filetable::IssuerRef {
                    id: i.id.clone(),
                    key_sha1,
                }
            })
            .collect();
        self.store.use_files(dir, issuers);
    }

    /// Loads the answer table files of the current and next window that
    /// still hold for the state and signers (blocking IO); returns the
    /// answers loaded.
    pub fn load_answer_files(&self) -> usize {
        let current = self.windows.at(self.clock.now());
        let windows = [current, self.windows.next(current)];
        let signer_now = |idx: usize| {
            let i = self.issuers.get(idx)?;
            let signer = i.signer();
            let mut responder_key_sha1 = [0u8; 20];
            responder_key_sha1.copy_from_slice(signer.key_hash().get(..20)?);
            Some(super::filetable::CurrentSigner {
                generation: i.generation(),
                responder_key_sha1,
                certs: signer.certs_field().clone(),
            })
        };
        let claim_now = |idx: usize, serial: &Serial| {
            self.issuers
                .get(idx)?
                .state
                .lookup(serial)
                .map(|e| wire_status(&e))
        };
        let results = self.store.load_files(&windows, &signer_now, &claim_now);
        let mut answers = 0;
        for (_, r) in results {
            match r {
                Ok(loaded) => answers += loaded.answers,
                Err(_) => self.metrics.ocsp_answer_files_refused.inc(),
            }
        }
        answers
    }

    /// Seals `window`'s answer table file, if one is being written
    /// (blocking IO).
    pub fn seal_window(&self, window: Window) {
        self.store.seal(window.index);
    }

    /// Whether `window` already holds an answer for `serial` of `issuer`
    /// under every pre-signed hash (a table loaded at start).
    pub fn presigned_already(&self, window: Window, issuer: usize, serial: &Serial) -> bool {
        self.presign_hashes
            .iter()
            .all(|alg| self.store.contains(window.index, issuer, *alg, serial))
    }

    /// Drops the answer tables of windows that are over (the previous
    /// window's stays while an HSM signer is down: still valid answers).
    pub fn retire_windows(&self) -> usize {
        let current = self.windows.at(self.clock.now()).index;
        self.store.retire(current, crate::pki::pkcs11::any_down())
    }

    /// Applies one change straight to an issuer's state (no ledger: tests
    /// and tools) and replaces that serial's cached responses at once.
    pub async fn apply(
        self: &Arc<Self>,
        issuer_id: &str,
        change: Change,
    ) -> Result<Applied, ApplyError> {
        let idx = self
            .issuer_index(issuer_id)
            .ok_or_else(|| ApplyError::UnknownIssuer(issuer_id.to_string()))?;
        let applied = self.issuers[idx]
            .state
            .apply(&change, crate::state::Author::named("direct"))?;
        if let Applied::Changed { .. } = applied {
            let this = Arc::clone(self);
            let serial = change.serial().clone();
            let _ = tokio::task::spawn_blocking(move || this.resign_blocking(idx, &serial)).await;
        }
        Ok(applied)
    }

    /// Signs and stores `serial`'s answers for the current and the next
    /// window. CPU-bound.
    fn resign_blocking(&self, idx: usize, serial: &Serial) {
        let current = self.windows.at(self.clock.now());
        let next = self.windows.next(current);
        let one = std::slice::from_ref(serial);
        for window in [current, next] {
            let signed = self.presign_blocking(idx, window, one, Why::Change);
            self.store(window, signed);
        }
    }

    /// Rotates an issuer's OCSP signer without downtime: pre-signs the
    /// current and next windows with the new signer under a new generation,
    /// then swaps; until the swap, answers come from the old signer's bytes.
    pub async fn rotate(self: &Arc<Self>, idx: usize, signer: Arc<ResponseSigner>) -> usize {
        let Some(issuer) = self.issuers.get(idx) else {
            return 0;
        };
        let generation = issuer.generation() + 1;
        let current = self.windows.at(self.clock.now());
        let serials: Vec<Serial> = issuer.state.serials();
        let mut total = 0;
        for window in [current, self.windows.next(current)] {
            for chunk in serials.chunks(256) {
                let (this, signer, chunk) = (Arc::clone(self), Arc::clone(&signer), chunk.to_vec());
                let signed = tokio::task::spawn_blocking(move || {
                    this.presign_with(idx, &signer, generation, window, &chunk, Why::Presign)
                })
                .await
                .unwrap_or_default();
                total += signed.len();
                self.store(window, signed);
            }
        }
        issuer.swap_signer(signer, generation);
        total
    }

    /// Responses in the cache and the bytes they are charged (their own
    /// bytes plus a fixed overhead per entry); approximate, without waiting.
    pub fn cache_usage(&self) -> (u64, u64) {
        let (answers, bytes) = self.store.usage();
        self.metrics
            .ocsp_answer_file_read_errors
            .set(i64::try_from(self.store.file_read_errors()).unwrap_or(i64::MAX));
        (
            self.cache.entry_count() + answers,
            self.cache.weighted_size() + bytes,
        )
    }

    /// Number of responses held in the cache (approximate, for tests and metrics).
    pub async fn cached_responses(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count() + self.store.usage().0
    }
}

/// A cached answer is dropped when its window ends: the window is part of
/// its key, so nothing can reach it after that. Without this, answers
/// pre-signed for the next window would outlive it by up to a window under
/// a fixed time-to-live (at 1M serials: 4.88M answers in 5.4 GB at a
/// rollover, against 4.04M in 4.6 GB).
struct UntilWindowEnd {
    clock: Arc<dyn Clock>,
}

/// Slack after the window end, for a request that read the clock just
/// before it.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);

impl moka::Expiry<CacheKey, Arc<Signed>> for UntilWindowEnd {
    /// While an HSM signer is down, an answer read stays until its
    /// nextUpdate: the next window may find nothing new signed, and the
    /// answers clients ask for are the ones worth keeping.
    fn expire_after_read(
        &self,
        _key: &CacheKey,
        value: &Arc<Signed>,
        _read_at: std::time::Instant,
        duration_until_expiry: Option<Duration>,
        _last_modified_at: std::time::Instant,
    ) -> Option<Duration> {
        if !crate::pki::pkcs11::any_down() {
            return duration_until_expiry;
        }
        let left = u64::try_from(value.next_update - self.clock.now()).unwrap_or(0);
        Some(Duration::from_secs(left).max(duration_until_expiry.unwrap_or_default()))
    }

    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Signed>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = u64::try_from(value.window_end - self.clock.now()).unwrap_or(0);
        Some(Duration::from_secs(left) + EXPIRY_GRACE)
    }
}

/// The row of `status` in `answer_counters`.
fn status_row(status: &CertStatus) -> u8 {
    match status {
        CertStatus::Good => 0,
        CertStatus::Revoked { .. } => 1,
        CertStatus::Unknown => 2,
    }
}

fn wire_status(entry: &Entry) -> CertStatus {
    match entry.status {
        Status::Good => CertStatus::Good,
        Status::Revoked { at, reason, .. } => CertStatus::Revoked {
            at,
            reason: (reason != Reason::Unspecified).then_some(reason),
        },
    }
}

/// The ledger applies durable changes here. Runs on the ledger's writer
/// thread, so it may block: a revocation or release is re-signed before the
/// writer acknowledges it, so the next request is a cache hit. Registrations
/// are left to on-demand signing and the next window's pre-signing, so bulk
/// imports do not sign millions of answers up front.
impl Applier for Responder {
    fn check(&self, issuer: &str, change: &Change) -> Result<Applied, ApplyError> {
        let idx = self
            .issuer_index(issuer)
            .ok_or_else(|| ApplyError::UnknownIssuer(issuer.to_string()))?;
        Ok(self.issuers[idx].state.check(change)?)
    }

    fn apply(&self, issuer: &str, change: &Change, author: &str) {
        let Some(idx) = self.issuer_index(issuer) else {
            return;
        };
        let changed = matches!(
            self.issuers[idx]
                .state
                .apply(change, crate::state::Author::named(author)),
            Ok(Applied::Changed { .. })
        );
        if changed && self.is_ready() && !matches!(change, Change::Register { .. }) {
            self.resign_blocking(idx, change.serial());
        }
    }

    fn restore(&self, issuer: &str, entries: Vec<(Serial, Entry)>) {
        match self.issuer_index(issuer) {
            Some(idx) => self.issuers[idx].state.restore(entries),
            None => tracing::warn!(
                issuer,
                "snapshot holds an issuer no longer configured; ignored"
            ),
        }
    }

    fn snapshot(&self) -> Vec<IssuerEntries> {
        self.issuers
            .iter()
            .map(|i| (i.id.clone(), i.state.snapshot()))
            .collect()
    }
}
