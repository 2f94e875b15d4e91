//! Revocation and issuance sources beyond revocd's own API, for CAs revocd
//! does not run (AWS Private CA, ADCS, Vault, `openssl ca`):
//!
//! - `upstream-crls`: the CA's CRLs (full, shards, or base plus delta),
//!   polled by ETag, verified against the issuer's certificate, each
//!   source's CRL number strictly increasing (across restarts: the last
//!   applied CRL is kept in `<data-dir>/upstream/`);
//! - `audit-reports`: AWS Private CA audit reports (JSON or CSV), polled by
//!   ETag, for issued serials;
//! - `issued-certs`: a directory of issued certificates, watched.
//!
//! Every difference goes through the ledger like any other change, so it is
//! durable before OCSP shows it, and is audited, published in revocd's own
//! CRLs and purged from the CDN like a change made through the API. A
//! serial a full CRL stops listing without being a released hold is never
//! applied: it is logged, counted and alerted.

pub mod confirm;
pub mod plan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Upstream as Options;
use crate::crl::build::{self, CrlEntry};
use crate::issuer::Issuers;
use crate::ledger::{submit_from_source, Ledger};
use crate::metrics::Metrics;
use crate::pki::Cert;
use crate::publish::{Fetched, Source};
use crate::state::{Change, Serial};
use plan::{Issued, Listed, Plan};

/// One issuer's sources, polled together every `poll`: issuance first, then
/// full CRLs, then deltas (so a delta finds the base it needs).
pub struct IssuerSources {
    issuer: usize,
    id: String,
    crls: Vec<CrlSource>,
    reports: Vec<ReportSource>,
    certs: Option<CertDir>,
    /// Polls now instead of at the next interval (a Private CA event says
    /// the CA wrote a new CRL).
    wake: Arc<tokio::sync::Notify>,
}

impl IssuerSources {
    /// The issuer's id and what wakes its poller early.
    pub fn waker(&self) -> (String, Arc<tokio::sync::Notify>) {
        (self.id.clone(), Arc::clone(&self.wake))
    }

    /// Whether the issuer's CRLs are polled (so they can confirm a
    /// revocation learned elsewhere).
    pub fn has_crls(&self) -> bool {
        !self.crls.is_empty()
    }
}

struct CrlSource {
    source: Source,
    etag: Option<String>,
    /// The last applied CRL: its bytes (kept in `file`), number, whether it
    /// was a delta, and what it listed (full CRLs).
    applied: Option<AppliedCrl>,
    file: PathBuf,
}

struct AppliedCrl {
    der: Vec<u8>,
    number: Vec<u8>,
    delta: bool,
    listed: Listed,
}

struct ReportSource {
    source: Source,
    etag: Option<String>,
}

struct CertDir {
    dir: PathBuf,
    seen: HashMap<PathBuf, (u64, SystemTime)>,
}

/// What one poll of one source came to, for `revocd_upstream_polls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polled {
    Unchanged,
    Applied,
    Refused,
    Waiting,
    Error,
}

impl Polled {
    fn label(self) -> &'static str {
        match self {
            Polled::Unchanged => "unchanged",
            Polled::Applied => "applied",
            Polled::Refused => "refused",
            Polled::Waiting => "waiting",
            Polled::Error => "error",
        }
    }
}

/// Opens every configured source (URLs were checked with the config) and
/// loads what each CRL source last applied.
pub fn open(
    config: &crate::config::Config,
    issuers: &Issuers,
    metrics: &Metrics,
    clock: &dyn Clock,
) -> Vec<IssuerSources> {
    let mut all = Vec::new();
    for ic in &config.issuers {
        if ic.upstream_crls.is_empty() && ic.audit_reports.is_empty() && ic.issued_certs.is_none() {
            continue;
        }
        let Some(idx) = issuers.index(&ic.id) else {
            continue;
        };
        // Exported from the start, so alert rules see a zero and the
        // staleness clock starts now.
        let m = metrics;
        m.upstream.refused.with_label_values(&[&ic.id]);
        m.upstream.vanished.with_label_values(&[&ic.id]);
        m.upstream
            .last_success
            .with_label_values(&[&ic.id])
            .set(clock.now());
        let cert = &issuers[idx].cert;
        let dir = config.data_dir.join("upstream").join(&ic.id);
        let crls = ic
            .upstream_crls
            .iter()
            .filter_map(|url| {
                let source = Source::open(url, &config.upstream.source)
                    .map_err(|e| tracing::error!(issuer = %ic.id, url, error = %e, "upstream CRL source"))
                    .ok()?;
                let file = dir.join(format!("{}.crl", source_key(url)));
                let applied = load_applied(&file, cert, &ic.id);
                Some(CrlSource {
                    source,
                    etag: None,
                    applied,
                    file,
                })
            })
            .collect();
        let reports = ic
            .audit_reports
            .iter()
            .filter_map(|url| {
                Source::open(url, &config.upstream.source)
                    .map(|source| ReportSource { source, etag: None })
                    .map_err(|e| tracing::error!(issuer = %ic.id, url, error = %e, "audit report source"))
                    .ok()
            })
            .collect();
        all.push(IssuerSources {
            issuer: idx,
            id: ic.id.clone(),
            crls,
            reports,
            certs: ic.issued_certs.clone().map(|dir| CertDir {
                dir,
                seen: HashMap::new(),
            }),
            wake: Arc::default(),
        });
    }
    all
}

