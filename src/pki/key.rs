use aws_lc_rs::signature::{KeyPair as _, PqdsaKeyPair, PqdsaSigningAlgorithm};
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
    #[error("unsupported or malformed PKCS#8 key ({reason}); supported: ECDSA P-256, ECDSA P-384, RSA >= 2048, Ed25519, ML-DSA-44/65/87")]
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
    /// aws-lc-rs: ring has no ML-DSA.
    MlDsa(PqdsaKeyPair),
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
        if let Some(kind) = pkcs8_ml_dsa(der) {
            return Self::ml_dsa_from_pkcs8(kind, der);
        }
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

    /// An ML-DSA key in any of RFC 9881's private-key forms (seed,
    /// expanded, or both; aws-lc checks that both agree): docs/conformance.md 35.
    fn ml_dsa_from_pkcs8(kind: KeyKind, der: &[u8]) -> Result<Self, KeyError> {
        let inner = PqdsaKeyPair::from_pkcs8(ml_dsa_signing(kind), der).map_err(|e| {
            KeyError::Unsupported {
                reason: format!("{}: {e}", kind.name()),
            }
        })?;
        Ok(Self {
            inner: Inner::MlDsa(inner),
            kind,
            rng: SystemRandom::new(),
            algorithm_der: signature_algorithm_der(kind),
        })
    }

    /// A new ML-DSA key and its PKCS#8 DER in the seed form (RFC 9881's
    /// recommended form; the 32-byte seed regenerates the whole key).
    pub fn generate_ml_dsa(kind: KeyKind) -> Result<(Self, Vec<u8>), KeyError> {
        let failed = |what: &str| KeyError::Unsupported {
            reason: format!("{}: {what}", kind.name()),
        };
        let pair = PqdsaKeyPair::generate(ml_dsa_signing(kind))
            .map_err(|_| failed("key generation failed"))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| failed("PKCS#8 encoding failed"))?
            .as_ref()
            .to_vec();
        Ok((Self::ml_dsa_from_pkcs8(kind, &pkcs8)?, pkcs8))
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
            Inner::MlDsa(k) => Some(k.public_key().as_ref()),
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
            Inner::MlDsa(k) => {
                let mut sig = vec![0u8; k.algorithm().signature_len()];
                let len = k.sign(msg, &mut sig).map_err(|_| SignError::Failed)?;
                sig.truncate(len);
                Ok(sig)
            }
            Inner::Hsm(k) => k.sign(msg).map_err(|e| match e {
                super::pkcs11::HsmSignError::Down | super::pkcs11::HsmSignError::Busy => {
                    SignError::Unavailable
                }
                super::pkcs11::HsmSignError::Failed => SignError::Failed,
            }),
        }
    }
}

fn ml_dsa_signing(kind: KeyKind) -> &'static PqdsaSigningAlgorithm {
    use aws_lc_rs::signature::{ML_DSA_44_SIGNING, ML_DSA_65_SIGNING, ML_DSA_87_SIGNING};
    match kind {
        KeyKind::MlDsa65 => &ML_DSA_65_SIGNING,
        KeyKind::MlDsa87 => &ML_DSA_87_SIGNING,
        _ => &ML_DSA_44_SIGNING,
    }
}

/// The ML-DSA parameter set a PKCS#8 PrivateKeyInfo's
/// privateKeyAlgorithm names, if it names one.
fn pkcs8_ml_dsa(der: &[u8]) -> Option<KeyKind> {
    let (info, _) = asn1::read_tlv(der)?;
    let fields = asn1::children(info.content)?;
    let algorithm = asn1::children(fields.get(1)?.content)?;
    let oid = algorithm.first()?;
    [KeyKind::MlDsa44, KeyKind::MlDsa65, KeyKind::MlDsa87]
        .into_iter()
        .find(|k| oid.tag == 0x06 && oid.content == asn1::oid_content(k.signature_oid()))
}

