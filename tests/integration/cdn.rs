//! CDN purge on revocation, against moto's CloudFront (which records the
//! paths of each invalidation): a revocation through the API, a release,
//! and a revocation from index.txt each invalidate the serial's GET paths
//! (SHA-1 and SHA-256 CertIDs, NULL and absent parameters, plain and
//! %-encoded), within seconds of the acknowledgement.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use revocd::state::Serial;

use crate::support::*;

pub(crate) fn cloudfront(port: u16, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cloudfront.py");
    let out = run(Command::new(python())
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args));
    let t = text(&out);
    assert!(out.status.success(), "cloudfront.py {args:?}: {t}");
    t
}

/// Every invalidated path so far.
pub(crate) fn invalidated(port: u16, dist: &str) -> Vec<String> {
    cloudfront(port, &["paths", dist])
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, p)| p.to_string()))
        .collect()
}

#[test]
fn every_acknowledged_revocation_or_release_invalidates_the_serials_get_paths() {
    let dir = demo_pki();
    let p = dir.path();
    let moto = moto();
    let dist = cloudfront(moto.port, &["create"]).trim().to_string();
    let config = p.join("revocd.toml");
    let cfg = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{cfg}\n[cdn]\ncloudfront-distribution = \"{dist}\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\nbatch = \"200ms\"\n",
            moto.port
        ),
    )
    .expect("config");
    let d = Daemon::start_with(&config, &MOTO_ENV, true);
    let ca = load_cert(&p.join("ca.pem"));
    let tok = token(p);

    // Through the API.
    let serial = revocd::state::Serial::from_hex("5ACDF00D").expect("hex");
    let want = revocd::cdn::paths::get_paths("/", &ca, &serial);
    assert_eq!(want.len(), 8, "{want:?}");
    let started = Instant::now();
    revoke(&d, &tok, "5ACDF00D", "certificateHold");
    eventually(WAIT_SECS, "the serial's paths invalidated", || {
        let got = invalidated(moto.port, &dist);
        want.iter().all(|w| got.contains(w)).then_some(())
    });
    eprintln!(
        "revocation to invalidation seen in moto: {:?}",
        started.elapsed()
    );
    // Observed once CloudFront has answered, which is after moto records it.
    metric_reaches(
        &d,
        "revocd_cdn_revocation_to_invalidation_seconds_count",
        1.0,
    );

    // A release is a change a CDN may hold an old answer for, too.
    let before = invalidated(moto.port, &dist).len();
    revoke(&d, &tok, "5ACDF00D", "removeFromCRL");
    eventually(WAIT_SECS, "the release invalidated", || {
        (invalidated(moto.port, &dist).len() >= before + 8).then_some(())
    });

    // From another source: index.txt, as `openssl ca -revoke` writes it.
    let good = revocd::state::Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("s");
    let index = std::fs::read_to_string(p.join("index.txt")).expect("index");
    let hex = good.to_hex();
    let revoked_index: String = index
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() >= 6 && f[3].eq_ignore_ascii_case(&hex) {
                format!(
                    "R\t{}\t261201000000Z,superseded\t{}\t{}\t{}\n",
                    f[1], f[3], f[4], f[5]
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(p.join("index.txt"), revoked_index).expect("index");
    let want = revocd::cdn::paths::get_paths("/", &ca, &good);
    eventually(WAIT_SECS, "the index revocation invalidated", || {
        let got = invalidated(moto.port, &dist);
        want.iter().all(|w| got.contains(w)).then_some(())
    });
    assert_eq!(metric(&d, "revocd_cdn_invalidation_errors_total"), 0.0);
}

#[test]
fn purges_are_retried_through_cloudfront_errors_and_a_backlog_over_the_limit_becomes_one_wildcard()
{
    let dir = demo_pki();
    let p = dir.path();
    let moto = moto();
    let dist = cloudfront(moto.port, &["create"]).trim().to_string();
    // CloudFront answering 500 at first.
    let proxy = fault_proxy(moto.port);
    proxy.mode.store(FAIL, std::sync::atomic::Ordering::SeqCst);
    let config = p.join("revocd.toml");
    let cfg = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{cfg}\n[cdn]\ncloudfront-distribution = \"{dist}\"\nendpoint = \"http://127.0.0.1:{}\"\nbatch = \"1s\"\nmax-paths-in-progress = 12\n",
            proxy.port
        ),
    )
    .expect("config");
    let d = Daemon::start_with(&config, &MOTO_ENV, true);
    let tok = token(p);
    revoke(&d, &tok, "5ACDF001", "keyCompromise");
    eventually(WAIT_SECS, "a failed invalidation counted", || {
        (metric(&d, "revocd_cdn_invalidation_errors_total") >= 2.0).then_some(())
    });
    assert!(invalidated(moto.port, &dist).is_empty());
    // CloudFront recovers: the pending purge goes out on a retry.
    proxy.mode.store(PASS, std::sync::atomic::Ordering::SeqCst);
    let ca = load_cert(&p.join("ca.pem"));
    let serial = revocd::state::Serial::from_hex("5ACDF001").expect("hex");
    let want = revocd::cdn::paths::get_paths("/", &ca, &serial);
    eventually(30, "the retried invalidation", || {
        let got = invalidated(moto.port, &dist);
        want.iter().all(|w| got.contains(w)).then_some(())
    });
    // Two serials in one batch (1 s) are 16 paths, over the limit of 12
    // (the earlier invalidation has completed): one wildcard instead.
    revoke(&d, &tok, "5ACDF0A1", "superseded");
    revoke(&d, &tok, "5ACDF0A2", "superseded");
    eventually(30, "one wildcard invalidation", || {
        invalidated(moto.port, &dist)
            .iter()
            .any(|p| p == "/*")
            .then_some(())
    });
    metric_reaches(&d, "revocd_cdn_wildcard_invalidations_total", 1.0);
}

