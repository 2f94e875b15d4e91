//! `[ocsp]`: windows and validity, what is pre-signed, and the limits on
//! what is signed on demand.

use std::time::Duration;

use super::check::Check;
use super::defaults;
use super::raw::RawOcsp;
use crate::pki::HashAlg;

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

/// What to answer for a serial of a served issuer that revocd does not know
/// (docs/conformance.md 16).
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

/// `ocsp.unknown-serial`, or an issuer's own `unknown-serial`.
pub(super) fn unknown_serial_policy(
    c: &mut Check,
    field: &str,
    value: Option<&str>,
    default: UnknownSerialPolicy,
) -> UnknownSerialPolicy {
    use UnknownSerialPolicy::*;
    let names = [
        ("unauthorized", Unauthorized),
        ("unknown", Unknown),
        ("revoked", Revoked),
    ];
    c.choice(field, value, default, &names)
}

pub(super) fn ocsp(o: RawOcsp, c: &mut Check) -> Ocsp {
    let window = c.duration("ocsp.window", o.window, defaults::WINDOW);
    let validity = c.duration("ocsp.validity", o.validity, defaults::VALIDITY);
    if window < Duration::from_secs(60) {
        c.error("ocsp.window: must be at least 1m");
    }
    if validity <= window {
        c.error(format!(
            "ocsp.validity ({}s) must be longer than ocsp.window ({}s): max-age runs to the window end and must stay before nextUpdate",
            validity.as_secs(),
            window.as_secs()
        ));
    }
    if validity > Duration::from_secs(10 * 86_400) {
        c.error("ocsp.validity: at most 10d (BR 4.9.10)");
    }
    let presign_hashes = match o.presign_hashes {
        None => vec![HashAlg::Sha1, HashAlg::Sha256],
        Some(names) => names
            .iter()
            .filter_map(|n| {
                HashAlg::from_name(n).or_else(|| {
                    c.error(format!(
                        "ocsp.presign-hashes: {n:?} is not one of sha1, sha256, sha384, sha512"
                    ));
                    None
                })
            })
            .collect(),
    };
    let path = o.path.unwrap_or_else(|| "/".to_string());
    if !path.starts_with('/') {
        c.error(format!("ocsp.path: {path:?} must start with '/'"));
    }
    let presign_cpu_share = o.presign_cpu_share.unwrap_or(defaults::PRESIGN_CPU_SHARE);
    if !(0.0..=1.0).contains(&presign_cpu_share) {
        c.error(format!(
            "ocsp.presign-cpu-share: {presign_cpu_share} is not between 0 (pre-signing off) and 1 (every core)"
        ));
    }
    Ocsp {
        window,
        validity,
        unknown_serial: unknown_serial_policy(
            c,
            "ocsp.unknown-serial",
            o.unknown_serial.as_deref(),
            UnknownSerialPolicy::Unauthorized,
        ),
        presign_hashes,
        signing_budget: c.positive(
            "ocsp.signing-budget",
            o.signing_budget,
            defaults::SIGNING_BUDGET,
        ),
        max_request_bytes: c.positive(
            "ocsp.max-request-bytes",
            o.max_request_bytes,
            defaults::MAX_REQUEST_BYTES,
        ),
        max_certs_per_request: c.positive(
            "ocsp.max-certs-per-request",
            o.max_certs_per_request,
            defaults::MAX_CERTS_PER_REQUEST,
        ),
        cache_max_bytes: o.cache_max_bytes.unwrap_or(defaults::CACHE_MAX_BYTES),
        path,
        presign_cpu_share,
        startup_presign: c.duration(
            "ocsp.startup-presign",
            o.startup_presign,
            defaults::STARTUP_PRESIGN,
        ),
        nonce: c.choice(
            "ocsp.nonce",
            o.nonce.as_deref(),
            NonceMode::Ignore,
            &[("ignore", NonceMode::Ignore), ("echo", NonceMode::Echo)],
        ),
        answer_tables: c.choice(
            "ocsp.answer-tables",
            o.answer_tables.as_deref(),
            AnswerTables::Memory,
            &[
                ("memory", AnswerTables::Memory),
                ("files", AnswerTables::Files),
            ],
        ),
        uncommon_signing_budget: c.positive(
            "ocsp.uncommon-signing-budget",
            o.uncommon_signing_budget,
            defaults::UNCOMMON_SIGNING_BUDGET,
        ),
        uncommon_signing_rate: match o.uncommon_signing_rate {
            Some(r) if !(r > 0.0 && r.is_finite()) => {
                c.error(format!(
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
    }
}
