//! `[admin]`: who may use the admin API (operators, their tokens or
//! client certificates, and scopes), TLS on its listener, and its limits.

use super::check::Check;
use super::defaults;
use super::raw::RawAdmin;
use crate::admin::access::{OperatorConfig, Scope};
use crate::http::tls::TlsFiles;

/// `admin.max-body-bytes`.
pub(super) fn max_body_bytes(raw: &RawAdmin, c: &mut Check) -> usize {
    match raw.max_body_bytes {
        Some(n) if !(1024..=1 << 30).contains(&n) => {
            c.error("admin.max-body-bytes: 1024 to 1073741824");
            defaults::ADMIN_MAX_BODY_BYTES
        }
        Some(n) => n,
        None => defaults::ADMIN_MAX_BODY_BYTES,
    }
}

/// `[admin]`'s access settings: the operators (the legacy `token-file` as
/// `admin` with every scope first) and TLS.
pub(super) fn access(raw: &RawAdmin, c: &mut Check) -> (Vec<OperatorConfig>, Option<TlsFiles>) {
    let tls = match (&raw.tls_certificate, &raw.tls_key) {
        (Some(cert), Some(k)) => Some(TlsFiles {
            certificate: c.resolve(cert),
            key: c.resolve(k),
            client_ca: raw.client_ca.as_deref().map(|p| c.resolve(p)),
        }),
        (None, None) => {
            if raw.client_ca.is_some() {
                c.error(
                    "admin.client-ca needs admin.tls-certificate and admin.tls-key (client certificates come with TLS)".to_string(),
                );
            }
            None
        }
        _ => {
            c.error("admin.tls-certificate and admin.tls-key go together".to_string());
            None
        }
    };
    let mut operators: Vec<OperatorConfig> = Vec::new();
    if let Some(t) = &raw.token_file {
        operators.push(OperatorConfig {
            name: "admin".to_string(),
            token_file: Some(c.resolve(t)),
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
            c.error(format!(
                "{at}: name must be 1 to 64 letters, digits, '.', '_', '@' or '-' (it is recorded with every change)"
            ));
        }
        if operators.iter().any(|x| x.name == name) {
            c.error(format!(
                "{at}: the name is used twice (admin.token-file is the operator \"admin\")"
            ));
        }
        let spki = o.client_cert_spki_sha256.as_deref().and_then(|h| {
            let bytes = hex::decode(h.trim().replace(':', "")).ok();
            let pin = bytes.and_then(|b| <[u8; 32]>::try_from(b).ok());
            if pin.is_none() {
                c.error(format!(
                    "{at}.client-cert-spki-sha256: {h:?} is not 64 hex digits (openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum)"
                ));
            }
            pin
        });
        let by_cert = o.client_cert_subject.is_some() || o.client_cert_spki_sha256.is_some();
        if o.token_file.is_none() && !by_cert {
            c.error(format!(
                "{at}: give token-file, or client-cert-subject / client-cert-spki-sha256"
            ));
        }
        if by_cert && tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
            c.error(format!(
                "{at}: client certificates need admin.client-ca (and TLS) to be verified"
            ));
        }
        let mut scopes = Vec::new();
        match &o.scopes {
            None => c.error(format!(
                "{at}: scopes is required (from read, register, revoke, release, publish)"
            )),
            Some(list) => {
                for name in list {
                    match Scope::from_name(name) {
                        Some(s) if !scopes.contains(&s) => scopes.push(s),
                        Some(_) => {}
                        None => c.error(format!(
                            "{at}.scopes: {name:?} is not one of read, register, revoke, release, publish"
                        )),
                    }
                }
                if list.is_empty() {
                    c.error(format!("{at}.scopes: give at least one"));
                }
            }
        }
        operators.push(OperatorConfig {
            name,
            token_file: o.token_file.as_deref().map(|p| c.resolve(p)),
            client_cert_subject: o.client_cert_subject.clone(),
            client_cert_spki_sha256: spki,
            scopes,
        });
    }
    (operators, tls)
}
