//! What the daemon's components share, handed to each in its constructor
//! (as Boulder passes its clock and stats) rather than reached through
//! another component: the issuers with their state (the one owner of the
//! state), the clock, the metrics registry.

use std::sync::Arc;

use crate::clock::Clock;
use crate::issuer::Issuers;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Shared {
    pub issuers: Arc<Issuers>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("issuers", &self.issuers.len())
            .finish_non_exhaustive()
    }
}
