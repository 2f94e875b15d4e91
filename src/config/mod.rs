//! Configuration: a serde image of the TOML file ([`raw`]), then a
//! validated [`Config`], one module per section. Every problem is
//! collected and reported at once; only this module knows serde's view of
//! the file.

mod admin;
mod check;
pub mod defaults;
mod issuers;
mod keys;
mod listen;
mod ocsp;
mod publishing;
mod raw;
mod sources;

use std::path::{Path, PathBuf};

pub use self::check::parse_duration;
use self::check::Check;
use self::raw::RawConfig;
use crate::admin::access::OperatorConfig;
use crate::http::tls::TlsFiles;
use crate::pki::HsmSettings;

pub use self::issuers::{IssuerConfig, SignerConfig};
pub use self::listen::Listen;
pub use self::ocsp::{AnswerTables, NonceMode, Ocsp, UnknownSerialPolicy};
pub use self::publishing::{Crl, Fleet};
pub use self::sources::{AwsEvents, Cdn, Upstream};
pub use crate::pki::KeyRef;

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
    pub admin_operators: Vec<OperatorConfig>,
    /// TLS on the admin listener (`admin.tls-certificate`, `tls-key`,
    /// `client-ca`).
    pub admin_tls: Option<TlsFiles>,
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
    pub aws_events: Option<AwsEvents>,
    /// Limits for keys in HSMs (`[pkcs11]`).
    pub pkcs11: HsmSettings,
    pub issuers: Vec<IssuerConfig>,
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
        let mut check = Check::new(&base);
        let config = validate(raw, path, &mut check);
        if check.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                path: path.to_path_buf(),
                errors: check.errors,
            })
        }
    }
}

/// Every section in turn, each adding what is wrong with it to `c`.
fn validate(raw: RawConfig, path: &Path, c: &mut Check) -> Config {
    let listen = listen::listen(raw.listen, c);
    let ocsp = ocsp::ocsp(raw.ocsp, c);
    let issuers = issuers::issuers(raw.issuers, ocsp.unknown_serial, c);
    let crl = raw.crl.map(|r| publishing::crl(r, &issuers, c));
    let fleet = raw.fleet.map(|r| publishing::fleet(r, c));
    let refuse_loose_secrets = keys::refuse_loose_secrets(&raw.security, c);
    let pkcs11 = keys::hsm(raw.pkcs11, c);
    let upstream = sources::upstream(raw.upstream, &issuers, c);
    let cdn = raw.cdn.and_then(|r| sources::cdn(r, c));
    let aws_events = raw
        .aws_events
        .and_then(|r| sources::aws_events(r, &issuers, c));
    let (admin_operators, admin_tls) = admin::access(&raw.admin, c);
    Config {
        path: path.to_path_buf(),
        refuse_loose_secrets,
        upstream,
        cdn,
        aws_events,
        admin_operators,
        admin_tls,
        pkcs11,
        data_dir: c.resolve(raw.data_dir.as_deref().unwrap_or(Path::new("."))),
        listen,
        ocsp,
        admin_token_file: raw.admin.token_file.as_deref().map(|p| c.resolve(p)),
        admin_max_body_bytes: admin::max_body_bytes(&raw.admin, c),
        snapshot_every: c.positive(
            "ledger.snapshot-every",
            raw.ledger.snapshot_every,
            defaults::SNAPSHOT_EVERY,
        ),
        crl,
        fleet,
        issuers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
