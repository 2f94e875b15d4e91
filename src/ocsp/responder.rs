//! The serving stack, thin, like Boulder's chain of small sources: is the
//! issuer ours (the filter, by issuerKeyHash) -> the pre-signed answer (the
//! hit path: the thread's own copy, else the window's table) -> the signer
//! (`ocsp::signing`) for anything else. A request is decoded once and its
//! answer looked up once; the HTTP layer only writes the bytes.

use std::collections::HashMap;
use std::sync::Arc;

use super::answers::hot;
use super::answers::signed::{status_row, wire_status, Signed};
use super::answers::store::AnswerStore;
use super::request;
use super::response::{CertStatus, ErrorStatus};
use super::signing::requested::Requested;
use super::signing::{Class, Signer};
use crate::clock::{Clock, Window, Windows};
use crate::config::{NonceMode, Ocsp};
use crate::issuer::{Issuer, Issuers};
use crate::ledger::ApplyError;
use crate::metrics::{tally, Metrics};
use crate::pki::HashAlg;
use crate::state::{Applied, Change, Serial};

/// What the responder answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Signed(Signed),
    Error(ErrorStatus),
}

/// What the hit path of a GET came to.
#[derive(Debug)]
pub enum Get {
    Hit(Answer),
    /// Not pre-signed (or not of the hit path's shape): the long way, from
    /// what the hit path learned ([`Responder::respond_miss`]).
    Miss(Miss),
    /// The path is not an OCSP request.
    Undecodable,
}

/// A GET the hit path did not answer, with what it already knows, so that
/// nothing is decoded or looked up twice.
#[derive(Debug)]
pub struct Miss(Missed);

#[derive(Debug)]
enum Missed {
    /// One plain CertID of an issuer of ours, its table already tried.
    Asked(hot::Asked),
    /// Any other request: its DER, decoded from the path once.
    Der(Vec<u8>),
}

/// An issuer a CertID's issuerKeyHash may point to.
#[derive(Debug)]
struct Candidate {
    issuer: usize,
    alg: HashAlg,
    name_hash: Vec<u8>,
}

