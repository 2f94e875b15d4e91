//! Compact answers: a pre-signed answer stored as its differences from a
//! reference answer of the same shape. Pure, no IO.
//!
//! The answers one signer makes for one window under one hash are the same
//! bytes but for the serial, the signature and, for revoked serials, the
//! revocation details; answers of equal length line up byte for byte. So a
//! table keeps one reference answer per shape (signer, hash, status kind,
//! length) and stores each answer as the ETag's 32 raw bytes and the runs of
//! bytes where it differs from its reference: about 120 bytes for a P-256
//! answer of 284 (plus a 66-byte ETag) in full. Expanding is a copy and a
//! few patches, and gives back exactly the bytes that were signed: this is
//! a diff, it knows nothing of DER.
//!
//! ```text
//! compact := etag[32] reference:u16 runs:u16 (offset:u16 len:u16 bytes[len])*
//! ```

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use bytes::{Bytes, BytesMut};

/// The ETag as sent: `"` + 64 hex + `"`.
pub const ETAG_LEN: usize = 66;
/// A compact answer's fixed part.
pub const FIXED: usize = 32 + 2 + 2;
/// Differing bytes closer than this are sent as one run (a run costs 4).
const MERGE_GAP: usize = 4;
/// The longest answer a reference may be (offsets are u16).
pub const MAX_ANSWER: usize = u16::MAX as usize;

/// What answers must share to be compacted against one reference: a
/// signer (any number that tells signers apart), the hash, the length.
pub type Shape = (u64, u8, usize);

/// A table's reference answers, by shape.
#[derive(Debug, Default)]
pub struct References {
    list: Vec<Bytes>,
    by_shape: HashMap<Shape, u16>,
}

impl References {
    /// References read back from a file (no more are added to it).
    pub fn from_list(list: Vec<Bytes>) -> Self {
        Self {
            list,
            by_shape: HashMap::new(),
        }
    }

    pub fn get(&self, index: u16) -> Option<&Bytes> {
        self.list.get(usize::from(index))
    }

    pub fn list(&self) -> &[Bytes] {
        &self.list
    }

    /// Bytes the references take.
    pub fn bytes(&self) -> usize {
        self.list.iter().map(Bytes::len).sum()
    }
}

/// The compact form of `own` (an answer's own DER, its ETag digest `etag`)
/// against the reference of its `shape` in `refs`, which becomes `own`
/// itself when the shape is new. `None` when no reference can be had (more
/// than 65,535 shapes, or an answer over 64 KiB).
pub fn compact(
    refs: &RwLock<References>,
    shape: Shape,
    own: &[u8],
    etag: &[u8; 32],
) -> Option<Vec<u8>> {
    if own.len() > MAX_ANSWER {
        return None;
    }
    let found = {
        let r = refs.read().unwrap_or_else(PoisonError::into_inner);
        r.by_shape
            .get(&shape)
            .and_then(|i| Some((*i, r.list.get(usize::from(*i))?.clone())))
    };
    let (index, reference) = match found {
        Some(f) => f,
        None => {
            let mut r = refs.write().unwrap_or_else(PoisonError::into_inner);
            match r.by_shape.get(&shape).copied() {
                Some(i) => (i, r.list.get(usize::from(i))?.clone()),
                None => {
                    let i = u16::try_from(r.list.len()).ok()?;
                    let reference = Bytes::copy_from_slice(own);
                    r.list.push(reference.clone());
                    r.by_shape.insert(shape, i);
                    (i, reference)
                }
            }
        }
    };
    let mut out = Vec::with_capacity(FIXED + 96);
    encode(&reference, own, etag, index, &mut out);
    Some(out)
}

/// Expands `compact` against its reference in `refs`.
pub fn expand_with(refs: &RwLock<References>, compact: &[u8]) -> Option<Bytes> {
    let index = reference_of(compact)?;
    let refs = refs.read().unwrap_or_else(PoisonError::into_inner);
    expand(refs.get(index)?, compact)
}

/// Appends the compact form of `answer` (the response's own DER) against
/// `reference` (same length) to `out`. `etag` is the answer's ETag digest.
pub fn encode(
    reference: &[u8],
    answer: &[u8],
    etag: &[u8; 32],
    reference_index: u16,
    out: &mut Vec<u8>,
) {
    debug_assert_eq!(reference.len(), answer.len());
    out.extend_from_slice(etag);
    out.extend_from_slice(&reference_index.to_le_bytes());
    let count_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut runs = 0u16;
    let mut i = 0;
    let n = answer.len().min(reference.len());
    while i < n {
        if answer[i] == reference[i] {
            i += 1;
            continue;
        }
        // A run from i to the last differing byte followed by fewer than
        // MERGE_GAP equal bytes.
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < n && j - end < MERGE_GAP {
            if answer[j] != reference[j] {
                end = j + 1;
            }
            j += 1;
        }
        out.extend_from_slice(&(start as u16).to_le_bytes());
        out.extend_from_slice(&((end - start) as u16).to_le_bytes());
        out.extend_from_slice(&answer[start..end]);
        runs += 1;
        i = end;
    }
    out[count_at..count_at + 2].copy_from_slice(&runs.to_le_bytes());
}

