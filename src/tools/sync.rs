//! `revocd crl-sync`: keeps a local CRL file fresh for servers that check
//! client certificates against one (nginx `ssl_crl`, HAProxy `crl-file`,
//! Envoy, Kafka). Each source is polled with `If-None-Match`, so an unchanged
//! CRL costs one 304; a new one is installed only if it verifies against a
//! configured CA, is a full CRL, has not expired, and does not lower the CRL
//! number of the one installed for that CA. The file is replaced atomically
//! (write, fsync, rename, fsync the directory), then `--on-change` runs.
//!
//! Several sources make one bundle (PEM, in CA order), as nginx expects for
//! several CAs. [`judge`] and [`encode_bundle`] are pure; the loop is IO.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::clock::{rfc3339, Clock, SystemClock};
use crate::crl::build::{check, CrlError};
use crate::pki::Cert;
use crate::publish::{Fetched, Source, SourceOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Der,
    Pem,
}

/// `--max-bytes`: generous (a CRL of 1M entries is about 40 MB).
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// How far ahead of the clock a thisUpdate may be (clock skew).
pub const FUTURE_SKEW: i64 = 300;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub sources: Vec<String>,
    /// Sources that are shards of a partitioned CRL (IDP expected).
    pub shard_sources: Vec<String>,
    /// Largest CRL read from a source.
    pub max_bytes: u64,
    pub out: PathBuf,
    /// CA certificate files (PEM, several per file allowed, or one DER).
    pub cas: Vec<PathBuf>,
    pub interval: Duration,
    pub on_change: Option<String>,
    pub format: Format,
    pub once: bool,
    pub source: SourceOptions,
    pub metrics_listen: Option<SocketAddr>,
    /// HAProxy's stats socket and the `crl-file` name it loaded: new CRLs
    /// are installed through its runtime API, without a reload.
    pub haproxy: Option<(PathBuf, String)>,
}

/// A CRL that passed every check, held for one CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub der: Vec<u8>,
    /// Index of the CA (in the order given) that signed it.
    pub ca: usize,
    pub number: u64,
    /// The CRL number as minimal big-endian octets (up to 20).
    pub number_bytes: Vec<u8>,
    pub this_update: i64,
    pub next_update: i64,
}

/// What to do with a fetched CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Better than what is installed for its CA.
    Install(Installed),
    /// The very CRL already installed.
    Same,
    /// Refused; the reason is for logs and the operator.
    Reject(String),
}

/// The one CRL a source served, DER or PEM.
pub fn crl_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if !bytes[start..].starts_with(b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    let mut crls = decode_bundle(bytes);
    match crls.len() {
        1 => Ok(crls.remove(0)),
        0 => Err("PEM without an X509 CRL block".into()),
        n => Err(format!(
            "{n} CRLs in one source; give each its own --source"
        )),
    }
}

