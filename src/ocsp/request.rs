//! OCSP request decoding (RFC 6960 4.1, A.1; docs/conformance.md 1-11). Pure: bytes
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
/// (parameters, absent or NULL, are ignored: docs/conformance.md 7).
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
/// slashes, missing padding and the base64url alphabet (docs/conformance.md 2).
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

/// GET requests whose DER is at most this long are decoded on the stack (a
/// single-CertID request is about 80 to 120 bytes).
pub const GET_DER_INLINE: usize = 384;

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
            // In place, and falling back to allocating when it does not fit.
            for room in [384, 8] {
                let mut buf = vec![0u8; room];
                let got = decode_get_path_in(&path, &mut buf);
                assert_eq!(got.as_deref(), Ok(&der[..]), "{path} in {room}");
            }
        }
        let mut buf = [0u8; 384];
        assert_eq!(
            decode_get_path_in("MA%2", &mut buf),
            Err(RequestError::PercentEncoding { at: 2 })
        );
        assert_eq!(decode_get_path_in("//", &mut buf), Err(RequestError::Empty));
        assert_eq!(
            decode_get_path_in("M*==", &mut buf),
            Err(RequestError::Base64)
        );
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

#[cfg(test)]
mod single_tests {
    use super::*;
    use crate::asn1::{octet_string, oid, oid_content, sequence, tlv};
    use proptest::prelude::*;

    /// The parts a request is built from; some shapes the fast decoder
    /// takes, most it leaves to the full one.
    #[derive(Debug, Clone)]
    struct Shape {
        /// 0-3: a hash revocd answers for; 4: MD5.
        hash: usize,
        null_params: bool,
        name_hash: Vec<u8>,
        key_hash: Vec<u8>,
        /// INTEGER content as sent: possibly empty or not minimal.
        serial: Vec<u8>,
        cert_ids: usize,
        nonce: bool,
        critical_single_ext: bool,
        version: bool,
    }

    fn shape() -> impl Strategy<Value = Shape> {
        (
            0..5usize,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..70),
            proptest::collection::vec(any::<u8>(), 0..70),
            proptest::collection::vec(any::<u8>(), 0..24),
            1..3usize,
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.1),
            proptest::bool::weighted(0.1),
        )
            .prop_map(
                |(
                    hash,
                    null_params,
                    name_hash,
                    key_hash,
                    serial,
                    cert_ids,
                    nonce,
                    crit,
                    version,
                )| {
                    Shape {
                        hash,
                        null_params,
                        name_hash,
                        key_hash,
                        serial,
                        cert_ids,
                        nonce,
                        critical_single_ext: crit,
                        version,
                    }
                },
            )
    }

    fn build(s: &Shape) -> Vec<u8> {
        let dotted = match s.hash {
            0 => "1.3.14.3.2.26",
            1 => "2.16.840.1.101.3.4.2.1",
            2 => "2.16.840.1.101.3.4.2.2",
            3 => "2.16.840.1.101.3.4.2.3",
            _ => "1.2.840.113549.2.5",
        };
        let hash_oid = oid(&oid_content(dotted));
        let alg = if s.null_params {
            sequence(&[&hash_oid, &[0x05, 0x00]])
        } else {
            sequence(&[&hash_oid])
        };
        let cert_id = sequence(&[
            &alg,
            &octet_string(&s.name_hash),
            &octet_string(&s.key_hash),
            &tlv(0x02, &s.serial),
        ]);
        let single_ext = sequence(&[&sequence(&[
            &oid(&oid_content("1.2.3.4")),
            &[0x01, 0x01, 0xff],
            &octet_string(&[0x05, 0x00]),
        ])]);
        let one = if s.critical_single_ext {
            sequence(&[&cert_id, &tlv(0xa0, &single_ext)])
        } else {
            sequence(&[&cert_id])
        };
        let list: Vec<&[u8]> = (0..s.cert_ids).map(|_| &one[..]).collect();
        let list = sequence(&list);
        let version = tlv(0xa0, &[0x02, 0x01, 0x00]);
        let nonce = tlv(
            0xa2,
            &sequence(&[&sequence(&[
                &oid(&oid_content("1.3.6.1.5.5.7.48.1.2")),
                &octet_string(&octet_string(&[7; 16])),
            ])]),
        );
        let mut tbs: Vec<&[u8]> = Vec::new();
        if s.version {
            tbs.push(&version);
        }
        tbs.push(&list);
        if s.nonce {
            tbs.push(&nonce);
        }
        sequence(&[&sequence(&tbs)])
    }

    fn minimal(serial: &[u8]) -> bool {
        match serial {
            [] => false,
            [0x00, next, ..] => next & 0x80 != 0,
            [0xff, next, ..] => next & 0x80 == 0,
            _ => true,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the fast decoder accepts, even damaged, the full one
        /// decodes to the same single query, with no nonce and no
        /// extension: the hit path never answers what `decode_der` would
        /// refuse or read differently.
        #[test]
        fn whatever_the_fast_decoder_accepts_the_full_decoder_reads_the_same(
            s in shape(),
            flips in proptest::collection::vec((any::<usize>(), 1..=255u8), 0..3),
        ) {
            let mut der = build(&s);
            for (at, mask) in flips {
                let i = at % der.len();
                der[i] ^= mask;
            }
            if let Some(one) = decode_single(&der) {
                let full = decode_der(&der).expect("the full decoder accepts it");
                prop_assert_eq!(full.queries.len(), 1);
                prop_assert_eq!(&full.nonce, &None);
                prop_assert_eq!(&full.unknown_critical, &None);
                let q = &full.queries[0];
                prop_assert_eq!(q.hash, Some(one.hash));
                prop_assert_eq!(&q.name_hash[..], one.name_hash);
                prop_assert_eq!(&q.key_hash[..], one.key_hash);
                prop_assert_eq!(q.serial.content(), one.serial);
            }
        }

        /// The shape nearly every client sends takes the fast path.
        #[test]
        fn a_plain_single_request_is_decoded_in_place(s in shape()) {
            let plain = s.hash < 4 && s.cert_ids == 1 && !s.nonce
                && !s.critical_single_ext && !s.version && minimal(&s.serial);
            prop_assert_eq!(decode_single(&build(&s)).is_some(), plain);
        }
    }

    #[test]
    fn hash_oids_are_the_der_of_each_algorithm() {
        for alg in HashAlg::ALL {
            let dotted: Vec<String> = alg.arcs().iter().map(u32::to_string).collect();
            assert_eq!(hash_oid_content(alg), oid_content(&dotted.join(".")));
        }
    }

    #[test]
    fn lengths_must_be_der() {
        // 0x81 0x05 for a length under 128, and 0x82 0x00 0x90: not DER.
        assert_eq!(der_tlv(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5], 0x04), None);
        let mut long = vec![0x04, 0x82, 0x00, 0x90];
        long.extend([0; 0x90]);
        assert_eq!(der_tlv(&long, 0x04), None);
        let mut ok = vec![0x04, 0x81, 0x90];
        ok.extend([0; 0x90]);
        assert!(der_tlv(&ok, 0x04).is_some());
    }
}
