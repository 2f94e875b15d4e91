//! Mass revocation: batches through the admin API (one ledger commit each,
//! a result per item), `revocd revoke --serials-file` as an incident team
//! runs it (twice), every answer revoked and every serial on the CRL, and
//! a SIGKILL in the middle of a burst losing nothing acknowledged.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use revocd::state::Serial;

use crate::support::*;

fn quick_crl(config: &Path) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replace("[crl]\n", "[crl]\ndebounce = \"2s\"\nmax-delay = \"60s\"\n");
    std::fs::write(config, text).expect("write");
}

/// An operator `name` with `scopes`, its token file 0600; returns the token.
fn add_operator(p: &Path, name: &str, scopes: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let token = format!("{name}-token-{}", "0123456789abcdef".repeat(2));
    let file = p.join(format!("{name}.token"));
    std::fs::write(&file, format!("{token}\n")).expect("token");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = p.join("revocd.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[[admin.operator]]\nname = \"{name}\"\ntoken-file = \"{name}.token\"\nscopes = {scopes}\n"
    ));
    std::fs::write(&config, text).expect("config");
    token
}

#[test]
fn a_batch_answers_each_item_in_order_and_each_stands_or_fails_on_its_own() {
    let dir = demo_pki();
    let p = dir.path();
    let ops = add_operator(p, "ops", r#"["revoke"]"#);
    let d = Daemon::start(&p.join("revocd.toml"));
    let path = "/v1/issuers/demo/revocations";
    let (s, v) = admin_call(
        d.admin,
        "POST",
        path,
        Some(&ops),
        r#"{"serial": "C0", "reason": "affiliationChanged"}"#,
    )
    .expect("answer");
    assert_eq!(s, 200, "{v}");
    let seq_before = metric(&d, "revocd_ledger_last_sequence");
    let body = r#"[
        {"serial": "C1", "reason": "keyCompromise"},
        {"serial": "C2", "reason": "notAReason"},
        {"serial": "C3", "reason": "removeFromCRL"},
        {"serial": "C0", "reason": "superseded"},
        {"serial": "C4"},
        {"serial": "C0", "reason": "affiliationChanged"},
        {"reason": "keyCompromise"}
    ]"#;
    let (s, v) = admin_call(d.admin, "POST", path, Some(&ops), body).expect("answer");
    assert_eq!(s, 200, "{v}");
    let results = v["results"].as_array().expect("results");
    let got: Vec<(u64, Option<&str>, Option<&str>)> = results
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap_or(0),
                r["result"].as_str(),
                r["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (200, Some("revoked"), None),
            (400, None, Some("reason")),
            (403, None, Some("scope")),
            (409, None, Some("serial")),
            (200, Some("revoked"), None),
            // No time given, same reason as recorded: nothing to do.
            (200, Some("unchanged"), None),
            (400, None, Some("serial")),
        ],
        "{v}"
    );
    assert_eq!(results[1]["serial"], "C2");
    assert_eq!(results[2]["scope"], "release");
    assert_eq!(
        (v["revoked"].as_u64(), v["refused"].as_u64()),
        (Some(2), Some(4))
    );
    // The two revocations were one commit: two records, one batch.
    assert_eq!(metric(&d, "revocd_ledger_last_sequence"), seq_before + 2.0);
    let (s, v) = admin_call(d.admin, "POST", path, Some(&ops), "[]").expect("answer");
    assert_eq!((s, v["field"].as_str()), (400, Some("revocations")), "{v}");
}

/// The serials of `n` certificates, 16 octets like real CAs issue.
fn serials(n: usize, tag: u8) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag:02X}{:030X}", 0x1000_0000_0000u64 + i as u64 * 7919))
        .collect()
}

