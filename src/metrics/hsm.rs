//! Signers and the PKCS#11 modules behind them.

use prometheus::{IntCounterVec, IntGaugeVec};

use super::Registrar;

/// Signers and the PKCS#11 modules behind them.
#[derive(Debug, Clone)]
pub struct Hsm {
    /// 1 while an issuer's signer can sign, by role (ocsp, crl); set at
    /// scrape. 0 means its HSM is down and revocd is reconnecting.
    pub signer_up: IntGaugeVec,
    /// Per PKCS#11 module, set at scrape: up, errors, reconnections and
    /// signings in flight.
    pub up: IntGaugeVec,
    pub errors: IntCounterVec,
    pub reconnects: IntCounterVec,
    pub in_flight: IntGaugeVec,
}

impl Hsm {
    pub(super) fn new(r: &Registrar) -> Self {
        Self {
            signer_up: r.gauges(
                "revocd_signer_up",
                "1 while the issuer's signer can sign (0: its HSM is down, reconnecting)",
                &["issuer", "role"],
            ),
            up: r.gauges(
                "revocd_hsm_up",
                "1 while the PKCS#11 module signs",
                &["module"],
            ),
            errors: r.counters(
                "revocd_hsm_errors_total",
                "PKCS#11 errors while signing (each marks the module down)",
                &["module"],
            ),
            reconnects: r.counters(
                "revocd_hsm_reconnects_total",
                "Times a PKCS#11 module was brought up again after an error",
                &["module"],
            ),
            in_flight: r.gauges(
                "revocd_hsm_signings_in_flight",
                "Signings inside the PKCS#11 module now (bounded by pkcs11.max-in-flight)",
                &["module"],
            ),
        }
    }
}
