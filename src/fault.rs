//! Fault-injection hooks for the crash tests, read only from the
//! environment and unset in production: each holds the process at one point
//! so that a test can SIGKILL it exactly there.
//!
//! - `REVOCD_FAULT_SNAPSHOT_PAUSE_MS`: between a ledger snapshot's temp file
//!   and its rename (`ledger::write_snapshot`);
//! - `REVOCD_FAULT_CRL_PUBLISH_PAUSE_MS`: between building a CRL and
//!   uploading it (`crl::CrlService`).

use std::time::Duration;

pub const SNAPSHOT_PAUSE: &str = "REVOCD_FAULT_SNAPSHOT_PAUSE_MS";
pub const CRL_PUBLISH_PAUSE: &str = "REVOCD_FAULT_CRL_PUBLISH_PAUSE_MS";

/// How long the hook named `var` holds, when set.
pub fn pause(var: &str) -> Option<Duration> {
    std::env::var(var)
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}
