//! The answer tables, from the signer's side: each window's table filled
//! (in memory or in its file), sealed, reloaded at start, and retired once
//! the window is over. The pre-signer and start-up call these; serving only
//! reads the tables.

use super::Signer;
use crate::clock::Window;
use crate::ocsp::answers::filetable::{CurrentSigner, IssuerRef};
use crate::ocsp::answers::presigned::Presigned;
use crate::ocsp::answers::signed::wire_status;
use crate::pki::HashAlg;
use crate::state::Serial;

impl Signer {
    /// Keeps answers pre-signed for `window` in its table.
    pub fn store(&self, window: Window, signed: Vec<Presigned>) {
        self.answers.insert(window, signed);
    }

    /// Sizes `window`'s answer table for `serials` serials under every
    /// pre-signed hash, before the pre-signer fills it.
    pub fn reserve_window(&self, window: Window, serials: usize) {
        self.answers
            .reserve(window, serials * self.presign_hashes.len());
    }

    /// Keeps pre-signed answers in one file per window in `dir` (see
    /// `filetable`); call before the pre-signer starts.
    pub fn use_answer_files(&self, dir: std::path::PathBuf) {
        let issuers = self
            .issuers
            .iter()
            .map(|i| {
                let mut key_sha1 = [0u8; 20];
                let (_, key) = i.hashes(HashAlg::Sha1);
                if let Some(k) = key.get(..20) {
                    key_sha1.copy_from_slice(k);
                }
                IssuerRef {
                    id: i.id.clone(),
                    key_sha1,
                }
            })
            .collect();
        self.answers.use_files(dir, issuers);
    }

    /// Loads the answer table files of the current and next window that
    /// still hold for the state and signers (blocking IO); returns the
    /// answers loaded.
    pub fn load_answer_files(&self) -> usize {
        let current = self.windows.at(self.clock.now());
        let windows = [current, self.windows.next(current)];
        let signer_now = |idx: usize| {
            let i = self.issuers.get(idx)?;
            let signer = i.signer();
            let mut responder_key_sha1 = [0u8; 20];
            responder_key_sha1.copy_from_slice(signer.key_hash().get(..20)?);
            Some(CurrentSigner {
                generation: i.generation(),
                responder_key_sha1,
                certs: signer.certs_field().clone(),
            })
        };
        let claim_now = |idx: usize, serial: &Serial| {
            self.issuers
                .get(idx)?
                .state
                .lookup(serial)
                .map(|e| wire_status(&e))
        };
        let results = self.answers.load_files(&windows, &signer_now, &claim_now);
        let mut answers = 0;
        for (_, r) in results {
            match r {
                Ok(loaded) => answers += loaded.answers,
                Err(_) => self.metrics.ocsp.answer_files_refused.inc(),
            }
        }
        answers
    }

    /// Seals `window`'s answer table file, if one is being written
    /// (blocking IO).
    pub fn seal_window(&self, window: Window) {
        self.answers.seal(window.index);
    }

    /// Whether `window` already holds an answer for `serial` of `issuer`
    /// under every pre-signed hash (a table loaded at start).
    pub fn presigned_already(&self, window: Window, issuer: usize, serial: &Serial) -> bool {
        self.presign_hashes
            .iter()
            .all(|alg| self.answers.contains(window.index, issuer, *alg, serial))
    }

    /// Drops the answer tables of windows that are over (the previous
    /// window's stays while an HSM signer is down: still valid answers).
    pub fn retire_windows(&self) -> usize {
        let current = self.windows.at(self.clock.now()).index;
        self.answers.retire(current, crate::pki::any_hsm_down())
    }
}
