//! OCSP response encoding (RFC 6960 4.2, RFC 9919 profile). Pure and
//! synchronous: the DER is assembled by hand from the pieces in `asn1` so
//! every time is whole seconds and certificates are copied verbatim.

use crate::asn1::{self, context_constructed, context_primitive};
use crate::pki::{HashAlg, ResponseSigner, SignError};
use crate::state::{Reason, Serial};

/// id-pkix-ocsp-basic.
const OCSP_BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
/// id-pkix-ocsp-extended-revoke (RFC 6960 4.4.8).
const EXTENDED_REVOKE: &str = "1.3.6.1.5.5.7.48.1.9";

/// The two OIDs every response carries, encoded once.
static OCSP_BASIC_OID: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| asn1::oid(&asn1::oid_content(OCSP_BASIC)));
static EXTENDED_REVOKE_OID: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| asn1::oid(&asn1::oid_content(EXTENDED_REVOKE)));
/// id-pkix-ocsp-nonce (RFC 9654).
static NONCE_OID: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| asn1::oid(&asn1::oid_content("1.3.6.1.5.5.7.48.1.2")));

/// The unsigned error statuses (docs/conformance.md 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

impl ErrorStatus {
    /// `OCSPResponse { responseStatus }`: the whole 5-byte answer.
    pub fn der(self) -> [u8; 5] {
        [0x30, 0x03, asn1::TAG_ENUMERATED, 0x01, self as u8]
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorStatus::MalformedRequest => "malformed_request",
            ErrorStatus::InternalError => "internal_error",
            ErrorStatus::TryLater => "try_later",
            ErrorStatus::SigRequired => "sig_required",
            ErrorStatus::Unauthorized => "unauthorized",
        }
    }
}

/// A certificate's status as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked {
        at: i64,
        /// `None` for unspecified: the reason is omitted, as on the CRL.
        reason: Option<Reason>,
    },
    Unknown,
}

impl CertStatus {
    pub fn name(&self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::Revoked { .. } => "revoked",
            CertStatus::Unknown => "unknown",
        }
    }

    fn der(&self) -> Vec<u8> {
        match self {
            CertStatus::Good => vec![context_primitive(0), 0],
            CertStatus::Unknown => vec![context_primitive(2), 0],
            CertStatus::Revoked { at, reason } => {
                let time = asn1::generalized_time(*at);
                let reason = reason.map(|r| {
                    let e = asn1::tlv(asn1::TAG_ENUMERATED, &[r.code()]);
                    asn1::tlv(context_constructed(0), &e)
                });
                asn1::constructed(
                    context_constructed(1),
                    &[&time, reason.as_deref().unwrap_or_default()],
                )
            }
        }
    }
}

/// The CertID revocd answers with: the issuer hashes under `alg`, NULL
/// parameters, and the serial (docs/conformance.md 8).
pub fn cert_id_der(alg: HashAlg, name_hash: &[u8], key_hash: &[u8], serial: &Serial) -> Vec<u8> {
    asn1::sequence(&[
        &alg.algorithm_identifier_der(),
        &asn1::octet_string(name_hash),
        &asn1::octet_string(key_hash),
        &asn1::integer_from_content(serial.content()),
    ])
}

/// One SingleResponse to encode.
#[derive(Debug, Clone)]
pub struct SingleAnswer {
    pub cert_id: Vec<u8>,
    pub status: CertStatus,
    pub this_update: i64,
    pub next_update: i64,
}

/// Everything a signed response needs besides the signer.
#[derive(Debug, Clone)]
pub struct ResponseBody {
    pub produced_at: i64,
    pub answers: Vec<SingleAnswer>,
    /// Adds the Extended Revoked Definition extension (RFC 6960 2.2, 4.4.8).
    pub extended_revoke: bool,
    /// The request's nonce extnValue, echoed verbatim (RFC 9654).
    pub nonce: Option<Vec<u8>>,
}

/// Encodes and signs a successful OCSPResponse.
pub fn encode_signed(signer: &ResponseSigner, body: &ResponseBody) -> Result<Vec<u8>, SignError> {
    let mut der = encode_signed_own(signer, body)?;
    der.extend_from_slice(signer.certs_field());
    Ok(der)
}

