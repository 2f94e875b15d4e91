//! What names a key in an HSM (the token and object a URI selects), the
//! limits every module works under, and the errors of opening and signing.

use std::time::Duration;

use cryptoki::object::{Attribute, ObjectClass};

use super::uri::UriError;

/// Limits for every HSM (`[pkcs11]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HsmSettings {
    /// Sessions kept open per token.
    pub sessions: usize,
    /// Signings in flight per module; callers beyond it wait.
    pub max_in_flight: usize,
    /// Longest pause between reconnection attempts.
    pub retry_max: Duration,
    /// How long a signing waits for a slot before it fails.
    pub wait: Duration,
}

impl Default for HsmSettings {
    fn default() -> Self {
        Self {
            sessions: 4,
            max_in_flight: 4,
            retry_max: Duration::from_secs(30),
            wait: Duration::from_secs(10),
        }
    }
}

/// Why a key could not be opened. Names the module, token and object; never
/// the PIN.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("{0}")]
    Uri(#[from] UriError),
    #[error("no module-path in the PKCS#11 URI (add ?module-path=/path/to/module.so)")]
    NoModule,
    #[error("PKCS#11 module {path}: {error}")]
    Module { path: String, error: String },
    #[error("{0}")]
    Pin(String),
    #[error("{what}: {error}")]
    Token { what: String, error: String },
    #[error("{0}")]
    Key(String),
}

/// Which token a URI selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct TokenSel {
    pub(super) label: Option<String>,
    pub(super) serial: Option<String>,
    pub(super) manufacturer: Option<String>,
    pub(super) model: Option<String>,
    pub(super) slot_id: Option<u64>,
}

/// Which private key a URI selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ObjectSel {
    pub(super) label: Option<String>,
    pub(super) id: Option<Vec<u8>>,
}

impl ObjectSel {
    pub(super) fn template(&self) -> Vec<Attribute> {
        let mut t = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if let Some(l) = &self.label {
            t.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &self.id {
            t.push(Attribute::Id(id.clone()));
        }
        t
    }
}

/// Why a signing failed: the module is down (reconnecting), busy past the
/// wait, or the HSM said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HsmSignError {
    Down,
    Busy,
    Failed,
}

/// DER prefix of a DigestInfo for SHA-256 (RFC 8017 9.2 note 1).
pub(super) const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

pub(super) fn describe_token(sel: &TokenSel) -> String {
    let mut parts = Vec::new();
    if let Some(l) = &sel.label {
        parts.push(format!("token={l}"));
    }
    if let Some(s) = &sel.serial {
        parts.push(format!("serial={s}"));
    }
    if let Some(s) = sel.slot_id {
        parts.push(format!("slot-id={s}"));
    }
    if parts.is_empty() {
        "(any token)".into()
    } else {
        parts.join(";")
    }
}

pub(super) fn describe_object(sel: &ObjectSel) -> String {
    match (&sel.label, &sel.id) {
        (Some(l), Some(id)) => format!("object={l};id={}", hex::encode(id)),
        (Some(l), None) => format!("object={l}"),
        (None, Some(id)) => format!("id={}", hex::encode(id)),
        (None, None) => "(any)".into(),
    }
}
