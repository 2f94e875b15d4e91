//! Dotted OIDs used across the PKI code.
pub const EKU_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";
pub const OCSP_NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";
pub const SUBJECT_KEY_IDENTIFIER: &str = "2.5.29.14";
pub const EXT_KEY_USAGE: &str = "2.5.29.37";
pub const BASIC_CONSTRAINTS: &str = "2.5.29.19";
pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
pub const ED25519: &str = "1.3.101.112";
pub const P256: &str = "1.2.840.10045.3.1.7";
pub const P384: &str = "1.3.132.0.34";
pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
pub const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
pub const RSA_SHA1: &str = "1.2.840.113549.1.1.5";
pub const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
pub const RSA_SHA384: &str = "1.2.840.113549.1.1.12";
pub const RSA_SHA512: &str = "1.2.840.113549.1.1.13";
/// RFC 9881 (docs/conformance.md 34): ML-DSA, both the key's and the signature's algorithm
/// (parameters absent; pure ML-DSA with an empty context).
pub const ML_DSA_44: &str = "2.16.840.1.101.3.4.3.17";
pub const ML_DSA_65: &str = "2.16.840.1.101.3.4.3.18";
pub const ML_DSA_87: &str = "2.16.840.1.101.3.4.3.19";
