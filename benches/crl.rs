//! Builds and signs CRLs of 10k, 100k and 1M entries (ECDSA P-256 CA) and
//! self-checks them; reports time and size; then what reconciliation and the
//! safety gate cost at that size (reading the live CRL's entries, comparing
//! with the state). `cargo bench --bench crl` (CRL_BENCH_ENTRIES=N for one
//! size).

use std::time::Instant;

use revocd::crl::build::{self, CrlEntry, CrlParams};
use revocd::pki::{Cert, SigningKey};
use revocd::state::{Reason, Serial};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let sizes: Vec<u64> = match std::env::var("CRL_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None => vec![10_000, 100_000, 1_000_000],
    };
    let dir = tempfile::tempdir().expect("tmp");
    revocd::tools::demo::init(&revocd::tools::demo::InitOptions {
        dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:8080".into(),
        admin_listen: "127.0.0.1:9090".into(),
        force: false,
        algorithm: Default::default(),
    })
    .expect("init");
    let ca = Cert::parse(&std::fs::read(dir.path().join("ca.pem")).expect("ca")).expect("ca");
    let key = SigningKey::from_pkcs8_pem(&std::fs::read(dir.path().join("ca.key")).expect("key"))
        .expect("key");
    for n in sizes {
        one(n, &ca, &key);
    }
}

fn one(n: u64, ca: &Cert, key: &SigningKey) {
    let reasons = [
        Reason::KeyCompromise,
        Reason::Superseded,
        Reason::Unspecified,
    ];
    let entries: Vec<CrlEntry> = (0..n)
        .map(|i| CrlEntry {
            // 16-octet serials, like real CAs issue.
            serial: Serial::from_hex(&format!(
                "{:032X}",
                0x1000_0000_0000_0000_0000u128 + u128::from(i) * 7919
            ))
            .expect("hex"),
            revoked_at: 1_790_000_000 + i as i64,
            reason: reasons[(i % 3) as usize],
            invalidity_date: None,
        })
        .collect();
    let aki = build::authority_key_id(ca);
    let started = Instant::now();
    let params = CrlParams {
        issuer_name: &ca.subject_der,
        authority_key_id: &aki,
        number: 1_795_000_000,
        this_update: 1_795_000_000,
        next_update: 1_795_000_000 + 7 * 86_400,
        entries: &entries,
        distribution_point: None,
        delta_of: None,
    };
    let der = build::build(&params, key).expect("build");
    let built = started.elapsed();
    let facts = build::check_new(&der, ca, Some(1)).expect("self-check");
    let checked = started.elapsed();
    println!(
        "CRL of {} entries: built and signed in {:.2} s, self-check (parse back + verify) {:.2} s more, {} bytes ({:.1} MiB, {:.1} bytes/entry)",
        facts.n_entries,
        built.as_secs_f64(),
        (checked - built).as_secs_f64(),
        der.len(),
        der.len() as f64 / 1_048_576.0,
        der.len() as f64 / n as f64
    );
    // Reconciliation and the gate: read the live CRL's entries, compare
    // with what the state says (here: the same entries, all still revoked).
    let state: std::collections::HashMap<Serial, revocd::state::Entry> = entries
        .iter()
        .map(|e| {
            (
                e.serial.clone(),
                revocd::state::Entry {
                    not_after: None,
                    status: revocd::state::Status::Revoked {
                        at: e.revoked_at,
                        reason: e.reason,
                        invalidity_date: None,
                    },
                    revision: 1,
                    author: revocd::state::Author::UNRECORDED,
                },
            )
        })
        .collect();
    let started = Instant::now();
    let listed = build::entries_of(&der).expect("entries");
    let read = started.elapsed();
    let d = revocd::crl::gate::differences(&entries, &listed, |s| state.get(s).cloned());
    let compared = started.elapsed();
    let mut new = entries.clone();
    let kept = revocd::crl::gate::keep_listed(listed, &mut new, 0, |s| state.get(s).cloned());
    let gated = started.elapsed();
    assert!(d.is_empty() && kept.is_empty());
    println!(
        "  reconciliation: read the live CRL's entries {:.2} s, compare with the state {:.2} s; safety gate {:.2} s",
        read.as_secs_f64(),
        (compared - read).as_secs_f64(),
        (gated - compared).as_secs_f64()
    );
}
