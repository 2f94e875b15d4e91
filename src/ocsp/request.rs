//! OCSP request decoding (RFC 6960 4.1, A.1; CONFORMANCE 1-11). Pure: bytes
//! in, a [`Request`] or a [`RequestError`] out; nothing here may panic on any
//! input (the fuzz target `ocsp_request` holds it to that).

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use rasn::types::IntegerType;

use crate::pki::HashAlg;
use crate::state::Serial;

/// RFC 9654 nonce extension, id-pkix-ocsp-nonce.
const NONCE_ARCS: &[u32] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];

/// One CertID asked about, with the hash algorithm resolved by OID
/// (parameters, absent or NULL, are ignored: CONFORMANCE 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdQuery {
    /// `None` when the OID is not one revocd answers for.
    pub hash: Option<HashAlg>,
    pub name_hash: Vec<u8>,
    pub key_hash: Vec<u8>,
    pub serial: Serial,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub queries: Vec<CertIdQuery>,
    /// The nonce extension's extnValue (the DER OCTET STRING holding the
    /// nonce), when the client sent one. Pre-produced answers ignore it
    /// (RFC 9919 3.2.1); `ocsp.nonce = "echo"` copies it verbatim.
    pub nonce: Option<Vec<u8>>,
    /// The first critical request or singleRequest extension revocd does
    /// not understand (RFC 6960 4.4), by OID.
    pub unknown_critical: Option<String>,
}

/// What RFC 9654 makes of a nonce extension's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceLength {
    /// 1 to 32 octets: a responder that supports nonces must echo it.
    Echo,
    /// 33 to 128 octets: a responder may answer without it.
    AnswerWithout,
    /// Not an OCTET STRING, empty, or over 128 octets: malformedRequest.
    Malformed,
}

/// Classifies a nonce extnValue per RFC 9654 2.1.
pub fn nonce_length(ext_value: &[u8]) -> NonceLength {
    match crate::asn1::read_tlv(ext_value) {
        Some((tlv, rest)) if tlv.tag == 0x04 && rest.is_empty() => match tlv.content.len() {
            1..=32 => NonceLength::Echo,
            33..=128 => NonceLength::AnswerWithout,
            _ => NonceLength::Malformed,
        },
        _ => NonceLength::Malformed,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request is empty")]
    Empty,
    #[error("request is not a DER OCSPRequest: {0}")]
    Der(String),
    #[error("request lists no certificates")]
    NoCertificates,
    #[error("GET path has a bad percent-escape at byte {at}")]
    PercentEncoding { at: usize },
    #[error("GET path is not base64")]
    Base64,
}

/// Decodes a DER OCSPRequest.
pub fn decode_der(bytes: &[u8]) -> Result<Request, RequestError> {
    if bytes.is_empty() {
        return Err(RequestError::Empty);
    }
    let req: rasn_ocsp::OcspRequest =
        rasn::der::decode(bytes).map_err(|e| RequestError::Der(short(&e.to_string())))?;
    let tbs = req.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(RequestError::NoCertificates);
    }
    let queries = tbs
        .request_list
        .iter()
        .map(|r| {
            let id = &r.req_cert;
            let (bytes, len) = id.serial_number.to_signed_bytes_be();
            let content = bytes.as_ref().get(..len).unwrap_or_default();
            CertIdQuery {
                hash: HashAlg::from_arcs(&id.hash_algorithm.algorithm),
                name_hash: id.issuer_name_hash.to_vec(),
                key_hash: id.issuer_key_hash.to_vec(),
                serial: Serial::from_content(content),
            }
        })
        .collect();
    let nonce = tbs.request_extensions.as_ref().and_then(|exts| {
        exts.iter()
            .find(|e| **e.extn_id == *NONCE_ARCS)
            .map(|e| e.extn_value.to_vec())
    });
    // Only the nonce is understood; a critical extension revocd does not
    // know must not be answered as if it were absent (RFC 6960 4.4).
    let request_exts = tbs.request_extensions.iter().flat_map(|e| e.iter());
    let single_exts = tbs
        .request_list
        .iter()
        .flat_map(|r| r.single_request_extensions.iter().flat_map(|e| e.iter()));
    let unknown_critical = request_exts
        .chain(single_exts)
        .find(|e| e.critical && **e.extn_id != *NONCE_ARCS)
        .map(|e| {
            e.extn_id
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".")
        });
    Ok(Request {
        queries,
        nonce,
        unknown_critical,
    })
}

/// The one CertID of a request that is nothing else: no version, requestor
/// name, extensions or signature, one CertID whose hash is one revocd
/// answers for (parameters absent or NULL). Nearly every client sends this
/// shape (openssl, browsers, nginx and HAProxy stapling). Borrowed from the
/// request bytes: the hit path decodes it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingleCertId<'a> {
    pub hash: HashAlg,
    pub name_hash: &'a [u8],
    pub key_hash: &'a [u8],
    /// The serial's INTEGER content, minimal two's complement.
    pub serial: &'a [u8],
}