/// Encodes and signs a successful OCSPResponse, all but its last part: the
/// signer's `certs` field, which ends every response of that signer and is
/// not copied into each. The response is these bytes, then
/// [`ResponseSigner::certs_field`].
pub fn encode_signed_own(
    signer: &ResponseSigner,
    body: &ResponseBody,
) -> Result<Vec<u8>, SignError> {
    let responder_id = asn1::tlv(
        context_constructed(2),
        &asn1::octet_string(signer.key_hash()),
    );
    let produced_at = asn1::generalized_time(body.produced_at);
    let singles: Vec<Vec<u8>> = body.answers.iter().map(single_response).collect();
    let single_refs: Vec<&[u8]> = singles.iter().map(Vec::as_slice).collect();
    let responses = asn1::sequence(&single_refs);
    let mut exts: Vec<Vec<u8>> = Vec::new();
    if let Some(nonce) = &body.nonce {
        exts.push(asn1::sequence(&[&NONCE_OID, &asn1::octet_string(nonce)]));
    }
    if body.extended_revoke {
        exts.push(asn1::sequence(&[
            &EXTENDED_REVOKE_OID,
            &asn1::octet_string(&asn1::NULL),
        ]));
    }
    let extensions = if exts.is_empty() {
        Vec::new()
    } else {
        let refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
        asn1::tlv(context_constructed(1), &asn1::sequence(&refs))
    };
    let tbs = asn1::sequence(&[&responder_id, &produced_at, &responses, &extensions]);
    let signature = asn1::bit_string(&signer.key().sign(&tbs)?);
    let algorithm = signer.key().signature_algorithm_der();
    // OCSPResponse { status, [0] EXPLICIT ResponseBytes { OID, OCTET STRING
    // { BasicOCSPResponse { tbs, algorithm, signature, certs } } } }, written
    // outside in with the lengths counting the certs that follow.
    let basic = tbs.len() + algorithm.len() + signature.len() + signer.certs_field().len();
    let octets = asn1::header_len(basic) + basic;
    let oid = &*OCSP_BASIC_OID;
    let response_bytes = oid.len() + asn1::header_len(octets) + octets;
    let explicit = asn1::header_len(response_bytes) + response_bytes;
    let status = [asn1::TAG_ENUMERATED, 1, 0];
    let outer = status.len() + asn1::header_len(explicit) + explicit;
    let mut out = Vec::with_capacity(asn1::header_len(outer) + outer - signer.certs_field().len());
    asn1::push_header(&mut out, asn1::TAG_SEQUENCE, outer);
    out.extend_from_slice(&status);
    asn1::push_header(&mut out, context_constructed(0), explicit);
    asn1::push_header(&mut out, asn1::TAG_SEQUENCE, response_bytes);
    out.extend_from_slice(oid);
    asn1::push_header(&mut out, asn1::TAG_OCTET_STRING, octets);
    asn1::push_header(&mut out, asn1::TAG_SEQUENCE, basic);
    out.extend_from_slice(&tbs);
    out.extend_from_slice(algorithm);
    out.extend_from_slice(&signature);
    Ok(out)
}

