//! The command line (docs/design.md: contract with users). Parsing only; each command calls into
//! its module.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "revocd", version, about = "OCSP responder and CRL publisher")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "REVOCD_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    /// Check every segment and snapshot (fleet mode: every batch and
    /// snapshot in the store); print the sequence ranges and the first
    /// problem. Exit 0 when start-up would accept it, 1 otherwise.
    Verify {
        #[arg(long)]
        config: PathBuf,
    },
    /// Write the ledger as JSON lines: the state of the snapshot start-up
    /// uses (`"source":"snapshot"`), then every change after it in order
    /// (`"source":"log"`, the audit trail; in fleet mode from the batches in
    /// the store). Exit 1 if it stops at a problem.
    Dump {
        #[arg(long)]
        config: PathBuf,
    },
    /// Cut every change after SEQ, the one explicit way out of a corrupt
    /// ledger. The cut files and bytes are kept in `ledger/cut-<time>/`, and
    /// every acknowledged change that is lost is printed as a JSON line.
    Repair {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_name = "SEQ")]
        truncate_after: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a throw-away demo PKI and a working config into DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Public listener address, also used in the certificates' OCSP and CRL URLs.
        #[arg(long, default_value = crate::config::defaults::PUBLIC_LISTEN)]
        listen: String,
        #[arg(long, default_value = crate::config::defaults::ADMIN_LISTEN)]
        admin_listen: String,
        /// Overwrite an existing demo in DIR.
        #[arg(long)]
        force: bool,
        /// Key algorithm of every key in the demo PKI (ML-DSA: RFC 9881).
        #[arg(long, value_enum, default_value_t)]
        algorithm: crate::tools::demo::Algorithm,
    },
    /// Run `init` into ./revocd-demo if it is missing, then `serve` it.
    Demo {
        #[arg(long, default_value = "revocd-demo")]
        dir: PathBuf,
        /// Public listener address for a new demo (also in its
        /// certificates' OCSP and CRL URLs).
        #[arg(long, default_value = crate::config::defaults::PUBLIC_LISTEN)]
        listen: String,
        /// Admin listener address for a new demo.
        #[arg(long, default_value = crate::config::defaults::ADMIN_LISTEN)]
        admin_listen: String,
        /// Key algorithm of a new demo's PKI (ML-DSA: RFC 9881).
        #[arg(long, value_enum, default_value_t)]
        algorithm: crate::tools::demo::Algorithm,
    },
    /// Run the daemon.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Override listen.public.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override listen.admin.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
    /// Check, export or repair the ledger (the daemon must not be running
    /// for `repair`).
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// Load and validate the configuration, certificates and keys; bind nothing.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Revoke a certificate, or every serial of a file, through the admin
    /// API (reason removeFromCRL releases a hold).
    Revoke {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(
            long,
            required_unless_present = "serials_file",
            conflicts_with = "serials_file"
        )]
        serial: Option<String>,
        /// A file of hex serials, one a line (`-`: standard input), sent in
        /// batches; safe to run again (already revoked: unchanged).
        #[arg(long)]
        serials_file: Option<PathBuf>,
        /// Revocations per request with --serials-file (at most 10000).
        #[arg(long, default_value_t = BULK_BATCH, value_parser = parse_batch)]
        batch: usize,
        /// Requests in flight at once with --serials-file.
        #[arg(long, default_value_t = BULK_CONCURRENCY, value_parser = parse_concurrency)]
        concurrency: usize,
        /// RFC 5280 reason name, e.g. keyCompromise, superseded, certificateHold.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// RFC 3339 revocation time; default now.
        #[arg(long)]
        revoked_at: Option<String>,
        /// RFC 3339 invalidity date (when the key was compromised).
        #[arg(long)]
        invalidity_date: Option<String>,
    },
    /// Show one serial's status through the admin API.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        serial: String,
    },
    /// Register issued certificates (PEM/DER files, or a serial and notAfter).
    Register {
        #[command(flatten)]
        admin: AdminArgs,
        /// Certificate files (PEM, may hold several, or DER).
        #[arg(long = "cert")]
        certs: Vec<PathBuf>,
        #[arg(long, requires = "not_after", conflicts_with = "certs")]
        serial: Option<String>,
        /// RFC 3339 notAfter of the certificate.
        #[arg(long)]
        not_after: Option<String>,
    },
    /// Send an OpenSSL index.txt to the admin API (registrations and revocations).
    ImportIndex {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        index: PathBuf,
    },
    /// Keep a local CRL file (or a bundle for several CAs) fresh for servers
    /// that check client certificates: polls each source with If-None-Match,
    /// installs only CRLs that verify, replaces the file atomically, runs
    /// --on-change.
    CrlSync {
        /// s3://bucket/key, gs://, az://, file:///path or http(s)://host/path
        /// (repeat for a bundle of several CAs' CRLs).
        #[arg(long = "source", required_unless_present = "shard_sources")]
        sources: Vec<String>,
        /// A source that is one shard of a partitioned CRL: its Issuing
        /// Distribution Point is expected (repeatable; a plain --source with
        /// an IDP is refused, since a server checking full CRLs would reject
        /// every client with "different CRL scope").
        #[arg(long = "shard-source")]
        shard_sources: Vec<String>,
        /// Largest CRL accepted from a source, in bytes; a larger one is
        /// refused without being read whole.
        #[arg(long, default_value_t = crate::tools::sync::DEFAULT_MAX_BYTES)]
        max_bytes: u64,
        /// The file to keep fresh (nginx ssl_crl, HAProxy crl-file).
        #[arg(long)]
        out: PathBuf,
        /// CA certificate(s) the CRLs must verify against (PEM or DER; repeat
        /// or put several in one PEM file).
        #[arg(long = "ca", required = true)]
        cas: Vec<PathBuf>,
        /// Time between polls of each source.
        #[arg(long, default_value = "30s", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Shell command run after the file was replaced, e.g. "nginx -s reload".
        #[arg(long)]
        on_change: Option<String>,
        #[arg(long, value_enum, default_value_t = crate::tools::sync::Format::Pem)]
        format: crate::tools::sync::Format,
        /// Poll every source once, install, exit (for cron); exit 1 if any
        /// source failed or was refused.
        #[arg(long)]
        once: bool,
        /// S3-compatible endpoint for s3:// sources (MinIO, Garage, moto).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// Allow plain HTTP to the S3 endpoint.
        #[arg(long)]
        allow_http: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// HAProxy's stats socket (`stats socket PATH level admin`): each new
        /// CRL is installed with `set ssl crl-file` + `commit ssl crl-file`,
        /// without a reload (besides, or instead of, --on-change).
        #[arg(long)]
        haproxy_socket: Option<PathBuf>,
        /// The `crl-file` path as HAProxy's configuration names it (default:
        /// --out).
        #[arg(long, requires = "haproxy_socket")]
        haproxy_crl_file: Option<String>,
    },
    /// Ask an OCSP responder about one certificate, verify and print the answer.
    Query {
        /// The responder URL, e.g. http://127.0.0.1:8080/
        #[arg(long)]
        url: String,
        /// The issuing CA certificate (PEM or DER).
        #[arg(long)]
        issuer: PathBuf,
        /// The certificate to ask about.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        cert: Option<PathBuf>,
        /// Or its serial number in hex.
        #[arg(long)]
        serial: Option<String>,
        /// Use SHA-256 CertID hashes instead of SHA-1.
        #[arg(long)]
        sha256: bool,
        /// Send the request with GET instead of POST.
        #[arg(long)]
        get: bool,
    },
}

/// Where the admin API is and which issuer to address.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The revocd configuration (admin address and token file come from it).
    #[arg(long)]
    pub config: PathBuf,
    /// Overrides the admin address from the config, e.g. http://127.0.0.1:9090
    /// (https:// when the admin listener has TLS).
    #[arg(long)]
    pub admin_url: Option<String>,
    /// Issuer id; optional when the config has one issuer.
    #[arg(long)]
    pub issuer: Option<String>,
    /// The bearer token's file (default: the config's admin.token-file, or
    /// its only operator with a token-file).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// CA certificates (PEM) to verify the admin listener with, besides the
    /// certificates in the config's admin.tls-certificate.
    #[arg(long)]
    pub admin_ca: Option<PathBuf>,
    /// A client certificate (PEM) for an admin listener with admin.client-ca.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// Revocations one request carries with `--serials-file` (the API's limit).
pub const BULK_BATCH: usize = 10_000;
/// Requests in flight at once with `--serials-file`.
pub const BULK_CONCURRENCY: usize = 4;

fn parse_batch(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=BULK_BATCH).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: give 1 to {}", BULK_BATCH)),
    }
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: give 1 to 64")),
    }
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a duration like 500ms, 30s or 5m"))
}
