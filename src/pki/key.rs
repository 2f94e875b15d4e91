use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use super::kind::KeyKind;
use super::verify::verify_signature;
use crate::asn1;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not PEM: {0}")]
    Pem(String),
    #[error("PEM label is {label:?}; revocd needs a PKCS#8 \"PRIVATE KEY\" (convert with `openssl pkcs8 -topk8 -nocrypt`)")]
    NotPkcs8 { label: String },
    #[error("RSA key is smaller than 2048 bits")]
    RsaTooSmall,
    #[error("unsupported or malformed PKCS#8 key ({reason}); supported: ECDSA P-256, ECDSA P-384, RSA >= 2048, Ed25519")]
    Unsupported { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing failed")]
    Failed,
    /// The key's HSM is down (reconnecting) or every signing slot stayed
    /// busy: nothing was signed, try again later.
    #[error("the HSM signer is unavailable")]
    Unavailable,
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
    /// Never leaves the HSM; signs through PKCS#11.
    Hsm(super::pkcs11::HsmKey),
}

/// A private key that can sign. Its `Debug` shows the kind, never the key.
pub struct SigningKey {
    inner: Inner,
    kind: KeyKind,
    rng: SystemRandom,
    algorithm_der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("SigningKey");
        d.field("kind", &self.kind);
        if let Inner::Hsm(k) = &self.inner {
            d.field("hsm", &k.describe());
        }
        d.finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PKCS#8 key from PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(text: &[u8]) -> Result<Self, KeyError> {
        let (label, der) = der::pem::decode_vec(text).map_err(|e| KeyError::Pem(e.to_string()))?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::NotPkcs8 {
                label: label.to_string(),
            });
        }
        Self::from_pkcs8_der(&der)
    }

    /// Loads a PKCS#8 key from DER, trying each supported kind.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let mut reasons = Vec::new();
        let attempt = |r: Result<Inner, ring::error::KeyRejected>,
                       kind: KeyKind,
                       reasons: &mut Vec<String>|
         -> Option<(Inner, KeyKind)> {
            match r {
                Ok(inner) => Some((inner, kind)),
                Err(e) => {
                    if e.to_string() != "WrongAlgorithm" {
                        reasons.push(format!("{}: {e}", kind.name()));
                    }
                    None
                }
            }
        };
        let found = attempt(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
                .map(Inner::Ecdsa),
            KeyKind::EcdsaP256,
            &mut reasons,
        )
        .or_else(|| {
            attempt(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der, &rng)
                    .map(Inner::Ecdsa),
                KeyKind::EcdsaP384,
                &mut reasons,
            )
        })
        .or_else(|| {
            attempt(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map(Inner::Ed25519),
                KeyKind::Ed25519,
                &mut reasons,
            )
        });
        let found = match found {
            Some(f) => f,
            None => match RsaKeyPair::from_pkcs8(der) {
                Ok(k) => (Inner::Rsa(k), KeyKind::Rsa),
                Err(e) if e.to_string() == "TooSmall" => return Err(KeyError::RsaTooSmall),
                Err(e) => {
                    if e.to_string() != "WrongAlgorithm" {
                        reasons.push(format!("rsa: {e}"));
                    }
                    let reason = if reasons.is_empty() {
                        "key algorithm not recognised".to_string()
                    } else {
                        reasons.join(", ")
                    };
                    return Err(KeyError::Unsupported { reason });
                }
            },
        };
        let (inner, kind) = found;
        Ok(Self {
            inner,
            kind,
            rng,
            algorithm_der: signature_algorithm_der(kind),
        })
    }

    /// A key inside an HSM, reached through PKCS#11.
    pub fn from_hsm(key: super::pkcs11::HsmKey) -> Self {
        let kind = key.kind();
        Self {
            inner: Inner::Hsm(key),
            kind,
            rng: SystemRandom::new(),
            algorithm_der: signature_algorithm_der(kind),
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Where the key lives, for logs: "file" or the HSM key's URI and module.
    pub fn location(&self) -> String {
        match &self.inner {
            Inner::Hsm(k) => k.describe().to_string(),
            _ => "file".to_string(),
        }
    }

    /// For a key in an HSM: how many signings may be in flight at once.
    pub fn hsm_slots(&self) -> Option<usize> {
        match &self.inner {
            Inner::Hsm(k) => Some(k.max_in_flight()),
            _ => None,
        }
    }

    /// Whether signing can reach the key now (false while its HSM is down).
    pub fn is_available(&self) -> bool {
        match &self.inner {
            Inner::Hsm(k) => k.is_up(),
            _ => true,
        }
    }

    /// The public key as it appears in a certificate's SubjectPublicKeyInfo
    /// BIT STRING (uncompressed point, RSAPublicKey DER, or raw Ed25519);
    /// `None` for a key in an HSM.
    pub fn public_key(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Ecdsa(k) => Some(k.public_key().as_ref()),
            Inner::Rsa(k) => Some(k.public_key().as_ref()),
            Inner::Ed25519(k) => Some(k.public_key().as_ref()),
            Inner::Hsm(_) => None,
        }
    }

    /// Whether this is the private key of `cert`. A file key is compared
    /// with the certificate's public key; a key in an HSM signs a probe that
    /// the certificate's public key must verify.
    pub fn matches(&self, cert: &super::cert::Cert) -> Result<bool, SignError> {
        if let Some(public) = self.public_key() {
            return Ok(public == cert.public_key.as_slice());
        }
        let probe = b"revocd: does this key belong to the certificate?";
        let sig = self.sign(probe)?;
        Ok(verify_signature(
            self.kind.signature_oid(),
            &cert.key_oid,
            cert.curve_oid.as_deref(),
            &cert.public_key,
            probe,
            &sig,
        ))
    }

    /// The signature AlgorithmIdentifier (DER) for what [`sign`](Self::sign) makes.
    pub fn signature_algorithm_der(&self) -> &[u8] {
        &self.algorithm_der
    }

    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            Inner::Ecdsa(k) => k
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Failed),
            Inner::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| SignError::Failed)?;
                Ok(sig)
            }
            Inner::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Inner::Hsm(k) => k.sign(msg).map_err(|e| match e {
                super::pkcs11::HsmSignError::Down | super::pkcs11::HsmSignError::Busy => {
                    SignError::Unavailable
                }
                super::pkcs11::HsmSignError::Failed => SignError::Failed,
            }),
        }
    }
}

