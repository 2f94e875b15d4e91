//! What a CRL must list, checked against what the live CRL lists. Pure.
//!
//! - [`differences`] (reconciliation): does the live CRL miss a revocation
//!   the state holds, carry another reason, or still list a released hold?
//!   Then the state has a change the world has not seen yet, whatever the
//!   scheduler remembers (a crash inside the debounce, an index.txt line
//!   written while revocd was stopped, a failed last publish, another
//!   writer's CRL).
//! - [`keep_listed`] (the safety gate before every upload): a new full CRL
//!   never drops an unexpired serial the live CRL lists, unless the state
//!   released it from certificateHold. Such an entry is kept as the live CRL
//!   has it, so one bad entry never stops the publishing of the others.

use std::collections::HashMap;

use super::build::CrlEntry;
use crate::state::{Entry, Reason, Serial, Status};

/// How the live CRL differs from what the state says it must list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Differences {
    /// Revocations the live CRL does not list, or lists with another reason.
    pub missing: Vec<Serial>,
    /// Serials the live CRL lists that the state released from hold.
    pub released: Vec<Serial>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.released.is_empty()
    }
}

/// `expected`: what a CRL built now would list; `live`: what the live CRL
/// lists. Entries only the live CRL has that the state does not call good
/// (expired ones, serials it never knew) are the gate's business, not a
/// difference.
pub fn differences(
    expected: &[CrlEntry],
    live: &[CrlEntry],
    lookup: impl Fn(&Serial) -> Option<Entry>,
) -> Differences {
    let on_live: HashMap<&Serial, Reason> = live.iter().map(|e| (&e.serial, e.reason)).collect();
    let mut out = Differences::default();
    for e in expected {
        if on_live.get(&e.serial) != Some(&e.reason) {
            out.missing.push(e.serial.clone());
        }
    }
    for e in live {
        if e.reason == Reason::RemoveFromCrl {
            continue;
        }
        if let Some(Entry {
            status: Status::Good,
            ..
        }) = lookup(&e.serial)
        {
            if e.reason == Reason::CertificateHold {
                out.released.push(e.serial.clone());
            }
        }
    }
    out
}

/// Why a serial the live CRL lists was kept on the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub serial: Serial,
    pub why: &'static str,
}

/// The safety gate: every entry of `live` that `new` drops is put back
/// unless the state released it from certificateHold or its certificate
/// expired before `keep_after` (the live CRL's thisUpdate: it already
/// carried the entry past expiry, RFC 5280 5.1.2.6 / docs/conformance.md 27).
/// Returns what was kept; `new` stays sorted by serial.
pub fn keep_listed(
    live: Vec<CrlEntry>,
    new: &mut Vec<CrlEntry>,
    keep_after: i64,
    lookup: impl Fn(&Serial) -> Option<Entry>,
) -> Vec<Kept> {
    let listed: std::collections::HashSet<&Serial> = new.iter().map(|e| &e.serial).collect();
    let mut kept = Vec::new();
    let mut put_back = Vec::new();
    for e in live {
        if listed.contains(&e.serial) || e.reason == Reason::RemoveFromCrl {
            continue;
        }
        let why = match lookup(&e.serial) {
            Some(Entry {
                status: Status::Good,
                ..
            }) if e.reason == Reason::CertificateHold => continue,
            Some(Entry {
                not_after: Some(na),
                ..
            }) if na < keep_after => continue,
            Some(Entry {
                status: Status::Good,
                ..
            }) => "the state calls it good, but only a certificateHold may be released",
            Some(_) => "the state holds it revoked, but the new CRL left it out",
            None => "the state does not know this serial",
        };
        kept.push(Kept {
            serial: e.serial.clone(),
            why,
        });
        put_back.push(e);
    }
    if !put_back.is_empty() {
        new.extend(put_back);
        new.sort_by(|a, b| a.serial.cmp(&b.serial));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(h: &str) -> Serial {
        Serial::from_hex(h).expect("hex")
    }

    fn entry(h: &str, reason: Reason) -> CrlEntry {
        CrlEntry {
            serial: s(h),
            revoked_at: 1_700_000_000,
            reason,
            invalidity_date: None,
        }
    }

    fn state(status: Status, not_after: Option<i64>) -> Option<Entry> {
        Some(Entry {
            not_after,
            status,
            revision: 1,
            author: crate::state::Author::UNRECORDED,
        })
    }

    fn revoked(reason: Reason) -> Status {
        Status::Revoked {
            at: 1_700_000_000,
            reason,
            invalidity_date: None,
        }
    }

    #[test]
    fn a_revocation_missing_from_the_live_crl_is_a_difference() {
        let expected = vec![
            entry("01", Reason::KeyCompromise),
            entry("02", Reason::Superseded),
        ];
        let live = vec![entry("01", Reason::KeyCompromise)];
        let d = differences(&expected, &live, |_| None);
        assert_eq!(d.missing, vec![s("02")]);
        // Another reason is a difference too.
        let live = vec![
            entry("01", Reason::Unspecified),
            entry("02", Reason::Superseded),
        ];
        assert_eq!(
            differences(&expected, &live, |_| None).missing,
            vec![s("01")]
        );
        // The same list: nothing to do.
        assert!(differences(&expected, &expected, |_| None).is_empty());
    }

    #[test]
    fn a_released_hold_still_listed_is_a_difference() {
        let live = vec![entry("05", Reason::CertificateHold)];
        let d = differences(&[], &live, |_| state(Status::Good, None));
        assert_eq!(d.released, vec![s("05")]);
    }

    #[test]
    fn the_gate_keeps_what_only_a_hold_release_or_expiry_may_drop() {
        let live = vec![
            entry("01", Reason::KeyCompromise),   // state lost it
            entry("02", Reason::CertificateHold), // released: may go
            entry("03", Reason::KeyCompromise),   // expired before the live CRL: may go
            entry("04", Reason::KeyCompromise),   // still on the new CRL
            entry("06", Reason::Superseded),      // state says good: not a hold
        ];
        let mut new = vec![entry("04", Reason::KeyCompromise)];
        let kept = keep_listed(live, &mut new, 1_000, |serial| {
            match serial.to_hex().as_str() {
                "02" => state(Status::Good, None),
                "03" => state(revoked(Reason::KeyCompromise), Some(999)),
                "04" => state(revoked(Reason::KeyCompromise), None),
                "06" => state(Status::Good, Some(5_000)),
                _ => None,
            }
        });
        assert_eq!(
            kept.iter().map(|k| k.serial.to_hex()).collect::<Vec<_>>(),
            vec!["01", "06"]
        );
        assert_eq!(
            new.iter().map(|e| e.serial.to_hex()).collect::<Vec<_>>(),
            vec!["01", "04", "06"]
        );
    }
}
