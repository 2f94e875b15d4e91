//! Certificates, keys and hashes: everything revocd knows about X.509 and
//! signing. Private keys live only inside [`SigningKey`]; nothing prints them.

mod cert;
mod hash;
mod key;
mod keyref;
mod kind;
pub mod oids;
pub mod pkcs11;
mod signer;
mod verify;

pub use cert::{Cert, CertError};
pub use hash::HashAlg;
pub use key::{KeyError, SignError, SigningKey};
pub use keyref::KeyRef;
pub use kind::KeyKind;
pub use signer::ResponseSigner;
pub use verify::verify_signature;

pub use pkcs11::{HsmSettings, ModuleStatus as HsmStatus};

/// Each HSM module's health and counts, for the metrics scrape.
pub fn hsm_status() -> Vec<HsmStatus> {
    pkcs11::status()
}

/// Whether some key in an HSM cannot sign right now (its module is down
/// and being reconnected): answers signed before stay in use meanwhile.
pub fn any_hsm_down() -> bool {
    pkcs11::any_down()
}