/// Decides on a fetched CRL (DER or PEM) given the CAs and what is
/// installed per CA. `shard`: the source is declared one shard of a
/// partitioned CRL. Refuses what a consumer's server would reject. Pure.
pub fn judge(
    bytes: &[u8],
    cas: &[Cert],
    installed: &[Option<Installed>],
    now: i64,
    shard: bool,
) -> Judgement {
    let der = match crl_der(bytes) {
        Ok(d) => d,
        Err(why) => return Judgement::Reject(why),
    };
    let der = der.as_slice();
    let mut why = "issued by none of the configured CAs".to_string();
    let mut found = None;
    for (i, ca) in cas.iter().enumerate() {
        match check(der, ca) {
            Ok(facts) => {
                found = Some((i, facts));
                break;
            }
            Err(CrlError::Issuer) => {}
            Err(e) => why = format!("{} ({})", e, ca.subject_text),
        }
    }
    let Some((ca, facts)) = found else {
        return Judgement::Reject(why);
    };
    if facts.is_delta {
        return Judgement::Reject("a delta CRL; give the full CRL's URL".into());
    }
    if let Some(ext) = &facts.unknown_critical {
        return Judgement::Reject(format!(
            "{ext}: a server would refuse this CRL (unhandled critical CRL extension)"
        ));
    }
    if facts.has_idp && !shard {
        return Judgement::Reject(
            "the CRL carries an Issuing Distribution Point (one shard of a partitioned CRL, or a scoped CRL): presented as the full CRL a server would reject every client (different CRL scope); give it with --shard-source if it is meant as a shard".into(),
        );
    }
    if facts.this_update > now + FUTURE_SKEW {
        return Judgement::Reject(format!(
            "not yet valid: thisUpdate {} is more than {FUTURE_SKEW} s ahead of this clock",
            rfc3339(facts.this_update)
        ));
    }
    let Some(next_update) = facts.next_update else {
        return Judgement::Reject("no nextUpdate".into());
    };
    if next_update <= now {
        return Judgement::Reject(format!(
            "expired: nextUpdate {} is in the past",
            rfc3339(next_update)
        ));
    }
    let number_text = |b: &[u8]| format!("0x{}", hex::encode_upper(b));
    if let Some(held) = installed.get(ca).and_then(Option::as_ref) {
        if held.der == der {
            return Judgement::Same;
        }
        match crate::crl::build::compare_numbers(&facts.number_bytes, &held.number_bytes) {
            std::cmp::Ordering::Less => {
                return Judgement::Reject(format!(
                    "CRL number {} is lower than the installed {} (a rollback)",
                    number_text(&facts.number_bytes),
                    number_text(&held.number_bytes)
                ))
            }
            std::cmp::Ordering::Equal => {
                return Judgement::Reject(format!(
                    "CRL number {} is the installed one's, with different content",
                    number_text(&facts.number_bytes)
                ))
            }
            std::cmp::Ordering::Greater => {}
        }
    }
    Judgement::Install(Installed {
        der: der.to_vec(),
        ca,
        number: facts.number,
        number_bytes: facts.number_bytes,
        this_update: facts.this_update,
        next_update,
    })
}

/// The file's bytes: the one DER CRL, or every CRL as PEM in CA order.
pub fn encode_bundle(installed: &[Option<Installed>], format: Format) -> Vec<u8> {
    let crls = installed.iter().flatten();
    match format {
        Format::Der => crls.map(|c| c.der.clone()).next().unwrap_or_default(),
        Format::Pem => {
            let mut out = String::new();
            for c in crls {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&c.der);
                out.push_str("-----BEGIN X509 CRL-----\n");
                for line in b64.as_bytes().chunks(64) {
                    out.push_str(&String::from_utf8_lossy(line));
                    out.push('\n');
                }
                out.push_str("-----END X509 CRL-----\n");
            }
            out.into_bytes()
        }
    }
}

/// The CRLs in an existing file (PEM blocks or one DER CRL).
pub fn decode_bundle(bytes: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN X509 CRL-----") {
        return if bytes.is_empty() {
            Vec::new()
        } else {
            vec![bytes.to_vec()]
        };
    }
    text.split("-----BEGIN X509 CRL-----")
        .skip(1)
        .filter_map(|block| {
            let body: String = block
                .split("-----END X509 CRL-----")
                .next()?
                .split_whitespace()
                .collect();
            base64::engine::general_purpose::STANDARD.decode(body).ok()
        })
        .collect()
}

/// Every certificate in the CA files.
fn load_cas(paths: &[PathBuf]) -> anyhow::Result<Vec<Cert>> {
    let mut cas = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let blocks: Vec<Vec<u8>> = if text.contains("-----BEGIN CERTIFICATE-----") {
            text.split_inclusive("-----END CERTIFICATE-----")
                .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
                .map(|b| b.trim().as_bytes().to_vec())
                .collect()
        } else {
            vec![bytes.clone()]
        };
        for b in blocks {
            cas.push(Cert::parse(&b).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
        }
    }
    if cas.is_empty() {
        bail!("give at least one --ca certificate to verify CRLs against");
    }
    Ok(cas)
}

