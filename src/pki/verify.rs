//! Signature verification by OID (ring), for certificates, CRLs and OCSP
//! responses read back or fetched.

use ring::signature;

use super::oids;

/// Verifies `sig` over `msg` made with the signature algorithm `sig_oid`
/// (dotted) by the key `public_key` (SPKI BIT STRING contents) of type
/// `key_oid` with optional curve `curve_oid`.
pub fn verify_signature(
    sig_oid: &str,
    key_oid: &str,
    curve_oid: Option<&str>,
    public_key: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> bool {
    use signature::VerificationAlgorithm;
    if let Some(kind) = super::KeyKind::ml_dsa(sig_oid) {
        // RFC 9881: the key's algorithm is the signature's, no parameters.
        return key_oid == sig_oid
            && curve_oid.is_none()
            && verify_ml_dsa(kind, public_key, msg, sig);
    }
    let alg: &dyn VerificationAlgorithm = match (sig_oid, key_oid, curve_oid) {
        (oids::ECDSA_SHA256, oids::EC_PUBLIC_KEY, Some(oids::P256)) => {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        (oids::ECDSA_SHA256, oids::EC_PUBLIC_KEY, Some(oids::P384)) => {
            &signature::ECDSA_P384_SHA256_ASN1
        }
        (oids::ECDSA_SHA384, oids::EC_PUBLIC_KEY, Some(oids::P256)) => {
            &signature::ECDSA_P256_SHA384_ASN1
        }
        (oids::ECDSA_SHA384, oids::EC_PUBLIC_KEY, Some(oids::P384)) => {
            &signature::ECDSA_P384_SHA384_ASN1
        }
        (oids::RSA_SHA1, oids::RSA_ENCRYPTION, _) => {
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (oids::RSA_SHA256, oids::RSA_ENCRYPTION, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (oids::RSA_SHA384, oids::RSA_ENCRYPTION, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (oids::RSA_SHA512, oids::RSA_ENCRYPTION, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (oids::ED25519, oids::ED25519, _) => &signature::ED25519,
        _ => return false,
    };
    signature::UnparsedPublicKey::new(alg, public_key)
        .verify(msg, sig)
        .is_ok()
}

/// ML-DSA (aws-lc-rs: ring has none), pure, empty context (RFC 9881).
fn verify_ml_dsa(kind: super::KeyKind, public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use aws_lc_rs::signature::{UnparsedPublicKey, ML_DSA_44, ML_DSA_65, ML_DSA_87};
    let alg = match kind {
        super::KeyKind::MlDsa44 => &ML_DSA_44,
        super::KeyKind::MlDsa65 => &ML_DSA_65,
        super::KeyKind::MlDsa87 => &ML_DSA_87,
        _ => return false,
    };
    UnparsedPublicKey::new(alg, public_key)
        .verify(msg, sig)
        .is_ok()
}
