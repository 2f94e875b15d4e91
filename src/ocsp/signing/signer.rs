//! The signing stage: everything that makes a signature, and nothing that
//! serves. The pre-signer's plumbing (windows, hashes, CPU share, readiness,
//! what clients asked about lately), the on-demand path of a miss (single
//! flight per key in moka, the signing budget; for requests only strangers
//! need, a budget, a rate and a cache of their own), signing a serial again
//! after a change (registered with `Issuers` as its change hook), key
//! rotation. What it does to the answer tables is in `tables`. The serving stack
//! (`ocsp::responder`) holds one; an edge without keys would serve from the
//! same tables without it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use prometheus::{Histogram, IntCounter};
use tokio::sync::Semaphore;

use super::cache::{CacheKey, Items, UntilWindowEnd, ENTRY_OVERHEAD};
use super::rate::TokenBucket;
use super::requested::Requested;
use crate::clock::{Clock, Window, Windows};
use crate::config::{Ocsp, UnknownSerialPolicy};
use crate::issuer::Issuers;
use crate::ledger::ApplyError;
use crate::metrics::Metrics;
use crate::ocsp::answers::presigned::Presigned;
use crate::ocsp::answers::signed::{wire_status, Signed};
use crate::ocsp::answers::store::AnswerStore;
use crate::ocsp::response::{self, CertStatus, ErrorStatus, ResponseBody, SingleAnswer};
use crate::pki::{HashAlg, ResponseSigner, SignError};
use crate::state::{Applied, Change, Reason, Serial};

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

    pub fn label(self) -> &'static str {
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
pub enum Class {
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
    rate: TokenBucket,
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

/// The signer of every issuer's answers, and where they go.
pub struct Signer {
    pub(super) issuers: Arc<Issuers>,
    hashes: Vec<IssuerHashes>,
    pub(super) windows: Windows,
    validity: i64,
    pub(super) clock: Arc<dyn Clock>,
    cache: Cache<CacheKey, Arc<Signed>>,
    /// Pre-signed single-CertID answers, one table per window; the serving
    /// stack reads them too.
    pub(super) answers: Arc<AnswerStore>,
    budget: Arc<Semaphore>,
    pub(super) presign_hashes: Vec<HashAlg>,
    presign_cpu_share: f64,
    startup_presign: Duration,
    /// Per issuer, which serials were asked about lately (pre-signing
    /// order); the serving stack marks them.
    requested: Arc<[Requested]>,
    pub(super) metrics: Metrics,
    /// `ocsp_signings` and `ocsp_signing_seconds` per `Why::ALL`.
    sign_counters: [(IntCounter, Histogram); 4],
    uncommon: UncommonLimits,
    ready: AtomicBool,
    /// Serials a change made stale, to sign again (`resign`).
    resign: Arc<super::resign::Queue>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuers", &self.issuers.len())
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer of `issuers`' answers. Registers itself as the issuers'
    /// change hooks: a revocation or release is queued to be signed again,
    /// and at the end of its group signed before the ledger acknowledges it
    /// when the queue is small (`resign`).
    pub fn new(
        issuers: Arc<Issuers>,
        ocsp: &Ocsp,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Arc<Self> {
        let windows = Windows::new(ocsp.window.as_secs());
        let hashes = issuers
            .iter()
            .map(|issuer| IssuerHashes {
                by_alg: HashAlg::ALL
                    .into_iter()
                    .map(|alg| {
                        let (name, key) = issuer.hashes(alg);
                        (alg, name, key)
                    })
                    .collect(),
            })
            .collect();
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
        let requested: Arc<[Requested]> = issuers.iter().map(|_| Requested::default()).collect();
        let signer = Arc::new(Self {
            issuers: Arc::clone(&issuers),
            requested,
            hashes,
            windows,
            validity: i64::try_from(ocsp.validity.as_secs()).unwrap_or(i64::MAX),
            clock,
            cache,
            answers: Arc::new(AnswerStore::default()),
            budget: Arc::new(Semaphore::new(ocsp.signing_budget)),
            presign_hashes: ocsp.presign_hashes.clone(),
            presign_cpu_share: ocsp.presign_cpu_share,
            startup_presign: ocsp.startup_presign,
            sign_counters: Why::ALL.map(|why| {
                (
                    metrics.ocsp.signings.with_label_values(&[why.label()]),
                    metrics
                        .ocsp
                        .signing_seconds
                        .with_label_values(&[why.label()]),
                )
            }),
            uncommon: UncommonLimits {
                cache: uncommon_cache,
                budget: Arc::new(Semaphore::new(ocsp.uncommon_signing_budget)),
                rate: TokenBucket::new(ocsp.uncommon_signing_rate, ocsp.uncommon_signing_rate),
            },
            metrics,
            ready: AtomicBool::new(false),
            resign: Arc::default(),
        });
        // Registrations are left to on-demand signing and the next window's
        // pre-signing, so bulk imports do not sign millions of answers up
        // front; before ready the start-up pass signs everything anyway.
        let weak = Arc::downgrade(&signer);
        issuers.on_change(Box::new(move |idx, change| {
            if let Some(s) = weak.upgrade() {
                if s.is_ready() && !matches!(change, Change::Register { .. }) {
                    s.resign.push(idx, change.serial().clone());
                }
            }
        }));
        let weak = Arc::downgrade(&signer);
        issuers.on_settle(Box::new(move || {
            if let Some(s) = weak.upgrade() {
                s.settle();
            }
        }));
        signer
    }

    pub fn issuers(&self) -> &Arc<Issuers> {
        &self.issuers
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

    /// The answer tables (read by the serving stack's hit path).
    pub fn answers(&self) -> &Arc<AnswerStore> {
        &self.answers
    }

    /// What clients asked about lately, per issuer (marked by serving).
    pub fn requested_all(&self) -> &Arc<[Requested]> {
        &self.requested
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
    /// on throwaway responses (the pre-signer's first cost estimate, until
    /// a pass has measured its own). Each round is timed on its own and the
    /// slowest quarter dropped: at start the other work (an answer table
    /// loading, the index read again, the first CRL) takes the cores from
    /// under a round now and then, and four rounds averaged once put an
    /// ML-DSA-44 answer at 7.6 ms instead of 0.1 (a plan of 15,293
    /// CPU-seconds for 1M serials instead of about 200). The mean of the
    /// rest, not the median: ML-DSA's signing time varies from round to
    /// round by design (rejection sampling), and the plan needs the mean.
    pub fn calibrate(&self, idx: usize) -> f64 {
        const MAX_ROUNDS: usize = 32;
        const SPEND: std::time::Duration = std::time::Duration::from_millis(50);
        let window = self.windows.at(self.clock.now());
        let serial = Serial::from_hex("01").expect("static serial");
        let item = [(serial, HashAlg::Sha256, CertStatus::Good)];
        let signer = self.issuers[idx].signer();
        let started = Instant::now();
        let mut rounds = Vec::with_capacity(MAX_ROUNDS);
        while rounds.len() < MAX_ROUNDS && (rounds.len() < 4 || started.elapsed() < SPEND) {
            let round = Instant::now();
            let _ = self.encode(idx, &signer, window, &item, None);
            rounds.push(round.elapsed().as_secs_f64());
        }
        rounds.sort_by(f64::total_cmp);
        let kept = &rounds[..rounds.len() - rounds.len() / 4];
        kept.iter().sum::<f64>() / kept.len() as f64
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

    /// The wire status of `serial`, the revision it was read at and whether
    /// the state knows the serial, or `None` when the unknown-serial policy
    /// says `unauthorized`.
    pub(crate) fn status_of(
        &self,
        issuer: usize,
        serial: &Serial,
    ) -> Option<(CertStatus, u64, bool)> {
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
                .ocsp
                .uncommon_shed
                .with_label_values(&["rate"])
                .inc();
            return Err(ErrorStatus::TryLater);
        }
        Arc::clone(&self.uncommon.budget)
            .try_acquire_owned()
            .map_err(|_| {
                self.metrics
                    .ocsp
                    .uncommon_shed
                    .with_label_values(&["budget"])
                    .inc();
                ErrorStatus::TryLater
            })
    }

    /// A fresh answer echoing the request's nonce (RFC 9654): never cached,
    /// under the uncommon budget and rate.
    pub async fn sign_with_nonce(
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

    /// The answer to a request the serving stack's hit path could not
    /// serve: `items` are its CertIDs (serial, hash, entry revision), `job`
    /// what to sign for them. `table_tried`: the one CertID was already
    /// looked up in the answer table, so it is not looked up again.
    pub async fn answer(
        self: &Arc<Self>,
        issuer: usize,
        window: Window,
        items: Vec<(Serial, HashAlg, u64)>,
        job: Vec<(Serial, HashAlg, CertStatus)>,
        class: Class,
        table_tried: bool,
    ) -> Result<Signed, ErrorStatus> {
        let key = CacheKey {
            issuer,
            generation: self.issuers[issuer].generation(),
            window: window.index,
            items: Items::from_vec(items),
        };
        self.cached_or_signed(key, job, class, table_tried).await
    }

    /// Cache hit, or one signing per key however many requests wait (moka's
    /// single flight), bounded by the signing budget. The signing runs in its
    /// own task so it completes and fills the cache even if the client left.
    async fn cached_or_signed(
        self: &Arc<Self>,
        key: CacheKey,
        job: Vec<(Serial, HashAlg, CertStatus)>,
        class: Class,
        table_tried: bool,
    ) -> Result<Signed, ErrorStatus> {
        // One CertID: its status, for a file table's claim check.
        let status = job.first().map(|(_, _, status)| status.clone());
        let table_hit = |key: &CacheKey| self.table_hit(key, status.as_ref()?);
        if class == Class::Common && !table_tried {
            if let Some(hit) = table_hit(&key) {
                self.metrics.ocsp.tally.hit();
                return Ok(hit);
            }
        }
        let cache = match class {
            Class::Common => &self.cache,
            Class::Uncommon => &self.uncommon.cache,
        };
        if let Some(hit) = cache.get(&key).await {
            self.metrics.ocsp.tally.hit();
            return Ok((*hit).clone());
        }
        self.metrics.ocsp.cache_misses.inc();
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
                self.metrics.ocsp.stale_served.inc();
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
        self.answers.get(
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
                                signer.metrics.ocsp.signing_shed.inc();
                                return Err(ErrorStatus::TryLater);
                            };
                            p
                        }
                        Class::Uncommon => signer.uncommon_slot()?,
                    };
                    signer.metrics.ocsp.signing_in_flight.inc();
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
                    signer.metrics.ocsp.signing_in_flight.dec();
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
    pub(super) fn sign(
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

    /// Applies one change straight to an issuer's state (no ledger: tests
    /// and tools) and replaces that serial's cached responses at once.
    pub async fn apply(
        self: &Arc<Self>,
        issuer_id: &str,
        change: Change,
    ) -> Result<Applied, ApplyError> {
        let idx = self
            .issuers
            .index(issuer_id)
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
        self.resign_many(idx, std::slice::from_ref(serial));
    }

    /// Signs and stores the answers of issuer `idx`'s `serials` for the
    /// current and the next window. CPU-bound.
    fn resign_many(&self, idx: usize, serials: &[Serial]) {
        let current = self.windows.at(self.clock.now());
        let next = self.windows.next(current);
        for window in [current, next] {
            let signed = self.presign_blocking(idx, window, serials, Why::Change);
            self.store(window, signed);
        }
    }

    /// The end of a group of changes, before the ledger acknowledges them:
    /// a small queue is signed now (the next request is a hit), a large one
    /// is left to the workers (`resign::run`).
    fn settle(&self) {
        match self.resign.take_if_at_most(super::resign::SIGN_AT_ONCE) {
            Some(items) => {
                for (idx, serial) in items {
                    self.resign_blocking(idx, &serial);
                }
            }
            None => self.resign.wake(),
        }
        self.count_resign_queue();
    }

    /// Serials waiting to be signed again after a change.
    pub fn resign_queue(&self) -> &Arc<super::resign::Queue> {
        &self.resign
    }

    /// One re-sign worker's chunk (`resign::run`): signs them again, then
    /// updates the queue's gauge.
    pub fn resign_chunk(&self, idx: usize, serials: &[Serial]) {
        self.resign_many(idx, serials);
        self.count_resign_queue();
    }

    fn count_resign_queue(&self) {
        let waiting = self.resign.len();
        self.metrics
            .ocsp
            .resign_queue
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
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
        let (answers, bytes) = self.answers.usage();
        self.metrics
            .ocsp
            .answer_file_read_errors
            .set(i64::try_from(self.answers.file_read_errors()).unwrap_or(i64::MAX));
        (
            self.cache.entry_count() + answers,
            self.cache.weighted_size() + bytes,
        )
    }

    /// Number of responses held in the cache (approximate, for tests and metrics).
    pub async fn cached_responses(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count() + self.answers.usage().0
    }
}
