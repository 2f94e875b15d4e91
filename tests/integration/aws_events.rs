//! AWS Private CA in real time, against moto (Private CA, SQS, EventBridge
//! and CloudFront in one mock): Private CA issues and revokes through its
//! API, an EventBridge rule sends the events to an SQS queue, and revocd
//! consumes it through the AWS SDK, configured by environment variables
//! alone. The delegated OCSP responder is signed with the mock CA's own key
//! by `tests/python/moto_server.py` (moto has no OCSPSigningCertificate
//! template), and so are the CA's CRLs.

use std::path::{Path, PathBuf};
use std::process::Command;

use revocd::state::Serial;

use crate::support::*;

/// Runs `tests/python/pca.py` against moto; its JSON answer.
pub(crate) fn pca_py(moto: u16, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/pca.py");
    let out = run(Command::new(python())
        .arg(script)
        .arg(format!("http://127.0.0.1:{moto}"))
        .args(args));
    let t = text(&out);
    assert!(out.status.success(), "pca.py {args:?}: {t}");
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("pca.py {args:?}: {e}: {t}"))
}

/// A Private CA in moto with its queue and EventBridge rule, a delegated
/// responder, an empty first CRL, and a revocd config serving it.
struct Pca {
    moto: Server,
    commands: MotoCommands,
    dir: tempfile::TempDir,
    ca: String,
    queue: String,
    dist: String,
    ca_cert: revocd::pki::Cert,
    crl_number: u32,
}

impl Pca {
    fn new() -> Pca {
        let (moto, mut commands) = moto_with_commands();
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path();
        let setup = pca_py(moto.port, &["setup", &p.to_string_lossy()]);
        let ca = setup["ca"].as_str().expect("ca").to_string();
        let queue = setup["queue"].as_str().expect("queue").to_string();
        commands.run(&format!("responder {ca} {}", p.display()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            p.join("responder.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        let dist = crate::cdn::cloudfront(moto.port, &["create"])
            .trim()
            .to_string();
        let mut pca = Pca {
            ca_cert: load_cert(&p.join("ca.pem")),
            moto,
            commands,
            dir,
            ca,
            queue,
            dist,
            crl_number: 0,
        };
        pca.crl(&[]);
        pca
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The config: one issuer that is this Private CA, its CRL file as an
    /// upstream source polled only when an event says so (poll 1 h), the
    /// queue, CloudFront.
    fn config(&self, confirm_within: &str) -> PathBuf {
        let path = self.path().join("revocd.toml");
        std::fs::write(
            &path,
            format!(
                "data-dir = \"data\"\n\n[upstream]\npoll = \"1h\"\n\n[aws-events]\nqueue = \"{}\"\nwait = \"1s\"\nconfirm-within = \"{confirm_within}\"\n\n[cdn]\ncloudfront-distribution = \"{}\"\nbatch = \"200ms\"\n\n[[issuer]]\nid = \"pca\"\ncertificate = \"ca.pem\"\nresponder-certificate = \"responder.pem\"\nresponder-key = \"responder.key\"\naws-pca-arn = \"{}\"\nupstream-crls = [\"file://pca.crl\"]\n",
                self.queue, self.dist, self.ca
            ),
        )
        .expect("config");
        path
    }

    /// AWS_* variables pointing the SDK at moto (or SQS at `sqs`).
    fn env(&self, sqs: Option<u16>) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AWS_ENDPOINT_URL".to_string(),
                format!("http://127.0.0.1:{}", self.moto.port),
            ),
            ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "testing".to_string()),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ];
        if let Some(port) = sqs {
            env.push((
                "AWS_ENDPOINT_URL_SQS".to_string(),
                format!("http://127.0.0.1:{port}"),
            ));
        }
        env
    }

    fn start(&self, config: &Path, sqs: Option<u16>) -> Daemon {
        let env = self.env(sqs);
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Daemon::start_with(config, &refs, true)
    }

    /// A new CRL of the CA (as Private CA writes one) listing `entries`
    /// (`SERIAL=REASON`).
    fn crl(&mut self, entries: &[String]) {
        self.crl_number += 1;
        let file = self.path().join("pca.crl");
        self.commands.run(&format!(
            "crl {} {} {} {}",
            self.ca,
            file.display(),
            self.crl_number,
            entries.join(" ")
        ));
    }

    /// A leaf from the CA; with `event`, its issuance event too. (serial,
    /// certificate ARN)
    fn issue(&self, name: &str, event: bool) -> (Serial, String) {
        let dir = self.path().to_string_lossy().into_owned();
        let mut args = vec!["issue", &self.ca, &dir, name];
        if event {
            args.push("--event");
        }
        let v = pca_py(self.moto.port, &args);
        (
            Serial::from_hex(v["serial"].as_str().expect("serial")).expect("hex"),
            v["arn"].as_str().expect("arn").to_string(),
        )
    }

    fn revoke(&self, serial: &Serial, reason: &str, extra: &[&str]) {
        let hex = serial.to_hex();
        let mut args = vec!["revoke", &self.ca, &hex, reason];
        args.extend_from_slice(extra);
        pca_py(self.moto.port, &args);
    }

