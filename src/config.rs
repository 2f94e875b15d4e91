//! Configuration: a serde image of the TOML file, then a validated [`Config`].
//! Every problem is collected and reported at once; only this module knows serde.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::pki::HashAlg;

/// Defaults, in one place.
pub mod defaults {
    pub const PUBLIC_LISTEN: &str = "127.0.0.1:8080";
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";
    /// DESIGN: Windows. Responses are pre-signed per 60-minute window.
    pub const WINDOW: &str = "60m";
    /// BR 4.9.10 allows 8h..10d between thisUpdate and nextUpdate.
    pub const VALIDITY: &str = "8h";
    /// CONFORMANCE 3: bound POST bodies at about 10 KB.
    pub const MAX_REQUEST_BYTES: usize = 10 * 1024;
    /// How many CertIDs one OCSPRequest may ask about.
    pub const MAX_CERTS_PER_REQUEST: usize = 16;
    /// Concurrent on-demand signings before answering tryLater.
    pub const SIGNING_BUDGET: usize = 64;
    pub const CACHE_MAX_BYTES: u64 = 4 << 30;
    /// Half the cores for the background pre-signer: serving keeps the rest.
    pub const PRESIGN_CPU_SHARE: f64 = 0.5;
    /// Ready within seconds even with millions of serials (#8: 10 s at 1M).
    pub const STARTUP_PRESIGN: &str = "5s";
    /// Uncommon requests (several CertIDs, unknown serials, nonces): two
    /// signings in flight, 100 a second (0.2% of a core with P-256, 13%
    /// with RSA-2048), 16 MiB of their own cache (see README, abuse figures).
    pub const UNCOMMON_SIGNING_BUDGET: usize = 2;
    pub const UNCOMMON_SIGNING_RATE: f64 = 100.0;
    pub const UNCOMMON_CACHE_BYTES: u64 = 16 << 20;
    pub const HEADER_READ_TIMEOUT: &str = "10s";
    /// An OCSP request is a few hundred bytes: 10 s is generous.
    pub const BODY_TIMEOUT: &str = "10s";
    /// 64 KiB/s: a 16 MiB registration gets about 4 minutes on top.
    pub const BODY_MIN_RATE: u64 = 64 << 10;
    pub const WRITE_TIMEOUT: &str = "10s";
    /// Admin request bodies: a 10,000-certificate registration fits.
    pub const ADMIN_MAX_BODY_BYTES: usize = 16 << 20;
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// Ledger records between snapshots.
    pub const SNAPSHOT_EVERY: u64 = 100_000;
    pub const CRL_STORE: &str = "file://crl";
    pub const CRL_DEBOUNCE: &str = "5m";
    pub const CRL_MAX_DELAY: &str = "15m";
    pub const CRL_VALIDITY: &str = "7d";
    pub const CRL_CACHE_MAX_AGE: &str = "2m";
    /// Fleet mode: how often a replica looks for other replicas' batches.
    pub const FLEET_POLL: &str = "1s";
    /// Fleet mode: batches between snapshots in the store.
    pub const FLEET_SNAPSHOT_EVERY: u64 = 1000;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    ocsp: RawOcsp,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    ledger: RawLedger,
    #[serde(default)]
    security: RawSecurity,
    crl: Option<RawCrl>,
    fleet: Option<RawFleet>,
    pkcs11: Option<RawPkcs11>,
    upstream: Option<RawUpstream>,
    cdn: Option<RawCdn>,
    aws_events: Option<RawAwsEvents>,
    data_dir: Option<PathBuf>,
    #[serde(default, rename = "issuer")]
    issuers: Vec<RawIssuer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawListen {
    public: Option<String>,
    admin: Option<String>,
    metrics: Option<String>,
    header_read_timeout: Option<String>,
    max_connections: Option<usize>,
    body_timeout: Option<String>,
    body_min_rate: Option<u64>,
    write_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAdmin {
    token_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    #[serde(default, rename = "operator")]
    operators: Vec<RawOperator>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOperator {
    name: Option<String>,
    token_file: Option<PathBuf>,
    client_cert_subject: Option<String>,
    client_cert_spki_sha256: Option<String>,
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCrl {
    store: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    allow_http: Option<bool>,
    debounce: Option<String>,
    max_delay: Option<String>,
    validity: Option<String>,
    cache_max_age: Option<String>,
    shards: Option<u32>,
    url_base: Option<String>,
    delta: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFleet {
    store: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    allow_http: Option<bool>,
    poll: Option<String>,
    snapshot_every: Option<u64>,
    replica: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSecurity {
    loose_secret_permissions: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawUpstream {
    poll: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCdn {
    cloudfront_distribution: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    batch: Option<String>,
    max_paths_in_progress: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAwsEvents {
    queue: Option<String>,
    wait: Option<String>,
    confirm_within: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPkcs11 {
    sessions: Option<usize>,
    max_in_flight: Option<usize>,
    retry_max: Option<String>,
    wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLedger {
    snapshot_every: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOcsp {
    window: Option<String>,
    validity: Option<String>,
    unknown_serial: Option<String>,
    presign_hashes: Option<Vec<String>>,
    signing_budget: Option<usize>,
    max_request_bytes: Option<usize>,
    max_certs_per_request: Option<usize>,
    cache_max_bytes: Option<u64>,
    path: Option<String>,
    presign_cpu_share: Option<f64>,
    startup_presign: Option<String>,
    nonce: Option<String>,
    answer_tables: Option<String>,
    uncommon_signing_budget: Option<usize>,
    uncommon_signing_rate: Option<f64>,
    uncommon_cache_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawIssuer {
    id: String,
    certificate: PathBuf,
    key: Option<PathBuf>,
    responder_certificate: Option<PathBuf>,
    responder_key: Option<PathBuf>,
    index: Option<PathBuf>,
    unknown_serial: Option<String>,
    upstream_crls: Option<Vec<String>>,
    audit_reports: Option<Vec<String>>,
    issued_certs: Option<PathBuf>,
    aws_pca_arn: Option<String>,
}

/// What to answer for a serial of a served issuer that revocd does not know
/// (CONFORMANCE 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSerialPolicy {
    /// The unsigned `unauthorized` status (the default).
    Unauthorized,
    /// A signed `unknown` status.
    Unknown,
    /// A signed `revoked` (certificateHold, 1970-01-01) with the Extended
    /// Revoked Definition extension, for private PKIs (RFC 6960 2.2).
    Revoked,
}

impl UnknownSerialPolicy {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "unauthorized" => Some(Self::Unauthorized),
            "unknown" => Some(Self::Unknown),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub ocsp: Ocsp,
    /// The legacy single token (`admin.token-file`): the operator `admin`
    /// with every scope, also in `admin_operators`.
    pub admin_token_file: Option<PathBuf>,
    /// Who may use the admin API, with which scopes.
    pub admin_operators: Vec<crate::admin::access::OperatorConfig>,
    /// TLS on the admin listener (`admin.tls-certificate`, `tls-key`,
    /// `client-ca`).
    pub admin_tls: Option<crate::http::tls::TlsFiles>,
    /// Admin request bodies above this get 413.
    pub admin_max_body_bytes: usize,
    /// Ledger records between snapshots; bounds start-up replay.
    pub snapshot_every: u64,
    /// CRL publishing, when a `[crl]` section is present.
    pub crl: Option<Crl>,
    /// Fleet mode (the ledger in object storage), when `[fleet]` is present.
    pub fleet: Option<Fleet>,
    /// Key and token files readable by group or others: refuse to start
    /// (the default) or only warn.
    pub refuse_loose_secrets: bool,
    /// Polling of upstream revocation and issuance sources (`[upstream]`).
    pub upstream: Upstream,
    /// CDN purge on revocation (`[cdn]`), when configured.
    pub cdn: Option<Cdn>,
    /// AWS Private CA events from an SQS queue (`[aws-events]`).
    pub aws_events: Option<crate::aws_events::Options>,
    /// Limits for keys in HSMs (`[pkcs11]`).
    pub pkcs11: crate::pki::pkcs11::HsmSettings,
    pub issuers: Vec<IssuerConfig>,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// A plain-HTTP listener for `/healthz`, `/readyz` and `/metrics` only
    /// (probes and Prometheus when the admin listener requires client
    /// certificates).
    pub metrics: Option<SocketAddr>,
    /// Slowloris guard: how long a client may take to send its headers.
    pub header_read_timeout: Duration,
    /// Connections open at once per listener; more are closed at once.
    pub max_connections: usize,
    /// A request body must arrive within this, plus one second per
    /// `body_min_rate` bytes received (slow-body guard, both listeners).
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up beyond `body_timeout`.
    pub body_min_rate: u64,
    /// A response write stalled this long (a client that does not read)
    /// ends the connection.
    pub write_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Ocsp {
    /// Pre-signing window; thisUpdate is its start, max-age runs to its end.
    pub window: Duration,
    /// nextUpdate - thisUpdate (BR 4.9.10: 8h..10d).
    pub validity: Duration,
    pub unknown_serial: UnknownSerialPolicy,
    /// Hash algorithms whose CertIDs are pre-signed for every serial; others
    /// are signed on demand.
    pub presign_hashes: Vec<HashAlg>,
    pub signing_budget: usize,
    pub max_request_bytes: usize,
    pub max_certs_per_request: usize,
    pub cache_max_bytes: u64,
    /// URL path prefix of OCSP GET requests ("/" or e.g. "/ocsp").
    pub path: String,
    /// Share of the machine's cores the background pre-signer may keep busy
    /// (0 turns pre-signing off: every answer is signed on its first miss).
    pub presign_cpu_share: f64,
    /// At start, how long the current window is pre-signed with every core
    /// before `/readyz` turns 200; the rest goes on in the background.
    pub startup_presign: Duration,
    /// RFC 9654 nonces: ignored (pre-produced answers, RFC 9919 3.2.1), or
    /// echoed in a freshly signed answer within the uncommon limits.
    pub nonce: NonceMode,
    /// Where pre-signed answers are kept: in memory, or in one file per
    /// window under `<data-dir>/answers` (index in memory, answers read
    /// from the file; a restart within a window serves them again).
    pub answer_tables: AnswerTables,
    /// Requests no ordinary client needs (several CertIDs, serials the
    /// state does not know, a nonce to echo) are signed under their own
    /// budget (signings in flight) and rate (signings per second, as a
    /// token bucket of one second's burst), and cached apart, within
    /// `uncommon_cache_bytes`, so they can never evict pre-signed answers.
    pub uncommon_signing_budget: usize,
    pub uncommon_signing_rate: f64,
    pub uncommon_cache_bytes: u64,
}

/// `ocsp.answer-tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerTables {
    Memory,
    Files,
}

/// `ocsp.nonce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceMode {
    Ignore,
    Echo,
}

#[derive(Debug, Clone)]
pub struct Crl {
    pub store: crate::publish::StoreConfig,
    /// Publish this long after the last change (DESIGN: CRL batching).
    pub debounce: Duration,
    /// ... but no later than this after the first unpublished change.
    pub max_delay: Duration,
    /// nextUpdate - thisUpdate; unchanged CRLs are re-issued at half of it.
    /// BR 7.2: at most 10 days.
    pub validity: Duration,
    /// Cache-Control max-age of CRLs, well below the publish interval.
    pub cache_max_age: Duration,
    /// Shards per issuer, chosen by serial (1: no sharding).
    pub shards: u32,
    /// Base URL the CRLs are served from (the CDP in certificates); shard k
    /// of issuer id carries IDP `{url-base}/{id}/{k}.crl` (CONFORMANCE 26).
    pub url_base: Option<String>,
    /// Also publish delta CRLs (`{id}-delta.crl`, RFC 5280 5.2.4).
    pub delta: bool,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    /// Where the shared ledger lives (`s3://bucket/prefix`, `gs://`, `az://`).
    /// Must honour conditional writes.
    pub store: crate::publish::StoreConfig,
    /// How often to look for other replicas' batches (DESIGN: within 1 s).
    pub poll: Duration,
    /// Batches between snapshots in the store.
    pub snapshot_every: u64,
    /// This replica's name in batches and logs (default: the host name).
    pub replica: String,
}

#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub id: String,
    pub certificate: PathBuf,
    pub signer: SignerConfig,
    /// The CA's own key, which signs CRLs (and OCSP when no delegated
    /// responder is configured).
    pub ca_key: Option<KeyRef>,
    pub index: Option<PathBuf>,
    pub unknown_serial: UnknownSerialPolicy,
    /// CRLs this issuer's CA publishes elsewhere, polled as a revocation
    /// source (`upstream-crls`).
    pub upstream_crls: Vec<String>,
    /// AWS Private CA audit reports (an object, or a prefix ending in `/`
    /// whose newest object is read), polled for issued serials.
    pub audit_reports: Vec<String>,
    /// A directory of issued certificates (PEM or DER), watched.
    pub issued_certs: Option<PathBuf>,
    /// The AWS Private CA this issuer is (`aws-pca-arn`): its events from
    /// `[aws-events]` apply here.
    pub aws_pca_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub enum SignerConfig {
    /// The CA signs its own responses with this key.
    Issuer { key: KeyRef },
    /// A delegated OCSP responder certificate and key.
    Delegated { certificate: PathBuf, key: KeyRef },
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// How often every upstream source is polled (conditional GETs).
    pub poll: Duration,
    pub source: crate::publish::SourceOptions,
    /// A larger CRL or report is refused.
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Cdn {
    /// The CloudFront distribution whose cached OCSP answers are
    /// invalidated on every revocation and release.
    pub distribution: String,
    /// The CloudFront API, when not the AWS SDK's (which follows
    /// `AWS_ENDPOINT_URL_CLOUDFRONT` and `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Changes are gathered this long into one invalidation.
    pub batch: Duration,
    /// Paths in invalidations not yet completed, at most (CloudFront: 3,000).
    pub max_paths_in_progress: usize,
}

/// Where a private key is: a PKCS#8 file, or an HSM object named by a
/// PKCS#11 URI (RFC 7512).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    File(PathBuf),
    Pkcs11(crate::pki::pkcs11::Pkcs11Uri),
}

impl KeyRef {
    /// The file that must be private: the key file, or the HSM's PIN file.
    pub fn secret_file(&self) -> Option<&Path> {
        match self {
            KeyRef::File(p) => Some(p),
            KeyRef::Pkcs11(u) => match &u.pin_source {
                Some(crate::pki::pkcs11::PinSource::File(p)) => Some(p),
                _ => None,
            },
        }
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::File(p) => write!(f, "{}", p.display()),
            KeyRef::Pkcs11(u) => f.write_str(&u.describe()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}", format_errors(.path, .errors))]
pub struct ConfigError {
    pub path: PathBuf,
    pub errors: Vec<String>,
}

fn format_errors(path: &Path, errors: &[String]) -> String {
    let mut s = format!(
        "{} has {} problem{}:",
        path.display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        s.push_str("\n  - ");
        s.push_str(e);
    }
    s
}

/// Parses `"500ms"`, `"90s"`, `"60m"`, `"8h"`, `"7d"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    if unit.trim() == "ms" {
        return Some(Duration::from_millis(n));
    }
    let mult = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let fail = |e: String| ConfigError {
            path: path.to_path_buf(),
            errors: vec![e],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            errors: vec![e.to_string().trim().replace('\n', " ")],
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut errors = Vec::new();
        let config = validate(raw, path, &base, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                path: path.to_path_buf(),
                errors,
            })
        }
    }
}

fn validate(raw: RawConfig, path: &Path, base: &Path, errors: &mut Vec<String>) -> Config {
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    // `file://relative/path` is relative to the config, like every path.
    let resolve_url = |u: &str| match u.strip_prefix("file://") {
        Some(rest) if !rest.starts_with('/') => format!("file://{}", base.join(rest).display()),
        _ => u.to_string(),
    };
    let addr = |field: &str, value: Option<String>, default: &str, errors: &mut Vec<String>| {
        let v = value.unwrap_or_else(|| default.to_string());
        v.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(format!(
                "{field}: {v:?} is not an address like 127.0.0.1:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let duration = |field: &str, value: Option<String>, default: &str, errors: &mut Vec<String>| {
        let v = value.unwrap_or_else(|| default.to_string());
        match parse_duration(&v) {
            Some(d) if !d.is_zero() => d,
            _ => {
                errors.push(format!(
                    "{field}: {v:?} is not a duration like \"90s\", \"60m\", \"8h\" or \"7d\""
                ));
                // Fall back to the default so one mistake reports once.
                parse_duration(default).unwrap_or(Duration::from_secs(3600))
            }
        }
    };

    let listen = Listen {
        public: addr(
            "listen.public",
            raw.listen.public,
            defaults::PUBLIC_LISTEN,
            errors,
        ),
        admin: addr(
            "listen.admin",
            raw.listen.admin,
            defaults::ADMIN_LISTEN,
            errors,
        ),
        metrics: raw
            .listen
            .metrics
            .map(|m| addr("listen.metrics", Some(m), "", errors)),
        header_read_timeout: duration(
            "listen.header-read-timeout",
            raw.listen.header_read_timeout,
            defaults::HEADER_READ_TIMEOUT,
            errors,
        ),
        max_connections: match raw.listen.max_connections {
            Some(0) => {
                errors.push("listen.max-connections: must be at least 1".to_string());
                defaults::MAX_CONNECTIONS
            }
            Some(n) => n,
            None => defaults::MAX_CONNECTIONS,
        },
        body_timeout: duration(
            "listen.body-timeout",
            raw.listen.body_timeout,
            defaults::BODY_TIMEOUT,
            errors,
        ),
        body_min_rate: match raw.listen.body_min_rate {
            Some(0) => {
                errors.push("listen.body-min-rate: must be at least 1 byte per second".to_string());
                defaults::BODY_MIN_RATE
            }
            Some(n) => n,
            None => defaults::BODY_MIN_RATE,
        },
        write_timeout: duration(
            "listen.write-timeout",
            raw.listen.write_timeout,
            defaults::WRITE_TIMEOUT,
            errors,
        ),
    };

    let o = raw.ocsp;
    let window = duration("ocsp.window", o.window, defaults::WINDOW, errors);
    let validity = duration("ocsp.validity", o.validity, defaults::VALIDITY, errors);
    if window < Duration::from_secs(60) {
        errors.push("ocsp.window: must be at least 1m".to_string());
    }
    if validity <= window {
        errors.push(format!(
            "ocsp.validity ({}s) must be longer than ocsp.window ({}s): max-age runs to the window end and must stay before nextUpdate",
            validity.as_secs(),
            window.as_secs()
        ));
    }
    if validity > Duration::from_secs(10 * 86_400) {
        errors.push("ocsp.validity: at most 10d (BR 4.9.10)".to_string());
    }
    let policy = |field: &str, v: Option<String>, default, errors: &mut Vec<String>| match v {
        None => default,
        Some(s) => UnknownSerialPolicy::parse(&s).unwrap_or_else(|| {
            errors.push(format!(
                "{field}: {s:?} is not one of \"unauthorized\", \"unknown\", \"revoked\""
            ));
            default
        }),
    };
    let unknown_serial = policy(
        "ocsp.unknown-serial",
        o.unknown_serial,
        UnknownSerialPolicy::Unauthorized,
        errors,
    );
    let presign_hashes = match o.presign_hashes {
        None => vec![HashAlg::Sha1, HashAlg::Sha256],
        Some(names) => names
            .iter()
            .filter_map(|n| {
                HashAlg::from_name(n).or_else(|| {
                    errors.push(format!(
                        "ocsp.presign-hashes: {n:?} is not one of sha1, sha256, sha384, sha512"
                    ));
                    None
                })
            })
            .collect(),
    };
    let path_prefix = o.path.unwrap_or_else(|| "/".to_string());
    if !path_prefix.starts_with('/') {
        errors.push(format!("ocsp.path: {path_prefix:?} must start with '/'"));
    }
    let presign_cpu_share = o.presign_cpu_share.unwrap_or(defaults::PRESIGN_CPU_SHARE);
    if !(0.0..=1.0).contains(&presign_cpu_share) {
        errors.push(format!(
            "ocsp.presign-cpu-share: {presign_cpu_share} is not between 0 (pre-signing off) and 1 (every core)"
        ));
    }
    let startup_presign = duration(
        "ocsp.startup-presign",
        o.startup_presign,
        defaults::STARTUP_PRESIGN,
        errors,
    );
    let positive = |field: &str, v: Option<usize>, default: usize, errors: &mut Vec<String>| {
        let v = v.unwrap_or(default);
        if v == 0 {
            errors.push(format!("{field}: must be at least 1"));
        }
        v
    };
    let ocsp = Ocsp {
        window,
        validity,
        unknown_serial,
        presign_hashes,
        signing_budget: positive(
            "ocsp.signing-budget",
            o.signing_budget,
            defaults::SIGNING_BUDGET,
            errors,
        ),
        max_request_bytes: positive(
            "ocsp.max-request-bytes",
            o.max_request_bytes,
            defaults::MAX_REQUEST_BYTES,
            errors,
        ),
        max_certs_per_request: positive(
            "ocsp.max-certs-per-request",
            o.max_certs_per_request,
            defaults::MAX_CERTS_PER_REQUEST,
            errors,
        ),
        cache_max_bytes: o.cache_max_bytes.unwrap_or(defaults::CACHE_MAX_BYTES),
        path: path_prefix,
        presign_cpu_share,
        startup_presign,
        nonce: match o.nonce.as_deref() {
            None | Some("ignore") => NonceMode::Ignore,
            Some("echo") => NonceMode::Echo,
            Some(other) => {
                errors.push(format!(
                    "ocsp.nonce: {other:?} is not \"ignore\" or \"echo\""
                ));
                NonceMode::Ignore
            }
        },
        answer_tables: match o.answer_tables.as_deref() {
            None | Some("memory") => AnswerTables::Memory,
            Some("files") => AnswerTables::Files,
            Some(other) => {
                errors.push(format!(
                    "ocsp.answer-tables: {other:?} is not \"memory\" or \"files\""
                ));
                AnswerTables::Memory
            }
        },
        uncommon_signing_budget: positive(
            "ocsp.uncommon-signing-budget",
            o.uncommon_signing_budget,
            defaults::UNCOMMON_SIGNING_BUDGET,
            errors,
        ),
        uncommon_signing_rate: match o.uncommon_signing_rate {
            Some(r) if !(r > 0.0 && r.is_finite()) => {
                errors.push(format!(
                    "ocsp.uncommon-signing-rate: {r} is not a positive number of signings per second"
                ));
                defaults::UNCOMMON_SIGNING_RATE
            }
            Some(r) => r,
            None => defaults::UNCOMMON_SIGNING_RATE,
        },
        uncommon_cache_bytes: o
            .uncommon_cache_bytes
            .unwrap_or(defaults::UNCOMMON_CACHE_BYTES),
    };

    if raw.issuers.is_empty() {
        errors.push("no [[issuer]] configured".to_string());
    }
    let mut issuers = Vec::new();
    for (i, r) in raw.issuers.into_iter().enumerate() {
        let at = format!("issuer[{i}] ({:?})", r.id);
        if r.id.is_empty()
            || !r
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(format!(
                "{at}: id must be non-empty letters, digits, '-' or '_' (it names URLs and files)"
            ));
        }
        if issuers.iter().any(|x: &IssuerConfig| x.id == r.id) {
            errors.push(format!("{at}: id is used twice"));
        }
        let key_ref = |field: &str, p: &Path, errors: &mut Vec<String>| {
            let text = p.to_string_lossy();
            if crate::pki::pkcs11::Pkcs11Uri::is_uri(&text) {
                match crate::pki::pkcs11::Pkcs11Uri::parse(&text, base) {
                    Ok(u) => KeyRef::Pkcs11(u),
                    Err(e) => {
                        errors.push(format!("{at}.{field}: {e}"));
                        KeyRef::File(PathBuf::new())
                    }
                }
            } else {
                KeyRef::File(resolve(p))
            }
        };
        let ca_key = r.key.as_deref().map(|k| key_ref("key", k, errors));
        let signer = match (r.key, r.responder_certificate, r.responder_key) {
            (Some(_), None, None) => SignerConfig::Issuer {
                key: ca_key.clone().unwrap_or(KeyRef::File(PathBuf::new())),
            },
            (_, Some(c), Some(k)) => SignerConfig::Delegated {
                certificate: resolve(&c),
                key: key_ref("responder-key", &k, errors),
            },
            _ => {
                errors.push(format!(
                    "{at}: give `key` (the issuer signs), or both `responder-certificate` and `responder-key` (a delegated responder), or all three"
                ));
                SignerConfig::Issuer {
                    key: KeyRef::File(PathBuf::new()),
                }
            }
        };
        issuers.push(IssuerConfig {
            unknown_serial: policy(
                &format!("{at}.unknown-serial"),
                r.unknown_serial,
                unknown_serial,
                errors,
            ),
            id: r.id,
            certificate: resolve(&r.certificate),
            signer,
            ca_key,
            index: r.index.as_deref().map(resolve),
            upstream_crls: r
                .upstream_crls
                .unwrap_or_default()
                .into_iter()
                .map(|u| resolve_url(&u))
                .collect(),
            audit_reports: r
                .audit_reports
                .unwrap_or_default()
                .into_iter()
                .map(|u| resolve_url(&u))
                .collect(),
            issued_certs: r.issued_certs.as_deref().map(resolve),
            aws_pca_arn: r.aws_pca_arn.and_then(|arn| {
                match crate::aws_events::event::ca_arn(arn.trim()) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        errors.push(format!("{at}.aws-pca-arn: {e}"));
                        None
                    }
                }
            }),
        });
    }
    for (i, a) in issuers.iter().enumerate() {
        if let Some(arn) = &a.aws_pca_arn {
            if issuers[..i]
                .iter()
                .any(|b| b.aws_pca_arn.as_ref() == Some(arn))
            {
                errors.push(format!(
                    "issuer {:?}: aws-pca-arn {arn} names the same CA as another issuer",
                    a.id
                ));
            }
        }
    }

    let crl = raw.crl.map(|c| {
        let validity = duration("crl.validity", c.validity, defaults::CRL_VALIDITY, errors);
        if validity > Duration::from_secs(10 * 86_400) {
            errors.push("crl.validity: at most 10d (BR 7.2.2)".to_string());
        }
        let cache_max_age = duration(
            "crl.cache-max-age",
            c.cache_max_age,
            defaults::CRL_CACHE_MAX_AGE,
            errors,
        );
        let debounce = duration("crl.debounce", c.debounce, defaults::CRL_DEBOUNCE, errors);
        let max_delay = duration(
            "crl.max-delay",
            c.max_delay,
            defaults::CRL_MAX_DELAY,
            errors,
        );
        if max_delay < debounce {
            errors.push("crl.max-delay must be at least crl.debounce".to_string());
        }
        let url = c.store.unwrap_or_else(|| defaults::CRL_STORE.to_string());
        if !["s3://", "gs://", "az://", "file://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            errors.push(format!(
                "crl.store: {url:?} must start with s3://, gs://, az:// or file://"
            ));
        }
        let shards = c.shards.unwrap_or(1);
        if !(1..=1024).contains(&shards) {
            errors.push("crl.shards: 1 to 1024".to_string());
        }
        if shards > 1 && c.url_base.is_none() {
            errors.push("crl.url-base is required with crl.shards > 1: each shard's Issuing Distribution Point must match the CDP URL in its certificates".to_string());
        }
        let delta = c.delta.unwrap_or(false);
        if delta && shards > 1 {
            errors.push("crl.delta with crl.shards > 1 is not supported".to_string());
        }
        Crl {
            shards,
            url_base: c.url_base,
            delta,
            store: crate::publish::StoreConfig {
                url,
                path_style: c.path_style.unwrap_or(c.endpoint.is_some()),
                endpoint: c.endpoint,
                region: c.region,
                allow_http: c.allow_http.unwrap_or(false),
                cache_control: format!("public, max-age={}", cache_max_age.as_secs()),
                base_dir: base.to_path_buf(),
            },
            debounce,
            max_delay,
            validity,
            cache_max_age,
        }
    });
    if crl.is_some() {
        for i in &issuers {
            if i.ca_key.is_none() {
                errors.push(format!(
                    "issuer {:?}: CRLs are enabled ([crl]) but the issuer has no `key` to sign them",
                    i.id
                ));
            }
        }
    }

    let fleet = raw.fleet.map(|f| {
        let url = f.store.unwrap_or_default();
        if !["s3://", "gs://", "az://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            errors.push(format!(
                "fleet.store: {url:?} must be s3://, gs:// or az:// (the shared ledger's location)"
            ));
        }
        let poll = duration("fleet.poll", f.poll, defaults::FLEET_POLL, errors);
        if poll < Duration::from_millis(100) || poll > Duration::from_secs(60) {
            errors.push("fleet.poll: 100ms to 60s".to_string());
        }
        let snapshot_every = f.snapshot_every.unwrap_or(defaults::FLEET_SNAPSHOT_EVERY);
        if snapshot_every == 0 {
            errors.push("fleet.snapshot-every: must be at least 1".to_string());
        }
        let replica = f.replica.unwrap_or_else(default_replica_name);
        if replica.is_empty() || replica.len() > 255 {
            errors.push("fleet.replica: 1 to 255 bytes".to_string());
        }
        Fleet {
            store: crate::publish::StoreConfig {
                url,
                path_style: f.path_style.unwrap_or(f.endpoint.is_some()),
                endpoint: f.endpoint,
                region: f.region,
                allow_http: f.allow_http.unwrap_or(false),
                cache_control: "no-store".to_string(),
                base_dir: base.to_path_buf(),
            },
            poll,
            snapshot_every,
            replica,
        }
    });

    let refuse_loose_secrets = match raw.security.loose_secret_permissions.as_deref() {
        None | Some("refuse") => true,
        Some("warn") => false,
        Some(other) => {
            errors.push(format!(
                "security.loose-secret-permissions: {other:?} is not \"refuse\" or \"warn\""
            ));
            true
        }
    };

    let pkcs11 = {
        let p = raw.pkcs11.unwrap_or_default();
        let d = crate::pki::pkcs11::HsmSettings::default();
        let sessions = p.sessions.unwrap_or(d.sessions);
        if !(1..=256).contains(&sessions) {
            errors.push("pkcs11.sessions: 1 to 256".to_string());
        }
        // One signing per session at a time: the pool sets the default.
        let max_in_flight = p.max_in_flight.unwrap_or(sessions);
        if !(1..=1024).contains(&max_in_flight) {
            errors.push("pkcs11.max-in-flight: 1 to 1024".to_string());
        }
        crate::pki::pkcs11::HsmSettings {
            sessions: sessions.clamp(1, 256),
            max_in_flight: max_in_flight.clamp(1, 1024),
            retry_max: duration("pkcs11.retry-max", p.retry_max, "30s", errors),
            wait: duration("pkcs11.wait", p.wait, "10s", errors),
        }
    };

    let upstream = {
        let u = raw.upstream.unwrap_or_default();
        let poll = duration("upstream.poll", u.poll, "30s", errors);
        if poll < Duration::from_secs(1) {
            errors.push("upstream.poll: at least 1s".to_string());
        }
        Upstream {
            poll: poll.max(Duration::from_secs(1)),
            source: crate::publish::SourceOptions {
                endpoint: u.endpoint,
                region: u.region,
                allow_http: u.allow_http.unwrap_or(false),
            },
            max_bytes: u.max_bytes.unwrap_or(512 << 20),
        }
    };
    for i in &issuers {
        for url in i.upstream_crls.iter().chain(&i.audit_reports) {
            if let Err(e) = crate::publish::Source::open(url, &upstream.source) {
                errors.push(format!("issuer {:?}: {e}", i.id));
            }
        }
    }
    let cdn = raw.cdn.and_then(|c| {
        let Some(distribution) = c.cloudfront_distribution else {
            errors.push("cdn.cloudfront-distribution is required in [cdn]".to_string());
            return None;
        };
        if distribution.is_empty() || !distribution.chars().all(|c| c.is_ascii_alphanumeric()) {
            errors.push(format!(
                "cdn.cloudfront-distribution: {distribution:?} is not a distribution id like E2QWRUHEXAMPLE"
            ));
        }
        let max_paths_in_progress = c.max_paths_in_progress.unwrap_or(3000);
        if !(1..=3000).contains(&max_paths_in_progress) {
            errors.push("cdn.max-paths-in-progress: 1 to 3000 (CloudFront's limit)".to_string());
        }
        if c.region.is_some() {
            tracing::warn!("cdn.region is ignored: CloudFront's API is global (us-east-1)");
        }
        Some(Cdn {
            distribution,
            endpoint: c.endpoint.map(|e| e.trim_end_matches('/').to_string()),
            batch: duration("cdn.batch", c.batch, "1s", errors),
            max_paths_in_progress: max_paths_in_progress.clamp(1, 3000),
        })
    });

    let aws_events = raw.aws_events.and_then(|a| {
        let wait = duration("aws-events.wait", a.wait, "20s", errors);
        if !(Duration::from_secs(1)..=Duration::from_secs(20)).contains(&wait) {
            errors.push("aws-events.wait: 1s to 20s (SQS long polling)".to_string());
        }
        let confirm_within = duration(
            "aws-events.confirm-within",
            a.confirm_within,
            "45m",
            errors,
        );
        if !issuers.iter().any(|i| i.aws_pca_arn.is_some()) {
            errors.push(
                "[aws-events]: no [[issuer]] has aws-pca-arn, so every event would be for a CA revocd does not serve".to_string(),
            );
        }
        let Some(queue) = a.queue else {
            errors.push("aws-events.queue is required in [aws-events]: the SQS queue URL".to_string());
            return None;
        };
        if !(queue.starts_with("https://") || queue.starts_with("http://")) {
            errors.push(format!(
                "aws-events.queue: {queue:?} is not a queue URL like https://sqs.us-east-1.amazonaws.com/111122223333/revocd-events"
            ));
        }
        Some(crate::aws_events::Options {
            queue,
            wait: wait.clamp(Duration::from_secs(1), Duration::from_secs(20)),
            confirm_within,
        })
    });

    let (admin_operators, admin_tls) = admin_access(&raw.admin, &resolve, errors);

    Config {
        path: path.to_path_buf(),
        refuse_loose_secrets,
        upstream,
        cdn,
        aws_events,
        admin_operators,
        admin_tls,
        pkcs11,
        data_dir: resolve(raw.data_dir.as_deref().unwrap_or(Path::new("."))),
        listen,
        ocsp,
        admin_token_file: raw.admin.token_file.as_deref().map(resolve),
        admin_max_body_bytes: match raw.admin.max_body_bytes {
            Some(n) if !(1024..=1 << 30).contains(&n) => {
                errors.push("admin.max-body-bytes: 1024 to 1073741824".to_string());
                defaults::ADMIN_MAX_BODY_BYTES
            }
            Some(n) => n,
            None => defaults::ADMIN_MAX_BODY_BYTES,
        },
        snapshot_every: match raw.ledger.snapshot_every {
            Some(0) => {
                errors.push("ledger.snapshot-every: must be at least 1".to_string());
                defaults::SNAPSHOT_EVERY
            }
            Some(n) => n,
            None => defaults::SNAPSHOT_EVERY,
        },
        crl,
        fleet,
        issuers,
    }
}

/// `[admin]`'s access settings: the operators (the legacy `token-file` as
/// `admin` with every scope first) and TLS.
fn admin_access(
    raw: &RawAdmin,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> (
    Vec<crate::admin::access::OperatorConfig>,
    Option<crate::http::tls::TlsFiles>,
) {
    use crate::admin::access::{OperatorConfig, Scope};
    let tls = match (&raw.tls_certificate, &raw.tls_key) {
        (Some(c), Some(k)) => Some(crate::http::tls::TlsFiles {
            certificate: resolve(c),
            key: resolve(k),
            client_ca: raw.client_ca.as_deref().map(resolve),
        }),
        (None, None) => {
            if raw.client_ca.is_some() {
                errors.push(
                    "admin.client-ca needs admin.tls-certificate and admin.tls-key (client certificates come with TLS)".to_string(),
                );
            }
            None
        }
        _ => {
            errors.push("admin.tls-certificate and admin.tls-key go together".to_string());
            None
        }
    };
    let mut operators: Vec<OperatorConfig> = Vec::new();
    if let Some(t) = &raw.token_file {
        operators.push(OperatorConfig {
            name: "admin".to_string(),
            token_file: Some(resolve(t)),
            client_cert_subject: None,
            client_cert_spki_sha256: None,
            scopes: Scope::ALL.to_vec(),
        });
    }
    for (i, o) in raw.operators.iter().enumerate() {
        let name = o.name.clone().unwrap_or_default();
        let at = format!("admin.operator[{i}] ({name:?})");
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
        {
            errors.push(format!(
                "{at}: name must be 1 to 64 letters, digits, '.', '_', '@' or '-' (it is recorded with every change)"
            ));
        }
        if operators.iter().any(|x| x.name == name) {
            errors.push(format!(
                "{at}: the name is used twice (admin.token-file is the operator \"admin\")"
            ));
        }
        let spki = o.client_cert_spki_sha256.as_deref().and_then(|h| {
            let bytes = hex::decode(h.trim().replace(':', "")).ok();
            let pin = bytes.and_then(|b| <[u8; 32]>::try_from(b).ok());
            if pin.is_none() {
                errors.push(format!(
                    "{at}.client-cert-spki-sha256: {h:?} is not 64 hex digits (openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum)"
                ));
            }
            pin
        });
        let by_cert = o.client_cert_subject.is_some() || o.client_cert_spki_sha256.is_some();
        if o.token_file.is_none() && !by_cert {
            errors.push(format!(
                "{at}: give token-file, or client-cert-subject / client-cert-spki-sha256"
            ));
        }
        if by_cert && tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
            errors.push(format!(
                "{at}: client certificates need admin.client-ca (and TLS) to be verified"
            ));
        }
        let mut scopes = Vec::new();
        match &o.scopes {
            None => errors.push(format!(
                "{at}: scopes is required (from read, register, revoke, release, publish)"
            )),
            Some(list) => {
                for name in list {
                    match Scope::from_name(name) {
                        Some(s) if !scopes.contains(&s) => scopes.push(s),
                        Some(_) => {}
                        None => errors.push(format!(
                            "{at}.scopes: {name:?} is not one of read, register, revoke, release, publish"
                        )),
                    }
                }
                if list.is_empty() {
                    errors.push(format!("{at}.scopes: give at least one"));
                }
            }
        }
        operators.push(OperatorConfig {
            name,
            token_file: o.token_file.as_deref().map(resolve),
            client_cert_subject: o.client_cert_subject.clone(),
            client_cert_spki_sha256: spki,
            scopes,
        });
    }
    (operators, tls)
}

/// The host name, else `revocd-<pid>`.
fn default_replica_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("revocd-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[issuer]]
id = "demo"
certificate = "ca.pem"
key = "ca.key"
"#;

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = Config::parse(Path::new("/etc/revocd/revocd.toml"), MINIMAL).expect("parse");
        assert_eq!(c.ocsp.window, Duration::from_secs(3600));
        assert_eq!(c.ocsp.validity, Duration::from_secs(8 * 3600));
        assert_eq!(c.ocsp.unknown_serial, UnknownSerialPolicy::Unauthorized);
        assert_eq!(c.issuers[0].certificate, Path::new("/etc/revocd/ca.pem"));
        assert_eq!(c.listen.public.port(), 8080);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let text = r#"
[listen]
public = "nowhere"
[ocsp]
window = "soon"
unknown-serial = "maybe"
presign-hashes = ["md5"]
[[issuer]]
id = "a b"
certificate = "ca.pem"
"#;
        let err = Config::parse(Path::new("x.toml"), text).expect_err("invalid");
        assert_eq!(err.errors.len(), 6, "{err}");
        let shown = err.to_string();
        assert!(shown.contains("listen.public"));
        assert!(shown.contains("ocsp.window"));
        assert!(shown.contains("ocsp.unknown-serial"));
        assert!(shown.contains("md5"));
        assert!(shown.contains("id must be"));
        assert!(shown.contains("give `key`"));
    }

    #[test]
    fn unknown_keys_fail_closed() {
        let err =
            Config::parse(Path::new("x.toml"), &format!("{MINIMAL}\nwindo = 3")).expect_err("typo");
        assert!(err.to_string().contains("windo"), "{err}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("60m"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
