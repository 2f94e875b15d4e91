use der::{Decode, DecodePem, Encode};
use x509_cert::Certificate;

use super::hash::HashAlg;
use super::oids;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("not a PEM or DER certificate: {0}")]
    Parse(String),
    #[error("certificate field does not re-encode: {0}")]
    Encode(String),
}

/// The facts revocd needs from one X.509 certificate, extracted once at load.
#[derive(Clone)]
pub struct Cert {
    /// The certificate, DER, exactly as loaded.
    pub der: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    /// Serial number content octets (two's complement, as in the certificate).
    pub serial: Vec<u8>,
    /// SubjectPublicKeyInfo BIT STRING contents.
    pub public_key: Vec<u8>,
    /// The whole SubjectPublicKeyInfo, DER (what a key pin hashes).
    pub spki_der: Vec<u8>,
    pub key_oid: String,
    pub curve_oid: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub eku: Vec<String>,
    pub has_ocsp_nocheck: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub tbs_der: Vec<u8>,
    pub signature_oid: String,
    pub signature: Vec<u8>,
    pub subject_text: String,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cert")
            .field("subject", &self.subject_text)
            .field("serial", &hex::encode(&self.serial))
            .finish_non_exhaustive()
    }
}

impl Cert {
    /// Parses one certificate from PEM (first block) or DER.
    pub fn parse(bytes: &[u8]) -> Result<Self, CertError> {
        let is_pem = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN"));
        let parsed = if is_pem {
            let text = std::str::from_utf8(bytes).map_err(|e| CertError::Parse(e.to_string()))?;
            // Take the first CERTIFICATE block only.
            let start = text.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| {
                CertError::Parse("no -----BEGIN CERTIFICATE----- block".to_string())
            })?;
            let end_marker = "-----END CERTIFICATE-----";
            let end = text[start..]
                .find(end_marker)
                .map(|e| start + e + end_marker.len())
                .ok_or_else(|| CertError::Parse("unterminated PEM block".to_string()))?;
            Certificate::from_pem(&text.as_bytes()[start..end])
        } else {
            Certificate::from_der(bytes)
        }
        .map_err(|e| CertError::Parse(e.to_string()))?;
        Self::from_x509(&parsed)
    }

    fn from_x509(cert: &Certificate) -> Result<Self, CertError> {
        let enc = |e: der::Error| CertError::Encode(e.to_string());
        let tbs = cert.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        let mut eku = Vec::new();
        let mut has_ocsp_nocheck = false;
        let mut subject_key_id = None;
        let mut is_ca = false;
        for ext in tbs.extensions().map(|e| e.as_slice()).unwrap_or(&[]) {
            let id = ext.extn_id.to_string();
            let value = ext.extn_value.as_bytes();
            match id.as_str() {
                oids::OCSP_NOCHECK => has_ocsp_nocheck = true,
                oids::EXT_KEY_USAGE => {
                    if let Ok(list) = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(value) {
                        eku = list.0.iter().map(ToString::to_string).collect();
                    }
                }
                oids::SUBJECT_KEY_IDENTIFIER => {
                    if let Ok(ski) = der::asn1::OctetString::from_der(value) {
                        subject_key_id = Some(ski.as_bytes().to_vec());
                    }
                }
                oids::BASIC_CONSTRAINTS => {
                    if let Ok(bc) = x509_cert::ext::pkix::BasicConstraints::from_der(value) {
                        is_ca = bc.ca;
                    }
                }
                _ => {}
            }
        }
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
            .map(|o| o.to_string());
        let secs = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        Ok(Self {
            der: cert.to_der().map_err(enc)?,
            subject_der: tbs.subject().to_der().map_err(enc)?,
            issuer_der: tbs.issuer().to_der().map_err(enc)?,
            serial: tbs.serial_number().as_bytes().to_vec(),
            public_key: spki.subject_public_key.raw_bytes().to_vec(),
            spki_der: spki.to_der().map_err(enc)?,
            key_oid: spki.algorithm.oid.to_string(),
            curve_oid,
            not_before: secs(&tbs.validity().not_before),
            not_after: secs(&tbs.validity().not_after),
            is_ca,
            eku,
            has_ocsp_nocheck,
            subject_key_id,
            tbs_der: tbs.to_der().map_err(enc)?,
            signature_oid: cert.signature_algorithm().oid.to_string(),
            signature: cert.signature().raw_bytes().to_vec(),
            subject_text: tbs.subject().to_string(),
        })
    }

    /// Whether `issuer` signed this certificate (name chaining and signature).
    pub fn is_issued_by(&self, issuer: &Cert) -> bool {
        self.issuer_der == issuer.subject_der
            && super::verify::verify_signature(
                &self.signature_oid,
                &issuer.key_oid,
                issuer.curve_oid.as_deref(),
                &issuer.public_key,
                &self.tbs_der,
                &self.signature,
            )
    }

    pub fn has_eku(&self, oid: &str) -> bool {
        self.eku.iter().any(|e| e == oid)
    }

    /// CertID issuerNameHash for certificates this one issued.
    pub fn name_hash(&self, alg: HashAlg) -> Vec<u8> {
        alg.digest(&self.subject_der)
    }

    /// CertID issuerKeyHash; with SHA-1 also the ResponderID byKey (RFC 6960 4.2.1).
    pub fn key_hash(&self, alg: HashAlg) -> Vec<u8> {
        alg.digest(&self.public_key)
    }
}
