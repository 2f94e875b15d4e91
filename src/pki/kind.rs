//! The kinds of signing key revocd knows, and the signature algorithm each
//! signs with. Shared by file keys (`key`) and HSM keys (`pkcs11`).

use super::oids;

/// The kind of a signing key; the signature algorithm follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ecdsa-p256",
            KeyKind::EcdsaP384 => "ecdsa-p384",
            KeyKind::Rsa => "rsa",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    /// Dotted OID of the signature algorithm revocd signs with for this key.
    pub fn signature_oid(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => oids::ECDSA_SHA256,
            KeyKind::EcdsaP384 => oids::ECDSA_SHA384,
            KeyKind::Rsa => oids::RSA_SHA256,
            KeyKind::Ed25519 => oids::ED25519,
        }
    }
}
