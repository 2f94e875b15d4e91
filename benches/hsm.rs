//! Signing through PKCS#11 (SoftHSM2) against the same key from a file, for
//! ECDSA P-256 and RSA-2048: what moving the key into an HSM costs per
//! answer. `sign_one` is one signature on one thread (latency);
//! `sign_64_on_2_threads` keeps two signings in flight, as the pre-signer's
//! workers do (throughput through the session pool).
//!
//!   cargo bench --bench hsm
//!
//! Needs `softhsm2-util` and SoftHSM2's module (scripts/test installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use revocd::pki::pkcs11::{HsmKey, HsmSettings, Pkcs11Uri};
use revocd::pki::SigningKey;

fn softhsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("SoftHSM2 is not installed; run ./scripts/test")
}

fn softhsm(args: &[&str]) {
    let out = Command::new("softhsm2-util")
        .args(args)
        .output()
        .expect("softhsm2-util (apt-get install softhsm2)");
    assert!(
        out.status.success(),
        "softhsm2-util {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn genpkey(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("openssl")
        .args(["genpkey"])
        .args(args)
        .arg("-out")
        .arg(&path)
        .output()
        .expect("openssl genpkey");
    assert!(out.status.success(), "openssl genpkey {args:?}");
    path
}

/// (name, file key, the same key in a SoftHSM token) for P-256 and RSA-2048.
fn keys(dir: &Path) -> Vec<(&'static str, SigningKey, SigningKey)> {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).expect("mkdir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\n", tokens.display()),
    )
    .expect("conf");
    // SoftHSM reads this at C_Initialize, which comes after.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    softhsm(&[
        "--init-token",
        "--free",
        "--label",
        "bench",
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]);
    std::fs::write(dir.join("pin"), "1234\n").expect("pin");
    let p256 = genpkey(
        dir,
        "p256.pem",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let rsa = genpkey(
        dir,
        "rsa.pem",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let settings = HsmSettings {
        sessions: 2,
        max_in_flight: 2,
        ..HsmSettings::default()
    };
    [("ecdsa_p256", p256, "01"), ("rsa_2048", rsa, "02")]
        .into_iter()
        .map(|(name, pem, id)| {
            let file = SigningKey::from_pkcs8_pem(&std::fs::read(&pem).expect("pem")).expect("key");
            softhsm(&[
                "--import",
                &pem.display().to_string(),
                "--token",
                "bench",
                "--label",
                name,
                "--id",
                id,
                "--pin",
                "1234",
            ]);
            let uri = Pkcs11Uri::parse(
                &format!(
                    "pkcs11:token=bench;object={name}?module-path={}&pin-source=file:pin",
                    softhsm_module().display()
                ),
                dir,
            )
            .expect("uri");
            let hsm = SigningKey::from_hsm(HsmKey::open(&uri, settings).expect("open the HSM key"));
            (name, file, hsm)
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A message the size of a ResponseData.
    let message = [0x5au8; 180];
    for (name, file, hsm) in keys(dir.path()) {
        let (file, hsm) = (Arc::new(file), Arc::new(hsm));
        let mut g = c.benchmark_group(format!("hsm_{name}"));
        g.throughput(Throughput::Elements(1));
        for (which, key) in [("file", &file), ("softhsm", &hsm)] {
            g.bench_function(format!("sign_one/{which}"), |b| {
                b.iter(|| key.sign(std::hint::black_box(&message)).expect("sign"))
            });
        }
        g.throughput(Throughput::Elements(64));
        for (which, key) in [("file", &file), ("softhsm", &hsm)] {
            g.bench_function(format!("sign_64_on_2_threads/{which}"), |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        for _ in 0..2 {
                            s.spawn(|| {
                                for _ in 0..32 {
                                    key.sign(&message).expect("sign");
                                }
                            });
                        }
                    })
                })
            });
        }
        g.finish();
    }
}

criterion_group!(hsm_benches, benches);
criterion_main!(hsm_benches);