/// A file name for a source URL: stable, and safe whatever the URL holds.
fn source_key(url: &str) -> String {
    hex::encode(&crate::pki::HashAlg::Sha256.digest(url.as_bytes())[..12])
}

/// What a CRL source applied before the restart, checked again.
fn load_applied(file: &Path, cert: &Cert, issuer: &str) -> Option<AppliedCrl> {
    let der = std::fs::read(file).ok()?;
    match build::check(&der, cert).and_then(|f| Ok((f, build::entries_of(&der)?))) {
        Ok((facts, entries)) => Some(AppliedCrl {
            listed: if facts.is_delta {
                Listed::new()
            } else {
                plan::listed(&entries)
            },
            number: facts.number_bytes,
            delta: facts.is_delta,
            der,
        }),
        Err(e) => {
            tracing::error!(issuer, file = %file.display(), error = %e, "the last applied upstream CRL no longer verifies; its number floor is lost");
            None
        }
    }
}

/// Polls `sources` every `options.poll`, or at once when woken, until
/// shutdown. Every CRL applied is reported to `confirm`.
pub async fn run(
    mut sources: IssuerSources,
    poller: Arc<Poller>,
    mut shutdown: watch::Receiver<bool>,
) {
    let wake = Arc::clone(&sources.wake);
    loop {
        poller.poll(&mut sources).await;
        tokio::select! {
            () = tokio::time::sleep(poller.options.poll) => {}
            () = wake.notified() => {
                tracing::debug!(issuer = %sources.id, "upstream sources polled early");
            }
            () = crate::shutdown::stopped(&mut shutdown) => return,
        }
    }
}

/// What every issuer's poller works with: the issuers (certificates to
/// verify against, state to compare with), the ledger, the clock, the
/// metrics, the options, and the revocations waiting for a CRL to confirm
/// them.
pub struct Poller {
    issuers: Arc<Issuers>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    ledger: Ledger,
    options: Options,
    confirm: Option<Arc<confirm::Unconfirmed>>,
}

