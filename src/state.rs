//! Revocation state in memory: per issuer, serial -> status.
//!
//! Every change goes through [`IssuerState::apply`], which bumps a revision
//! number; each entry remembers the revision that last changed it, which is
//! what the OCSP cache keys on, so a change makes older signed answers
//! unreachable at once. The ledger (durable changes) sits in front of this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Who made a change: an operator's name for the admin API, or a source
/// (`index`, `upstream:<url>`, `aws-events`). Names are interned once per
/// process, so an entry carries four bytes, not a string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Author(u32);

/// The interned names (by id, and ids by name).
type AuthorTable = (Vec<Arc<str>>, HashMap<Arc<str>, u32>);

/// The interned names; index 0 is "" (a change recorded before revocd
/// recorded authors).
fn authors() -> &'static RwLock<AuthorTable> {
    static AUTHORS: OnceLock<RwLock<AuthorTable>> = OnceLock::new();
    AUTHORS.get_or_init(|| {
        let empty: Arc<str> = Arc::from("");
        RwLock::new((vec![Arc::clone(&empty)], HashMap::from([(empty, 0)])))
    })
}

impl Author {
    /// No author recorded: a change from a ledger written before authors
    /// were (shown as `unattributed`).
    pub const UNRECORDED: Author = Author(0);

