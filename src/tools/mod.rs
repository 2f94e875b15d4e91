//! The commands and tools around the daemon: the command line
//! ([`cli`]) and what each command runs ([`commands`]), the admin API
//! client and its batch sender ([`bulk`]), `revocd query` (an OCSP client), `revocd init` (a demo PKI), and
//! `revocd crl-sync` (a CRL kept fresh on disk for nginx and HAProxy). They
//! use the daemon's codecs and clients; the daemon never calls them.

pub mod bulk;
pub mod cli;
pub mod client;
pub mod commands;
pub mod demo;
pub mod haproxy;
pub mod query;
pub mod sync;
