//! CRLs: per issuer, a scheduler decides when; the builder makes and signs
//! the CRL from the state; the self-check parses it back; the publisher puts
//! it in object storage with ETag change detection, never lowering the live
//! CRL number. The live CRL is also served by revocd at `/crl/<issuer>.crl`.

pub mod build;
pub mod schedule;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::ocsp::Responder;
use crate::pki::{Cert, SigningKey};
use crate::publish::{Expect, PublishError, Publisher, WriteMode};
use crate::state::Status;
use build::{CrlEntry, CrlError, CrlParams};
use schedule::{Due, Schedule};

pub const CONTENT_TYPE: &str = "application/pkix-crl";

/// CRL timing, from the configuration.
#[derive(Debug, Clone)]
pub struct CrlTiming {
    pub debounce: i64,
    pub max_delay: i64,
    pub validity: i64,
    /// Cache-Control max-age for the CRL (well below the publish interval).
    pub cache_max_age: u64,
}

/// The CRL that is live: what revocd serves at `/crl/` and last saw in the store.
#[derive(Debug, Clone)]
pub struct Live {
    pub der: Bytes,
    /// Strong HTTP ETag for revocd's own `/crl/` (quoted hex SHA-256).
    pub etag: String,
    pub number: u64,
    pub this_update: i64,
    pub n_entries: usize,
    /// The store's ETag of the object, for change detection.
    pub store_etag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CrlPublishError {
    #[error(transparent)]
    Store(#[from] PublishError),
    #[error("CRL self-check failed: {0}")]
    Check(#[from] CrlError),
    #[error("signing the CRL failed")]
    Sign,
    #[error("gave up after repeated conflicting writes")]
    Contended,
}

struct IssuerCrl {
    id: String,
    idx: usize,
    ca: Cert,
    key: Arc<SigningKey>,
    aki: Vec<u8>,
    object: object_store::path::Path,
    schedule: Mutex<Schedule>,
    live: RwLock<Option<Live>>,
    wake: Notify,
}

pub struct CrlService {
    issuers: Vec<IssuerCrl>,
    publisher: tokio::sync::RwLock<Publisher>,
    responder: Arc<Responder>,
    timing: CrlTiming,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CrlService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlService")
            .field("issuers", &self.issuers.len())
            .finish_non_exhaustive()
    }
}

/// The object key of an issuer's CRL under the store prefix: stable, so
/// CDP URLs never change.
pub fn object_name(issuer: &str) -> String {
    format!("{issuer}.crl")
}

fn http_etag(der: &[u8]) -> String {
    format!(
        "\"{}\"",
        hex::encode(crate::pki::HashAlg::Sha256.digest(der))
    )
}

impl CrlService {
    /// `keys` pairs each issuer index with the CA key that signs its CRLs.
    pub fn new(
        responder: Arc<Responder>,
        publisher: Publisher,
        keys: Vec<(usize, Arc<SigningKey>)>,
        timing: CrlTiming,
        metrics: Metrics,
    ) -> Arc<Self> {
        let clock = Arc::clone(responder.clock());
        let issuers = keys
            .into_iter()
            .filter_map(|(idx, key)| {
                let i = responder.issuers().get(idx)?;
                Some(IssuerCrl {
                    id: i.id.clone(),
                    idx,
                    ca: i.cert.clone(),
                    aki: build::authority_key_id(&i.cert),
                    key,
                    object: publisher.key(&object_name(&i.id)),
                    schedule: Mutex::new(Schedule::new(
                        timing.debounce,
                        timing.max_delay,
                        timing.validity,
                    )),
                    live: RwLock::new(None),
                    wake: Notify::new(),
                })
            })
            .collect();
        Arc::new(Self {
            issuers,
            publisher: tokio::sync::RwLock::new(publisher),
            responder,
            timing,
            metrics,
            clock,
        })
    }

    pub fn cache_max_age(&self) -> u64 {
        self.timing.cache_max_age
    }

    /// The live CRL of issuer `id`, for `/crl/<id>.crl`.
    pub fn live(&self, id: &str) -> Option<Live> {
        let i = self.issuers.iter().find(|i| i.id == id)?;
        i.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks for a publish now (admin API). False if the issuer has no CRLs.
    pub fn request(&self, id: &str) -> bool {
        match self.issuers.iter().find(|i| i.id == id) {
            Some(i) => {
                i.schedule
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .request();
                i.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Probes the store and reads each issuer's live CRL. Errors are logged:
    /// the store may be down at start, publishing retries later.
    pub async fn start(&self) {
        let mode = {
            let mut p = self.publisher.write().await;
            match p.probe().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(store = p.describe(), error = %e, "store probe failed; will retry before publishing");
                    WriteMode::Unknown
                }
            }
        };
        self.log_mode(mode).await;
        for i in &self.issuers {
            if let Err(e) = self.refresh_live(i).await {
                tracing::warn!(issuer = %i.id, error = %e, "cannot read the live CRL yet");
            }
        }
    }

    async fn log_mode(&self, mode: WriteMode) {
        let p = self.publisher.read().await;
        self.metrics
            .crl_store_conditional
            .set(i64::from(mode == WriteMode::Conditional));
        match mode {
            WriteMode::Conditional => tracing::info!(store = p.describe(), "store honours conditional writes (If-Match / If-None-Match): several writers are safe"),
            WriteMode::SingleWriter => tracing::warn!(store = p.describe(), "store ignores conditional writes: revocd must be the only writer of these CRLs"),
            WriteMode::Unknown => {}
        }
    }

    /// Reads the object in the store; adopts it as live if it verifies and is
    /// newer than what we hold.
    async fn refresh_live(&self, i: &IssuerCrl) -> Result<(), CrlPublishError> {
        let found = self.publisher.read().await.read(&i.object).await?;
        let Some((bytes, store_etag)) = found else {
            return Ok(());
        };
        let facts = match build::check(&bytes, &i.ca) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(issuer = %i.id, error = %e, "the CRL in the store does not verify; it will be replaced");
                let mut live = i.live.write().unwrap_or_else(|p| p.into_inner());
                if let Some(l) = live.as_mut() {
                    l.store_etag = store_etag;
                }
                return Ok(());
            }
        };
        let mut live = i.live.write().unwrap_or_else(|p| p.into_inner());
        let newer = live.as_ref().is_none_or(|l| facts.number >= l.number);
        if newer {
            let first = live.is_none();
            *live = Some(Live {
                etag: http_etag(&bytes),
                der: bytes,
                number: facts.number,
                this_update: facts.this_update,
                n_entries: facts.n_entries,
                store_etag,
            });
            if first {
                self.metrics.crl_skipped.with_label_values(&[&i.id]).inc();
                // A CRL from before this start covers the state only if the
                // state has not moved since; assume it has not, and let the
                // re-issue and change rules take it from here.
                let rev = self.responder.issuers()[i.idx].state.revision();
                i.schedule
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .live(facts.this_update, rev);
            }
        }
        Ok(())
    }

    /// Runs the per-issuer schedulers until shutdown, then makes one last
    /// attempt for any issuer with unpublished changes.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let tasks: Vec<_> = (0..self.issuers.len())
            .map(|n| {
                let this = Arc::clone(&self);
                let mut stop = shutdown.clone();
                tokio::spawn(async move { this.run_issuer(n, &mut stop).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn run_issuer(&self, n: usize, shutdown: &mut watch::Receiver<bool>) {
        let i = &self.issuers[n];
        loop {
            let now = self.clock.now();
            let rev = self.responder.issuers()[i.idx].state.revision();
            let due = {
                let mut s = i.schedule.lock().unwrap_or_else(|p| p.into_inner());
                s.observe(rev, now);
                s.due(now)
            };
            if let Some(due) = due {
                self.attempt(i, due).await;
            }
            let wait = {
                let s = i.schedule.lock().unwrap_or_else(|p| p.into_inner());
                (s.next_check(self.clock.now()) - self.clock.now()).clamp(0, 1)
            };
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(wait as u64)) => {}
                _ = i.wake.notified() => {}
                _ = crate::http::stopped(shutdown) => {
                    let rev = self.responder.issuers()[i.idx].state.revision();
                    let pending = {
                        let mut s = i.schedule.lock().unwrap_or_else(|p| p.into_inner());
                        s.observe(rev, self.clock.now());
                        s.has_unpublished() || s.failures() > 0
                    };
                    if pending {
                        tracing::info!(issuer = %i.id, "publishing unpublished changes before exit");
                        self.attempt(i, Due::Requested).await;
                    }
                    return;
                }
            }
        }
    }

    async fn attempt(&self, i: &IssuerCrl, due: Due) {
        let started = Instant::now();
        let first_change = i
            .schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_change();
        match self.publish(i).await {
            Ok((live, rev)) => {
                let now = self.clock.now();
                i.schedule
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .published(live.this_update, rev);
                let m = &self.metrics;
                m.crl_publishes.with_label_values(&[&i.id, "ok"]).inc();
                m.crl_publish_seconds
                    .observe(started.elapsed().as_secs_f64());
                m.crl_last_success.with_label_values(&[&i.id]).set(now);
                m.crl_entries
                    .with_label_values(&[&i.id])
                    .set(live.n_entries as i64);
                m.crl_bytes
                    .with_label_values(&[&i.id])
                    .set(live.der.len() as i64);
                m.crl_number
                    .with_label_values(&[&i.id])
                    .set(live.number as i64);
                if let Some(t) = first_change {
                    m.crl_change_to_publish_seconds
                        .observe((now - t).max(0) as f64);
                }
                tracing::info!(
                    issuer = %i.id,
                    why = due.label(),
                    number = live.number,
                    entries = live.n_entries,
                    bytes = live.der.len(),
                    "CRL published"
                );
            }
            Err(e) => {
                let jitter = {
                    let mut b = [0u8; 1];
                    let _ =
                        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
                    f64::from(b[0]) / 256.0
                };
                let mut s = i.schedule.lock().unwrap_or_else(|p| p.into_inner());
                s.failed(self.clock.now(), jitter);
                self.metrics
                    .crl_publishes
                    .with_label_values(&[&i.id, "error"])
                    .inc();
                tracing::warn!(issuer = %i.id, why = due.label(), failures = s.failures(), error = %e, "CRL publish failed; will retry");
            }
        }
    }

    /// Builds, checks and publishes one CRL. Returns it and the state
    /// revision it was built from.
    async fn publish(&self, i: &IssuerCrl) -> Result<(Live, u64), CrlPublishError> {
        if self.publisher.read().await.mode() == WriteMode::Unknown {
            let mode = self.publisher.write().await.probe().await?;
            self.log_mode(mode).await;
        }
        for _ in 0..4 {
            // Change detection: has someone else written since we last looked?
            let live = i.live.read().unwrap_or_else(|p| p.into_inner()).clone();
            let store_etag = self.publisher.read().await.etag(&i.object).await?;
            if store_etag.is_some()
                && store_etag != live.as_ref().and_then(|l| l.store_etag.clone())
            {
                self.metrics
                    .crl_foreign_writes
                    .with_label_values(&[&i.id])
                    .inc();
                self.refresh_live(i).await?;
            }
            let live = i.live.read().unwrap_or_else(|p| p.into_inner()).clone();
            let (der, facts, rev) = self.build(i, live.as_ref()).await?;
            let expect = match store_etag {
                None => Expect::Absent,
                Some(e) => Expect::ETag(e),
            };
            let bytes = Bytes::from(der);
            let written = self
                .publisher
                .read()
                .await
                .write(&i.object, bytes.clone(), CONTENT_TYPE, &expect)
                .await;
            match written {
                Ok(etag) => {
                    let new = Live {
                        etag: http_etag(&bytes),
                        der: bytes,
                        number: facts.number,
                        this_update: facts.this_update,
                        n_entries: facts.n_entries,
                        store_etag: etag,
                    };
                    *i.live.write().unwrap_or_else(|p| p.into_inner()) = Some(new.clone());
                    return Ok((new, rev));
                }
                Err(PublishError::Conflict) => {
                    self.metrics.crl_conflicts.with_label_values(&[&i.id]).inc();
                    tracing::info!(issuer = %i.id, "conditional write lost a race; re-reading the live CRL");
                    self.refresh_live(i).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CrlPublishError::Contended)
    }

    /// Makes and self-checks the next CRL from the current state.
    async fn build(
        &self,
        i: &IssuerCrl,
        live: Option<&Live>,
    ) -> Result<(Vec<u8>, build::CrlFacts, u64), CrlPublishError> {
        let state = &self.responder.issuers()[i.idx].state;
        let rev = state.revision();
        let now = self.clock.now();
        // CONFORMANCE 27: an entry stays until a CRL issued after the
        // certificate expired has carried it; the live CRL was issued at
        // its thisUpdate, so drop only entries that expired before it.
        let keep_after = live.map(|l| l.this_update);
        let mut entries: Vec<CrlEntry> = state
            .snapshot()
            .into_iter()
            .filter_map(|(serial, e)| match e.status {
                Status::Revoked {
                    at,
                    reason,
                    invalidity_date,
                } => {
                    let expired_before_live =
                        matches!((e.not_after, keep_after), (Some(na), Some(k)) if na < k);
                    (!expired_before_live).then_some(CrlEntry {
                        serial,
                        revoked_at: at,
                        reason,
                        invalidity_date,
                    })
                }
                Status::Good => None,
            })
            .collect();
        entries.sort_by(|a, b| a.serial.cmp(&b.serial));
        let live_number = live.map(|l| l.number);
        // Numbers follow the clock so independent writers rarely collide,
        // and always exceed the live one.
        let number = live_number
            .map_or(0, |n| n + 1)
            .max(u64::try_from(now).unwrap_or(0));
        let key = Arc::clone(&i.key);
        let ca = i.ca.clone();
        let aki = i.aki.clone();
        let validity = self.timing.validity;
        let result = tokio::task::spawn_blocking(move || {
            let params = CrlParams {
                issuer_name: &ca.subject_der,
                authority_key_id: &aki,
                number,
                this_update: now,
                next_update: now + validity,
                entries: &entries,
                distribution_point: None,
                delta_of: None,
            };
            let der = build::build(&params, &key).map_err(|_| CrlPublishError::Sign)?;
            let facts = build::check_new(&der, &ca, live_number)?;
            Ok::<_, CrlPublishError>((der, facts))
        })
        .await
        .map_err(|_| CrlPublishError::Sign)??;
        Ok((result.0, result.1, rev))
    }
}