#[test]
fn revoke_serials_file_commits_in_batches_lists_refused_lines_and_runs_again_unchanged() {
    let dir = demo_pki();
    let p = dir.path();
    quick_crl(&p.join("revocd.toml"));
    let d = Daemon::start(&p.join("revocd.toml"));
    let ca = load_cert(&p.join("ca.pem"));
    let tok = token(p);
    // Already revoked for another reason: the file's revocation conflicts.
    revoke(&d, &tok, "AB", "affiliationChanged");
    let n = 12_000;
    let wanted = serials(n, 0x51);
    let mut lines = vec!["# incident 2026-12-07".to_string()];
    lines.extend(wanted[..100].iter().cloned());
    lines.push("not-a-serial".into());
    lines.push("AB".into());
    lines.extend(wanted[100..].iter().cloned());
    lines.push("00".into());
    std::fs::write(p.join("serials.txt"), lines.join("\n") + "\n").expect("write");
    let commits_before = metric(&d, "revocd_ledger_append_duration_seconds_count");
    let admin_url = format!("http://{}", d.admin);
    let run_once = || {
        run(Command::new(BIN).current_dir(p).args([
            "revoke",
            "--config",
            "revocd.toml",
            "--admin-url",
            &admin_url,
            "--serials-file",
            "serials.txt",
            "--reason",
            "superseded",
        ]))
    };
    let out = run_once();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "bad and refused lines: {t}");
    assert!(
        t.contains(&format!("serials.txt: {} revocations sent", n + 1)),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "{n} revoked, 0 released, 0 unchanged, 1 refused, 0 failed; 2 bad lines"
        )),
        "{t}"
    );
    assert!(t.contains("serials.txt:102: \"not-a-serial\""), "{t}");
    assert!(t.contains("serials.txt:103: AB: refused: HTTP 409"), "{t}");
    assert!(t.contains(&format!("serials.txt:{}: \"00\"", n + 4)), "{t}");
    // 12,001 revocations in two requests of at most 10,000: at most two
    // group commits (they may share one), not one per revocation.
    let commits = metric(&d, "revocd_ledger_append_duration_seconds_count") - commits_before;
    assert!((1.0..=2.0).contains(&commits), "{commits} commits");

    // Revoked at the origin from the acknowledgement on, before and after
    // the answers are signed again.
    for s in [&wanted[0], &wanted[n / 2], &wanted[n - 1]] {
        let v = ocsp_status(&d, &ca, &Serial::from_hex(s).expect("hex"));
        assert_eq!(v.status, "revoked", "{s}: {v:?}");
    }
    // The burst went to the re-sign workers; they sign every answer (two
    // hashes, two windows) and the queue empties.
    metric_reaches(
        &d,
        "revocd_ocsp_signings_total{why=\"change\"}",
        (n * 4) as f64,
    );
    eventually(120, "the re-sign queue to empty", || {
        (metric(&d, "revocd_ocsp_resign_queue") == 0.0).then_some(())
    });
    let misses = metric(&d, "revocd_ocsp_cache_misses_total");
    for s in [&wanted[1], &wanted[n - 2]] {
        let v = ocsp_status(&d, &ca, &Serial::from_hex(s).expect("hex"));
        assert_eq!(v.status, "revoked", "{s}: {v:?}");
    }
    assert_eq!(
        metric(&d, "revocd_ocsp_cache_misses_total"),
        misses,
        "pre-signed again"
    );

    // The CRL lists all of them (the demo's revoked one, AB, the file's).
    let crl = eventually(120, "every revocation on the CRL", || {
        let (_, _, b) = http_get(d.public, "/crl/demo.crl")?;
        revocd::crl::build::check(&b, &ca)
            .ok()
            .filter(|f| f.n_entries == n + 2)
            .map(|_| b)
    });
    std::fs::write(p.join("crl.der"), &crl).expect("write");
    let listed = openssl(
        p,
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    assert_eq!(listed.matches("Serial Number:").count(), n + 2);
    assert!(
        listed.contains(&format!("Serial Number: {}", wanted[n / 3])),
        "listed"
    );

    // Run again (a resumed run): nothing changes, nothing is written.
    let seq = metric(&d, "revocd_ledger_last_sequence");
    let out = run_once();
    let t = text(&out);
    assert!(
        t.contains(&format!(
            "0 revoked, 0 released, {n} unchanged, 1 refused, 0 failed"
        )),
        "{t}"
    );
    assert_eq!(metric(&d, "revocd_ledger_last_sequence"), seq);
}

#[test]
fn a_sigkill_in_the_middle_of_a_burst_loses_no_acknowledged_revocation() {
    let dir = demo_pki();
    let p = dir.path();
    let config = p.join("revocd.toml");
    let mut d = Daemon::start(&config);
    let tok = token(p);
    let admin = d.admin;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Four senders, batches of 500 with a stated time, until the daemon is
    // gone: each keeps the serials the daemon acknowledged as revoked.
    let senders: Vec<_> = (0..4u8)
        .map(|k| {
            let (acked, stop, tok) = (Arc::clone(&acked), Arc::clone(&stop), tok.clone());
            std::thread::spawn(move || {
                for batch in 0.. {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let list = serials(500, 0x60 + k)
                        .into_iter()
                        .map(|s| format!("{s}{batch:04X}"))
                        .collect::<Vec<_>>();
                    let body = serde_json::Value::Array(
                        list.iter()
                            .map(|s| serde_json::json!({ "serial": s, "reason": "keyCompromise", "revoked_at": "2026-12-01T00:00:00Z" }))
                            .collect(),
                    );
                    let Some((200, v)) = admin_call(admin, "POST", "/v1/issuers/demo/revocations", Some(&tok), &body.to_string()) else {
                        return;
                    };
                    let results = v["results"].as_array().cloned().unwrap_or_default();
                    let mut a = acked.lock().expect("lock");
                    for r in results {
                        if r["result"] == "revoked" {
                            a.push(r["serial"].as_str().unwrap_or("").to_string());
                        }
                    }
                }
            })
        })
        .collect();
    eventually(120, "10,000 acknowledged revocations", || {
        (acked.lock().expect("lock").len() >= 10_000).then_some(())
    });
    // Requests are still in flight: kill without warning.
    d.kill();
    stop.store(true, Ordering::Release);
    for s in senders {
        s.join().expect("sender");
    }
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    assert!(acked.len() >= 10_000);
    let d = Daemon::start(&config);
    // Every acknowledged revocation survived: sent again with the same
    // time and reason, each is unchanged (a lost one would be revoked).
    let mut lost = Vec::new();
    for chunk in acked.chunks(10_000) {
        let body = serde_json::Value::Array(
            chunk
                .iter()
                .map(|s| serde_json::json!({ "serial": s, "reason": "keyCompromise", "revoked_at": "2026-12-01T00:00:00Z" }))
                .collect(),
        );
        let (status, v) = admin_call(
            d.admin,
            "POST",
            "/v1/issuers/demo/revocations",
            Some(&tok),
            &body.to_string(),
        )
        .expect("answer");
        assert_eq!(status, 200, "{v}");
        for (s, r) in chunk.iter().zip(v["results"].as_array().expect("results")) {
            if r["result"] != "unchanged" {
                lost.push((s.clone(), r.clone()));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged revocations lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
