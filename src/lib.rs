//! revocd: an OCSP responder (RFC 6960, RFC 9919 profile) answering from
//! pre-signed responses. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod asn1;
pub mod aws;
pub mod cdn;
pub mod clock;
pub mod config;
pub mod crl;
pub mod daemon;
pub mod fault;
pub mod http;
pub mod issuer;
pub mod ledger;
pub mod metrics;
pub mod ocsp;
pub mod pki;
pub mod publish;
pub mod shared;
pub mod shutdown;
pub mod sources;
pub mod state;
pub mod tools;
