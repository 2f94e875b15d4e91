//! Keys in an HSM, through any PKCS#11 module (SoftHSM2, YubiHSM, CloudHSM,
//! Luna, kmsp11, p11-kit's client).
//!
//! One `Module` (`module`) per library path, shared by every key in it: the loaded
//! and initialised library, a pool of sessions per token (a session runs one
//! operation at a time), and a bound on the signings in flight. Messages are
//! hashed here and only the digest goes to the HSM (a 30 MB CRL costs the
//! HSM what a 32-byte digest costs).
//!
//! Failure: any PKCS#11 error while signing marks the module down. Signing
//! then fails at once, without touching the HSM, while one thread tears the
//! library down (every session closed, `C_Finalize`) and brings it up again
//! with backoff: `C_Initialize`, the token found by its URI attributes, login,
//! every key's object found again (handles go stale after a token reset),
//! a probe signature. Callers serve what they already signed meanwhile.

mod module;
mod types;
pub mod uri;

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;

pub use module::{any_down, status, ModuleStatus};
pub use types::{HsmError, HsmSettings, HsmSignError};
pub use uri::{PinSource, Pkcs11Uri, UriError};

use module::{Failure, Module};
use types::{ObjectSel, TokenSel, SHA256_DIGEST_INFO};

use crate::asn1;
use crate::pki::kind::KeyKind;

/// A private key inside an HSM. Its `Debug` shows where it is, never more:
/// the key cannot leave the HSM, and the PIN is not kept here.
pub struct HsmKey {
    module: Arc<Module>,
    token: TokenSel,
    object: ObjectSel,
    kind: KeyKind,
    describe: String,
}

impl std::fmt::Debug for HsmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKey")
            .field("key", &self.describe)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl HsmKey {
    /// Opens the key `uri` names: loads and initialises its module (once per
    /// process), logs in to its token, finds the key and learns its kind.
    pub fn open(uri: &Pkcs11Uri, settings: HsmSettings) -> Result<Self, HsmError> {
        let path = uri.module_path.clone().ok_or(HsmError::NoModule)?;
        let token = TokenSel {
            label: uri.token.clone(),
            serial: uri.serial.clone(),
            manufacturer: uri.manufacturer.clone(),
            model: uri.model.clone(),
            slot_id: uri.slot_id,
        };
        let object = ObjectSel {
            label: uri.object.clone(),
            id: uri.id.clone(),
        };
        let pin = uri.pin_source.as_ref().map(read_pin).transpose()?;
        let module = Module::get(&path, settings)?;
        // A new PIN (SIGHUP after the operator changed it) is used from the
        // next login on, including the reconnection attempts.
        module.set_pin(&token, pin);
        let describe = format!("{} in {}", uri.describe(), path.display());
        let kind = module.key_kind(&token, &object).map_err(|e| match e {
            Failure::Key(msg) => HsmError::Key(format!("{describe}: {msg}")),
            Failure::Pkcs11(error) => HsmError::Token {
                what: describe.clone(),
                error,
            },
            Failure::Down => HsmError::Token {
                what: describe.clone(),
                error: "the module is down (reconnecting)".into(),
            },
            Failure::Busy => HsmError::Token {
                what: describe.clone(),
                error: "no signing slot free".into(),
            },
        })?;
        module.remember(&token, &object);
        Ok(Self {
            module,
            token,
            object,
            kind,
            describe,
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Whether the module is up (signing reaches the HSM).
    pub fn is_up(&self) -> bool {
        self.module.is_up()
    }

    /// Signs `msg` with the key's algorithm (ECDSA with SHA-256 or SHA-384,
    /// RSA PKCS#1 v1.5 with SHA-256); returns the signature as X.509 carries
    /// it (DER ECDSA-Sig-Value, or the RSA signature block).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, HsmSignError> {
        let (mechanism, data) = match self.kind {
            KeyKind::EcdsaP256 => (
                Mechanism::Ecdsa,
                ring::digest::digest(&ring::digest::SHA256, msg)
                    .as_ref()
                    .to_vec(),
            ),
            KeyKind::EcdsaP384 => (
                Mechanism::Ecdsa,
                ring::digest::digest(&ring::digest::SHA384, msg)
                    .as_ref()
                    .to_vec(),
            ),
            KeyKind::Rsa => {
                let digest = ring::digest::digest(&ring::digest::SHA256, msg);
                (
                    Mechanism::RsaPkcs,
                    [&SHA256_DIGEST_INFO[..], digest.as_ref()].concat(),
                )
            }
            // Never found in a token: `module` reads EC and RSA keys only
            // (SoftHSM2 2.6 has no ML-DSA; README: post-quantum).
            KeyKind::Ed25519 | KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87 => {
                return Err(HsmSignError::Failed)
            }
        };
        let raw = self
            .module
            .sign(&self.token, &self.object, &mechanism, &data)?;
        match self.kind {
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => ecdsa_der(&raw).ok_or(HsmSignError::Failed),
            _ => Ok(raw),
        }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Signings this key's module runs at once (`pkcs11.max-in-flight`).
    pub fn max_in_flight(&self) -> usize {
        self.module.max_in_flight()
    }
}

/// PKCS#11 ECDSA signatures are r || s, each the curve's size; X.509 wants
/// `SEQUENCE { r INTEGER, s INTEGER }`.
fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(asn1::sequence(&[
        &asn1::unsigned_integer(r),
        &asn1::unsigned_integer(s),
    ]))
}

/// Reads a PIN: the first line of a file, or an environment variable.
fn read_pin(source: &PinSource) -> Result<String, HsmError> {
    let pin = match source {
        PinSource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| HsmError::Pin(format!("pin-source {}: {e}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        PinSource::Env(var) => std::env::var(var)
            .map_err(|_| HsmError::Pin(format!("pin-source env:{var}: the variable is not set")))?,
    };
    if pin.is_empty() {
        return Err(HsmError::Pin("the PIN from pin-source is empty".into()));
    }
    Ok(pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero octet
        raw[63] = 1;
        let der = ecdsa_der(&raw).expect("even length");
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert!(ecdsa_der(&[1, 2, 3]).is_none());
    }
}
