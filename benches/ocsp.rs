//! OCSP hot path and signing costs. `cargo bench --bench ocsp`.
//!
//! Uses a real `revocd init` PKI (ECDSA P-256 delegated responder) loaded the
//! way `serve` loads it.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use revocd::clock::{Clock, SystemClock};
use revocd::metrics::Metrics;
use revocd::ocsp::{self, Answer, Responder};
use revocd::pki::{Cert, HashAlg};
use revocd::state::Serial;

struct Fixture {
    _dir: tempfile::TempDir,
    responder: Arc<Responder>,
    request: Vec<u8>,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let out = revocd::demo::init(&revocd::demo::InitOptions {
        dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:8080".into(),
        admin_listen: "127.0.0.1:9090".into(),
        force: false,
    })
    .expect("init");
    let (config, issuers) =
        revocd::daemon::load(&out.config, SystemClock.now()).expect("load config");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let responder = Responder::new(issuers, &config.ocsp, Arc::new(SystemClock), Metrics::new());
    let ca = Cert::parse(&std::fs::read(dir.path().join("ca.pem")).expect("ca")).expect("ca");
    let serial = Serial::from_hex(&out.good_serial).expect("serial");
    let request = revocd::query::build_request(&ca, &serial, HashAlg::Sha1);
    runtime.block_on(async {
        let now = SystemClock.now();
        ocsp::presign::presign_window(
            &responder,
            responder.windows().at(now),
            ocsp::responder::Why::Presign,
        )
        .await;
    });
    Fixture {
        _dir: dir,
        responder,
        request,
        runtime,
    }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &f.request);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("der_request", |b| {
        b.iter(|| ocsp::decode_der(std::hint::black_box(&f.request)))
    });
    g.bench_function("get_path", |b| {
        b.iter(|| ocsp::decode_get_path(std::hint::black_box(&b64)))
    });
    g.finish();

    let mut g = c.benchmark_group("respond");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cache_hit", |b| {
        b.to_async(&f.runtime).iter(|| async {
            match f.responder.respond(&f.request).await {
                Answer::Signed(s) => s,
                Answer::Error(e) => panic!("unexpected {e:?}"),
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sign");
    g.throughput(Throughput::Elements(1));
    let idx = 0;
    let window = f.responder.windows().at(SystemClock.now());
    let serials: Vec<Serial> = f.responder.issuers()[idx]
        .state
        .snapshot()
        .into_iter()
        .map(|(s, _)| s)
        .take(1)
        .collect();
    g.bench_function("ecdsa_p256_one_serial_two_hashes", |b| {
        b.iter(|| {
            f.responder
                .presign_blocking(idx, window, &serials, ocsp::responder::Why::Presign)
        })
    });
    g.finish();
}

criterion_group!(ocsp_benches, benches);
criterion_main!(ocsp_benches);
