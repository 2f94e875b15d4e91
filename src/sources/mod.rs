//! Where revocations come from besides the admin API: OpenSSL's
//! `index.txt` ([`index`] parses, [`follow`] follows), upstream CRLs and
//! audit reports ([`upstream`]), and AWS Private CA events
//! ([`aws_events`]). Each turns what it reads into state changes and
//! submits them through the ledger (`ledger::submit_from_source`), so a
//! source's change is durable before OCSP shows it, like an operator's.

pub mod aws_events;
pub mod follow;
pub mod index;
pub mod upstream;
