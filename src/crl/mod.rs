//! CRLs: per issuer, a scheduler decides when; the builder makes and signs
//! the CRL from the state; the self-check parses it back; the publisher puts
//! it in object storage with ETag change detection, never lowering the live
//! CRL number. The live CRL is also served by revocd at `/crl/<issuer>.crl`.

pub mod build;
mod entries;
pub mod gate;
mod manifest;
pub mod schedule;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::pki::{Cert, SigningKey};
use crate::publish::{Expect, PublishError, Publisher, WriteMode};
use build::{CrlError, CrlParams};
use entries::delta_entries;
pub use entries::{select_entries, shard_of};
use schedule::{Due, Schedule};

pub const CONTENT_TYPE: &str = "application/pkix-crl";

/// CRL timing and layout, from the configuration.
#[derive(Debug, Clone)]
pub struct CrlOptions {
    pub debounce: i64,
    pub max_delay: i64,
    pub validity: i64,
    /// Cache-Control max-age for the CRL (well below the publish interval).
    pub cache_max_age: u64,
    /// Shards per issuer (1: one CRL per issuer).
    pub shards: u32,
    /// Where the CRLs are served from; shard `k` of issuer `id` is
    /// `{url_base}/{id}/{k}.crl`, the URI of its Issuing Distribution Point.
    pub url_base: Option<String>,
    /// Also publish a delta CRL per issuer (`{id}-delta.crl`).
    pub delta: bool,
}

/// What one published object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A complete CRL (of one shard when `shard` is set).
    Full { shard: Option<(u32, u32)> },
    /// A delta CRL against the full CRL at unit index `base`.
    Delta { base: usize },
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
    #[error("the full CRL a delta refers to is not published yet")]
    NoBase,
}

struct IssuerCrl {
    id: String,
    /// Object name under the prefix and path under `/crl/`.
    name: String,
    kind: Kind,
    /// Issuing Distribution Point URI (sharded CRLs).
    idp: Option<String>,
    /// The other unit sharing this CRL number sequence (base <-> delta).
    sibling: Option<usize>,
    idx: usize,
    ca: Cert,
    key: Arc<SigningKey>,
    aki: Vec<u8>,
    object: crate::publish::ObjectKey,
    schedule: Mutex<Schedule>,
    live: RwLock<Option<Live>>,
    wake: Notify,
}