/// Issue 25, item 6: a purge pending when revocd is killed (CloudFront
/// failing at the time) was lost with the process: edges kept the old
/// answer until max-age. Now the purger's cursor and the ledger bring it
/// back after the restart.
#[test]
fn a_purge_pending_at_a_sigkill_is_sent_after_the_restart() {
    let dir = demo_pki();
    let p = dir.path();
    let moto = moto();
    let dist = cloudfront(moto.port, &["create"]).trim().to_string();
    let proxy = fault_proxy(moto.port);
    let config = p.join("revocd.toml");
    let cfg = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{cfg}\n[cdn]\ncloudfront-distribution = \"{dist}\"\nendpoint = \"http://127.0.0.1:{}\"\nbatch = \"200ms\"\n",
            proxy.port
        ),
    )
    .expect("config");
    let mut d = Daemon::start_with(&config, &MOTO_ENV, true);
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    // A first purge goes through: the cursor moves past it.
    revoke(&d, &tok, "5ACDF100", "keyCompromise");
    let first =
        revocd::cdn::paths::get_paths("/", &ca, &Serial::from_hex("5ACDF100").expect("hex"));
    eventually(WAIT_SECS, "the first purge", || {
        let got = invalidated(moto.port, &dist);
        first.iter().all(|w| got.contains(w)).then_some(())
    });
    // CloudFront fails; a revocation is acknowledged; its purge is pending
    // (retried) when revocd is killed.
    proxy.mode.store(FAIL, std::sync::atomic::Ordering::SeqCst);
    let errors = metric(&d, "revocd_cdn_invalidation_errors_total");
    revoke(&d, &tok, "5ACDF101", "keyCompromise");
    metric_reaches(&d, "revocd_cdn_invalidation_errors_total", errors + 1.0);
    d.kill();
    proxy.mode.store(PASS, std::sync::atomic::Ordering::SeqCst);
    let before = invalidated(moto.port, &dist).len();
    let d = Daemon::start_with(&config, &MOTO_ENV, true);
    let pending =
        revocd::cdn::paths::get_paths("/", &ca, &Serial::from_hex("5ACDF101").expect("hex"));
    eventually(WAIT_SECS, "the pending purge after the restart", || {
        let got = invalidated(moto.port, &dist);
        pending.iter().all(|w| got.contains(w)).then_some(())
    });
    // Only what was pending: the first revocation is not purged again, and
    // no wildcard was needed.
    assert_eq!(invalidated(moto.port, &dist).len(), before + pending.len());
    assert_eq!(metric(&d, "revocd_cdn_wildcard_invalidations_total"), 0.0);
}