impl Poller {
    pub fn new(
        shared: &crate::shared::Shared,
        ledger: Ledger,
        options: Options,
        confirm: Option<Arc<confirm::Unconfirmed>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            issuers: Arc::clone(&shared.issuers),
            clock: Arc::clone(&shared.clock),
            metrics: shared.metrics.clone(),
            ledger,
            options,
            confirm,
        })
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn count(&self, issuer: &str, kind: &str, result: Polled) {
        self.metrics()
            .upstream
            .polls
            .with_label_values(&[issuer, kind, result.label()])
            .inc();
        if matches!(result, Polled::Applied | Polled::Unchanged) {
            self.metrics()
                .upstream
                .last_success
                .with_label_values(&[issuer])
                .set(self.clock.now());
        }
    }

    /// One round over an issuer's sources.
    pub async fn poll(&self, s: &mut IssuerSources) {
        let id = s.id.clone();
        if let Some(dir) = &mut s.certs {
            let issued = scan_dir(dir, &self.issuers[s.issuer].cert, &id);
            if !issued.is_empty() {
                let r = self.register(s.issuer, &id, issued, "issued-certs").await;
                self.count(&id, "certs", r);
            }
        }
        for r in &mut s.reports {
            let result = self.poll_report(s.issuer, &id, r).await;
            self.count(&id, "audit_report", result);
        }
        // Full CRLs before deltas: a delta needs its base applied.
        let mut order: Vec<usize> = (0..s.crls.len()).collect();
        order.sort_by_key(|i| s.crls[*i].applied.as_ref().is_some_and(|a| a.delta));
        for i in order {
            let base = s
                .crls
                .iter()
                .filter_map(|c| c.applied.as_ref())
                .filter(|a| !a.delta)
                .map(|a| a.number.clone())
                .max_by(|a, b| build::compare_numbers(a, b));
            let result = self
                .poll_crl(s.issuer, &id, &mut s.crls[i], base.as_deref())
                .await;
            self.count(&id, "crl", result);
        }
    }

    /// The object if it changed since `etag`; otherwise what the poll came
    /// to (unchanged, or an error, logged).
    async fn fetch(
        &self,
        id: &str,
        source: &Source,
        etag: Option<&str>,
        what: &str,
    ) -> Result<(bytes::Bytes, Option<String>), Polled> {
        match source.fetch(etag, self.options.max_bytes).await {
            Ok(Fetched::Unchanged) => Err(Polled::Unchanged),
            Ok(Fetched::Found { bytes, etag }) => Ok((bytes, etag)),
            Ok(Fetched::Absent) => {
                tracing::warn!(issuer = id, url = source.url(), "{what} absent");
                Err(Polled::Error)
            }
            Err(e) => {
                tracing::warn!(issuer = id, url = source.url(), error = %e, "cannot fetch the {what}");
                Err(Polled::Error)
            }
        }
    }

    async fn poll_report(&self, idx: usize, id: &str, r: &mut ReportSource) -> Polled {
        let (bytes, etag) = match self
            .fetch(id, &r.source, r.etag.as_deref(), "audit report")
            .await
        {
            Ok(found) => found,
            Err(polled) => return polled,
        };
        let (issued, problems) = plan::audit_report(&bytes);
        for p in problems.iter().take(10) {
            tracing::warn!(
                issuer = id,
                url = r.source.url(),
                "audit report: {p} (skipped)"
            );
        }
        if issued.is_empty() && !problems.is_empty() {
            r.etag = etag;
            return Polled::Refused;
        }
        let result = self.register(idx, id, issued, r.source.url()).await;
        if result != Polled::Error {
            r.etag = etag;
        }
        result
    }

    async fn register(&self, idx: usize, id: &str, issued: Vec<Issued>, from: &str) -> Polled {
        let changes = issued
            .into_iter()
            .map(|i| Change::Register {
                serial: i.serial,
                not_after: i.not_after,
            })
            .collect();
        match self.submit(idx, id, changes, from).await {
            Some(0) => Polled::Unchanged,
            Some(_) => Polled::Applied,
            None => Polled::Error,
        }
    }

    async fn poll_crl(
        &self,
        idx: usize,
        id: &str,
        c: &mut CrlSource,
        base: Option<&[u8]>,
    ) -> Polled {
        let (bytes, etag) = match self
            .fetch(id, &c.source, c.etag.as_deref(), "upstream CRL")
            .await
        {
            Ok(found) => found,
            Err(polled) => return polled,
        };
        let url = c.source.url().to_string();
        let refuse = |c: &mut CrlSource, why: String| {
            tracing::error!(
                issuer = id,
                url,
                "upstream CRL refused, the state stands: {why}"
            );
            self.metrics()
                .upstream
                .refused
                .with_label_values(&[id])
                .inc();
            // Not fetched again until it changes.
            c.etag = etag.clone();
            Polled::Refused
        };
        let der = match crate::tools::sync::crl_der(&bytes) {
            Ok(d) => d,
            Err(why) => return refuse(c, why),
        };
        if c.applied.as_ref().is_some_and(|a| a.der == der) {
            c.etag = etag;
            return Polled::Unchanged;
        }
        let cert = &self.issuers[idx].cert;
        let facts = match build::check(&der, cert) {
            Ok(f) => f,
            Err(e) => return refuse(c, e.to_string()),
        };
        if let Some(ext) = &facts.unknown_critical {
            return refuse(c, format!("{ext} that revocd does not understand"));
        }
        if let Some(last) = &c.applied {
            if build::compare_numbers(&facts.number_bytes, &last.number)
                != std::cmp::Ordering::Greater
            {
                return refuse(
                    c,
                    format!(
                        "CRL number 0x{} is not above the last applied 0x{} (a rollback or a replay)",
                        hex::encode_upper(&facts.number_bytes),
                        hex::encode_upper(&last.number)
                    ),
                );
            }
        }
        let entries: Vec<CrlEntry> = match build::entries_of(&der) {
            Ok(e) => e,
            Err(e) => return refuse(c, e.to_string()),
        };
        let plan = match &facts.delta_base {
            Some(needed) => {
                let covered = base
                    .is_some_and(|b| build::compare_numbers(b, needed) != std::cmp::Ordering::Less);
                if !covered {
                    tracing::info!(
                        issuer = id,
                        url,
                        base = hex::encode_upper(needed),
                        "delta CRL waits for its base CRL"
                    );
                    return Polled::Waiting;
                }
                plan::delta(&entries)
            }
            None => plan::full(c.applied.as_ref().map(|a| &a.listed), &entries),
        };
        if facts.next_update.is_some_and(|n| n < self.clock.now()) {
            tracing::warn!(
                issuer = id,
                url,
                "the upstream CRL is past its nextUpdate; its revocations are applied all the same"
            );
        }
        let Plan { changes, vanished } = plan;
        if !vanished.is_empty() {
            let shown: Vec<String> = vanished.iter().take(10).map(Serial::to_hex).collect();
            tracing::error!(
                issuer = id,
                url,
                count = vanished.len(),
                serials = ?shown,
                "serials the previous upstream CRL listed as revoked are gone without a release from certificateHold: not applied, they stay revoked"
            );
            self.metrics()
                .upstream
                .vanished
                .with_label_values(&[id])
                .inc_by(vanished.len() as u64);
        }
        if self.submit(idx, id, changes, &url).await.is_none() {
            return Polled::Error;
        }
        if let Err(e) = tokio::task::spawn_blocking({
            let (file, der) = (c.file.clone(), der.clone());
            move || {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                crate::tools::sync::replace_file(&file, &der)
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        {
            // The changes are in the ledger; only the number floor across a
            // restart is at risk. Say so and go on.
            tracing::error!(issuer = id, file = %c.file.display(), error = %e, "cannot keep the applied upstream CRL");
        }
        if let Some(confirm) = &self.confirm {
            confirm.listed(id, entries.iter().map(|e| &e.serial));
        }
        c.applied = Some(AppliedCrl {
            listed: if facts.is_delta {
                Listed::new()
            } else {
                plan::listed(&entries)
            },
            number: facts.number_bytes,
            delta: facts.is_delta,
            der,
        });
        c.etag = etag;
        Polled::Applied
    }

    /// Submits what changes the state; `None` if the ledger failed (the
    /// source is read again next time). Conflicts are logged and skipped.
    async fn submit(
        &self,
        idx: usize,
        id: &str,
        changes: Vec<Change>,
        from: &str,
    ) -> Option<usize> {
        let author = format!("upstream:{from}");
        let report =
            submit_from_source(&self.ledger, id, &self.issuers[idx].state, changes, &author).await;
        for kind in &report.recorded {
            self.metrics()
                .upstream
                .changes
                .with_label_values(&[id, kind])
                .inc();
        }
        (!report.failed).then_some(report.recorded.len())
    }
}

/// New or changed files in the issued-certificates directory: the
/// certificates this issuer issued.
fn scan_dir(dir: &mut CertDir, ca: &Cert, issuer: &str) -> Vec<Issued> {
    let Ok(read) = std::fs::read_dir(&dir.dir) else {
        tracing::warn!(issuer, dir = %dir.dir.display(), "cannot read the issued-certs directory");
        return Vec::new();
    };
    let mut issued = Vec::new();
    for entry in read.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        if dir.seen.get(&path) == Some(&stamp) {
            continue;
        }
        dir.seen.insert(path.clone(), stamp);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        match Cert::parse(&bytes) {
            Ok(cert) if cert.is_issued_by(ca) => issued.push(Issued {
                serial: Serial::from_content(&cert.serial),
                not_after: cert.not_after,
            }),
            Ok(_) => {
                tracing::warn!(issuer, file = %path.display(), "not issued by this CA (skipped)")
            }
            Err(e) => {
                tracing::warn!(issuer, file = %path.display(), error = %e, "not a certificate (skipped)")
            }
        }
    }
    issued
}
