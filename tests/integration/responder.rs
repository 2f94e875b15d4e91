//! The responder through its one method, with an injected clock: windows,
//! single flight, shedding, and a change replacing cached answers at once.

use std::sync::Arc;

use revocd::clock::{Clock, ManualClock};
use revocd::metrics::Metrics;
use revocd::ocsp::signing::presign;
use revocd::ocsp::Why;
use revocd::ocsp::{Answer, ErrorStatus, Responder};
use revocd::pki::{Cert, HashAlg};
use revocd::state::{Change, Reason, Serial};

use crate::support::*;

struct Setup {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    responder: Arc<Responder>,
    ca: Cert,
    good: Serial,
}

fn setup(budget: Option<usize>) -> Setup {
    // The middle of the current hour: far from a window edge.
    let now = revocd::clock::SystemClock.now();
    let t0 = now - now.rem_euclid(3600) + 1800;
    let dir = demo_pki();
    let (mut config, issuers) =
        revocd::daemon::load(&dir.path().join("revocd.toml"), t0).expect("load");
    if let Some(b) = budget {
        config.ocsp.signing_budget = b;
    }
    // The initial state, as the daemon would record it from index.txt.
    for issuer in &issuers {
        let index = issuer.index.as_ref().expect("demo has an index");
        let text = std::fs::read_to_string(index).expect("index");
        for change in revocd::sources::index::parse(&text, i64::MAX).changes {
            issuer
                .state
                .apply(&change, revocd::state::Author::named("index"))
                .expect("apply");
        }
    }
    let clock = ManualClock::new(t0);
    let responder = Responder::new(
        revocd::issuer::Issuers::new(issuers),
        &config.ocsp,
        clock.clone(),
        Metrics::new(),
    );
    let ca = Cert::parse(&std::fs::read(dir.path().join("ca.pem")).expect("ca")).expect("ca");
    let good = Serial::from_hex(&serial_of(&dir.path().join("leaf-good.pem"))).expect("serial");
    Setup {
        _dir: dir,
        clock,
        responder,
        ca,
        good,
    }
}

fn signed(a: Answer) -> revocd::ocsp::Signed {
    match a {
        Answer::Signed(s) => s,
        Answer::Error(e) => panic!("expected a signed answer, got {e:?}"),
    }
}

/// Revokes the demo's good certificate (keyCompromise at `at`), acknowledged.
async fn revoke_good(s: &Setup, at: i64) {
    let revoke = Change::Revoke {
        serial: s.good.clone(),
        at,
        reason: Reason::KeyCompromise,
        invalidity_date: None,
    };
    s.responder.apply("demo", revoke).await.expect("apply");
}

fn signings(r: &Responder, why: &str) -> u64 {
    r.metrics().ocsp.signings.with_label_values(&[why]).get()
}

#[tokio::test]
async fn windows_follow_the_injected_clock_and_presigned_answers_need_no_signing() {
    let s = setup(None);
    let w = s.responder.windows();
    let current = w.at(s.clock.now());
    presign::presign_window(s.responder.signer(), current, Why::Presign).await;
    let req = revocd::tools::query::build_request(&s.ca, &s.good, HashAlg::Sha1);
    let a = signed(s.responder.respond(&req).await);
    // Signed during its window: thisUpdate is the signing time, never
    // before it (RFC 6960 4.2.2.1), and never before the window.
    assert_eq!(a.this_update, s.clock.now().max(current.start));
    assert_eq!(a.window_end, current.end);
    assert_eq!(a.next_update, a.this_update + 8 * 3600);
    assert_eq!(signings(&s.responder, "on_demand"), 0);

    // Pre-sign the next window, then cross the rollover: still no signing.
    let next = w.next(current);
    presign::presign_window(s.responder.signer(), next, Why::Presign).await;
    s.clock.set(next.start);
    let b = signed(s.responder.respond(&req).await);
    assert_eq!(b.this_update, next.start);
    assert_ne!(a.etag(), b.etag());
    assert_eq!(signings(&s.responder, "on_demand"), 0);
    let v =
        revocd::tools::query::verify(&b.to_der(), &s.ca, &s.good, s.clock.now()).expect("verify");
    assert_eq!(v.status, "good");
}

#[tokio::test]
async fn a_miss_is_signed_once_however_many_requests_wait() {
    let s = setup(None);
    // SHA-512 CertIDs are not pre-signed: every request below misses at first.
    let req = revocd::tools::query::build_request(&s.ca, &s.good, HashAlg::Sha512);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let r = Arc::clone(&s.responder);
        let req = req.clone();
        tasks.push(tokio::spawn(async move { r.respond(&req).await }));
    }
    let mut etags = std::collections::HashSet::new();
    for t in tasks {
        etags.insert(signed(t.await.expect("join")).etag());
    }
    assert_eq!(etags.len(), 1);
    assert_eq!(signings(&s.responder, "on_demand"), 1);
    let a = signed(s.responder.respond(&req).await);
    let v =
        revocd::tools::query::verify(&a.to_der(), &s.ca, &s.good, s.clock.now()).expect("verify");
    assert_eq!(v.status, "good");
}

