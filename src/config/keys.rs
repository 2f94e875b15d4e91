//! `[pkcs11]` and `[security]`: the limits on keys in HSMs, and what to do
//! about secret files others can read.

use super::check::Check;
use super::raw::{RawPkcs11, RawSecurity};
use crate::pki::HsmSettings;

pub(super) fn hsm(p: Option<RawPkcs11>, c: &mut Check) -> HsmSettings {
    let p = p.unwrap_or_default();
    let d = HsmSettings::default();
    let sessions = p.sessions.unwrap_or(d.sessions);
    if !(1..=256).contains(&sessions) {
        c.error("pkcs11.sessions: 1 to 256");
    }
    // One signing per session at a time: the pool sets the default.
    let max_in_flight = p.max_in_flight.unwrap_or(sessions);
    if !(1..=1024).contains(&max_in_flight) {
        c.error("pkcs11.max-in-flight: 1 to 1024");
    }
    HsmSettings {
        sessions: sessions.clamp(1, 256),
        max_in_flight: max_in_flight.clamp(1, 1024),
        retry_max: c.duration("pkcs11.retry-max", p.retry_max, "30s"),
        wait: c.duration("pkcs11.wait", p.wait, "10s"),
    }
}

/// `security.loose-secret-permissions`: true to refuse (the default).
pub(super) fn refuse_loose_secrets(s: &RawSecurity, c: &mut Check) -> bool {
    c.choice(
        "security.loose-secret-permissions",
        s.loose_secret_permissions.as_deref(),
        true,
        &[("refuse", true), ("warn", false)],
    )
}