fn signature_algorithm_der(kind: KeyKind) -> Vec<u8> {
    let oid = asn1::oid(&asn1::oid_content(kind.signature_oid()));
    match kind {
        // RFC 4055: the RSA PKCS#1 v1.5 AlgorithmIdentifier carries NULL.
        KeyKind::Rsa => asn1::sequence(&[&oid, &asn1::NULL]),
        // RFC 5758 / RFC 8410: ECDSA and Ed25519 omit the parameters.
        _ => asn1::sequence(&[&oid]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::oids;

    #[test]
    fn debug_never_prints_key_material() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("generate");
        let key = SigningKey::from_pkcs8_der(pkcs8.as_ref()).expect("load");
        let shown = format!("{key:?}");
        assert_eq!(shown, "SigningKey { kind: EcdsaP256, .. }");
    }

    #[test]
    fn signs_and_verifies_with_each_supported_kind() {
        let rng = SystemRandom::new();
        let p256 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("p256");
        let p384 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
            .expect("p384");
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519");
        for (der, key_oid, curve) in [
            (p256.as_ref(), oids::EC_PUBLIC_KEY, Some(oids::P256)),
            (p384.as_ref(), oids::EC_PUBLIC_KEY, Some(oids::P384)),
            (ed.as_ref(), oids::ED25519, None),
        ] {
            let key = SigningKey::from_pkcs8_der(der).expect("load");
            let sig = key.sign(b"hello").expect("sign");
            let oid = key.kind().signature_oid();
            assert!(verify_signature(
                oid,
                key_oid,
                curve,
                key.public_key().expect("file key"),
                b"hello",
                &sig
            ));
            assert!(!verify_signature(
                oid,
                key_oid,
                curve,
                key.public_key().expect("file key"),
                b"hellO",
                &sig
            ));
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(matches!(
            SigningKey::from_pkcs8_der(b"\x30\x03\x02\x01\x00"),
            Err(KeyError::Unsupported { .. })
        ));
        let pem = b"-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            SigningKey::from_pkcs8_pem(pem),
            Err(KeyError::NotPkcs8 { .. })
        ));
    }
}
