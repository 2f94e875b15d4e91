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
    serial: Serial,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let out = revocd::tools::demo::init(&revocd::tools::demo::InitOptions {
        dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:8080".into(),
        admin_listen: "127.0.0.1:9090".into(),
        force: false,
        algorithm: Default::default(),
    })
    .expect("init");
    let (config, issuers) =
        revocd::daemon::load(&out.config, SystemClock.now()).expect("load config");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let responder = Responder::new(
        revocd::issuer::Issuers::new(issuers),
        &config.ocsp,
        Arc::new(SystemClock),
        Metrics::new(),
    );
    let ca = Cert::parse(&std::fs::read(dir.path().join("ca.pem")).expect("ca")).expect("ca");
    let serial = Serial::from_hex(&out.good_serial).expect("serial");
    let request = revocd::tools::query::build_request(&ca, &serial, HashAlg::Sha1);
    runtime.block_on(async {
        let now = SystemClock.now();
        // `load` reads configuration and keys; serve's ledger fills the
        // state. Here the good certificate is registered directly.
        let change = revocd::state::Change::Register {
            serial: serial.clone(),
            not_after: now + 86_400,
        };
        responder.apply("demo", change).await.expect("register");
        ocsp::signing::presign::presign_window(
            responder.signer(),
            responder.windows().at(now),
            ocsp::Why::Presign,
        )
        .await;
    });
    Fixture {
        _dir: dir,
        responder,
        request,
        serial,
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
    // The whole hit path short of the socket, as the listener takes it: the
    // GET path (`Responder::respond_hot_path`), the responder, and the HTTP
    // response with its caching headers.
    let path = format!("/{b64}");
    let hit = |path: &str| {
        let now = SystemClock.now();
        let answer = f.responder.respond_hot_path(path, now).expect("hit");
        revocd::http::public::to_http(&answer, now, false, None)
    };
    g.bench_function("cache_hit_get_with_headers", |b| {
        b.iter(|| hit(std::hint::black_box(&path)))
    });
    // The same on every core at once, as the listener's workers: what
    // shared counters, locks and reference counts cost when the cores
    // contend for them. Time per request per thread.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    g.bench_function("cache_hit_get_with_headers_all_cores", |b| {
        b.iter_custom(|iters| {
            let started = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..iters {
                            std::hint::black_box(hit(std::hint::black_box(&path)));
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sign");
    g.throughput(Throughput::Elements(1));
    let idx = 0;
    let window = f.responder.windows().at(SystemClock.now());
    let serials = vec![f.serial.clone()];
    let signed = f
        .responder
        .signer()
        .presign_blocking(idx, window, &serials, ocsp::Why::Presign);
    assert_eq!(
        signed.len(),
        2,
        "the fixture's serial is signed under two hashes"
    );
    g.bench_function("ecdsa_p256_one_serial_two_hashes", |b| {
        b.iter(|| {
            f.responder
                .signer()
                .presign_blocking(idx, window, &serials, ocsp::Why::Presign)
        })
    });
    g.finish();

    // The raw signing rate of each key kind revocd accepts (ring, and
    // aws-lc-rs for ML-DSA, through `SigningKey`), on a message the size of a ResponseData: what the
    // signing of one answer is compared with.
    let mut g = c.benchmark_group("sign_raw");
    g.throughput(Throughput::Elements(1));
    let message = [0x5au8; 180];
    for (name, key) in raw_keys() {
        g.bench_function(name, |b| {
            b.iter(|| key.sign(std::hint::black_box(&message)))
        });
    }
    g.finish();
}

/// One key of each kind: ECDSA P-256, P-384 and Ed25519 generated by ring,
/// RSA-2048 by openssl (ring does not generate RSA keys), ML-DSA-44/65/87
/// by aws-lc-rs.
fn raw_keys() -> Vec<(&'static str, revocd::pki::SigningKey)> {
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let load = |der: &[u8]| revocd::pki::SigningKey::from_pkcs8_der(der).expect("key");
    let p256 = EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .expect("p256");
    let p384 = EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
        .expect("p384");
    let ed = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519");
    let rsa = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl genpkey");
    assert!(rsa.status.success(), "openssl genpkey failed");
    vec![
        ("ecdsa_p256", load(p256.as_ref())),
        ("ecdsa_p384", load(p384.as_ref())),
        ("ed25519", load(ed.as_ref())),
        (
            "rsa_2048",
            revocd::pki::SigningKey::from_pkcs8_pem(&rsa.stdout).expect("rsa key"),
        ),
        ("ml_dsa_44", ml_dsa(revocd::pki::KeyKind::MlDsa44)),
        ("ml_dsa_65", ml_dsa(revocd::pki::KeyKind::MlDsa65)),
        ("ml_dsa_87", ml_dsa(revocd::pki::KeyKind::MlDsa87)),
    ]
}

fn ml_dsa(kind: revocd::pki::KeyKind) -> revocd::pki::SigningKey {
    revocd::pki::SigningKey::generate_ml_dsa(kind)
        .expect("ML-DSA key")
        .0
}

criterion_group!(ocsp_benches, benches);
criterion_main!(ocsp_benches);