    /// The author named `name` (at most 255 bytes are kept, as the ledger
    /// records them).
    pub fn named(name: &str) -> Author {
        let name = truncate_utf8(name, 255);
        if let Some(id) = authors()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(name)
        {
            return Author(*id);
        }
        let mut table = authors().write().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = table.1.get(name) {
            return Author(*id);
        }
        let id = u32::try_from(table.0.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        table.0.push(Arc::clone(&name));
        table.1.insert(name, id);
        Author(id)
    }

    /// The name as recorded ("" when none was).
    pub fn name(self) -> Arc<str> {
        authors()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(self.0 as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// The name for people: `unattributed` for a change recorded before
    /// authors were.
    pub fn shown(self) -> String {
        match self.name().as_ref() {
            "" => "unattributed".to_string(),
            n => n.to_string(),
        }
    }
}

impl std::fmt::Debug for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A certificate serial number, held as minimal two's complement content
/// octets, the same bytes a DER INTEGER carries. Lookups key on this, never on
/// raw request bytes (docs/conformance.md 7).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Box<[u8]>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SerialError {
    #[error("serial is empty")]
    Empty,
    #[error("serial is not hexadecimal")]
    NotHex,
    #[error("serial is zero")]
    Zero,
    #[error("serial is longer than 20 octets (RFC 5280 4.1.2.2)")]
    TooLong,
}

impl Serial {
    /// From INTEGER content octets, made minimal (redundant sign octets dropped).
    pub fn from_content(bytes: &[u8]) -> Self {
        let mut start = 0;
        while start + 1 < bytes.len() {
            let (a, b) = (bytes[start], bytes[start + 1]);
            if (a == 0x00 && b & 0x80 == 0) || (a == 0xff && b & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        if bytes.is_empty() {
            return Self(Box::new([0]));
        }
        Self(bytes[start..].into())
    }

    /// A certificate serial from hex (as openssl prints it: `1A2B`, optional
    /// `0x` and `:` separators). It must be positive and at most 20 octets.
    pub fn from_hex(text: &str) -> Result<Self, SerialError> {
        let cleaned: String = text
            .trim()
            .trim_start_matches("0x")
            .trim_start_matches("0X")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if cleaned.is_empty() {
            return Err(SerialError::Empty);
        }
        if !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(SerialError::NotHex);
        }
        let padded = if cleaned.len() % 2 == 1 {
            format!("0{cleaned}")
        } else {
            cleaned
        };
        let magnitude = hex::decode(padded).map_err(|_| SerialError::NotHex)?;
        if magnitude.iter().all(|b| *b == 0) {
            return Err(SerialError::Zero);
        }
        let serial = Self(crate::asn1::minimal_unsigned(&magnitude).into());
        if serial.0.len() > 20 {
            return Err(SerialError::TooLong);
        }
        Ok(serial)
    }

    /// Content octets of the INTEGER.
    pub fn content(&self) -> &[u8] {
        &self.0
    }

    pub fn is_negative(&self) -> bool {
        self.0.first().is_some_and(|b| b & 0x80 != 0)
    }

    /// Positive, non-zero and at most 20 octets: something a CA could issue.
    pub fn is_certificate_serial(&self) -> bool {
        !self.is_negative() && self.0.iter().any(|b| *b != 0) && self.0.len() <= 20
    }

    /// Uppercase hex of the value, as `openssl` prints serials.
    pub fn to_hex(&self) -> String {
        let trimmed: &[u8] = if self.0.len() > 1 && self.0[0] == 0 {
            &self.0[1..]
        } else {
            &self.0
        };
        let s = hex::encode_upper(trimmed);
        if self.is_negative() {
            format!("-{s}")
        } else {
            s
        }
    }
}

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// RFC 5280 5.3.1 CRLReason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::RemoveFromCrl,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    /// The name as written in RFC 5280.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::RemoveFromCrl => "removeFromCRL",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }

    /// Accepts the RFC 5280 name in any letter case (openssl writes `CACompromise`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What is known about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked {
        at: i64,
        reason: Reason,
        invalidity_date: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// notAfter of the certificate, when known (a revocation of a serial
    /// never registered does not know it).
    pub not_after: Option<i64>,
    pub status: Status,
    /// The issuer revision at which this entry last changed.
    pub revision: u64,
    /// Who made its last change.
    pub author: Author,
}

/// 1950-01-01T00:00:00Z: no revocation or invalidity time is earlier
/// (UTCTime's first year; no certificate in service is older).
pub const EARLIEST_TIME: i64 = -631_152_000;
/// How far in the future a revocation time may be (clock skew).
pub const FUTURE_SKEW: i64 = 300;

/// A time a revocation may carry, checked once at the edge (admin API,
/// index.txt) so that no implausible time enters the ledger. Returns the
/// field at fault and why.
pub fn check_revocation_times(
    at: i64,
    invalidity_date: Option<i64>,
    now: i64,
) -> Result<(), (&'static str, String)> {
    if at < EARLIEST_TIME {
        return Err((
            "revoked_at",
            format!("{} is before 1950-01-01", crate::clock::rfc3339(at)),
        ));
    }
    if at > now.saturating_add(FUTURE_SKEW) {
        return Err((
            "revoked_at",
            format!(
                "{} is more than 5 minutes in the future",
                crate::clock::rfc3339(at)
            ),
        ));
    }
    if let Some(t) = invalidity_date.filter(|t| *t < EARLIEST_TIME) {
        return Err((
            "invalidity_date",
            format!("{} is before 1950-01-01", crate::clock::rfc3339(t)),
        ));
    }
    Ok(())
}

/// One change to an issuer's state: what a ledger record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Register {
        serial: Serial,
        not_after: i64,
    },
    Revoke {
        serial: Serial,
        at: i64,
        reason: Reason,
        invalidity_date: Option<i64>,
    },
    /// Lift a certificateHold (RFC 5280 5.3.1 removeFromCRL).
    Release {
        serial: Serial,
    },
}

impl Change {
    pub fn serial(&self) -> &Serial {
        match self {
            Change::Register { serial, .. }
            | Change::Revoke { serial, .. }
            | Change::Release { serial } => serial,
        }
    }

