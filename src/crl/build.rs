//! CRL encoding (RFC 5280 5, BR 7.2; docs/conformance.md 22-28), written by hand on
//! `asn1`, and the self-check that parses a CRL back. Pure, no IO.

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;

use crate::asn1::{self, context_constructed, context_primitive};
use crate::pki::{Cert, SignError, SigningKey};
use crate::state::{Reason, Serial};

const EXT_AKI: &str = "2.5.29.35";
const EXT_CRL_NUMBER: &str = "2.5.29.20";
const EXT_REASON: &str = "2.5.29.21";
const EXT_INVALIDITY: &str = "2.5.29.24";
const EXT_IDP: &str = "2.5.29.28";
const EXT_DELTA: &str = "2.5.29.27";

/// CRL extensions a consumer handles (RFC 5280 5.2): a critical one not in
/// this list makes openssl refuse the CRL ("unhandled critical CRL
/// extension"). AKI, CRL number, delta indicator, IDP, freshest CRL, issuer
/// alternative name, authority information access, expiredCertsOnCRL.
const KNOWN_CRL_EXTENSIONS: [&str; 8] = [
    EXT_AKI,
    EXT_CRL_NUMBER,
    EXT_DELTA,
    EXT_IDP,
    "2.5.29.46",
    "2.5.29.18",
    "1.3.6.1.5.5.7.1.1",
    "2.5.29.60",
];
/// Entry extensions a consumer handles: reason, invalidity date, hold
/// instruction. (Certificate issuer, 2.5.29.29, means an indirect CRL,
/// which no consumer here is set up for.)
const KNOWN_ENTRY_EXTENSIONS: [&str; 3] = [EXT_REASON, EXT_INVALIDITY, "2.5.29.23"];

/// One revoked certificate on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    pub serial: Serial,
    pub revoked_at: i64,
    pub reason: Reason,
    pub invalidity_date: Option<i64>,
}

/// Everything a CRL says besides its signature.
#[derive(Debug, Clone)]
pub struct CrlParams<'a> {
    /// The CA's subject, DER, byte-identical (docs/conformance.md 22).
    pub issuer_name: &'a [u8],
    /// The CA's own subject key identifier (docs/conformance.md 25).
    pub authority_key_id: &'a [u8],
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: &'a [CrlEntry],
    /// Critical Issuing Distribution Point with this URI (sharded CRLs).
    pub distribution_point: Option<&'a str>,
    /// Critical Delta CRL Indicator naming this base CRL number.
    pub delta_of: Option<u64>,
}

/// UTCTime for 1950 through 2049, GeneralizedTime outside that range
/// (RFC 5280 4.1.2.5, 5.1.2.4).
pub fn time(unix: i64) -> Vec<u8> {
    let g = asn1::generalized_time_text(unix);
    let year: i32 = g[..4].parse().unwrap_or(0);
    if (1950..2050).contains(&year) {
        asn1::tlv(0x17, &g.as_bytes()[2..])
    } else {
        asn1::tlv(asn1::TAG_GENERALIZED_TIME, g.as_bytes())
    }
}

fn extension(oid: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    let id = asn1::oid(&asn1::oid_content(oid));
    let value = asn1::octet_string(value);
    if critical {
        asn1::sequence(&[&id, &[0x01, 0x01, 0xff], &value])
    } else {
        asn1::sequence(&[&id, &value])
    }
}

fn number(n: u64) -> Vec<u8> {
    asn1::unsigned_integer(&n.to_be_bytes())
}

/// The earliest time a CRL entry carries (revocationDate, invalidityDate):
/// 1970-01-01. RFC 5280 can say earlier (UTCTime from 1950, GeneralizedTime
/// before), but the RustCrypto `der` crate, which revocd's self-check,
/// `crl-sync` and other Rust consumers parse with, cannot read a time before
/// 1970, and a CRL they cannot read stops publishing for every entry. The
/// admin API and index.txt refuse times before 1950; this floor only moves
/// 1950-1969 times (and older ones in ledgers written before that check)
/// forward, which no certificate in service is affected by.
pub const EARLIEST_ENTRY_TIME: i64 = 0;

fn entry(e: &CrlEntry) -> Vec<u8> {
    let mut exts = Vec::new();
    if e.reason != Reason::Unspecified {
        // reasonCode is omitted for unspecified (RFC 5280 5.3.1).
        exts.push(extension(
            EXT_REASON,
            false,
            &asn1::tlv(asn1::TAG_ENUMERATED, &[e.reason.code()]),
        ));
    }
    if let Some(t) = e.invalidity_date {
        let t = t.max(EARLIEST_ENTRY_TIME);
        exts.push(extension(EXT_INVALIDITY, false, &asn1::generalized_time(t)));
    }
    let serial = asn1::integer_from_content(e.serial.content());
    let date = time(e.revoked_at.max(EARLIEST_ENTRY_TIME));
    if exts.is_empty() {
        asn1::sequence(&[&serial, &date])
    } else {
        let refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
        asn1::sequence(&[&serial, &date, &asn1::sequence(&refs)])
    }
}

