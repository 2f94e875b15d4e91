//! `[[issuer]]`: each CA served, its certificate, who signs for it, and
//! where its revocations come from.

use std::path::{Path, PathBuf};

use super::check::Check;
use super::ocsp::{unknown_serial_policy, UnknownSerialPolicy};
use super::raw::RawIssuer;
use crate::pki::KeyRef;

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

/// Every `[[issuer]]`; `unknown_serial` is `[ocsp]`'s, which an issuer may
/// override.
pub(super) fn issuers(
    raw: Vec<RawIssuer>,
    unknown_serial: UnknownSerialPolicy,
    c: &mut Check,
) -> Vec<IssuerConfig> {
    if raw.is_empty() {
        c.error("no [[issuer]] configured");
    }
    let mut issuers: Vec<IssuerConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = format!("issuer[{i}] ({:?})", r.id);
        if r.id.is_empty()
            || !r
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            c.error(format!(
                "{at}: id must be non-empty letters, digits, '-' or '_' (it names URLs and files)"
            ));
        }
        if issuers.iter().any(|x| x.id == r.id) {
            c.error(format!("{at}: id is used twice"));
        }
        let issuer = issuer(r, &at, unknown_serial, c);
        issuers.push(issuer);
    }
    for (i, a) in issuers.iter().enumerate() {
        if let Some(arn) = &a.aws_pca_arn {
            if issuers[..i]
                .iter()
                .any(|b| b.aws_pca_arn.as_ref() == Some(arn))
            {
                c.error(format!(
                    "issuer {:?}: aws-pca-arn {arn} names the same CA as another issuer",
                    a.id
                ));
            }
        }
    }
    issuers
}

fn issuer(
    r: RawIssuer,
    at: &str,
    unknown_serial: UnknownSerialPolicy,
    c: &mut Check,
) -> IssuerConfig {
    let key_ref = |field: &str, p: &Path, c: &mut Check| {
        KeyRef::parse(&p.to_string_lossy(), c.base).unwrap_or_else(|e| {
            c.error(format!("{at}.{field}: {e}"));
            KeyRef::File(PathBuf::new())
        })
    };
    let ca_key = r.key.as_deref().map(|k| key_ref("key", k, c));
    let signer = match (r.key, r.responder_certificate, r.responder_key) {
        (Some(_), None, None) => SignerConfig::Issuer {
            key: ca_key.clone().unwrap_or(KeyRef::File(PathBuf::new())),
        },
        (_, Some(cert), Some(k)) => SignerConfig::Delegated {
            certificate: c.resolve(&cert),
            key: key_ref("responder-key", &k, c),
        },
        _ => {
            c.error(format!(
                "{at}: give `key` (the issuer signs), or both `responder-certificate` and `responder-key` (a delegated responder), or all three"
            ));
            SignerConfig::Issuer {
                key: KeyRef::File(PathBuf::new()),
            }
        }
    };
    let urls = |list: Option<Vec<String>>, c: &Check| -> Vec<String> {
        list.unwrap_or_default()
            .iter()
            .map(|u| c.resolve_url(u))
            .collect()
    };
    IssuerConfig {
        unknown_serial: unknown_serial_policy(
            c,
            &format!("{at}.unknown-serial"),
            r.unknown_serial.as_deref(),
            unknown_serial,
        ),
        certificate: c.resolve(&r.certificate),
        signer,
        ca_key,
        index: r.index.as_deref().map(|p| c.resolve(p)),
        upstream_crls: urls(r.upstream_crls, c),
        audit_reports: urls(r.audit_reports, c),
        issued_certs: r.issued_certs.as_deref().map(|p| c.resolve(p)),
        aws_pca_arn: r.aws_pca_arn.and_then(|arn| {
            crate::sources::aws_events::event::ca_arn(arn.trim())
                .map_err(|e| c.error(format!("{at}.aws-pca-arn: {e}")))
                .ok()
        }),
        id: r.id,
    }
}
