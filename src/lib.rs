//! revocd: an OCSP responder (RFC 6960, RFC 9919 profile) answering from
//! pre-signed responses. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod asn1;
pub mod aws;
pub mod aws_events;
pub mod cdn;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crl;
pub mod daemon;
pub mod demo;
pub mod fault;
pub mod follow;
pub mod haproxy;
pub mod http;
pub mod index;
pub mod issuer;
pub mod ledger;
pub mod metrics;
pub mod ocsp;
pub mod pki;
pub mod publish;
pub mod query;
pub mod shutdown;
pub mod state;
pub mod sync;
pub mod upstream;