/// Replaces `path` atomically: a temp file beside it, fsync, rename, fsync
/// of the directory.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_else(|| "crl".into()),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

struct SyncMetrics {
    registry: Registry,
    polls: IntCounterVec,
    last_success: GaugeVec,
    since_success: GaugeVec,
    crl_number: GaugeVec,
    crl_age: GaugeVec,
    next_update_in: GaugeVec,
    installs: IntCounter,
    on_change_failures: IntCounter,
    haproxy_updates: IntCounter,
    haproxy_failures: IntCounter,
    up: Gauge,
}

impl SyncMetrics {
    fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &["source"]);
        let m = Self {
            polls: IntCounterVec::new(
                Opts::new(
                    "revocd_crl_sync_polls_total",
                    "Polls by source and result: unchanged, updated, rejected, error",
                ),
                &["source", "result"],
            )?,
            last_success: gauge(
                "revocd_crl_sync_last_success_timestamp_seconds",
                "Unix time of the last poll that ended unchanged or updated",
            )?,
            since_success: gauge(
                "revocd_crl_sync_seconds_since_success",
                "Seconds since the last poll that ended unchanged or updated",
            )?,
            crl_number: gauge(
                "revocd_crl_sync_crl_number",
                "CRL number of the installed CRL from this source",
            )?,
            crl_age: gauge(
                "revocd_crl_sync_crl_age_seconds",
                "now - thisUpdate of the installed CRL from this source",
            )?,
            next_update_in: gauge(
                "revocd_crl_sync_next_update_seconds",
                "nextUpdate - now of the installed CRL from this source (negative: expired)",
            )?,
            installs: IntCounter::new(
                "revocd_crl_sync_installs_total",
                "Times the output file was replaced",
            )?,
            haproxy_updates: IntCounter::new(
                "revocd_crl_sync_haproxy_updates_total",
                "CRLs installed in HAProxy through its runtime API",
            )?,
            haproxy_failures: IntCounter::new(
                "revocd_crl_sync_haproxy_failures_total",
                "Failed HAProxy runtime API updates (retried every poll)",
            )?,
            on_change_failures: IntCounter::new(
                "revocd_crl_sync_on_change_failures_total",
                "--on-change commands that failed or timed out",
            )?,
            up: Gauge::new("revocd_crl_sync_up", "1 while crl-sync runs")?,
            registry,
        };
        for c in [
            Box::new(m.polls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.last_success.clone()),
            Box::new(m.since_success.clone()),
            Box::new(m.crl_number.clone()),
            Box::new(m.crl_age.clone()),
            Box::new(m.next_update_in.clone()),
            Box::new(m.installs.clone()),
            Box::new(m.on_change_failures.clone()),
            Box::new(m.haproxy_updates.clone()),
            Box::new(m.haproxy_failures.clone()),
            Box::new(m.up.clone()),
        ] {
            m.registry.register(c)?;
        }
        m.up.set(1.0);
        Ok(m)
    }
}

/// One source's polling state.
struct Polled {
    source: Source,
    /// Declared one shard of a partitioned CRL (`--shard-source`).
    shard: bool,
    etag: Option<String>,
    /// The CA its CRLs are signed by, once one verified.
    ca: Option<usize>,
    failures: u32,
    next_poll: Instant,
    last_success: Option<i64>,
    /// Last time a near-expiry warning was logged for it.
    warned: Option<Instant>,
}

/// What one poll of one source came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollResult {
    Unchanged,
    Updated,
    Rejected,
    Error,
}

impl PollResult {
    fn label(self) -> &'static str {
        match self {
            PollResult::Unchanged => "unchanged",
            PollResult::Updated => "updated",
            PollResult::Rejected => "rejected",
            PollResult::Error => "error",
        }
    }
}

pub struct Syncer {
    opts: SyncOptions,
    cas: Vec<Cert>,
    installed: Vec<Option<Installed>>,
    polled: Vec<Polled>,
    file_existed: bool,
    metrics: SyncMetrics,
    clock: SystemClock,
    /// HAProxy does not hold the file's CRLs yet: at start (it may have
    /// loaded an older file), after a replacement, after a failed update.
    haproxy_pending: bool,
}