fn single_response(a: &SingleAnswer) -> Vec<u8> {
    let next = asn1::tlv(
        context_constructed(0),
        &asn1::generalized_time(a.next_update),
    );
    asn1::sequence(&[
        &a.cert_id,
        &a.status.der(),
        &asn1::generalized_time(a.this_update),
        &next,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::SigningKey;
    use bytes::Bytes;

    #[test]
    fn error_statuses_are_five_bytes() {
        assert_eq!(ErrorStatus::MalformedRequest.der(), [0x30, 3, 0x0a, 1, 1]);
        assert_eq!(ErrorStatus::Unauthorized.der(), [0x30, 3, 0x0a, 1, 6]);
        assert_eq!(ErrorStatus::TryLater.der(), [0x30, 3, 0x0a, 1, 3]);
    }

    #[test]
    fn revoked_status_omits_unspecified_reason() {
        let with = CertStatus::Revoked {
            at: 0,
            reason: Some(Reason::KeyCompromise),
        }
        .der();
        let without = CertStatus::Revoked {
            at: 0,
            reason: None,
        }
        .der();
        assert_eq!(with[0], 0xa1);
        assert_eq!(without.len(), 2 + 17);
        assert_eq!(&with[with.len() - 5..], &[0xa0, 3, 0x0a, 1, 1]);
    }

    /// A fresh P-256 key signing itself, without certificates.
    fn test_signer() -> ResponseSigner {
        ResponseSigner::from_parts(test_key(), Bytes::new())
    }

    fn test_key() -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .expect("gen");
        SigningKey::from_pkcs8_der(pkcs8.as_ref()).expect("key")
    }

    #[test]
    fn signed_response_decodes_with_rasn() {
        let signer = test_signer();
        let serial = Serial::from_hex("1001").expect("hex");
        let body = ResponseBody {
            produced_at: 1_700_000_000,
            answers: vec![SingleAnswer {
                cert_id: cert_id_der(HashAlg::Sha256, &[1; 32], &[2; 32], &serial),
                status: CertStatus::Revoked {
                    at: 1_600_000_000,
                    reason: Some(Reason::KeyCompromise),
                },
                this_update: 1_700_000_000,
                next_update: 1_700_028_800,
            }],
            extended_revoke: true,
            nonce: None,
        };
        let der = encode_signed(&signer, &body).expect("sign");
        let resp: rasn_ocsp::OcspResponse = rasn::der::decode(&der).expect("outer");
        assert_eq!(resp.status, rasn_ocsp::OcspResponseStatus::Successful);
        let bytes = resp.bytes.expect("bytes");
        let basic: rasn_ocsp::BasicOcspResponse =
            rasn::der::decode(&bytes.response).expect("basic");
        let data = basic.tbs_response_data;
        assert_eq!(data.responses.len(), 1);
        assert_eq!(data.produced_at.timestamp(), 1_700_000_000);
        assert!(matches!(
            data.responder_id,
            rasn_ocsp::ResponderId::ByKey(_)
        ));
        let single = &data.responses[0];
        assert_eq!(single.this_update.timestamp(), 1_700_000_000);
        assert!(matches!(
            single.cert_status,
            rasn_ocsp::CertStatus::Revoked(_)
        ));
        assert!(data.response_extensions.is_some());
    }

    /// The response is written outside in around a `certs` field it does
    /// not copy: the lengths must count it, short and long forms alike.
    #[test]
    fn own_bytes_then_certs_field_form_one_well_formed_response() {
        let body = ResponseBody {
            produced_at: 1_700_000_000,
            answers: vec![SingleAnswer {
                cert_id: cert_id_der(
                    HashAlg::Sha1,
                    &[1; 20],
                    &[2; 20],
                    &Serial::from_hex("07").expect("hex"),
                ),
                status: CertStatus::Good,
                this_update: 1_700_000_000,
                next_update: 1_700_028_800,
            }],
            extended_revoke: false,
            nonce: None,
        };
        for filler in [0usize, 10, 200, 70_000] {
            let fake_cert = asn1::sequence(&[&asn1::octet_string(&vec![7u8; filler])]);
            let certs_field = Bytes::from(asn1::tlv(
                context_constructed(0),
                &asn1::sequence(&[&fake_cert]),
            ));
            let signer = ResponseSigner::from_parts(test_key(), certs_field);
            let own = encode_signed_own(&signer, &body).expect("sign");
            let der = [&own[..], &signer.certs_field()[..]].concat();
            let (outer, rest) = asn1::read_tlv(&der).expect("outer");
            assert!(
                rest.is_empty() && outer.whole.len() == der.len(),
                "{filler}"
            );
            let parts = asn1::children(outer.content).expect("outer parts");
            let explicit = asn1::children(parts[1].content).expect("[0]");
            let response_bytes = asn1::children(explicit[0].content).expect("responseBytes");
            let (basic, rest) = asn1::read_tlv(response_bytes[1].content).expect("basic");
            assert!(rest.is_empty());
            let fields = asn1::children(basic.content).expect("basic fields");
            assert_eq!(fields.len(), 4, "{filler}");
            assert_eq!(fields[3].whole, &signer.certs_field()[..]);
            let whole = encode_signed(&signer, &body).expect("sign");
            assert!(whole.ends_with(signer.certs_field()));
            let (t, rest) = asn1::read_tlv(&whole).expect("whole");
            assert!(rest.is_empty() && t.whole.len() == whole.len());
        }
    }

    #[test]
    fn header_len_matches_what_push_header_writes() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 24] {
            let mut out = Vec::new();
            asn1::push_header(&mut out, asn1::TAG_SEQUENCE, len);
            assert_eq!(asn1::header_len(len), out.len(), "{len}");
        }
    }
}
