//! The OCSP signer of an issuer: its key and what every response it signs
//! must say about it (the ResponderID, the delegated responder's
//! certificate in `certs`, the certificate's notAfter that nextUpdate never
//! passes). Held by the issuer (swapped on a rotation) and used by the
//! OCSP encoder; it lives here, beside the keys, so that nothing imports
//! back up from `issuer` into `ocsp`.

use bytes::Bytes;

use super::cert::Cert;
use super::hash::HashAlg;
use super::key::SigningKey;
use crate::asn1::{self, context_constructed};

/// Who signs: a key plus what the response must say about it.
#[derive(Debug)]
pub struct ResponseSigner {
    key: SigningKey,
    /// SHA-1 of the signer's public key: ResponderID byKey (docs/conformance.md 13).
    key_hash: Vec<u8>,
    /// `[0] EXPLICIT SEQUENCE OF Certificate` holding the delegated responder
    /// certificate, or empty when the issuer signs itself (docs/conformance.md 14).
    certs_field: Bytes,
    /// notAfter of the signing certificate; nextUpdate never passes it.
    not_after: i64,
}

/// The one `'static` copy of a `certs` field. Every answer served carries
/// its signer's field; a static `Bytes` clones and drops without touching a
/// reference count that every core would otherwise contend for on each
/// request. Interned, so reloading the same certificate reuses its copy:
/// what is kept grows only with distinct responder certificates (about a
/// kilobyte per rotation) and lives as long as the process.
fn interned(field: Vec<u8>) -> Bytes {
    static FIELDS: std::sync::Mutex<Vec<&'static [u8]>> = std::sync::Mutex::new(Vec::new());
    let mut fields = FIELDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let kept = match fields.iter().find(|f| **f == field.as_slice()) {
        Some(f) => *f,
        None => {
            let f: &'static [u8] = Box::leak(field.into_boxed_slice());
            fields.push(f);
            f
        }
    };
    Bytes::from_static(kept)
}

impl ResponseSigner {
    /// `cert` is the certificate of `key`; `delegated` says to include it.
    pub fn new(key: SigningKey, cert: &Cert, delegated: bool) -> Self {
        let certs_field = if delegated {
            let seq = asn1::sequence(&[&cert.der]);
            interned(asn1::tlv(context_constructed(0), &seq))
        } else {
            Bytes::new()
        };
        Self {
            key_hash: cert.key_hash(HashAlg::Sha1),
            key,
            certs_field,
            not_after: cert.not_after,
        }
    }

    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// SHA-1 of the signer's public key (its ResponderID).
    pub fn key_hash(&self) -> &[u8] {
        &self.key_hash
    }

    /// The `certs` field every response of this signer ends with (empty
    /// when the issuer signs itself).
    pub fn certs_field(&self) -> &Bytes {
        &self.certs_field
    }

    /// A signer that names itself by `key` and ends its responses with
    /// `certs_field`, whatever that holds: for encoder tests.
    #[cfg(test)]
    pub(crate) fn from_parts(key: SigningKey, certs_field: Bytes) -> Self {
        Self {
            key_hash: HashAlg::Sha1.digest(key.public_key().expect("file key")),
            key,
            certs_field,
            not_after: i64::MAX,
        }
    }

    /// Whether `other` signs with the same key and certificate.
    pub fn same_as(&self, other: &ResponseSigner) -> bool {
        self.key_hash == other.key_hash && self.certs_field == other.certs_field
    }
}
