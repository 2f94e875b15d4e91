//! What goes on a CRL, from the state: the entries of a full CRL (of one
//! shard, when sharded) and of a delta against its base. Pure.

use super::build::{self, CrlEntry, CrlError};
use crate::state::Status;

/// Which serials a shard holds: a stable hash of the serial, modulo `n`.
pub fn shard_of(serial: &crate::state::Serial, n: u32) -> u32 {
    let h = crate::pki::HashAlg::Sha256.digest(serial.content());
    let mut a = [0u8; 8];
    a.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(a) % u64::from(n.max(1))) as u32
}

/// The entries of a full CRL from a state snapshot: every revoked serial
/// (of the shard, when sharded), except those whose certificate expired
/// before `keep_after`, the thisUpdate of the live CRL, which already carried
/// them after their expiry (docs/conformance.md 27). Sorted by serial.
pub fn select_entries(
    snapshot: Vec<(crate::state::Serial, crate::state::Entry)>,
    keep_after: Option<i64>,
    shard: Option<(u32, u32)>,
) -> Vec<CrlEntry> {
    let mut entries: Vec<CrlEntry> = snapshot
        .into_iter()
        .filter(|(serial, _)| shard.is_none_or(|(k, n)| shard_of(serial, n) == k))
        .filter_map(|(serial, e)| match e.status {
            Status::Revoked {
                at,
                reason,
                invalidity_date,
            } => {
                let expired_before_live =
                    matches!((e.not_after, keep_after), (Some(na), Some(k)) if na < k);
                (!expired_before_live).then_some(CrlEntry {
                    serial,
                    revoked_at: at,
                    reason,
                    invalidity_date,
                })
            }
            Status::Good => None,
        })
        .collect();
    entries.sort_by(|a, b| a.serial.cmp(&b.serial));
    entries
}

/// Delta entries: what `current` holds that the base CRL `base_der` does not
/// say (new revocations, changed reasons), plus removeFromCRL for serials the
/// base had on hold that are no longer revoked (RFC 5280 5.2.4, 5.3.1).
pub(super) fn delta_entries(
    base_der: &[u8],
    current: Vec<CrlEntry>,
) -> Result<Vec<CrlEntry>, CrlError> {
    let base = build::entries_of(base_der)?;
    let on_base: std::collections::HashMap<_, _> =
        base.iter().map(|e| (e.serial.clone(), e.reason)).collect();
    let now_revoked: std::collections::HashSet<_> =
        current.iter().map(|e| e.serial.clone()).collect();
    let mut out: Vec<CrlEntry> = current
        .into_iter()
        .filter(|e| on_base.get(&e.serial) != Some(&e.reason))
        .collect();
    for e in base {
        if e.reason == crate::state::Reason::CertificateHold && !now_revoked.contains(&e.serial) {
            out.push(CrlEntry {
                reason: crate::state::Reason::RemoveFromCrl,
                invalidity_date: None,
                ..e
            });
        }
    }
    Ok(out)
}