impl Syncer {
    pub fn new(opts: SyncOptions) -> anyhow::Result<Self> {
        if opts.sources.is_empty() && opts.shard_sources.is_empty() {
            bail!("give at least one --source");
        }
        if opts.format == Format::Der && opts.sources.len() + opts.shard_sources.len() > 1 {
            bail!("a DER file holds one CRL: use --format pem for several sources");
        }
        let cas = load_cas(&opts.cas)?;
        let mut installed = vec![None; cas.len()];
        let clock = SystemClock;
        let existing = match std::fs::read(&opts.out) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", opts.out.display())),
        };
        // What the file holds sets the floor for CRL numbers (no rollback
        // across restarts); an expired CRL still counts for the floor.
        for der in existing.as_deref().map(decode_bundle).unwrap_or_default() {
            if let Some((ca, facts)) = cas
                .iter()
                .enumerate()
                .find_map(|(i, ca)| check(&der, ca).ok().map(|f| (i, f)))
            {
                installed[ca] = Some(Installed {
                    der,
                    ca,
                    number: facts.number,
                    number_bytes: facts.number_bytes,
                    this_update: facts.this_update,
                    next_update: facts.next_update.unwrap_or(0),
                });
            } else {
                tracing::warn!(file = %opts.out.display(), "a CRL in the existing file verifies against no configured CA; it will be replaced");
            }
        }
        let mut polled = Vec::new();
        let all = opts.sources.iter().map(|u| (u, false));
        for (url, shard) in all.chain(opts.shard_sources.iter().map(|u| (u, true))) {
            polled.push(Polled {
                shard,
                source: Source::open(url, &opts.source)?,
                etag: None,
                ca: None,
                failures: 0,
                next_poll: Instant::now(),
                last_success: None,
                warned: None,
            });
        }
        Ok(Self {
            haproxy_pending: opts.haproxy.is_some(),
            file_existed: existing.is_some(),
            metrics: SyncMetrics::new()?,
            opts,
            cas,
            installed,
            polled,
            clock,
        })
    }

    /// Polls one source; returns what happened and whether the bundle
    /// changed.
    async fn poll(&mut self, i: usize) -> (PollResult, bool) {
        let now = self.clock.now();
        let p = &mut self.polled[i];
        let url = p.source.url().to_string();
        let fetched = p.source.fetch(p.etag.as_deref(), self.opts.max_bytes).await;
        let (result, changed) = match fetched {
            Ok(Fetched::Unchanged) => (PollResult::Unchanged, false),
            Ok(Fetched::Absent) => {
                tracing::warn!(source = %url, "the source has no CRL (404)");
                (PollResult::Error, false)
            }
            Err(e @ crate::publish::PublishError::TooLarge { .. }) => {
                tracing::error!(source = %url, reason = %e, "CRL refused; the installed file stays");
                (PollResult::Rejected, false)
            }
            Err(e) => {
                tracing::warn!(source = %url, error = %e, "polling the source failed");
                (PollResult::Error, false)
            }
            Ok(Fetched::Found { bytes, etag }) => {
                match judge(&bytes, &self.cas, &self.installed, now, p.shard) {
                    Judgement::Same => {
                        p.etag = etag;
                        (PollResult::Unchanged, false)
                    }
                    Judgement::Install(crl) => {
                        tracing::info!(
                            source = %url,
                            number = crl.number,
                            next_update = %rfc3339(crl.next_update),
                            "new CRL verified"
                        );
                        p.etag = etag;
                        p.ca = Some(crl.ca);
                        let ca = crl.ca;
                        self.installed[ca] = Some(crl);
                        (PollResult::Updated, true)
                    }
                    Judgement::Reject(why) => {
                        // The ETag is not kept: the next poll fetches and
                        // judges again, so a fixed source is noticed.
                        tracing::error!(source = %url, reason = %why, "CRL refused; the installed file stays");
                        (PollResult::Rejected, false)
                    }
                }
            }
        };
        let p = &mut self.polled[i];
        if matches!(result, PollResult::Unchanged | PollResult::Updated) {
            p.failures = 0;
            p.last_success = Some(now);
            self.metrics
                .last_success
                .with_label_values(&[&url])
                .set(now as f64);
        } else if result == PollResult::Error {
            p.failures = p.failures.saturating_add(1);
        }
        // Errors back off exponentially (up to 10 minutes) with jitter.
        let base = self.opts.interval;
        let delay = if p.failures == 0 {
            base
        } else {
            let factor = 1u32 << p.failures.min(10);
            (base * factor).min(Duration::from_secs(600).max(base))
        };
        let jitter = delay.mul_f64(jitter_fraction(i as u64 ^ now as u64) * 0.1);
        p.next_poll = Instant::now() + delay + jitter;
        self.metrics
            .polls
            .with_label_values(&[&url, result.label()])
            .inc();
        (result, changed)
    }

    /// Writes the bundle if it is complete (or a file was already there)
    /// and runs `--on-change`.
    async fn install(&mut self) -> anyhow::Result<bool> {
        let filled = self.installed.iter().flatten().count();
        if !self.file_existed && filled < self.polled.len() {
            tracing::info!(
                have = filled,
                need = self.polled.len(),
                "waiting for every source before writing the first file"
            );
            return Ok(false);
        }
        let bytes = encode_bundle(&self.installed, self.opts.format);
        if std::fs::read(&self.opts.out).is_ok_and(|b| b == bytes) {
            self.push_to_haproxy().await;
            return Ok(false);
        }
        let path = self.opts.out.clone();
        tokio::task::spawn_blocking(move || replace_file(&path, &bytes))
            .await?
            .with_context(|| format!("replacing {}", self.opts.out.display()))?;
        self.file_existed = true;
        self.metrics.installs.inc();
        tracing::info!(file = %self.opts.out.display(), crls = filled, "CRL file replaced");
        if let Some(cmd) = &self.opts.on_change {
            let run = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .kill_on_drop(true)
                .status();
            match tokio::time::timeout(Duration::from_secs(60), run).await {
                Ok(Ok(status)) if status.success() => {
                    tracing::info!(command = %cmd, "--on-change ran")
                }
                Ok(Ok(status)) => {
                    self.metrics.on_change_failures.inc();
                    tracing::error!(command = %cmd, %status, "--on-change failed");
                }
                Ok(Err(e)) => {
                    self.metrics.on_change_failures.inc();
                    tracing::error!(command = %cmd, error = %e, "--on-change could not run");
                }
                Err(_) => {
                    self.metrics.on_change_failures.inc();
                    tracing::error!(command = %cmd, "--on-change took over 60 s; killed");
                }
            }
        }
        self.haproxy_pending = self.opts.haproxy.is_some();
        self.push_to_haproxy().await;
        Ok(true)
    }

    /// Installs the file's CRLs in HAProxy through its runtime API when it
    /// does not hold them yet; a failure is retried at the next poll.
    async fn push_to_haproxy(&mut self) {
        let Some((socket, crl_file)) = &self.opts.haproxy else {
            return;
        };
        if !self.haproxy_pending {
            return;
        }
        let pem =
            String::from_utf8_lossy(&encode_bundle(&self.installed, Format::Pem)).into_owned();
        match crate::tools::haproxy::set_crl(socket, crl_file, &pem).await {
            Ok(()) => {
                self.haproxy_pending = false;
                self.metrics.haproxy_updates.inc();
                tracing::info!(socket = %socket.display(), crl_file, "CRL installed in HAProxy (runtime API, no reload)");
            }
            Err(e) => {
                self.metrics.haproxy_failures.inc();
                tracing::error!(error = %e, "installing the CRL in HAProxy failed; will retry");
            }
        }
    }

    /// Gauges that follow the clock, and the near-expiry warning.
    fn refresh(&mut self) {
        let now = self.clock.now();
        for p in &mut self.polled {
            let url = p.source.url();
            if let Some(t) = p.last_success {
                self.metrics
                    .since_success
                    .with_label_values(&[url])
                    .set((now - t) as f64);
            }
            let Some(crl) = p.ca.and_then(|ca| self.installed[ca].as_ref()) else {
                continue;
            };
            let m = &self.metrics;
            m.crl_number
                .with_label_values(&[url])
                .set(crl.number as f64);
            m.crl_age
                .with_label_values(&[url])
                .set((now - crl.this_update) as f64);
            let left = crl.next_update - now;
            m.next_update_in.with_label_values(&[url]).set(left as f64);
            let validity = (crl.next_update - crl.this_update).max(1);
            if left < validity / 4
                && p.warned
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
            {
                p.warned = Some(Instant::now());
                tracing::warn!(
                    source = %url,
                    next_update = %rfc3339(crl.next_update),
                    seconds_left = left,
                    "the installed CRL nears its nextUpdate and no newer one arrived"
                );
            }
        }
    }

    /// `--once`: every source once; success when none failed.
    pub async fn once(&mut self) -> anyhow::Result<bool> {
        let mut ok = true;
        for i in 0..self.polled.len() {
            let (result, _) = self.poll(i).await;
            ok &= matches!(result, PollResult::Unchanged | PollResult::Updated);
        }
        self.install().await?;
        self.refresh();
        // A CRL HAProxy did not take counts as a failure.
        Ok(ok && !self.haproxy_pending)
    }

    /// Polls until SIGTERM or SIGINT.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(addr) = self.opts.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --metrics-listen {addr}"))?;
            println!(
                "revocd crl-sync: metrics on http://{}",
                listener.local_addr()?
            );
            let registry = self.metrics.registry.clone();
            tokio::spawn(crate::http::serve_text(
                listener,
                move || {
                    let mut buf = Vec::new();
                    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf);
                    String::from_utf8_lossy(&buf).into_owned()
                },
                stop_rx.clone(),
            ));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let mut changed = false;
            for i in 0..self.polled.len() {
                if Instant::now() >= self.polled[i].next_poll {
                    changed |= self.poll(i).await.1;
                }
            }
            if changed || self.haproxy_pending {
                if let Err(e) = self.install().await {
                    tracing::error!(error = %e, "installing the CRL file failed; will retry");
                    // Forget the ETags so the next poll re-fetches.
                    for p in &mut self.polled {
                        p.etag = None;
                    }
                }
            }
            self.refresh();
            let next = self
                .polled
                .iter()
                .map(|p| p.next_poll)
                .min()
                .unwrap_or_else(|| Instant::now() + self.opts.interval);
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        let _ = stop_tx.send(true);
        tracing::info!("crl-sync stopping");
        Ok(())
    }
}

/// A fraction in [0, 1) from a seed (jitter without a RNG dependency).
fn jitter_fraction(seed: u64) -> f64 {
    let x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundles_round_trip() {
        let a = Installed {
            der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
            ca: 0,
            number: 1,
            number_bytes: vec![1],
            this_update: 0,
            next_update: 1,
        };
        let b = Installed {
            der: vec![0x30, 0x03, 0x02, 0x01, 0x02],
            ca: 1,
            ..a.clone()
        };
        let both = [Some(a.clone()), Some(b.clone())];
        let pem = encode_bundle(&both, Format::Pem);
        assert_eq!(decode_bundle(&pem), vec![a.der.clone(), b.der.clone()]);
        assert_eq!(encode_bundle(&both, Format::Der), a.der);
        assert_eq!(decode_bundle(&a.der), vec![a.der]);
        assert!(decode_bundle(b"").is_empty());
    }

    #[test]
    fn garbage_is_rejected_not_installed() {
        assert!(matches!(
            judge(b"not a crl", &[], &[], 0, false),
            Judgement::Reject(_)
        ));
    }
}