/// The request's only CertID when the request has exactly the shape of
/// [`SingleCertId`] in strict DER (minimal lengths and INTEGER), else
/// `None`: then [`decode_der`] decides. Whatever this accepts, `decode_der`
/// decodes to the same one query with no nonce and no extension (a unit
/// proptest and the fuzz target `ocsp_request` hold it to that).
pub fn decode_single(der: &[u8]) -> Option<SingleCertId<'_>> {
    const SEQUENCE: u8 = 0x30;
    let request = whole(der, SEQUENCE)?; // OCSPRequest: no optionalSignature
    let tbs = whole(request, SEQUENCE)?; // TBSRequest: requestList only
    let list = whole(tbs, SEQUENCE)?;
    let one = whole(list, SEQUENCE)?; // exactly one Request
    let cert_id = whole(one, SEQUENCE)?; // no singleRequestExtensions
    let (alg, rest) = der_tlv(cert_id, SEQUENCE)?;
    let (name_hash, rest) = der_tlv(rest, 0x04)?;
    let (key_hash, rest) = der_tlv(rest, 0x04)?;
    let serial = whole(rest, 0x02)?;
    let (oid, params) = der_tlv(alg, 0x06)?;
    if !(params.is_empty() || params == [0x05, 0x00]) {
        return None;
    }
    let hash = HashAlg::ALL
        .into_iter()
        .find(|h| hash_oid_content(*h) == oid)?;
    let minimal = match serial {
        [] => false,
        [0x00, next, ..] => next & 0x80 != 0,
        [0xff, next, ..] => next & 0x80 == 0,
        _ => true,
    };
    minimal.then_some(SingleCertId {
        hash,
        name_hash,
        key_hash,
        serial,
    })
}

/// The DER content bytes of each hash's OID.
fn hash_oid_content(alg: HashAlg) -> &'static [u8] {
    match alg {
        HashAlg::Sha1 => &[0x2b, 0x0e, 0x03, 0x02, 0x1a],
        HashAlg::Sha256 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        HashAlg::Sha384 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
        HashAlg::Sha512 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
    }
}

/// The content of the one `tag` TLV that is all of `input`.
fn whole(input: &[u8], tag: u8) -> Option<&[u8]> {
    match der_tlv(input, tag)? {
        (content, []) => Some(content),
        _ => None,
    }
}

/// A `tag` TLV from the front of `input` with a DER length (the shortest
/// form, at most two length octets): its content and the rest.
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, input) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, input) = input.split_first()?;
    let (len, input) = match first {
        0..=0x7f => (usize::from(first), input),
        0x81 => {
            let (&n, rest) = input.split_first()?;
            (n >= 0x80).then_some((usize::from(n), rest))?
        }
        0x82 => {
            let (n, rest) = input.split_first_chunk::<2>()?;
            let n = usize::from(u16::from_be_bytes(*n));
            (n >= 0x100).then_some((n, rest))?
        }
        _ => return None,
    };
    (len <= input.len()).then(|| input.split_at(len))
}

/// The DER request carried in a GET path: everything after the configured
/// prefix. Percent-decodes exactly once, accepts `+ / =` raw or escaped, leading
/// slashes, missing padding and the base64url alphabet (CONFORMANCE 2).
pub fn decode_get_path(path: &str) -> Result<Vec<u8>, RequestError> {
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Err(RequestError::Empty);
    }
    // What most clients send: plain standard base64, decoded as it is.
    if !path.bytes().any(|b| matches!(b, b'%' | b'-' | b'_')) {
        return LENIENT.decode(path).map_err(|_| RequestError::Base64);
    }
    let unescaped = percent_decode(path)?;
    if unescaped.is_empty() {
        return Err(RequestError::Empty);
    }
    // base64url uses '-' and '_' where standard base64 has '+' and '/'.
    let normalised: Vec<u8> = unescaped
        .into_iter()
        .map(|b| match b {
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    LENIENT
        .decode(&normalised)
        .map_err(|_| RequestError::Base64)
}

/// [`decode_get_path`], decoding a plain base64 path (no escapes, the
/// standard alphabet: what nearly every client sends) into `buf` when it
/// fits: no allocation.
pub fn decode_get_path_in<'b>(
    path: &str,
    buf: &'b mut [u8],
) -> Result<Cow<'b, [u8]>, RequestError> {
    let plain = path.trim_start_matches('/');
    let fits = plain.len().div_ceil(4) * 3 <= buf.len();
    if plain.is_empty() || !fits || plain.bytes().any(|b| matches!(b, b'%' | b'-' | b'_')) {
        return decode_get_path(path).map(Cow::Owned);
    }
    let n = LENIENT
        .decode_slice(plain, buf)
        .map_err(|_| RequestError::Base64)?;
    Ok(Cow::Borrowed(buf.get(..n).unwrap_or_default()))
}