    fn queue_depth(&self) -> i64 {
        let v = pca_py(self.moto.port, &["depth", &self.queue]);
        v["visible"].as_i64().unwrap_or(-1) + v["in_flight"].as_i64().unwrap_or(-1)
    }
}

/// The verified OCSP status of `serial` (`Err` for an error status such as
/// unauthorized).
fn status(d: &Daemon, ca: &revocd::pki::Cert, serial: &Serial) -> Result<String, String> {
    let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
    try_ocsp_status_at(d, ca, serial, now)
        .map(|v| v.status)
        .map_err(|e| e.to_string())
}

fn until_status(d: &Daemon, ca: &revocd::pki::Cert, serial: &Serial, want: &str) {
    eventually(WAIT_SECS, &format!("{} {want}", serial.to_hex()), || {
        (status(d, ca, serial).as_deref() == Ok(want)).then_some(())
    });
}

fn events(d: &Daemon, kind: &str, result: &str) -> f64 {
    metric(
        d,
        &format!("revocd_aws_events_total{{kind=\"{kind}\",result=\"{result}\"}}"),
    )
}

#[test]
fn private_ca_events_revoke_and_register_at_once_and_nothing_else_changes_anything() {
    let mut pca = Pca::new();
    let config = pca.config("5s");
    let d = pca.start(&config, None);
    let ca = pca.ca_cert.clone();

    // Issued with its event: good at once, where a certificate revocd has
    // not heard of is unauthorized.
    let (leaf1, _) = pca.issue("leaf1", true);
    let (unseen, _) = pca.issue("unseen", false);
    until_status(&d, &ca, &leaf1, "good");
    assert!(status(&d, &ca, &unseen).is_err(), "not in any source");

    // RevokeCertificate and its CloudTrail event: revoked with its reason,
    // and the CDN told.
    pca.revoke(&leaf1, "KEY_COMPROMISE", &["--cloudtrail"]);
    until_status(&d, &ca, &leaf1, "revoked");
    let v = ocsp_status(&d, &ca, &leaf1);
    assert_eq!(v.reason.as_deref(), Some("KeyCompromise"));
    let want = revocd::cdn::paths::get_paths("/", &ca, &leaf1);
    eventually(WAIT_SECS, "leaf1's paths invalidated", || {
        let got = crate::cdn::invalidated(pca.moto.port, &pca.dist);
        want.iter().all(|w| got.contains(w)).then_some(())
    });

    // Private CA's own revocation event names the certificate, not the
    // serial: read through GetCertificate; the reason is unspecified.
    let (leaf3, leaf3_arn) = pca.issue("leaf3", true);
    until_status(&d, &ca, &leaf3, "good");
    pca.revoke(&leaf3, "SUPERSEDED", &["--native", &leaf3_arn]);
    until_status(&d, &ca, &leaf3, "revoked");

    // Events that change nothing: another CA's, a failed call, a body that
    // is not an event, and a second event for leaf1's revocation.
    let other_dir = tempfile::tempdir().expect("tmp");
    let other = pca_py(pca.moto.port, &["ca", &other_dir.path().to_string_lossy()])["ca"]
        .as_str()
        .expect("ca")
        .to_string();
    let unseen_hex = unseen.to_hex();
    pca_py(
        pca.moto.port,
        &["revoke-event", &other, &unseen_hex, "KEY_COMPROMISE"],
    );
    pca_py(
        pca.moto.port,
        &["failed-revoke-event", &pca.ca, &unseen_hex],
    );
    pca_py(pca.moto.port, &["send", &pca.queue, "{not an event"]);
    pca_py(
        pca.moto.port,
        &["revoke-event", &pca.ca, &leaf1.to_hex(), "KEY_COMPROMISE"],
    );
    metric_reaches(
        &d,
        "revocd_aws_events_total{kind=\"revoke_call\",result=\"foreign\"}",
        1.0,
    );
    metric_reaches(
        &d,
        "revocd_aws_events_total{kind=\"revoke_call\",result=\"failed_call\"}",
        1.0,
    );
    metric_reaches(
        &d,
        "revocd_aws_events_total{kind=\"other\",result=\"malformed\"}",
        1.0,
    );
    metric_reaches(
        &d,
        "revocd_aws_events_total{kind=\"revoke_call\",result=\"unchanged\"}",
        1.0,
    );
    assert!(
        status(&d, &ca, &unseen).is_err(),
        "another CA's event applied"
    );
    eventually(WAIT_SECS, "every message deleted", || {
        (pca.queue_depth() == 0).then_some(())
    });
    assert_eq!(events(&d, "revoke_call", "retried"), 0.0);

    // The CA's CRL does not list them yet: after confirm-within (5 s here)
    // revocd alerts, and they stay revoked.
    metric_reaches(
        &d,
        "revocd_aws_events_unconfirmed_revocations{issuer=\"pca\"}",
        2.0,
    );
    assert_eq!(status(&d, &ca, &leaf3).as_deref(), Ok("revoked"));
    // The CA writes its CRL; its event makes revocd poll at once (the poll
    // interval is an hour): the CRL confirms both, and gives leaf3 its
    // reason.
    let applied = "revocd_upstream_polls_total{issuer=\"pca\",kind=\"crl\",result=\"applied\"}";
    let before = metric(&d, applied);
    pca.crl(&[
        format!("{}=KEY_COMPROMISE", leaf1.to_hex()),
        format!("{}=SUPERSEDED", leaf3.to_hex()),
    ]);
    pca_py(pca.moto.port, &["crl-event", &pca.ca]);
    metric_reaches(&d, applied, before + 1.0);
    eventually(WAIT_SECS, "both revocations confirmed", || {
        (metric(
            &d,
            "revocd_aws_events_unconfirmed_revocations{issuer=\"pca\"}",
        ) == 0.0)
            .then_some(())
    });
    eventually(WAIT_SECS, "leaf3's reason from the CRL", || {
        (ocsp_status(&d, &ca, &leaf3).reason.as_deref() == Some("Superseded")).then_some(())
    });

    // From the event to `revoked` at the origin, measured with a client
    // that polls OCSP every 10 ms (REVOCD_AWS_EVENTS_MEASURE sets how many;
    // the figures in the README are from 50).
    let n = std::env::var("REVOCD_AWS_EVENTS_MEASURE").unwrap_or_else(|_| "5".into());
    let dir = pca.path().to_string_lossy().into_owned();
    let figures = pca_py(pca.moto.port, &["measure", &pca.ca, &dir, &d.url(), &n]);
    eprintln!("AWS event to revoked at the origin: {figures}");
    // And on to the CloudFront invalidation, from revocd's own histograms:
    // SQS arrival to acknowledgement, acknowledgement to invalidation.
    let (_, _, m) = d.http_admin("GET", "/metrics").expect("metrics");
    for line in String::from_utf8_lossy(&m).lines().filter(|l| {
        l.starts_with("revocd_aws_events_apply_seconds")
            || l.starts_with("revocd_cdn_revocation_to_invalidation_seconds")
    }) {
        eprintln!("{line}");
    }
    assert_eq!(figures["n"].as_i64(), n.parse().ok());
    assert_eq!(
        metric(
            &d,
            "revocd_aws_events_total{kind=\"revoke_call\",result=\"conflict\"}"
        ),
        0.0
    );
}