pub struct Responder {
    issuers: Arc<Issuers>,
    /// issuerKeyHash -> the issuers and hash algorithms it stands for.
    by_key_hash: HashMap<Vec<u8>, Vec<Candidate>>,
    windows: Windows,
    clock: Arc<dyn Clock>,
    signer: Arc<Signer>,
    /// The signer's answer tables, read by the hit path.
    answers: Arc<AnswerStore>,
    /// What clients asked about lately, per issuer (the pre-signer's order).
    requested: Arc<[Requested]>,
    /// This responder's answers in the threads' hot answers (`hot`).
    id: u64,
    max_certs: usize,
    nonce: NonceMode,
    metrics: Metrics,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("issuers", &self.issuers.len())
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// The serving stack over `issuers`, with its signer.
    pub fn new(
        issuers: Arc<Issuers>,
        ocsp: &Ocsp,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Arc<Self> {
        let signer = Signer::new(
            Arc::clone(&issuers),
            ocsp,
            Arc::clone(&clock),
            metrics.clone(),
        );
        Self::with_signer(signer, ocsp)
    }

    /// The serving stack in front of `signer`.
    pub fn with_signer(signer: Arc<Signer>, ocsp: &Ocsp) -> Arc<Self> {
        let issuers = Arc::clone(signer.issuers());
        let metrics = signer.metrics().clone();
        let mut by_key_hash: HashMap<Vec<u8>, Vec<Candidate>> = HashMap::new();
        for (i, issuer) in issuers.iter().enumerate() {
            for alg in HashAlg::ALL {
                let (name, key) = issuer.hashes(alg);
                by_key_hash.entry(key).or_default().push(Candidate {
                    issuer: i,
                    alg,
                    name_hash: name,
                });
            }
        }
        // The series the hit path tallies (`metrics::tally`) exist from the
        // start, at zero, as the scrape adds the tallies to them.
        for status in tally::STATUSES {
            for alg in HashAlg::ALL {
                metrics
                    .ocsp
                    .answers
                    .with_label_values(&[status, alg.name()]);
            }
        }
        for method in tally::METHODS {
            metrics
                .ocsp
                .requests
                .with_label_values(&[method, "successful"]);
        }
        Arc::new(Self {
            by_key_hash,
            windows: signer.windows(),
            clock: Arc::clone(signer.clock()),
            answers: Arc::clone(signer.answers()),
            requested: Arc::clone(signer.requested_all()),
            id: hot::next_owner(),
            max_certs: ocsp.max_certs_per_request,
            nonce: ocsp.nonce,
            metrics,
            issuers,
            signer,
        })
    }

    pub fn signer(&self) -> &Arc<Signer> {
        &self.signer
    }

    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    pub fn issuer_index(&self, id: &str) -> Option<usize> {
        self.issuers.index(id)
    }

    pub fn windows(&self) -> Windows {
        self.windows
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Ready once the current window is pre-signed, or
    /// `ocsp.startup-presign` has passed.
    pub fn is_ready(&self) -> bool {
        self.signer.is_ready()
    }

    /// Applies one change straight to an issuer's state (no ledger: tests
    /// and tools) and signs that serial again at once.
    pub async fn apply(&self, issuer_id: &str, change: Change) -> Result<Applied, ApplyError> {
        self.signer.apply(issuer_id, change).await
    }

    /// The hit path alone: the answer when `der` is a single-CertID request
    /// (decoded in place, nothing allocated) whose pre-signed answer is
    /// held for the serial's current state at `now` (the clock's); `None`
    /// sends it to [`respond`](Self::respond). Never waits, never signs.
    pub fn respond_hot(&self, der: &[u8], now: i64) -> Option<Answer> {
        let asked = self.asked(der)?;
        self.presigned_hit(&asked, self.windows.at(now), now)
            .map(Answer::Signed)
    }

    /// [`respond_hot`](Self::respond_hot) for a GET path (what follows the
    /// listener's prefix). A path this thread resolved before is not
    /// decoded again ([`hot::asked`]).
    pub fn respond_hot_path(&self, path: &str, now: i64) -> Option<Answer> {
        match self.respond_get(path, now) {
            Get::Hit(answer) => Some(answer),
            Get::Miss { .. } | Get::Undecodable => None,
        }
    }

    /// The hit path of a GET: the answer, or what the long way needs (the
    /// path decoded, and whether the answer table was already looked up),
    /// so that a path is decoded once and its answer looked up once.
    pub fn respond_get(&self, path: &str, now: i64) -> Get {
        let window = self.windows.at(now);
        if let Some(asked) = hot::asked(self.id, path) {
            return match self.presigned_hit(&asked, window, now) {
                Some(hit) => Get::Hit(Answer::Signed(hit)),
                None => Get::Miss(Miss(Missed::Asked(asked))),
            };
        }
        let mut buf = [0u8; request::GET_DER_INLINE];
        let Ok(der) = request::decode_get_path_in(path, &mut buf) else {
            return Get::Undecodable;
        };
        let Some(asked) = self.asked(&der) else {
            return Get::Miss(Miss(Missed::Der(der.into_owned())));
        };
        hot::remember(self.id, path, asked);
        match self.presigned_hit(&asked, window, now) {
            Some(hit) => Get::Hit(Answer::Signed(hit)),
            None => Get::Miss(Miss(Missed::Asked(asked))),
        }
    }

    /// The long way for a GET the hit path did not answer, at `now`.
    pub async fn respond_miss(self: &Arc<Self>, miss: Miss, now: i64) -> Answer {
        match miss.0 {
            Missed::Asked(asked) => self.respond_asked(&asked, now).await,
            Missed::Der(der) => self.respond_long(&der, now).await,
        }
    }

    /// The issuer, hash and serial of a request of the plain single-CertID
    /// shape to an issuer of ours.
    fn asked(&self, der: &[u8]) -> Option<hot::Asked> {
        let one = request::decode_single(der).filter(|_| self.max_certs >= 1)?;
        let idx = self.find_issuer(one.hash, one.name_hash, one.key_hash)?;
        hot::Asked::new(idx, one.hash, one.serial)
    }

    /// Answers one DER OCSPRequest. Never signs on a cache hit.
    pub async fn respond(self: &Arc<Self>, der: &[u8]) -> Answer {
        let now = self.clock.now();
        match self.asked(der) {
            Some(asked) => match self.presigned_hit(&asked, self.windows.at(now), now) {
                Some(hit) => Answer::Signed(hit),
                None => self.respond_asked(&asked, now).await,
            },
            None => self.respond_long(der, now).await,
        }
    }

    /// A plain single-CertID request of an issuer of ours whose answer
    /// table was tried: straight to the signer, nothing decoded again.
    async fn respond_asked(self: &Arc<Self>, asked: &hot::Asked, now: i64) -> Answer {
        let serial = Serial::from_content(asked.serial());
        let queries = vec![(asked.issuer, asked.alg, serial)];
        self.answer(queries, None, now, true).await
    }

    /// The long way for any other DER OCSPRequest at `now`: decoded here,
    /// once; each CertID through the issuer filter, then the signer.
    pub async fn respond_long(self: &Arc<Self>, der: &[u8], now: i64) -> Answer {
        let window = self.windows.at(now);
        let req = match request::decode_der(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return Answer::Error(ErrorStatus::MalformedRequest);
            }
        };
        if let Some(oid) = &req.unknown_critical {
            // RFC 6960 4.4: a critical extension revocd does not understand
            // is not answered as if it were absent.
            tracing::debug!(oid, "request with an unknown critical extension");
            return Answer::Error(ErrorStatus::MalformedRequest);
        }
        if req.queries.len() > self.max_certs {
            return Answer::Error(ErrorStatus::Unauthorized);
        }
        let nonce = match (self.nonce, &req.nonce) {
            (NonceMode::Echo, Some(v)) => match request::nonce_length(v) {
                request::NonceLength::Echo => Some(v.clone()),
                request::NonceLength::AnswerWithout => None,
                request::NonceLength::Malformed => {
                    return Answer::Error(ErrorStatus::MalformedRequest)
                }
            },
            _ => None,
        };
        let mut queries = Vec::with_capacity(req.queries.len());
        for q in req.queries {
            // Filter: is this issuer ours, under a hash we answer for?
            let Some(alg) = q.hash else {
                return Answer::Error(ErrorStatus::Unauthorized);
            };
            let Some(idx) = self.find_issuer(alg, &q.name_hash, &q.key_hash) else {
                return Answer::Error(ErrorStatus::Unauthorized);
            };
            queries.push((idx, alg, q.serial));
        }
        // The hit path takes only strict single-CertID DER; a single CertID
        // in another form (absent hash parameters, a request extension) is
        // looked up in the table here, once.
        let mut table_tried = false;
        if let (None, [(idx, alg, serial)]) = (&nonce, queries.as_slice()) {
            if let Some(asked) = hot::Asked::new(*idx, *alg, serial.content()) {
                if let Some(hit) = self.presigned_hit(&asked, window, now) {
                    return Answer::Signed(hit);
                }
                table_tried = true;
            }
        }
        self.answer(queries, nonce, now, table_tried).await
    }

    /// Answers CertIDs whose issuers passed the filter: their statuses, the
    /// class of the request, then the signer (the cache, or a signature).
    async fn answer(
        self: &Arc<Self>,
        queries: Vec<(usize, HashAlg, Serial)>,
        nonce: Option<Vec<u8>>,
        now: i64,
        table_tried: bool,
    ) -> Answer {
        let window = self.windows.at(now);
        let mut class = if queries.len() > 1 {
            Class::Uncommon
        } else {
            Class::Common
        };
        let mut issuer = None;
        let mut items = Vec::with_capacity(queries.len());
        let mut job = Vec::with_capacity(queries.len());
        for (idx, alg, serial) in queries {
            // One response has one signer: all CertIDs must share the issuer.
            if issuer.is_some_and(|i| i != idx) {
                return Answer::Error(ErrorStatus::Unauthorized);
            }
            issuer = Some(idx);
            let Some((status, revision, known)) = self.signer.status_of(idx, &serial) else {
                return Answer::Error(ErrorStatus::Unauthorized);
            };
            if !known {
                class = Class::Uncommon;
            }
            self.requested[idx].mark(window.index, &serial);
            self.count_answer(&status, alg);
            items.push((serial.clone(), alg, revision));
            job.push((serial, alg, status));
        }
        let Some(issuer) = issuer else {
            return Answer::Error(ErrorStatus::MalformedRequest);
        };
        if let Some(nonce) = nonce {
            return match self
                .signer
                .sign_with_nonce(issuer, window, job, nonce)
                .await
            {
                Ok(signed) => Answer::Signed(signed),
                Err(status) => Answer::Error(status),
            };
        }
        match self
            .signer
            .answer(issuer, window, items, job, class, table_tried)
            .await
        {
            Ok(signed) => {
                let age = self.clock.now().saturating_sub(signed.this_update);
                self.metrics.ocsp.tally.age(age);
                Answer::Signed(signed)
            }
            Err(status) => Answer::Error(status),
        }
    }

    /// The hit path: one CertID of a known serial whose pre-signed answer
    /// for this state is in the window's table. Allocates the serial's
    /// lookup key only (the answer is expanded into a per-thread arena);
    /// anything else goes the long way.
    fn presigned_hit(&self, asked: &hot::Asked, window: Window, now: i64) -> Option<Signed> {
        let (idx, alg, serial) = (asked.issuer, asked.alg, asked.serial());
        let issuer = &self.issuers[idx];
        // Both before the state: a change or rotation after this point
        // moves them, so what is kept under them is never stale.
        let stamp = issuer.state.stamp(serial);
        let generation = issuer.generation();
        let hot_key = hot::Key::new(self.id, window.index, generation, idx, alg, serial);
        let (hit, status_row) = match hot_key.as_ref().and_then(|k| hot::get(k, stamp)) {
            Some(kept) => kept,
            None => {
                let owned = &Serial::from_content(serial);
                let entry = issuer.state.lookup(owned)?;
                let status = wire_status(&entry);
                let hit = self.answers.get(
                    window.index,
                    idx,
                    alg,
                    owned,
                    entry.revision,
                    generation,
                    &status,
                )?;
                let row = status_row(&status);
                if let Some(k) = hot_key {
                    hot::put(k, stamp, row, &hit);
                }
                (hit, row)
            }
        };
        self.requested[idx].mark_content(window.index, serial);
        let age = now.saturating_sub(hit.this_update);
        self.metrics.ocsp.tally.presigned_hit(status_row, alg, age);
        Some(hit)
    }

    fn count_answer(&self, status: &CertStatus, alg: HashAlg) {
        self.metrics.ocsp.tally.status(status_row(status), alg);
    }

    /// Counts one OCSP request in `revocd_ocsp_requests_total`.
    pub fn count_request(&self, method: &'static str, status: &'static str) {
        let tallied = match status {
            "successful" => tally::METHODS.iter().position(|m| *m == method),
            _ => None,
        };
        match tallied {
            Some(i) => self.metrics.ocsp.tally.success(i),
            None => self
                .metrics
                .ocsp
                .requests
                .with_label_values(&[method, status])
                .inc(),
        }
    }

    fn find_issuer(&self, alg: HashAlg, name_hash: &[u8], key_hash: &[u8]) -> Option<usize> {
        self.by_key_hash
            .get(key_hash)?
            .iter()
            .find(|c| c.alg == alg && c.name_hash == name_hash)
            .map(|c| c.issuer)
    }
}