#[tokio::test]
async fn beyond_the_signing_budget_the_answer_is_try_later() {
    let s = setup(Some(0));
    let req = revocd::tools::query::build_request(&s.ca, &s.good, HashAlg::Sha384);
    match s.responder.respond(&req).await {
        Answer::Error(ErrorStatus::TryLater) => {}
        other => panic!("expected tryLater, got {other:?}"),
    }
    assert_eq!(s.responder.metrics().ocsp.signing_shed.get(), 1);
}

#[tokio::test]
async fn a_revocation_replaces_cached_answers_at_once() {
    let s = setup(None);
    let current = s.responder.windows().at(s.clock.now());
    presign::presign_window(s.responder.signer(), current, Why::Presign).await;
    let req = revocd::tools::query::build_request(&s.ca, &s.good, HashAlg::Sha256);
    let before = signed(s.responder.respond(&req).await);
    let at = s.clock.now() - 5;
    revoke_good(&s, at).await;
    let on_demand = signings(&s.responder, "on_demand");
    let after = signed(s.responder.respond(&req).await);
    assert_ne!(before.etag(), after.etag());
    // Served from the bytes the change signed, not signed on the request.
    assert_eq!(signings(&s.responder, "on_demand"), on_demand);
    let v = revocd::tools::query::verify(&after.to_der(), &s.ca, &s.good, s.clock.now())
        .expect("verify");
    assert_eq!(v.status, "revoked");
    assert!(v.lines.iter().any(|l| l.contains("KeyCompromise")), "{v:?}");
}

#[tokio::test]
async fn absent_and_null_hash_parameters_find_the_same_issuer() {
    let s = setup(None);
    let with_null = revocd::tools::query::build_request(&s.ca, &s.good, HashAlg::Sha1);
    // The same request with the AlgorithmIdentifier's NULL parameters dropped:
    // 30 09 06 05 2b0e03021a 05 00 -> 30 07 06 05 2b0e03021a, lengths fixed up.
    let alg_null = [
        0x30u8, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
    ];
    let pos = with_null
        .windows(alg_null.len())
        .position(|w| w == alg_null)
        .expect("alg id");
    let mut absent = with_null.clone();
    absent.splice(
        pos..pos + alg_null.len(),
        [0x30, 0x07, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a],
    );
    // Four enclosing SEQUENCEs (CertID, Request, list, TBSRequest, OCSPRequest)
    // all have short-form lengths before `pos`; shrink each by 2.
    for i in [1usize, 3, 5, 7, 9] {
        absent[i] -= 2;
    }
    let a = signed(s.responder.respond(&with_null).await);
    let b = signed(s.responder.respond(&absent).await);
    assert_eq!(a.etag(), b.etag());
}

/// Each thread keeps its own copy of the pre-signed answers it served
/// (`ocsp::hot`), and what the GET paths it decoded asked. A revocation
/// acknowledged on one thread must reach every thread's copy: the threads
/// below keep theirs across the change and ask again, by DER and by path.
#[tokio::test]
async fn no_thread_serves_its_kept_answer_after_an_acknowledged_revocation() {
    let s = setup(None);
    let current = s.responder.windows().at(s.clock.now());
    presign::presign_window(s.responder.signer(), current, Why::Presign).await;
    let req = revocd::tools::query::build_request(&s.ca, &s.good, HashAlg::Sha256);
    let path = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &req);
    let now = s.clock.now();
    let (asks, answers): (Vec<_>, Vec<_>) = (0..3)
        .map(|_| {
            let (ask, asked) = std::sync::mpsc::channel::<()>();
            let (tell, told) = std::sync::mpsc::channel();
            let responder = Arc::clone(&s.responder);
            let (req, path) = (req.clone(), format!("/{path}"));
            std::thread::spawn(move || {
                for () in asked {
                    // Twice: the second comes from the thread's own copy.
                    let _ = responder.respond_hot(&req, now);
                    let _ = responder.respond_hot_path(&path, now);
                    let by_der = responder.respond_hot(&req, now).map(signed);
                    let by_path = responder.respond_hot_path(&path, now).map(signed);
                    let _ = tell.send([by_der, by_path]);
                }
            });
            (ask, told)
        })
        .unzip();
    let ask_all = || -> Vec<Option<revocd::ocsp::Signed>> {
        for a in &asks {
            a.send(()).expect("ask");
        }
        answers
            .iter()
            .flat_map(|t| t.recv().expect("answer"))
            .collect()
    };
    let before = ask_all();
    let good = before[0].clone().expect("pre-signed answer");
    assert!(before
        .iter()
        .all(|b| b.as_ref().map(|b| b.etag()) == Some(good.etag())));

    revoke_good(&s, now - 5).await;
    for after in ask_all() {
        let after = after.expect("the change's own answer, pre-signed");
        assert_ne!(after.etag(), good.etag());
        let v = revocd::tools::query::verify(&after.to_der(), &s.ca, &s.good, now).expect("verify");
        assert_eq!(v.status, "revoked");
    }
}
