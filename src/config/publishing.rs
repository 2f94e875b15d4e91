//! `[crl]` and `[fleet]`: what revocd writes to object storage (CRLs, and
//! in fleet mode the shared ledger), where, and how often.

use std::time::Duration;

use super::check::Check;
use super::defaults;
use super::issuers::IssuerConfig;
use super::raw::{RawCrl, RawFleet};
use crate::publish::StoreConfig;

#[derive(Debug, Clone)]
pub struct Crl {
    pub store: StoreConfig,
    /// Publish this long after the last change (docs/design.md: CRL batching).
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
    /// of issuer id carries IDP `{url-base}/{id}/{k}.crl` (docs/conformance.md 26).
    pub url_base: Option<String>,
    /// Also publish delta CRLs (`{id}-delta.crl`, RFC 5280 5.2.4).
    pub delta: bool,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    /// Where the shared ledger lives (`s3://bucket/prefix`, `gs://`, `az://`).
    /// Must honour conditional writes.
    pub store: StoreConfig,
    /// How often to look for other replicas' batches (docs/design.md: fleet mode; 1 s).
    pub poll: Duration,
    /// Batches between snapshots in the store.
    pub snapshot_every: u64,
    /// This replica's name in batches and logs (default: the host name).
    pub replica: String,
}

pub(super) fn crl(r: RawCrl, issuers: &[IssuerConfig], c: &mut Check) -> Crl {
    let validity = c.duration("crl.validity", r.validity, defaults::CRL_VALIDITY);
    if validity > Duration::from_secs(10 * 86_400) {
        c.error("crl.validity: at most 10d (BR 7.2.2)");
    }
    let cache_max_age = c.duration(
        "crl.cache-max-age",
        r.cache_max_age,
        defaults::CRL_CACHE_MAX_AGE,
    );
    let debounce = c.duration("crl.debounce", r.debounce, defaults::CRL_DEBOUNCE);
    let max_delay = c.duration("crl.max-delay", r.max_delay, defaults::CRL_MAX_DELAY);
    if max_delay < debounce {
        c.error("crl.max-delay must be at least crl.debounce");
    }
    let url = r.store.unwrap_or_else(|| defaults::CRL_STORE.to_string());
    if !["s3://", "gs://", "az://", "file://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        c.error(format!(
            "crl.store: {url:?} must start with s3://, gs://, az:// or file://"
        ));
    }
    let shards = r.shards.unwrap_or(1);
    if !(1..=1024).contains(&shards) {
        c.error("crl.shards: 1 to 1024");
    }
    if shards > 1 && r.url_base.is_none() {
        c.error("crl.url-base is required with crl.shards > 1: each shard's Issuing Distribution Point must match the CDP URL in its certificates");
    }
    let delta = r.delta.unwrap_or(false);
    if delta && shards > 1 {
        c.error("crl.delta with crl.shards > 1 is not supported");
    }
    for i in issuers {
        if i.ca_key.is_none() {
            c.error(format!(
                "issuer {:?}: CRLs are enabled ([crl]) but the issuer has no `key` to sign them",
                i.id
            ));
        }
    }
    Crl {
        shards,
        url_base: r.url_base,
        delta,
        store: StoreConfig {
            url,
            path_style: r.path_style.unwrap_or(r.endpoint.is_some()),
            endpoint: r.endpoint,
            region: r.region,
            allow_http: r.allow_http.unwrap_or(false),
            cache_control: format!("public, max-age={}", cache_max_age.as_secs()),
            base_dir: c.base.to_path_buf(),
        },
        debounce,
        max_delay,
        validity,
        cache_max_age,
    }
}

pub(super) fn fleet(f: RawFleet, c: &mut Check) -> Fleet {
    let url = f.store.unwrap_or_default();
    if !["s3://", "gs://", "az://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        c.error(format!(
            "fleet.store: {url:?} must be s3://, gs:// or az:// (the shared ledger's location)"
        ));
    }
    let poll = c.duration("fleet.poll", f.poll, defaults::FLEET_POLL);
    if poll < Duration::from_millis(100) || poll > Duration::from_secs(60) {
        c.error("fleet.poll: 100ms to 60s");
    }
    let snapshot_every = c.positive(
        "fleet.snapshot-every",
        f.snapshot_every,
        defaults::FLEET_SNAPSHOT_EVERY,
    );
    let replica = f.replica.unwrap_or_else(default_replica_name);
    if replica.is_empty() || replica.len() > 255 {
        c.error("fleet.replica: 1 to 255 bytes");
    }
    Fleet {
        store: StoreConfig {
            url,
            path_style: f.path_style.unwrap_or(f.endpoint.is_some()),
            endpoint: f.endpoint,
            region: f.region,
            allow_http: f.allow_http.unwrap_or(false),
            cache_control: "no-store".to_string(),
            base_dir: c.base.to_path_buf(),
        },
        poll,
        snapshot_every,
        replica,
    }
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
