//! Answer tables in files (`ocsp.answer-tables = "files"`) against the real
//! binary: a restart within a window serves the very answers it signed
//! before (same bytes, so not signed again), never one a change since has
//! made untrue, and a damaged table is refused by name and signed again
//! while the daemon serves.

use std::path::Path;

use revocd::clock::{Clock, SystemClock};
use revocd::state::Serial;

use crate::support::*;

/// The DER answer to a SHA-1 POST for `serial`.
fn answer_bytes(d: &Daemon, ca: &revocd::pki::Cert, serial: &Serial) -> Vec<u8> {
    let der = revocd::tools::query::build_request(ca, serial, revocd::pki::HashAlg::Sha1);
    let (status, _, body) = ocsp_post(d.public, &der).expect("HTTP answer");
    assert_eq!(status, 200);
    body
}

fn table_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("data/answers"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_restart_within_the_window_serves_its_table_again_without_signing_and_never_a_changed_serials_answer(
) {
    // Not across a rollover: the test needs the same 60-minute window
    // from start to end.
    until_window_has_left(3600, 180);
    let dir = demo_pki();
    let p = dir.path();
    let config = std::fs::read_to_string(p.join("revocd.toml")).expect("config");
    std::fs::write(
        p.join("revocd.toml"),
        config.replace("[ocsp]\n", "[ocsp]\nanswer-tables = \"files\"\n"),
    )
    .expect("config");
    // 300 more certificates in the CA's index.
    let mut index = std::fs::read_to_string(p.join("index.txt")).expect("index");
    for n in 0..300u32 {
        index.push_str(&format!(
            "V\t301231235959Z\t\t{:X}\tunknown\t/CN=s{n}\n",
            0x7100_0000u32 + n
        ));
    }
    std::fs::write(p.join("index.txt"), index).expect("index");
    let ca = load_cert(&p.join("ca.pem"));
    let good = Serial::from_hex(&serial_of(&p.join("leaf-good.pem"))).expect("serial");
    let later_revoked = Serial::from_hex("71000007").expect("serial");
    let window = SystemClock.now().div_euclid(3600);

    let mut d = Daemon::start(&p.join("revocd.toml"));
    // Sealed when the start-up pass ends (before ready unless the machine
    // is too slow to finish it within ocsp.startup-presign).
    eventually(WAIT_SECS, "the current window's table sealed", || {
        table_files(p)
            .contains(&format!("{window}.rvat"))
            .then_some(())
    });
    let before = answer_bytes(&d, &ca, &good);
    let other_before = answer_bytes(&d, &ca, &Serial::from_hex("71000100").expect("serial"));
    assert_eq!(ocsp_status(&d, &ca, &later_revoked).status, "good");
    // Acknowledged after the table was sealed: kept in memory, and the
    // sealed table still says good for it.
    revoke(&d, &token(p), "71000007", "keyCompromise");
    assert_eq!(ocsp_status(&d, &ca, &later_revoked).status, "revoked");
    d.signal("TERM");
    assert!(d.wait_exit(30).is_some(), "revocd stopped");

    let mut d = Daemon::start(&p.join("revocd.toml"));
    let loaded = d.wait_log_where("loading the current window's table", |l| {
        l.contains("answer table loaded") && l.contains(&format!("{window}.rvat"))
    });
    assert!(loaded.contains("changed_since=2"), "{loaded}");
    assert_eq!(
        answer_bytes(&d, &ca, &good),
        before,
        "the same answer, byte for byte: not signed again (ECDSA signatures differ each time)"
    );
    assert_eq!(
        answer_bytes(&d, &ca, &Serial::from_hex("71000100").expect("serial")),
        other_before
    );
    assert_eq!(
        ocsp_status(&d, &ca, &later_revoked).status,
        "revoked",
        "the table's good answer for a serial revoked since is never served"
    );
    // The current window: only the changed serial was signed again; all
    // 302 count as pre-signed.
    let ready = d.wait_log("; ready");
    assert!(
        ready.contains("signed_serials=1 loaded_serials=301"),
        "{ready}"
    );
    let current_presigned = metric(
        &d,
        "revocd_ocsp_presigned_serials{issuer=\"demo\",window=\"current\"}",
    );
    assert_eq!(current_presigned, 302.0);

    // One flipped byte in the index: refused, removed, signed again; the
    // daemon serves throughout.
    d.signal("TERM");
    assert!(d.wait_exit(30).is_some(), "revocd stopped");
    let path = p.join("data/answers").join(format!("{window}.rvat"));
    let mut bytes = std::fs::read(&path).expect("table");
    let at = bytes.len() - 64 - 20;
    bytes[at] ^= 0x04;
    std::fs::write(&path, &bytes).expect("damage");
    let d = Daemon::start(&p.join("revocd.toml"));
    let refused = d.wait_log("answer table refused");
    assert!(refused.contains("index section"), "{refused}");
    assert_eq!(metric(&d, "revocd_ocsp_answer_files_refused_total"), 1.0);
    let resigned = answer_bytes(&d, &ca, &good);
    assert_ne!(resigned, before, "signed again");
    assert_eq!(ocsp_status(&d, &ca, &good).status, "good");
    assert_eq!(ocsp_status(&d, &ca, &later_revoked).status, "revoked");
    eventually(WAIT_SECS, "the window's table sealed again", || {
        table_files(p)
            .contains(&format!("{window}.rvat"))
            .then_some(())
    });
}