    /// `register`, `revoke` or `release`: metric labels and audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Register { .. } => "register",
            Change::Revoke { .. } => "revoke",
            Change::Release { .. } => "release",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed { revision: u64 },
    Unchanged,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Conflict {
    #[error("serial {serial} is already revoked ({reason}) at {}; only keyCompromise, or a reason for an unspecified one, may replace the reason", crate::clock::rfc3339(*.at))]
    AlreadyRevoked {
        serial: Serial,
        reason: &'static str,
        at: i64,
    },
    #[error("serial {serial} is not on certificateHold, nothing to release")]
    NotOnHold { serial: Serial },
    #[error("serial {serial} is registered with notAfter {}, not {}", crate::clock::rfc3339(*.existing), crate::clock::rfc3339(*.requested))]
    NotAfterDiffers {
        serial: Serial,
        existing: i64,
        requested: i64,
    },
}

/// Buckets of change stamps per issuer (a power of two).
const STAMP_BUCKETS: usize = 4096;

/// One issuer's serials. Reads take a shared lock for a hash lookup only.
#[derive(Debug)]
pub struct IssuerState {
    entries: RwLock<HashMap<Serial, Entry>>,
    revision: AtomicU64,
    /// Per bucket of serials, a counter every change to one of them moves
    /// on, under the write lock, before the change is acknowledged.
    stamps: Box<[AtomicU64]>,
}

impl Default for IssuerState {
    fn default() -> Self {
        Self {
            entries: RwLock::default(),
            revision: AtomicU64::new(0),
            stamps: (0..STAMP_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl IssuerState {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stamp that moves on whenever the entry of the serial with INTEGER
    /// content `serial` changes (and, now
    /// and then, when another serial of its bucket does). Read it before
    /// reading the entry: whatever was derived from the entry stays valid
    /// while the stamp is the same, with no lock taken to check it.
    pub fn stamp(&self, serial: &[u8]) -> u64 {
        self.stamps[stamp_bucket(serial)].load(Ordering::Acquire)
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    pub fn lookup(&self, serial: &Serial) -> Option<Entry> {
        self.read().get(serial).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every serial known, without copying the entries (the pre-signer).
    pub fn serials(&self) -> Vec<Serial> {
        self.read().keys().cloned().collect()
    }

    /// A copy of every (serial, entry), for the CRL builder and snapshots.
    pub fn snapshot(&self) -> Vec<(Serial, Entry)> {
        self.read()
            .iter()
            .map(|(s, e)| (s.clone(), e.clone()))
            .collect()
    }

    /// What applying `change` would do, without doing it.
    pub fn check(&self, change: &Change) -> Result<Applied, Conflict> {
        let map = self.read();
        Ok(match next_entry(map.get(change.serial()), change)? {
            Some(_) => Applied::Changed {
                revision: self.revision() + 1,
            },
            None => Applied::Unchanged,
        })
    }

    /// Applies one change. Repeating a change is `Unchanged`; a change that
    /// contradicts the recorded state is a [`Conflict`].
    pub fn apply(&self, change: &Change, author: Author) -> Result<Applied, Conflict> {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let serial = change.serial();
        let Some(next) = next_entry(map.get(serial), change)? else {
            return Ok(Applied::Unchanged);
        };
        let revision = self.revision.fetch_add(1, Ordering::AcqRel) + 1;
        map.insert(
            serial.clone(),
            Entry {
                revision,
                author,
                ..next
            },
        );
        self.stamps[stamp_bucket(serial.content())].fetch_add(1, Ordering::Release);
        Ok(Applied::Changed { revision })
    }

    /// Replaces the whole state (loading a snapshot at start).
    pub fn restore(&self, entries: Vec<(Serial, Entry)>) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let base = self.revision.fetch_add(1, Ordering::AcqRel) + 1;
        map.clear();
        map.reserve(entries.len());
        for (serial, entry) in entries {
            map.insert(
                serial,
                Entry {
                    revision: base,
                    ..entry
                },
            );
        }
        for stamp in self.stamps.iter() {
            stamp.fetch_add(1, Ordering::Release);
        }
    }

    /// (good, revoked) serial counts, for metrics.
    pub fn counts(&self) -> (usize, usize) {
        let map = self.read();
        let revoked = map
            .values()
            .filter(|e| matches!(e.status, Status::Revoked { .. }))
            .count();
        (map.len() - revoked, revoked)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Serial, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn stamp_bucket(content: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in content {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize & (STAMP_BUCKETS - 1)
}

/// The entry `change` leads to from `current`, `None` when it changes nothing.
fn next_entry(current: Option<&Entry>, change: &Change) -> Result<Option<Entry>, Conflict> {
    let serial = change.serial();
    let next = match (change, current) {
        (Change::Register { not_after, .. }, None) => Entry {
            not_after: Some(*not_after),
            status: Status::Good,
            revision: 0,
            author: Author::UNRECORDED,
        },
        (Change::Register { not_after, .. }, Some(e)) => match e.not_after {
            Some(existing) if existing == *not_after => return Ok(None),
            Some(existing) => {
                return Err(Conflict::NotAfterDiffers {
                    serial: serial.clone(),
                    existing,
                    requested: *not_after,
                })
            }
            None => Entry {
                not_after: Some(*not_after),
                ..e.clone()
            },
        },
        (
            Change::Revoke {
                at,
                reason,
                invalidity_date,
                ..
            },
            current,
        ) => {
            let revoked = Status::Revoked {
                at: *at,
                reason: *reason,
                invalidity_date: *invalidity_date,
            };
            match current.map(|e| &e.status) {
                None | Some(Status::Good) => {}
                Some(s) if *s == revoked => return Ok(None),
                Some(Status::Revoked {
                    reason: old_reason,
                    at: old_at,
                    ..
                }) => {
                    // RFC 5280 5.3.1: a hold may become a permanent revocation,
                    // and a later keyCompromise may replace an earlier reason.
                    // An unspecified reason may be given one later: a
                    // revocation learned without its reason (a Private CA
                    // revocation event) takes the one the CA's call or CRL
                    // states.
                    let upgrade = (*old_reason == Reason::CertificateHold
                        && *reason != Reason::CertificateHold)
                        || (*reason == Reason::KeyCompromise
                            && *old_reason != Reason::KeyCompromise)
                        || (*old_reason == Reason::Unspecified
                            && !matches!(
                                *reason,
                                Reason::Unspecified
                                    | Reason::CertificateHold
                                    | Reason::RemoveFromCrl
                            ));
                    if !upgrade {
                        return Err(Conflict::AlreadyRevoked {
                            serial: serial.clone(),
                            reason: old_reason.name(),
                            at: *old_at,
                        });
                    }
                }
            }
            Entry {
                not_after: current.and_then(|e| e.not_after),
                status: revoked,
                revision: 0,
                author: Author::UNRECORDED,
            }
        }
        (Change::Release { .. }, Some(e))
            if matches!(
                e.status,
                Status::Revoked {
                    reason: Reason::CertificateHold,
                    ..
                }
            ) =>
        {
            Entry {
                status: Status::Good,
                ..e.clone()
            }
        }
        (Change::Release { .. }, _) => {
            return Err(Conflict::NotOnHold {
                serial: serial.clone(),
            })
        }
    };
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(h: &str) -> Serial {
        Serial::from_hex(h).expect("serial")
    }

    #[test]
    fn serials_are_canonical() {
        assert_eq!(Serial::from_content(&[0, 0, 0x7f]).content(), &[0x7f]);
        assert_eq!(Serial::from_content(&[0, 0x80]).content(), &[0, 0x80]);
        assert_eq!(Serial::from_content(&[0xff, 0xff, 0x80]).content(), &[0x80]);
        assert_eq!(s("80"), Serial::from_content(&[0, 0x80]));
        assert_eq!(s("0x00:80"), s("80"));
        assert_eq!(s("abc").to_hex(), "0ABC");
        assert!(Serial::from_content(&[0x80]).is_negative());
        assert!(!Serial::from_content(&[0]).is_certificate_serial());
        assert_eq!(Serial::from_hex("0"), Err(SerialError::Zero));
        assert_eq!(Serial::from_hex("xyz"), Err(SerialError::NotHex));
        assert_eq!(
            Serial::from_hex(&"7f".repeat(21)),
            Err(SerialError::TooLong)
        );
        assert!(Serial::from_hex(&"ff".repeat(19)).is_ok());
    }

    #[test]
    fn revision_counts_changes_and_repeats_change_nothing() {
        let st = IssuerState::new();
        let reg = Change::Register {
            serial: s("01"),
            not_after: 100,
        };
        assert_eq!(
            st.apply(&reg, Author::UNRECORDED),
            Ok(Applied::Changed { revision: 1 })
        );
        assert_eq!(st.apply(&reg, Author::UNRECORDED), Ok(Applied::Unchanged));
        let revoke = Change::Revoke {
            serial: s("01"),
            at: 50,
            reason: Reason::Superseded,
            invalidity_date: None,
        };
        assert_eq!(
            st.apply(&revoke, Author::UNRECORDED),
            Ok(Applied::Changed { revision: 2 })
        );
        assert_eq!(
            st.apply(&revoke, Author::UNRECORDED),
            Ok(Applied::Unchanged)
        );
        assert_eq!(st.revision(), 2);
        let entry = st.lookup(&s("01")).expect("entry");
        assert_eq!(entry.revision, 2);
        assert_eq!(entry.not_after, Some(100));
    }

    #[test]
    fn only_key_compromise_replaces_a_reason() {
        let st = IssuerState::new();
        let revoke = |reason| Change::Revoke {
            serial: s("02"),
            at: 10,
            reason,
            invalidity_date: None,
        };
        st.apply(&revoke(Reason::Superseded), Author::UNRECORDED)
            .expect("first");
        assert!(matches!(
            st.apply(&revoke(Reason::AffiliationChanged), Author::UNRECORDED),
            Err(Conflict::AlreadyRevoked { .. })
        ));
        assert!(matches!(
            st.apply(&revoke(Reason::KeyCompromise), Author::UNRECORDED),
            Ok(Applied::Changed { .. })
        ));
    }

    #[test]
    fn an_unspecified_reason_may_be_given_one_but_never_a_hold() {
        let st = IssuerState::new();
        let revoke = |reason| Change::Revoke {
            serial: s("04"),
            at: 10,
            reason,
            invalidity_date: None,
        };
        st.apply(&revoke(Reason::Unspecified), Author::UNRECORDED)
            .expect("revoke");
        assert!(matches!(
            st.apply(&revoke(Reason::CertificateHold), Author::UNRECORDED),
            Err(Conflict::AlreadyRevoked { .. })
        ));
        assert!(matches!(
            st.apply(&revoke(Reason::Superseded), Author::UNRECORDED),
            Ok(Applied::Changed { .. })
        ));
        // Once given, only keyCompromise replaces it.
        assert!(matches!(
            st.apply(&revoke(Reason::CessationOfOperation), Author::UNRECORDED),
            Err(Conflict::AlreadyRevoked { .. })
        ));
    }

    #[test]
    fn hold_can_be_released_or_made_permanent() {
        let st = IssuerState::new();
        let hold = Change::Revoke {
            serial: s("03"),
            at: 10,
            reason: Reason::CertificateHold,
            invalidity_date: None,
        };
        st.apply(&hold, Author::UNRECORDED).expect("hold");
        st.apply(&Change::Release { serial: s("03") }, Author::UNRECORDED)
            .expect("release");
        assert_eq!(st.lookup(&s("03")).map(|e| e.status), Some(Status::Good));
        assert!(matches!(
            st.apply(&Change::Release { serial: s("03") }, Author::UNRECORDED),
            Err(Conflict::NotOnHold { .. })
        ));
    }
}
