//! A minimal DER writer: the building blocks the OCSP response encoder (and
//! later the CRL builder) assemble by hand, so every byte is under our control
//! (whole-second times, NULL hash parameters, certificates copied verbatim).
//!
//! Pure functions, no IO.

use time::OffsetDateTime;

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_ENUMERATED: u8 = 0x0a;
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
pub const TAG_SEQUENCE: u8 = 0x30;

/// Context-specific, constructed tag `[n]`.
pub const fn context_constructed(n: u8) -> u8 {
    0xa0 | n
}

/// Context-specific, primitive tag `[n]` (IMPLICIT on a primitive type).
pub const fn context_primitive(n: u8) -> u8 {
    0x80 | n
}

/// Appends the DER length octets for `len`.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Octets a TLV header (tag and length) for a value of `len` takes.
pub fn header_len(len: usize) -> usize {
    if len < 0x80 {
        2
    } else {
        2 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

/// Appends a TLV header: the value (`len` octets) follows separately.
pub fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    push_len(out, len);
}

/// Appends one TLV.
pub fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// One TLV as a new vector.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    push_tlv(&mut out, tag, value);
    out
}

/// A constructed TLV whose content is the concatenation of `parts`.
pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    push_len(&mut out, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(TAG_SEQUENCE, parts)
}

/// An INTEGER whose content octets are already minimal two's complement.
pub fn integer_from_content(content: &[u8]) -> Vec<u8> {
    tlv(TAG_INTEGER, content)
}

/// A non-negative INTEGER from unsigned big-endian magnitude bytes.
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    tlv(TAG_INTEGER, &minimal_unsigned(magnitude))
}

/// Minimal two's complement content octets for a non-negative magnitude.
pub fn minimal_unsigned(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match magnitude.iter().position(|b| *b != 0) {
        Some(i) => &magnitude[i..],
        None => &[],
    };
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.is_empty() || trimmed[0] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

/// An OID from its content octets (pre-encoded constants below).
pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv(TAG_OID, content)
}

pub fn octet_string(value: &[u8]) -> Vec<u8> {
    tlv(TAG_OCTET_STRING, value)
}

/// A BIT STRING with no unused bits.
pub fn bit_string(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(TAG_BIT_STRING);
    push_len(&mut out, value.len() + 1);
    out.push(0);
    out.extend_from_slice(value);
    out
}

pub const NULL: [u8; 2] = [TAG_NULL, 0];

/// GeneralizedTime `YYYYMMDDHHMMSSZ`, whole seconds, Zulu (RFC 5280 4.1.2.5.2).
pub fn generalized_time(unix: i64) -> Vec<u8> {
    tlv(TAG_GENERALIZED_TIME, &generalized_time_digits(unix))
}

pub fn generalized_time_text(unix: i64) -> String {
    generalized_time_digits(unix)
        .iter()
        .map(|b| char::from(*b))
        .collect()
}

/// The 15 characters, written digit by digit (the signing path makes three
/// per answer; `format!` cost more than the rest of the encoding).
fn generalized_time_digits(unix: i64) -> [u8; 15] {
    // Years 0001 to 9999: what four digits can say.
    let unix = unix.clamp(-62_135_596_800, 253_402_300_799);
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut out = [b'0'; 15];
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, u32::try_from(t.year()).unwrap_or(0).min(9999));
    put(4, 2, u32::from(u8::from(t.month())));
    put(6, 2, u32::from(t.day()));
    put(8, 2, u32::from(t.hour()));
    put(10, 2, u32::from(t.minute()));
    put(12, 2, u32::from(t.second()));
    out[14] = b'Z';
    out
}

/// OID content octets from its arcs.
pub fn oid_content_of_arcs(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    push_base128(&mut out, arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push_base128(&mut out, *arc);
    }
    out
}

/// Appends the content octets of the OID given in dotted form; used for
/// constants only, so a malformed literal is a programming error caught by tests.
pub fn oid_content(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    oid_content_of_arcs(&arcs)
}

fn push_base128(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    let last = tmp.len() - 1;
    for (j, b) in tmp.iter().enumerate().skip(i) {
        out.push(if j == last { *b } else { b | 0x80 });
    }
}

/// One tag-length-value read from DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The whole TLV, header included.
    pub whole: &'a [u8],
    pub content: &'a [u8],
}

/// One TLV read from the front of `input`, and the rest. Definite lengths
/// only (DER); `None` on anything malformed.
pub fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in OCSP/X.509 structures
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    let tlv = Tlv {
        tag,
        whole: &input[..end],
        content: &input[header..end],
    };
    Some((tlv, &input[end..]))
}

/// The TLVs inside a constructed value's content, in order.
pub fn children(mut content: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tlv, rest) = read_tlv(content)?;
        out.push(tlv);
        content = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_nested_tlvs() {
        let inner = integer_from_content(&[5]);
        let seq = sequence(&[&inner, &NULL]);
        let (tlv, rest) = read_tlv(&seq).expect("tlv");
        assert_eq!(
            (tlv.tag, tlv.whole.len(), rest.len()),
            (TAG_SEQUENCE, seq.len(), 0)
        );
        let kids = children(tlv.content).expect("children");
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].content, &[5]);
        assert!(read_tlv(&seq[..seq.len() - 1]).is_none());
        assert!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
    }

    use super::*;

    #[test]
    fn long_lengths_are_minimal() {
        let mut v = Vec::new();
        push_len(&mut v, 0x7f);
        assert_eq!(v, [0x7f]);
        v.clear();
        push_len(&mut v, 0x80);
        assert_eq!(v, [0x81, 0x80]);
        v.clear();
        push_len(&mut v, 0x1234);
        assert_eq!(v, [0x82, 0x12, 0x34]);
    }

    #[test]
    fn unsigned_integers_get_a_sign_octet() {
        assert_eq!(unsigned_integer(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0, 0x7f]), [2, 1, 0x7f]);
        assert_eq!(unsigned_integer(&[]), [2, 1, 0]);
    }

    #[test]
    fn generalized_time_has_whole_seconds_and_zulu() {
        assert_eq!(generalized_time_text(0), "19700101000000Z");
        assert_eq!(generalized_time_text(1_700_000_000), "20231114221320Z");
        assert_eq!(generalized_time_text(253_402_300_799), "99991231235959Z");
        assert_eq!(generalized_time_text(951_782_400), "20000229000000Z");
        assert_eq!(&generalized_time(0)[..2], &[TAG_GENERALIZED_TIME, 15]);
    }

    #[test]
    fn oid_content_matches_known_encodings() {
        // sha256: 2.16.840.1.101.3.4.2.1
        assert_eq!(
            oid_content("2.16.840.1.101.3.4.2.1"),
            [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
        );
        // sha1: 1.3.14.3.2.26
        assert_eq!(oid_content("1.3.14.3.2.26"), [0x2b, 0x0e, 0x03, 0x02, 0x1a]);
    }
}