/// The reference a compact answer names, if it is long enough to name one.
pub fn reference_of(compact: &[u8]) -> Option<u16> {
    let b = compact.get(32..34)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Bytes of the per-thread buffer answers are expanded into.
const ARENA_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Expanded answers are carved from a shared 64 KiB buffer per thread,
    /// so a hit costs a copy and a reference count, not an allocation; a
    /// buffer is freed when the last answer carved from it is dropped.
    static ARENA: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// Expands `compact` against `reference` into what `Signed` holds: the
/// quoted hex ETag, then the answer's own DER. `None` when the compact form
/// does not fit its reference (damaged bytes): never a panic.
pub fn expand(reference: &[u8], compact: &[u8]) -> Option<Bytes> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if compact.len() < FIXED {
        return None;
    }
    let total = ETAG_LEN + reference.len();
    ARENA.with(|arena| {
        let mut arena = arena.borrow_mut();
        if arena.capacity() < total {
            // Once every answer carved from the buffer has been written
            // and dropped, `reserve` takes the same buffer back: no
            // allocation and no fresh pages in the steady state.
            arena.reserve(ARENA_CHUNK.max(total));
        }
        let mut etag = [b'"'; ETAG_LEN];
        for (i, b) in compact[..32].iter().enumerate() {
            etag[1 + 2 * i] = HEX[usize::from(b >> 4)];
            etag[2 + 2 * i] = HEX[usize::from(b & 0xf)];
        }
        arena.extend_from_slice(&etag);
        arena.extend_from_slice(reference);
        let patched = patch(&mut arena[ETAG_LEN..total], compact);
        let out = arena.split_to(total);
        patched.then(|| out.freeze())
    })
}

/// Applies `compact`'s runs to `body`; false if they do not fit.
fn patch(body: &mut [u8], compact: &[u8]) -> bool {
    let runs = u16::from_le_bytes([compact[34], compact[35]]);
    let mut at = FIXED;
    for _ in 0..runs {
        let Some(head) = compact.get(at..at + 4) else {
            return false;
        };
        let offset = usize::from(u16::from_le_bytes([head[0], head[1]]));
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let (Some(bytes), Some(dest)) = (
            compact.get(at + 4..at + 4 + len),
            body.get_mut(offset..offset + len),
        ) else {
            return false;
        };
        dest.copy_from_slice(bytes);
        at += 4 + len;
    }
    at == compact.len()
}

/// The raw ETag digest from a quoted hex ETag.
pub fn etag_digest(etag: &[u8]) -> Option<[u8; 32]> {
    let hex = etag.get(1..65)?;
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *o = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn etag_of(der: &[u8]) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut e = [0u8; 32];
        e.copy_from_slice(d.as_ref());
        e
    }

    #[test]
    fn an_answer_comes_back_byte_for_byte_and_small() {
        let reference: Vec<u8> = (0..284u32).map(|i| (i * 31) as u8).collect();
        let mut answer = reference.clone();
        answer[60..63].copy_from_slice(&[1, 2, 3]); // the serial
        for b in &mut answer[212..284] {
            *b = b.wrapping_add(99); // the signature
        }
        let etag = etag_of(&answer);
        let mut compact = Vec::new();
        encode(&reference, &answer, &etag, 7, &mut compact);
        assert_eq!(compact.len(), FIXED + (4 + 3) + (4 + 72));
        assert_eq!(reference_of(&compact), Some(7));
        let got = expand(&reference, &compact).expect("expands");
        assert_eq!(&got[ETAG_LEN..], &answer[..]);
        assert_eq!(etag_digest(&got[..ETAG_LEN]), Some(etag));
        // Damaged: a run past the reference, a truncated run.
        let mut bad = compact.clone();
        bad[FIXED] = 0xff;
        bad[FIXED + 1] = 0xff;
        assert!(expand(&reference, &bad).is_none());
        assert!(expand(&reference, &compact[..compact.len() - 1]).is_none());
    }

    proptest! {
        #[test]
        fn encode_then_expand_is_the_identity(
            reference in proptest::collection::vec(any::<u8>(), 0..400),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..40),
        ) {
            let mut answer = reference.clone();
            for (at, v) in flips {
                if !answer.is_empty() {
                    let n = answer.len();
                    answer[at % n] = v;
                }
            }
            let mut compact = Vec::new();
            encode(&reference, &answer, &[5; 32], 0, &mut compact);
            let got = expand(&reference, &compact).expect("expands");
            prop_assert_eq!(&got[ETAG_LEN..], &answer[..]);
        }

        #[test]
        fn arbitrary_compact_bytes_never_panic(
            reference in proptest::collection::vec(any::<u8>(), 0..300),
            compact in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = expand(&reference, &compact);
            let _ = reference_of(&compact);
        }
    }
}