fn signature_algorithm_der(kind: KeyKind) -> Vec<u8> {
    let oid = asn1::oid(&asn1::oid_content(kind.signature_oid()));
    match kind {
        // RFC 4055: the RSA PKCS#1 v1.5 AlgorithmIdentifier carries NULL.
        KeyKind::Rsa => asn1::sequence(&[&oid, &asn1::NULL]),
        // RFC 5758 / RFC 8410 / RFC 9881: ECDSA, Ed25519 and ML-DSA omit
        // the parameters.
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

    /// RFC 9881's three private-key forms of the key generated as `seed_form`.
    fn ml_dsa_forms(kind: KeyKind, seed_form: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        use aws_lc_rs::encoding::AsRawBytes;
        let (info, _) = asn1::read_tlv(seed_form).expect("PrivateKeyInfo");
        let fields = asn1::children(info.content).expect("fields");
        let (seed, _) = asn1::read_tlv(fields[2].content).expect("CHOICE");
        assert_eq!(seed.tag, 0x80, "aws-lc writes the seed form, [0] IMPLICIT");
        assert_eq!(seed.content.len(), 32);
        let pair = PqdsaKeyPair::from_pkcs8(ml_dsa_signing(kind), seed_form).expect("load");
        let raw = pair.private_key().as_raw_bytes().expect("expanded");
        let expanded = raw.as_ref().to_vec();
        let wrap = |private: Vec<u8>| {
            asn1::sequence(&[
                &asn1::integer_from_content(&[0]),
                &asn1::sequence(&[&asn1::oid(&asn1::oid_content(kind.signature_oid()))]),
                &asn1::octet_string(&private),
            ])
        };
        (
            wrap(asn1::tlv(0x80, seed.content)),
            wrap(asn1::octet_string(&expanded)),
            wrap(asn1::sequence(&[
                &asn1::octet_string(seed.content),
                &asn1::octet_string(&expanded),
            ])),
        )
    }

    /// The content of the one value inside a PrivateKeyInfo's privateKey.
    fn private_key_content(pkcs8: &[u8]) -> Vec<u8> {
        let (info, _) = asn1::read_tlv(pkcs8).expect("PrivateKeyInfo");
        let fields = asn1::children(info.content).expect("fields");
        let (inner, _) = asn1::read_tlv(fields[2].content).expect("privateKey");
        inner.content.to_vec()
    }

    #[test]
    fn ml_dsa_keys_load_in_every_rfc_9881_form_and_sign_what_verifies() {
        for (kind, sig_len, public_len) in [
            (KeyKind::MlDsa44, 2420, 1312),
            (KeyKind::MlDsa65, 3309, 1952),
            (KeyKind::MlDsa87, 4627, 2592),
        ] {
            let (generated, pkcs8) = SigningKey::generate_ml_dsa(kind).expect("generate");
            let public = generated.public_key().expect("file key").to_vec();
            assert_eq!(public.len(), public_len);
            let (seed, expanded, both) = ml_dsa_forms(kind, &pkcs8);
            assert_eq!(seed, pkcs8, "the seed form is what revocd writes");
            for form in [&seed, &expanded, &both] {
                let key = SigningKey::from_pkcs8_der(form).expect("load");
                assert_eq!(key.kind(), kind);
                assert_eq!(key.public_key(), Some(public.as_slice()));
                let sig = key.sign(b"hello").expect("sign");
                assert_eq!(sig.len(), sig_len);
                let oid = kind.signature_oid();
                assert!(verify_signature(oid, oid, None, &public, b"hello", &sig));
                assert!(!verify_signature(oid, oid, None, &public, b"hellO", &sig));
                // The parameter set is part of the algorithm: another one's
                // OID, or a curve, never verifies.
                assert!(!verify_signature(
                    oids::ED25519,
                    oid,
                    None,
                    &public,
                    b"hello",
                    &sig
                ));
                assert!(!verify_signature(
                    oid,
                    oid,
                    Some(oids::P256),
                    &public,
                    b"hello",
                    &sig
                ));
            }
            // DER AlgorithmIdentifier: the OID alone, no parameters.
            let alg = SigningKey::from_pkcs8_der(&seed).expect("load");
            assert_eq!(
                alg.signature_algorithm_der(),
                asn1::sequence(&[&asn1::oid(&asn1::oid_content(kind.signature_oid()))])
            );
        }
    }

    #[test]
    fn an_ml_dsa_key_whose_seed_and_expanded_forms_disagree_is_refused() {
        let (_, a) = SigningKey::generate_ml_dsa(KeyKind::MlDsa44).expect("a");
        let (_, b) = SigningKey::generate_ml_dsa(KeyKind::MlDsa44).expect("b");
        let (seed_a, ..) = ml_dsa_forms(KeyKind::MlDsa44, &a);
        let (_, expanded_b, _) = ml_dsa_forms(KeyKind::MlDsa44, &b);
        let seed = private_key_content(&seed_a);
        let expanded = private_key_content(&expanded_b);
        let mixed = asn1::sequence(&[
            &asn1::integer_from_content(&[0]),
            &asn1::sequence(&[&asn1::oid(&asn1::oid_content(oids::ML_DSA_44))]),
            &asn1::octet_string(&asn1::sequence(&[
                &asn1::octet_string(&seed),
                &asn1::octet_string(&expanded),
            ])),
        ]);
        let err = SigningKey::from_pkcs8_der(&mixed).expect_err("refused");
        assert!(err.to_string().contains("ml-dsa-44"), "{err}");
        // A key of one parameter set under another's OID is refused too.
        let (_, expanded_44, _) = ml_dsa_forms(KeyKind::MlDsa44, &a);
        let relabelled = expanded_44
            .windows(11)
            .position(|w| w == asn1::oid(&asn1::oid_content(oids::ML_DSA_44)).as_slice())
            .map(|at| {
                let mut d = expanded_44.clone();
                d[at + 10] = 0x12;
                d
            })
            .expect("OID in the key");
        assert!(SigningKey::from_pkcs8_der(&relabelled).is_err());
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
