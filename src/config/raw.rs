//! The serde image of the TOML file: every key optional, unknown keys
//! refused. Nothing here is checked; the section modules validate it.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) listen: RawListen,
    #[serde(default)]
    pub(super) ocsp: RawOcsp,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) ledger: RawLedger,
    #[serde(default)]
    pub(super) security: RawSecurity,
    pub(super) crl: Option<RawCrl>,
    pub(super) fleet: Option<RawFleet>,
    pub(super) pkcs11: Option<RawPkcs11>,
    pub(super) upstream: Option<RawUpstream>,
    pub(super) cdn: Option<RawCdn>,
    pub(super) aws_events: Option<RawAwsEvents>,
    pub(super) data_dir: Option<PathBuf>,
    #[serde(default, rename = "issuer")]
    pub(super) issuers: Vec<RawIssuer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawListen {
    pub(super) public: Option<String>,
    pub(super) admin: Option<String>,
    pub(super) metrics: Option<String>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) body_timeout: Option<String>,
    pub(super) body_min_rate: Option<u64>,
    pub(super) write_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawAdmin {
    pub(super) token_file: Option<PathBuf>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) tls_certificate: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) client_ca: Option<PathBuf>,
    #[serde(default, rename = "operator")]
    pub(super) operators: Vec<RawOperator>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawOperator {
    pub(super) name: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) client_cert_subject: Option<String>,
    pub(super) client_cert_spki_sha256: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawCrl {
    pub(super) store: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) path_style: Option<bool>,
    pub(super) allow_http: Option<bool>,
    pub(super) debounce: Option<String>,
    pub(super) max_delay: Option<String>,
    pub(super) validity: Option<String>,
    pub(super) cache_max_age: Option<String>,
    pub(super) shards: Option<u32>,
    pub(super) url_base: Option<String>,
    pub(super) delta: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawFleet {
    pub(super) store: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) path_style: Option<bool>,
    pub(super) allow_http: Option<bool>,
    pub(super) poll: Option<String>,
    pub(super) snapshot_every: Option<u64>,
    pub(super) replica: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawSecurity {
    pub(super) loose_secret_permissions: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawUpstream {
    pub(super) poll: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) allow_http: Option<bool>,
    pub(super) max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawCdn {
    pub(super) cloudfront_distribution: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) batch: Option<String>,
    pub(super) max_paths_in_progress: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawAwsEvents {
    pub(super) queue: Option<String>,
    pub(super) wait: Option<String>,
    pub(super) confirm_within: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawPkcs11 {
    pub(super) sessions: Option<usize>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) retry_max: Option<String>,
    pub(super) wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawLedger {
    pub(super) snapshot_every: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawOcsp {
    pub(super) window: Option<String>,
    pub(super) validity: Option<String>,
    pub(super) unknown_serial: Option<String>,
    pub(super) presign_hashes: Option<Vec<String>>,
    pub(super) signing_budget: Option<usize>,
    pub(super) max_request_bytes: Option<usize>,
    pub(super) max_certs_per_request: Option<usize>,
    pub(super) cache_max_bytes: Option<u64>,
    pub(super) path: Option<String>,
    pub(super) presign_cpu_share: Option<f64>,
    pub(super) startup_presign: Option<String>,
    pub(super) nonce: Option<String>,
    pub(super) answer_tables: Option<String>,
    pub(super) uncommon_signing_budget: Option<usize>,
    pub(super) uncommon_signing_rate: Option<f64>,
    pub(super) uncommon_cache_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawIssuer {
    pub(super) id: String,
    pub(super) certificate: PathBuf,
    pub(super) key: Option<PathBuf>,
    pub(super) responder_certificate: Option<PathBuf>,
    pub(super) responder_key: Option<PathBuf>,
    pub(super) index: Option<PathBuf>,
    pub(super) unknown_serial: Option<String>,
    pub(super) upstream_crls: Option<Vec<String>>,
    pub(super) audit_reports: Option<Vec<String>>,
    pub(super) issued_certs: Option<PathBuf>,
    pub(super) aws_pca_arn: Option<String>,
}