/// The TBSCertList, DER.
pub fn encode_tbs(p: &CrlParams<'_>, signature_algorithm: &[u8]) -> Vec<u8> {
    let version = asn1::integer_from_content(&[1]);
    let revoked = if p.entries.is_empty() {
        // An empty CRL omits revokedCertificates (docs/conformance.md 24).
        Vec::new()
    } else {
        let entries: Vec<Vec<u8>> = p.entries.iter().map(entry).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        asn1::sequence(&refs)
    };
    let aki = asn1::sequence(&[&asn1::tlv(context_primitive(0), p.authority_key_id)]);
    let mut exts = vec![
        extension(EXT_AKI, false, &aki),
        extension(EXT_CRL_NUMBER, false, &number(p.number)),
    ];
    if let Some(base) = p.delta_of {
        exts.push(extension(EXT_DELTA, true, &number(base)));
    }
    if let Some(uri) = p.distribution_point {
        // IssuingDistributionPoint { distributionPoint [0] { fullName [0] { URI } } }
        let uri = asn1::tlv(context_primitive(6), uri.as_bytes());
        let full_name = asn1::tlv(context_constructed(0), &uri);
        let dp = asn1::tlv(context_constructed(0), &full_name);
        exts.push(extension(EXT_IDP, true, &asn1::sequence(&[&dp])));
    }
    let refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
    let extensions = asn1::tlv(context_constructed(0), &asn1::sequence(&refs));
    asn1::sequence(&[
        &version,
        signature_algorithm,
        p.issuer_name,
        &time(p.this_update),
        &time(p.next_update),
        &revoked,
        &extensions,
    ])
}

/// Encodes and signs a CRL with the CA's key.
pub fn build(p: &CrlParams<'_>, key: &SigningKey) -> Result<Vec<u8>, SignError> {
    let alg = key.signature_algorithm_der();
    let tbs = encode_tbs(p, alg);
    let sig = key.sign(&tbs)?;
    Ok(asn1::sequence(&[&tbs, alg, &asn1::bit_string(&sig)]))
}

/// What the self-check read back from a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFacts {
    /// The CRL number; numbers over 8 octets (RFC 5280 allows 20) read as
    /// `u64::MAX` here, see `number_bytes`.
    pub number: u64,
    /// The CRL number's minimal big-endian octets (at most 20).
    pub number_bytes: Vec<u8>,
    /// The first critical extension (of the CRL or an entry) that is not
    /// one consumers handle, named.
    pub unknown_critical: Option<String>,
    /// It carries an Issuing Distribution Point (a partitioned CRL).
    pub has_idp: bool,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub n_entries: usize,
    pub is_delta: bool,
    /// A delta CRL's BaseCRLNumber (minimal big-endian octets).
    pub delta_base: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CrlError {
    #[error("not a DER CRL: {0}")]
    Parse(String),
    #[error("CRL issuer is not the CA's subject")]
    Issuer,
    #[error("CRL signature does not verify with the CA's key")]
    Signature,
    #[error("CRL has no usable CRL number")]
    NoNumber,
    #[error("CRL number {new} is not greater than the live {live}")]
    NotIncreasing { new: u64, live: u64 },
}

/// Parses a CRL back and checks it against the CA: issuer, signature, CRL
/// number. Used before every publish and on every CRL read from the store.
pub fn check(der: &[u8], ca: &Cert) -> Result<CrlFacts, CrlError> {
    let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
        .map_err(|e| CrlError::Parse(e.to_string()))?;
    let tbs = &crl.tbs_cert_list;
    let issuer = tbs
        .issuer
        .to_der()
        .map_err(|e| CrlError::Parse(e.to_string()))?;
    if issuer != ca.subject_der {
        return Err(CrlError::Issuer);
    }
    let tbs_der = tbs.to_der().map_err(|e| CrlError::Parse(e.to_string()))?;
    let sig = crl.signature.raw_bytes();
    if crl.signature_algorithm != tbs.signature
        || !crate::pki::verify_signature(
            &crl.signature_algorithm.oid.to_string(),
            &ca.key_oid,
            ca.curve_oid.as_deref(),
            &ca.public_key,
            &tbs_der,
            sig,
        )
    {
        return Err(CrlError::Signature);
    }
    let mut number: Option<Vec<u8>> = None;
    let mut delta_base: Option<Vec<u8>> = None;
    let mut has_idp = false;
    let mut unknown_critical = None;
    for ext in tbs.crl_extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        match oid.as_str() {
            EXT_CRL_NUMBER => {
                number = der::asn1::Uint::from_der(ext.extn_value.as_bytes())
                    .ok()
                    .map(|u| u.as_bytes().to_vec())
                    .filter(|b| b.len() <= 20);
            }
            EXT_DELTA => {
                delta_base = Some(
                    der::asn1::Uint::from_der(ext.extn_value.as_bytes())
                        .map(|u| u.as_bytes().to_vec())
                        .unwrap_or_default(),
                )
            }
            EXT_IDP => has_idp = true,
            _ => {}
        }
        if ext.critical
            && unknown_critical.is_none()
            && !KNOWN_CRL_EXTENSIONS.contains(&oid.as_str())
        {
            unknown_critical = Some(format!("critical CRL extension {oid}"));
        }
    }
    if unknown_critical.is_none() {
        'entries: for rc in tbs.revoked_certificates.iter().flatten() {
            for ext in rc.crl_entry_extensions.iter().flatten() {
                let oid = ext.extn_id.to_string();
                if ext.critical && !KNOWN_ENTRY_EXTENSIONS.contains(&oid.as_str()) {
                    unknown_critical = Some(format!(
                        "critical entry extension {oid} (serial {})",
                        hex::encode_upper(rc.serial_number.as_bytes())
                    ));
                    break 'entries;
                }
            }
        }
    }
    let number_bytes = number.ok_or(CrlError::NoNumber)?;
    let number = if number_bytes.len() <= 8 {
        let mut a = [0u8; 8];
        a[8 - number_bytes.len()..].copy_from_slice(&number_bytes);
        u64::from_be_bytes(a)
    } else {
        u64::MAX
    };
    let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    Ok(CrlFacts {
        number,
        number_bytes,
        unknown_critical,
        has_idp,
        this_update: secs(&tbs.this_update),
        next_update: tbs.next_update.as_ref().map(secs),
        n_entries: tbs.revoked_certificates.as_ref().map_or(0, Vec::len),
        is_delta: delta_base.is_some(),
        delta_base,
    })
}

