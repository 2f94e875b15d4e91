//! Signing: `signer` (the on-demand path of a miss, signing again after a
//! change, rotation), `cache` (the keys and expiry of answers signed on
//! demand), `tables` (the answer tables signed answers go to), `presign`
//! (the background pre-signer: each window before it starts, at its CPU
//! share), `resign` (answers a change made stale, signed again ahead of the
//! pre-signer), `rate` (the token bucket of uncommon requests), `requested` (what
//! clients asked about lately, which the pre-signer does first when it
//! cannot do everything).

mod cache;
pub mod presign;
pub mod rate;
pub mod requested;
pub mod resign;
pub mod signer;
mod tables;

pub use signer::{Class, Signer, Why};
