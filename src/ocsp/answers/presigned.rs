//! An answer as the signer hands it to the tables ([`Presigned`]), and the
//! key both kinds of table index it by ([`key_hash`], [`FastHash`]).

use std::hash::{BuildHasher, Hasher};

use super::signed::Signed;
use crate::ocsp::response::CertStatus;
use crate::pki::HashAlg;
use crate::state::Serial;

/// One answer to store.
pub struct Presigned {
    pub issuer: usize,
    pub alg: HashAlg,
    pub serial: Serial,
    pub revision: u64,
    pub generation: u64,
    /// What the answer states (a file table checks it against the state).
    pub claim: CertStatus,
    /// SHA-1 of the signing key (ResponderID byKey).
    pub responder_key_sha1: [u8; 20],
    pub signed: Signed,
}

/// FNV-1a over the key's few bytes: keys are not attacker-chosen in bulk
/// (the pre-signer fills the table; a request can only look up), and a hit
/// hashes once.
#[derive(Clone, Copy, Default)]
pub struct FastHash;

impl BuildHasher for FastHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

pub struct Fnv(u64);

/// A 64-bit hash of (issuer, hash, serial): the file tables' index key.
pub fn key_hash(issuer: usize, alg: HashAlg, serial: &Serial) -> u64 {
    let mut h = FastHash.build_hasher();
    h.write(&(issuer as u16).to_le_bytes());
    h.write(&[alg as u8]);
    h.write(serial.content());
    // Mix all bits (FNV's high bits are weak for short keys).
    let mut x = h.0;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // Spread the low bits hashbrown uses for its groups.
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