/// Orders two CRL numbers given as minimal big-endian octets.
pub fn compare_numbers(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let strip = |x: &[u8]| -> Vec<u8> { x.iter().copied().skip_while(|v| *v == 0).collect() };
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

/// The entries of a CRL (serial, date, reason), for delta CRLs.
pub fn entries_of(der: &[u8]) -> Result<Vec<CrlEntry>, CrlError> {
    let crl = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
        .map_err(|e| CrlError::Parse(e.to_string()))?;
    let mut out = Vec::new();
    for rc in crl.tbs_cert_list.revoked_certificates.iter().flatten() {
        let mut reason = Reason::Unspecified;
        let mut invalidity_date = None;
        for ext in rc.crl_entry_extensions.iter().flatten() {
            match ext.extn_id.to_string().as_str() {
                EXT_REASON => {
                    let v = ext.extn_value.as_bytes();
                    if let [0x0a, 1, code] = v {
                        reason = Reason::ALL
                            .into_iter()
                            .find(|r| r.code() == *code)
                            .unwrap_or(Reason::Unspecified);
                    }
                }
                EXT_INVALIDITY => {
                    invalidity_date =
                        der::asn1::GeneralizedTime::from_der(ext.extn_value.as_bytes())
                            .ok()
                            .map(|t| t.to_unix_duration().as_secs() as i64);
                }
                _ => {}
            }
        }
        out.push(CrlEntry {
            serial: Serial::from_content(rc.serial_number.as_bytes()),
            revoked_at: rc.revocation_date.to_unix_duration().as_secs() as i64,
            reason,
            invalidity_date,
        });
    }
    Ok(out)
}

/// The self-check before a publish: parse back, verify, and require a CRL
/// number strictly greater than the live one.
pub fn check_new(der: &[u8], ca: &Cert, live: Option<u64>) -> Result<CrlFacts, CrlError> {
    let facts = check(der, ca)?;
    if let Some(live) = live {
        if facts.number <= live {
            return Err(CrlError::NotIncreasing {
                new: facts.number,
                live,
            });
        }
    }
    Ok(facts)
}

/// The authority key identifier for CRLs of `ca`: its own SKI, or the SHA-1
/// of its public key when it has none (RFC 5280 4.2.1.2 method 1).
pub fn authority_key_id(ca: &Cert) -> Vec<u8> {
    ca.subject_key_id
        .clone()
        .unwrap_or_else(|| ca.key_hash(crate::pki::HashAlg::Sha1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_switch_to_generalized_in_2050() {
        assert_eq!(time(1_700_000_000)[0], 0x17);
        assert_eq!(time(1_700_000_000).len(), 15);
        let y2050 = crate::sources::index::parse_time("20500101000000Z").expect("2050");
        assert_eq!(time(y2050)[0], asn1::TAG_GENERALIZED_TIME);
        assert_eq!(time(y2050 - 1)[0], 0x17);
    }

    #[test]
    fn entries_omit_unspecified_reason() {
        let serial = Serial::from_hex("01").expect("hex");
        let plain = entry(&CrlEntry {
            serial: serial.clone(),
            revoked_at: 0,
            reason: Reason::Unspecified,
            invalidity_date: None,
        });
        let with = entry(&CrlEntry {
            serial,
            revoked_at: 0,
            reason: Reason::KeyCompromise,
            invalidity_date: Some(0),
        });
        assert_eq!(plain.len(), 2 + 3 + 15);
        assert!(with.len() > plain.len() + 20);
    }
}
