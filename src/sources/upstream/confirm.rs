//! Revocations the CA's own CRL has yet to confirm. A revocation learned
//! from an unsigned signal (an AWS Private CA event) is in force at once and
//! stays in force whatever happens; the CA's signed CRL is what confirms it.
//! If the CA's CRLs do not list it within `confirm-within` (default 45
//! minutes: Private CA writes its CRL about 30 minutes after a revocation),
//! revocd says so (log, metric, alert) and keeps it revoked: an event for a
//! revocation the CA never made, or a CA whose CRLs stopped, is for a human
//! to look at.
//!
//! Kept in memory, per issuer; after a restart only revocations learned
//! since are tracked.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::state::Serial;

#[derive(Debug)]
pub struct Unconfirmed {
    /// Seconds a CRL has to list a revocation.
    within: i64,
    pending: Mutex<HashMap<String, HashMap<Serial, Pending>>>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When revocd learned of it (Unix seconds).
    since: i64,
    /// Already reported as overdue.
    reported: bool,
}

/// One issuer's revocations past the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub issuer: String,
    pub serials: Vec<Serial>,
    /// Of `serials`, those not reported before (logged once each).
    pub new: Vec<Serial>,
}

impl Unconfirmed {
    pub fn new(within_secs: i64) -> Self {
        Self {
            within: within_secs,
            pending: Mutex::default(),
        }
    }

    /// `serial` of `issuer` was revoked at `now` on a signal its CRL must
    /// confirm.
    pub fn expect(&self, issuer: &str, serial: Serial, now: i64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.entry(issuer.to_string())
            .or_default()
            .entry(serial)
            .or_insert(Pending {
                since: now,
                reported: false,
            });
    }

    /// A CRL of `issuer`'s CA, verified and applied, lists `serials`.
    pub fn listed<'a>(&self, issuer: &str, serials: impl IntoIterator<Item = &'a Serial>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = p.get_mut(issuer) {
            for s in serials {
                waiting.remove(s);
            }
        }
    }

    /// Serials still unconfirmed `within` after they were learned, per
    /// issuer (every issuer ever expected appears, with none when caught
    /// up, so its gauge goes back to 0).
    pub fn overdue(&self, now: i64) -> Vec<Overdue> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (issuer, waiting) in p.iter_mut() {
            let mut o = Overdue {
                issuer: issuer.clone(),
                serials: Vec::new(),
                new: Vec::new(),
            };
            for (serial, pending) in waiting.iter_mut() {
                if now - pending.since >= self.within {
                    o.serials.push(serial.clone());
                    if !pending.reported {
                        pending.reported = true;
                        o.new.push(serial.clone());
                    }
                }
            }
            o.serials.sort();
            o.new.sort();
            out.push(o);
        }
        out.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        out
    }

    /// How many wait for `issuer`'s CRL, overdue or not.
    pub fn waiting(&self, issuer: &str) -> usize {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.get(issuer).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(h: &str) -> Serial {
        Serial::from_hex(h).expect("hex")
    }

    #[test]
    fn a_revocation_the_crl_lists_in_time_is_never_overdue() {
        let u = Unconfirmed::new(2700);
        u.expect("pca", s("01"), 1000);
        u.expect("pca", s("02"), 1000);
        u.listed("pca", [&s("01")]);
        assert_eq!(u.waiting("pca"), 1);
        assert!(u.overdue(3699)[0].serials.is_empty());
        let late = u.overdue(3700);
        assert_eq!(late[0].serials, vec![s("02")]);
        assert_eq!(late[0].new, vec![s("02")]);
        // Reported once; still counted until a CRL lists it.
        let again = u.overdue(5000);
        assert_eq!((again[0].serials.len(), again[0].new.len()), (1, 0));
        u.listed("pca", [&s("02")]);
        assert!(u.overdue(6000)[0].serials.is_empty());
        // Another issuer's CRL confirms nothing here.
        u.expect("pca", s("03"), 6000);
        u.listed("other", [&s("03")]);
        assert_eq!(u.waiting("pca"), 1);
    }
}