pub struct CrlService {
    issuers: Vec<IssuerCrl>,
    /// Per sharded issuer, the JSON manifest last written.
    manifests: RwLock<std::collections::HashMap<String, Bytes>>,
    /// Manifest writes one at a time: each is drawn from every shard's live
    /// CRL at its start, so concurrent shard publishes could otherwise leave
    /// an older drawing written last.
    manifest_writer: tokio::sync::Mutex<()>,
    publisher: tokio::sync::RwLock<Publisher>,
    /// The issuers and their state (shared with OCSP).
    issuers_state: Arc<crate::issuer::Issuers>,
    timing: CrlOptions,
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
        issuers_state: Arc<crate::issuer::Issuers>,
        clock: Arc<dyn Clock>,
        publisher: Publisher,
        keys: Vec<(usize, Arc<SigningKey>)>,
        timing: CrlOptions,
        metrics: Metrics,
    ) -> Arc<Self> {
        let mut issuers: Vec<IssuerCrl> = Vec::new();
        for (idx, key) in keys {
            let Some(i) = issuers_state.get(idx) else {
                continue;
            };
            let unit = |name: String, kind: Kind, idp: Option<String>, debounce: i64| IssuerCrl {
                id: i.id.clone(),
                object: publisher.object(&name),
                name,
                kind,
                idp,
                sibling: None,
                idx,
                ca: i.cert.clone(),
                aki: build::authority_key_id(&i.cert),
                key: Arc::clone(&key),
                schedule: Mutex::new(Schedule::new(debounce, timing.max_delay, timing.validity)),
                live: RwLock::new(None),
                wake: Notify::new(),
            };
            if timing.shards > 1 {
                let base = timing.url_base.clone().unwrap_or_default();
                for k in 0..timing.shards {
                    let name = format!("{}/{k}.crl", i.id);
                    let idp = format!("{}/{name}", base.trim_end_matches('/'));
                    issuers.push(unit(
                        name,
                        Kind::Full {
                            shard: Some((k, timing.shards)),
                        },
                        Some(idp),
                        timing.debounce,
                    ));
                }
            } else if timing.delta {
                // Changes go out in the delta after the debounce; the full
                // CRL follows at max-delay or at its re-issue.
                let base_at = issuers.len();
                let mut base = unit(
                    object_name(&i.id),
                    Kind::Full { shard: None },
                    None,
                    timing.max_delay,
                );
                base.sibling = Some(base_at + 1);
                issuers.push(base);
                let mut delta = unit(
                    format!("{}-delta.crl", i.id),
                    Kind::Delta { base: base_at },
                    None,
                    timing.debounce,
                );
                delta.sibling = Some(base_at);
                issuers.push(delta);
            } else {
                issuers.push(unit(
                    object_name(&i.id),
                    Kind::Full { shard: None },
                    None,
                    timing.debounce,
                ));
            }
        }
        for u in &issuers {
            // Exported from the start, so alert rules see a zero.
            metrics.crl.entries_kept.with_label_values(&[&u.id]);
            metrics.crl.reconciled_missing.with_label_values(&[&u.id]);
        }
        Arc::new(Self {
            issuers,
            manifests: RwLock::default(),
            manifest_writer: tokio::sync::Mutex::new(()),
            publisher: tokio::sync::RwLock::new(publisher),
            issuers_state,
            timing,
            metrics,
            clock,
        })
    }

    pub fn cache_max_age(&self) -> u64 {
        self.timing.cache_max_age
    }

    /// The live CRL named `name` (`<id>.crl`, `<id>/<k>.crl`,
    /// `<id>-delta.crl`), for `/crl/<name>`.
    pub fn live(&self, name: &str) -> Option<Live> {
        let i = self.issuers.iter().find(|i| i.name == name)?;
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
        self.write_urls().await;
        for i in &self.issuers {
            if let Err(e) = self.refresh_live(i).await {
                tracing::warn!(issuer = %i.id, error = %e, "cannot read the live CRL yet");
            }
        }
    }

    async fn log_mode(&self, mode: WriteMode) {
        let p = self.publisher.read().await;
        self.metrics
            .crl
            .store_conditional
            .set(i64::from(mode == WriteMode::Conditional));
        match mode {
            WriteMode::Conditional => tracing::info!(store = p.describe(), "store honours conditional writes (If-Match / If-None-Match): several writers are safe"),
            // A directory of this host's (the demo's `file://crl`) is written
            // by this revocd alone unless an operator points a second one at
            // it: nothing to act on, so not a warning.
            WriteMode::SingleWriter if p.is_local_directory() => tracing::info!(store = p.describe(), "a local directory: this revocd is its only writer"),
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
        let (newer, changed) = {
            let mut live = i.live.write().unwrap_or_else(|p| p.into_inner());
            let newer = live.as_ref().is_none_or(|l| facts.number >= l.number);
            let changed = live.as_ref().is_none_or(|l| l.der != bytes);
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
                    self.metrics.crl.skipped.with_label_values(&[&i.id]).inc();
                    // A CRL from before this start covers the state only if the
                    // state has not moved since; assume it has not, and let the
                    // re-issue and change rules take it from here.
                    let rev = self.issuers_state[i.idx].state.revision();
                    i.schedule
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .live(facts.this_update, rev);
                }
            }
            (newer, changed)
        };
        if newer && changed {
            // Whatever the schedule remembers, the live CRL is what the world
            // sees: compare it with the state (start-up, another writer).
            self.reconcile(i).await;
        }
        Ok(())
    }

    /// Compares what the live CRL lists with what the state says it must
    /// list; a difference is an unpublished change seen now, so it is
    /// published within max-delay (and after the debounce). Runs at start,
    /// when the live CRL changes and after a failed publish, not per tick.
    async fn reconcile(&self, i: &IssuerCrl) {
        let Some(live) = i.live.read().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let (shard, base) = match i.kind {
            Kind::Full { shard } => (shard, None),
            Kind::Delta { base } => {
                let Some(b) = self.issuers[base]
                    .live
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                else {
                    return;
                };
                (None, Some(b))
            }
        };
        // At 1M entries this is about the cost of building the CRL: off the
        // reactor.
        let issuers_state = Arc::clone(&self.issuers_state);
        let (idx, id, name) = (i.idx, i.id.clone(), i.name.clone());
        let live_der = live.der.clone();
        let this_update = live.this_update;
        let found = tokio::task::spawn_blocking(move || {
            let state = &issuers_state[idx].state;
            let expected = match &base {
                None => select_entries(state.snapshot(), Some(this_update), shard),
                Some(b) => {
                    let current = select_entries(state.snapshot(), Some(b.this_update), None);
                    delta_entries(&b.der, current).unwrap_or_default()
                }
            };
            let listed = build::entries_of(&live_der).unwrap_or_else(|e| {
                tracing::warn!(issuer = %id, crl = %name, error = %e, "cannot read the live CRL's entries; republishing");
                Vec::new()
            });
            gate::differences(&expected, &listed, |s| state.lookup(s))
        })
        .await;
        let Ok(d) = found else {
            return;
        };
        if d.is_empty() {
            return;
        }
        self.metrics
            .crl
            .reconciled_missing
            .with_label_values(&[&i.id])
            .inc();
        tracing::warn!(
            issuer = %i.id,
            crl = %i.name,
            missing = d.missing.len(),
            released = d.released.len(),
            first_missing = ?d.missing.first().map(|s| s.to_hex()),
            live_number = live.number,
            "the live CRL does not list what the state holds; publishing it as an unpublished change"
        );
        i.schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unpublished(self.clock.now());
        i.wake.notify_one();
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
            let rev = self.issuers_state[i.idx].state.revision();
            let due = {
                let mut s = i.schedule.lock().unwrap_or_else(|p| p.into_inner());
                s.observe(rev, now);
                // The clock reads whole seconds and this loop wakes at least
                // once a second: asking one second ahead makes a deadline
                // (max-delay above all) start its publish by that deadline,
                // not up to a tick after it.
                s.due(now + 1)
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
                _ = crate::shutdown::stopped(shutdown) => {
                    let rev = self.issuers_state[i.idx].state.revision();
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
                m.crl.publishes.with_label_values(&[&i.id, "ok"]).inc();
                m.crl
                    .publish_seconds
                    .observe(started.elapsed().as_secs_f64());
                m.crl.last_success.with_label_values(&[&i.id]).set(now);
                m.crl
                    .entries
                    .with_label_values(&[&i.id])
                    .set(live.n_entries as i64);
                m.crl
                    .bytes
                    .with_label_values(&[&i.id])
                    .set(live.der.len() as i64);
                m.crl
                    .number
                    .with_label_values(&[&i.id])
                    .set(live.number as i64);
                if let Some(t) = first_change {
                    m.crl
                        .change_to_publish_seconds
                        .observe((now - t).max(0) as f64);
                }
                if let (Kind::Full { .. }, Some(delta)) = (i.kind, i.sibling) {
                    // The delta must now be taken against the new full CRL.
                    if let Some(d) = self.issuers.get(delta) {
                        d.schedule
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .request();
                        d.wake.notify_one();
                    }
                }
                if let Kind::Full { shard: Some(_) } = i.kind {
                    if let Err(e) = self.write_manifest(&i.id).await {
                        tracing::warn!(issuer = %i.id, error = %e, "shard manifest not written");
                    }
                }
                tracing::info!(
                    target: "audit",
                    event = "crl_published",
                    issuer = %i.id,
                    crl = %i.name,
                    sha256 = %live.etag.trim_matches('"'),
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
                {
                    let mut s = i.schedule.lock().unwrap_or_else(|p| p.into_inner());
                    s.failed(self.clock.now(), jitter);
                    self.metrics
                        .crl
                        .publishes
                        .with_label_values(&[&i.id, "error"])
                        .inc();
                    tracing::warn!(issuer = %i.id, why = due.label(), failures = s.failures(), error = %e, "CRL publish failed; will retry");
                }
                self.reconcile(i).await;
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
                    .crl
                    .foreign_writes
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
            if let Some(pause) = crate::fault::pause(crate::fault::CRL_PUBLISH_PAUSE) {
                tokio::time::sleep(pause).await;
            }
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
                    self.metrics.crl.conflicts.with_label_values(&[&i.id]).inc();
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
        let state = &self.issuers_state[i.idx].state;
        let rev = state.revision();
        let now = self.clock.now();
        let (shard, base) = match i.kind {
            Kind::Full { shard } => (shard, None),
            Kind::Delta { base } => {
                let b = self.issuers[base]
                    .live
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .ok_or(CrlPublishError::NoBase)?;
                (None, Some(b))
            }
        };
        // docs/conformance.md 27: an entry stays until a CRL issued after the
        // certificate expired has carried it; the live CRL was issued at
        // its thisUpdate, so drop only entries that expired before it.
        let keep_after = base.as_ref().or(live).map(|l| l.this_update);
        let mut entries = select_entries(state.snapshot(), keep_after, shard);
        if let Some(b) = &base {
            entries = delta_entries(&b.der, entries)?;
        }
        entries.sort_by(|a, b| a.serial.cmp(&b.serial));
        // Numbers follow the clock so independent writers rarely collide,
        // always exceed the live one, and a base and its delta share one
        // sequence (RFC 5280 5.2.4).
        let sibling_number = i.sibling.and_then(|s| {
            self.issuers[s]
                .live
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|l| l.number)
        });
        let live_number = live.map(|l| l.number);
        if let Some(l) = live.filter(|l| l.this_update > now) {
            // thisUpdate follows the clock even when it went back: clamping
            // to the live CRL's time would make every client see a CRL
            // that is not yet valid if the earlier time was the wrong one.
            tracing::warn!(
                issuer = %i.id,
                live_this_update = l.this_update,
                now,
                "the wall clock is behind the live CRL's thisUpdate; the CRL number still increases"
            );
        }
        let floor = live_number
            .max(sibling_number)
            .map_or(0, |n| n.saturating_add(1));
        let number = floor.max(u64::try_from(now).unwrap_or(0));
        let key = Arc::clone(&i.key);
        let ca = i.ca.clone();
        let aki = i.aki.clone();
        let idp = i.idp.clone();
        let delta_of = base.map(|b| b.number);
        let validity = self.timing.validity;
        // The safety gate: nothing the live CRL lists is dropped unless the
        // state released a hold or the certificate expired (off the reactor
        // with the signing: it reads the whole live CRL).
        let gate_live = match i.kind {
            Kind::Full { .. } => live.cloned(),
            Kind::Delta { .. } => None,
        };
        let issuers_state = Arc::clone(&self.issuers_state);
        let (idx, id, name) = (i.idx, i.id.clone(), i.name.clone());
        let metrics = self.metrics.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut entries = entries;
            if let Some(l) = gate_live {
                let state = &issuers_state[idx].state;
                match build::entries_of(&l.der) {
                    Ok(listed) => {
                        let kept = gate::keep_listed(listed, &mut entries, l.this_update, |s| {
                            state.lookup(s)
                        });
                        for k in &kept {
                            metrics.crl.entries_kept.with_label_values(&[&id]).inc();
                            tracing::error!(
                                issuer = %id,
                                crl = %name,
                                serial = %k.serial.to_hex(),
                                why = k.why,
                                "the new CRL would drop a serial the live CRL lists; it stays listed"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(issuer = %id, error = %e, "cannot read the live CRL's entries for the safety gate"),
                }
            }
            let params = CrlParams {
                issuer_name: &ca.subject_der,
                authority_key_id: &aki,
                number,
                this_update: now,
                next_update: now + validity,
                entries: &entries,
                distribution_point: idp.as_deref(),
                delta_of,
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