#[test]
fn events_sent_while_revocd_is_stopped_killed_or_cut_off_from_sqs_are_all_applied() {
    let pca = Pca::new();
    let config = pca.config("45m");
    // SQS is reached through a proxy that can fail every request.
    let proxy = fault_proxy(pca.moto.port);
    let ca = pca.ca_cert.clone();
    let leaves: Vec<Serial> = (0..3)
        .map(|n| pca.issue(&format!("l{n}"), false).0)
        .collect();

    // Sent while revocd is stopped: applied after its start.
    pca.revoke(&leaves[0], "KEY_COMPROMISE", &["--cloudtrail"]);
    let mut d = pca.start(&config, Some(proxy.port));
    until_status(&d, &ca, &leaves[0], "revoked");

    // SQS away for a while: receives fail and are retried; nothing is lost.
    // (A long poll already forwarded may still return; the revocation is
    // sent once receives have failed.)
    proxy.mode.store(FAIL, std::sync::atomic::Ordering::SeqCst);
    let errors = metric(&d, "revocd_aws_events_receive_errors_total");
    let failing = metric_reaches(&d, "revocd_aws_events_receive_errors_total", errors + 1.0);
    pca.revoke(&leaves[1], "SUPERSEDED", &["--cloudtrail"]);
    metric_reaches(&d, "revocd_aws_events_receive_errors_total", failing + 2.0);
    assert!(status(&d, &ca, &leaves[1]).is_err(), "not known yet");
    assert!(matches!(d.http_admin("GET", "/readyz"), Some((200, _, _))));
    proxy.mode.store(PASS, std::sync::atomic::Ordering::SeqCst);
    until_status(&d, &ca, &leaves[1], "revoked");

    // SIGKILL while a burst of revocation events is being applied: every
    // one is applied after the restart (a message is deleted only after
    // its change is durable; one acknowledged but not deleted comes back
    // and changes nothing).
    let burst: Vec<Serial> = (0..12)
        .map(|n| pca.issue(&format!("b{n}"), false).0)
        .collect();
    for s in &burst {
        pca.revoke(s, "CESSATION_OF_OPERATION", &["--cloudtrail"]);
    }
    metric_reaches(
        &d,
        "revocd_aws_events_total{kind=\"revoke_call\",result=\"applied\"}",
        4.0,
    );
    d.kill();
    let d = pca.start(&config, Some(proxy.port));
    for s in &burst {
        until_status(&d, &ca, s, "revoked");
    }
    eventually(WAIT_SECS, "every message deleted", || {
        (pca.queue_depth() == 0).then_some(())
    });
    assert_eq!(status(&d, &ca, &leaves[2]).map_err(|_| ()), Err(()));
}