/// Standard base64, padding optional, trailing bits ignored.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// RFC 3986 percent-decoding, once. A `+` stays a `+`.
fn percent_decode(s: &str) -> Result<Vec<u8>, RequestError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(RequestError::PercentEncoding { at: i }),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn short(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_lengths_follow_rfc_9654() {
        let os = |n: usize| crate::asn1::octet_string(&vec![7u8; n]);
        assert_eq!(nonce_length(&os(1)), NonceLength::Echo);
        assert_eq!(nonce_length(&os(32)), NonceLength::Echo);
        assert_eq!(nonce_length(&os(33)), NonceLength::AnswerWithout);
        assert_eq!(nonce_length(&os(128)), NonceLength::AnswerWithout);
        assert_eq!(nonce_length(&os(129)), NonceLength::Malformed);
        assert_eq!(nonce_length(&os(0)), NonceLength::Malformed);
        // Raw bytes (the pre-RFC 8954 form) and trailing bytes are malformed.
        assert_eq!(nonce_length(&[1, 2, 3]), NonceLength::Malformed);
        let mut trailing = os(8);
        trailing.push(0);
        assert_eq!(nonce_length(&trailing), NonceLength::Malformed);
    }
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    /// An OCSPRequest for serial 0x1001 (SHA-1 CertID, NULL parameters),
    /// built by hand so the test does not depend on the encoder under test.
    fn request_der(alg_params_null: bool, serial: &[u8]) -> Vec<u8> {
        request_der_with(alg_params_null, &[2; 20], serial)
    }

    fn request_der_with(alg_params_null: bool, key_hash: &[u8], serial: &[u8]) -> Vec<u8> {
        use crate::asn1::*;
        let alg = if alg_params_null {
            HashAlg::Sha1.algorithm_identifier_der()
        } else {
            sequence(&[&oid(&oid_content("1.3.14.3.2.26"))])
        };
        let cert_id = sequence(&[
            &alg,
            &octet_string(&[0xff; 20]),
            &octet_string(key_hash),
            &integer_from_content(serial),
        ]);
        let request = sequence(&[&cert_id]);
        let list = sequence(&[&request]);
        let tbs = sequence(&[&list]);
        sequence(&[&tbs])
    }

    /// A DER whose base64 contains both '/' and '+' (found by search over serials).
    fn slashy_request() -> (Vec<u8>, String) {
        // 0xff bytes give "//"; the bytes fb ef be give "++++" at one of three alignments.
        for pad in 0..3 {
            let mut key_hash = vec![0u8; pad];
            key_hash.extend_from_slice(&[0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe]);
            let der = request_der_with(true, &key_hash, &[0x10, 0x01]);
            let b64 = STANDARD.encode(&der);
            if b64.contains("//") && b64.contains('+') {
                return (der, b64);
            }
        }
        panic!("no request with // and + in its base64");
    }

    #[test]
    fn decodes_certid_fields() {
        let req = decode_der(&request_der(true, &[0x10, 0x01])).expect("decode");
        assert_eq!(req.queries.len(), 1);
        let q = &req.queries[0];
        assert_eq!(q.hash, Some(HashAlg::Sha1));
        assert_eq!(q.serial, Serial::from_hex("1001").expect("hex"));
        assert_eq!(q.name_hash, vec![0xff; 20]);
        assert_eq!(req.nonce, None);
    }

    #[test]
    fn absent_and_null_hash_parameters_match_the_same_algorithm() {
        let with_null = decode_der(&request_der(true, &[1])).expect("null");
        let absent = decode_der(&request_der(false, &[1])).expect("absent");
        assert_eq!(with_null.queries, absent.queries);
    }

    #[test]
    fn get_path_variants_all_decode_to_the_same_request() {
        let (der, b64) = slashy_request();
        let escaped = b64
            .replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D");
        let lower_escaped = b64.replace('/', "%2f");
        let unpadded = b64.trim_end_matches('=').to_string();
        let url = URL_SAFE_NO_PAD.encode(&der);
        for path in [
            b64.clone(),
            escaped,
            lower_escaped,
            format!("//{b64}"),
            format!("/{b64}"),
            unpadded,
            url,
        ] {
            assert_eq!(decode_get_path(&path).as_deref(), Ok(&der[..]), "{path}");
        }
    }

    #[test]
    fn plus_is_not_a_space() {
        let (der, b64) = slashy_request();
        assert!(b64.contains('+'));
        assert_eq!(decode_get_path(&b64).expect("decode"), der);
        assert_eq!(
            decode_get_path(&b64.replace('+', " ")),
            Err(RequestError::Base64)
        );
    }

    #[test]
    fn percent_decoding_happens_once() {
        // "%252F" is "%2F" after one pass: not base64.
        assert_eq!(decode_get_path("MA%252F"), Err(RequestError::Base64));
        assert_eq!(
            decode_get_path("MA%2"),
            Err(RequestError::PercentEncoding { at: 2 })
        );
        assert_eq!(decode_get_path("//"), Err(RequestError::Empty));
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let der = request_der(true, &[0x10, 0x01]);
        for cut in 0..der.len() {
            assert!(decode_der(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_der(&[0xff; 64]).is_err());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(decode_der(&trailing).is_err());
    }

    #[test]
    fn zero_negative_and_long_serials_decode() {
        for serial in [&[0u8][..], &[0x80], &[0x7f; 21]] {
            let req = decode_der(&request_der(true, serial)).expect("decode");
            assert!(!req.queries[0].serial.is_certificate_serial());
        }
    }
}
