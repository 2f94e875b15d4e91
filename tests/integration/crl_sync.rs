//! `revocd crl-sync` against real components: nginx with `ssl_verify_client`
//! and `ssl_crl` on the synced file, curl with a client certificate, revocd
//! serving and publishing the CRLs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

fn nginx_bin() -> PathBuf {
    let sbin = Path::new("/usr/sbin/nginx");
    if sbin.is_file() {
        return sbin.to_path_buf();
    }
    require("nginx")
}

/// Debounce and max-delay of one second, for the tests.
fn fast_crls(config: &Path) {
    let text = std::fs::read_to_string(config).expect("config");
    std::fs::write(
        config,
        text.replace("[crl]\n", "[crl]\ndebounce = \"1s\"\nmax-delay = \"1s\"\n"),
    )
    .expect("config");
}

/// A running `revocd crl-sync`, killed on drop.
struct Sync(Child);

impl Drop for Sync {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn crl_sync(args: &[&str]) -> Sync {
    Sync(
        Command::new(BIN)
            .arg("crl-sync")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn crl-sync"),
    )
}

/// `crl-sync --once`: exit code and stderr.
fn crl_sync_once(args: &[&str]) -> (Option<i32>, String) {
    let out = run(Command::new(BIN).args(["crl-sync", "--once"]).args(args));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn crl_number_of(der: &[u8], ca: &revocd::pki::Cert) -> u64 {
    revocd::crl::build::check(der, ca)
        .expect("a verified CRL")
        .number
}

/// Asks revocd to publish now.
fn publish(d: &Daemon, tok: &str) {
    let (s, v) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/crl/publish",
        Some(tok),
        "",
    )
    .expect("publish");
    assert!(s == 200 || s == 202, "publish: {s} {v}");
}

/// `revocd crl-sync` with `--metrics-listen 127.0.0.1:0`: the process and
/// the address it reports for its metrics.
fn crl_sync_with_metrics(args: &[&str]) -> (Sync, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("crl-sync")
        .args(args)
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn crl-sync");
    let stdout = child.stdout.take().expect("stdout");
    let sync = Sync(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(WAIT_SECS))
            .expect("crl-sync reports its metrics address");
        if let Some(a) = line.strip_prefix("revocd crl-sync: metrics on http://") {
            break a.trim().parse().expect("an address");
        }
    };
    (sync, addr)
}

/// nginx requiring a client certificate from the demo CA, checked against
/// the CRL file `crl`, on a free port; master process on, so
/// `nginx -s reload` works.
fn mtls_nginx(dir: &Path, crl: &Path) -> (Server, PathBuf) {
    on_free_port("nginx", |port| mtls_nginx_on(dir, crl, port))
}

fn mtls_nginx_on(dir: &Path, crl: &Path, port: u16) -> (Child, PathBuf) {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("nginx-tmp")).expect("tmp");
    let conf = format!(
        "user root;\nworker_processes 1;\nerror_log {d}/nginx-error.log info;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/nginx-tmp/body;\n  proxy_temp_path {d}/nginx-tmp/proxy;\n\
           fastcgi_temp_path {d}/nginx-tmp/fcgi;\n  uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n  scgi_temp_path {d}/nginx-tmp/scgi;\n\
           server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n\
             ssl_certificate {d}/leaf-good.pem;\n    ssl_certificate_key {d}/leaf-good.key;\n\
             ssl_verify_client on;\n    ssl_client_certificate {d}/ca.pem;\n    ssl_crl {crl};\n\
             location / {{ return 200 \"hello $ssl_client_s_dn\\n\"; }}\n  }}\n}}\n",
        crl = crl.display()
    );
    let conf_path = dir.join("nginx-mtls.conf");
    std::fs::write(&conf_path, conf).expect("nginx conf");
    let child = Command::new(nginx_bin())
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    (child, conf_path)
}

/// curl with the client certificate: the HTTP status (0 if no answer).
fn curl_as_client(dir: &Path, port: u16) -> u16 {
    let out = run(Command::new(require("curl"))
        .current_dir(dir)
        .args([
            "-sk",
            "--max-time",
            "5",
            "--cert",
            "client.pem",
            "--key",
            "client.key",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("https://127.0.0.1:{port}/")));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn nginx_refuses_a_client_certificate_once_its_revocation_is_synced() {
    let dir = demo_pki();
    let p = dir.path();
    fast_crls(&p.join("revocd.toml"));
    let d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(p);
    // A client certificate from the demo CA, registered with revocd.
    openssl(
        p,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "client.key",
            "-subj",
            "/CN=mtls-client",
            "-out",
            "client.csr",
        ],
    );
    std::fs::write(
        p.join("client.ext"),
        "basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n",
    )
    .expect("ext");
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x5EC5A1",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            "client.pem",
        ],
    );
    let pem = std::fs::read_to_string(p.join("client.pem")).expect("client.pem");
    let (s, v) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/certificates",
        Some(&tok),
        &serde_json::json!({ "certificate": pem }).to_string(),
    )
    .expect("register");
    assert_eq!(s, 200, "{v}");
    let store_crl = p.join("crl/demo.crl");
    eventually(30, "the first CRL in the store", || {
        store_crl.is_file().then_some(())
    });

    let synced = p.join("nginx-crl.pem");
    let conf = p.join("nginx-mtls.conf");
    let reload = format!("{} -c {} -s reload", nginx_bin().display(), conf.display());
    let source = format!("file://{}", store_crl.display());
    let _sync = crl_sync(&[
        "--source",
        &source,
        "--ca",
        &p.join("ca.pem").to_string_lossy(),
        "--out",
        &synced.to_string_lossy(),
        "--interval",
        "500ms",
        "--on-change",
        &reload,
    ]);
    eventually(30, "the synced CRL file", || synced.is_file().then_some(()));
    let (nginx, _) = mtls_nginx(p, &synced);
    let port = nginx.port;
    assert_eq!(curl_as_client(p, port), 200, "a good client gets in");

    // Revoke, publish: crl-sync installs the new CRL and reloads nginx.
    revoke(&d, &tok, "5EC5A1", "keyCompromise");
    publish(&d, &tok);
    eventually(60, "nginx refusing the revoked client", || {
        (curl_as_client(p, port) == 400).then_some(())
    });
    let bundle = std::fs::read(&synced).expect("synced");
    let crls = revocd::tools::sync::decode_bundle(&bundle);
    assert_eq!(crls.len(), 1);
    let entries = revocd::crl::build::entries_of(&crls[0]).expect("entries");
    assert!(entries.iter().any(|e| e.serial.to_hex() == "5EC5A1"));
    let log = std::fs::read_to_string(p.join("nginx-error.log")).unwrap_or_default();
    assert!(log.contains("certificate revoked"), "{log}");
}

#[test]
fn an_unchanged_source_costs_only_304s() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    eventually(30, "revocd serving its CRL", || {
        http_get(d.public, "/crl/demo.crl").filter(|r| r.0 == 200)
    });
    // Every request crl-sync makes goes through the proxy, which records
    // each answer's status.
    let proxy = fault_proxy(d.public.port());
    let out = p.join("synced.crl");
    let source = format!("http://127.0.0.1:{}/crl/demo.crl", proxy.port);
    let (sync, addr) = crl_sync_with_metrics(&[
        "--source",
        &source,
        "--ca",
        &p.join("ca.pem").to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
        "--interval",
        "200ms",
        "--format",
        "der",
    ]);
    eventually(30, "ten polls", || {
        (proxy.statuses.lock().expect("lock").len() >= 10).then_some(())
    });
    let statuses = proxy.statuses.lock().expect("lock").clone();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(
        statuses[1..].iter().all(|&s| s == 304),
        "every later poll is a 304: {statuses:?}"
    );
    let (_, _, served) = http_get(d.public, "/crl/demo.crl").expect("served");
    assert_eq!(std::fs::read(&out).expect("synced"), served);
    let scrape = || {
        let (_, _, body) = http_get(addr, "/metrics").expect("metrics");
        String::from_utf8_lossy(&body).into_owned()
    };
    let value = |m: &str, series: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    let src = format!("source=\"{source}\"");
    // The proxy records an answer before crl-sync has counted it.
    let m = eventually(WAIT_SECS, "nine unchanged polls counted", || {
        let m = scrape();
        (value(
            &m,
            &format!("revocd_crl_sync_polls_total{{result=\"unchanged\",{src}}}"),
        ) >= 9.0)
            .then_some(m)
    });
    assert_eq!(
        value(
            &m,
            &format!("revocd_crl_sync_polls_total{{result=\"updated\",{src}}}")
        ),
        1.0,
        "{m}"
    );
    let ca = load_cert(&p.join("ca.pem"));
    assert_eq!(
        value(&m, &format!("revocd_crl_sync_crl_number{{{src}}}")),
        crl_number_of(&served, &ca) as f64,
        "{m}"
    );
    assert!(
        value(
            &m,
            &format!("revocd_crl_sync_seconds_since_success{{{src}}}")
        ) >= 0.0,
        "{m}"
    );
    assert!(
        value(&m, &format!("revocd_crl_sync_next_update_seconds{{{src}}}")) > 0.0,
        "{m}"
    );

    // The source fails for a while: errors are counted, the file stays, and
    // polling resumes (with backoff) once it is back.
    proxy.mode.store(FAIL, std::sync::atomic::Ordering::SeqCst);
    eventually(30, "failed polls counted", || {
        (value(
            &scrape(),
            &format!("revocd_crl_sync_polls_total{{result=\"error\",{src}}}"),
        ) >= 2.0)
            .then_some(())
    });
    assert_eq!(
        std::fs::read(&out).expect("synced"),
        served,
        "kept through the outage"
    );
    proxy.mode.store(PASS, std::sync::atomic::Ordering::SeqCst);
    let before = value(
        &scrape(),
        &format!("revocd_crl_sync_polls_total{{result=\"unchanged\",{src}}}"),
    );
    eventually(60, "polls succeeding again", || {
        (value(
            &scrape(),
            &format!("revocd_crl_sync_polls_total{{result=\"unchanged\",{src}}}"),
        ) > before)
            .then_some(())
    });
    drop(sync);
}

#[test]
fn a_tampered_rolled_back_or_expired_crl_is_refused_and_the_file_stays() {
    let dir = demo_pki();
    let p = dir.path();
    fast_crls(&p.join("revocd.toml"));
    let d = Daemon::start(&p.join("revocd.toml"));
    let tok = token(p);
    let ca = load_cert(&p.join("ca.pem"));
    let store_crl = p.join("crl/demo.crl");
    let first = eventually(30, "the first CRL", || std::fs::read(&store_crl).ok());
    let source_dir = p.join("source");
    std::fs::create_dir_all(&source_dir).expect("source dir");
    let source_file = source_dir.join("demo.crl");
    let source = format!("file://{}", source_file.display());
    let out = p.join("out.crl");
    let ca_path = p.join("ca.pem").to_string_lossy().into_owned();
    let args = [
        "--source",
        source.as_str(),
        "--ca",
        ca_path.as_str(),
        "--out",
        out.to_str().expect("utf-8"),
        "--format",
        "der",
    ];
    std::fs::write(&source_file, &first).expect("source");
    assert_eq!(crl_sync_once(&args).0, Some(0));
    assert_eq!(std::fs::read(&out).expect("out"), first);

    // A newer CRL is installed.
    revoke(&d, &tok, "5EC0DD", "superseded");
    publish(&d, &tok);
    let second = eventually(30, "a newer CRL", || {
        std::fs::read(&store_crl)
            .ok()
            .filter(|b| crl_number_of(b, &ca) > crl_number_of(&first, &ca))
    });
    std::fs::write(&source_file, &second).expect("source");
    assert_eq!(crl_sync_once(&args).0, Some(0));
    assert_eq!(std::fs::read(&out).expect("out"), second);

    let refused = |bytes: &[u8], why: &str| {
        std::fs::write(&source_file, bytes).expect("source");
        let (code, stderr) = crl_sync_once(&args);
        assert_eq!(code, Some(1), "{why}: {stderr}");
        assert!(stderr.contains(why), "expected {why:?} in: {stderr}");
        assert_eq!(
            std::fs::read(&out).expect("out"),
            second,
            "the installed file stays after {why}"
        );
    };
    // The older CRL again: a rollback.
    refused(&first, "lower than the installed");
    // A flipped bit in the signature.
    let mut tampered = second.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    refused(&tampered, "signature");
    // Properly signed by the CA, a higher number, but nextUpdate has passed.
    let key =
        revocd::pki::SigningKey::from_pkcs8_pem(&std::fs::read(p.join("ca.key")).expect("ca.key"))
            .expect("key");
    let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
    let aki = ca.subject_key_id.clone().unwrap_or_default();
    let expired = revocd::crl::build::build(
        &revocd::crl::build::CrlParams {
            issuer_name: &ca.subject_der,
            authority_key_id: &aki,
            number: crl_number_of(&second, &ca) + 100,
            this_update: now - 7200,
            next_update: now - 3600,
            entries: &[],
            distribution_point: None,
            delta_of: None,
        },
        &key,
    )
    .expect("sign");
    refused(&expired, "expired");
    // An impostor: another CA with the same name (every demo CA has one)
    // signs a fresh CRL with a higher number.
    let other = demo_pki();
    let other_ca = load_cert(&other.path().join("ca.pem"));
    let other_key = revocd::pki::SigningKey::from_pkcs8_pem(
        &std::fs::read(other.path().join("ca.key")).expect("ca.key"),
    )
    .expect("key");
    let other_aki = other_ca.subject_key_id.clone().unwrap_or_default();
    let foreign = revocd::crl::build::build(
        &revocd::crl::build::CrlParams {
            issuer_name: &other_ca.subject_der,
            authority_key_id: &other_aki,
            number: now as u64 + 1000,
            this_update: now,
            next_update: now + 86_400,
            entries: &[],
            distribution_point: None,
            delta_of: None,
        },
        &other_key,
    )
    .expect("sign");
    refused(&foreign, "signature");
}

/// A fresh CRL for the demo CA in `dir`, signed with its key.
fn signed_crl(dir: &Path, number: u64) -> Vec<u8> {
    let ca = load_cert(&dir.join("ca.pem"));
    let key = revocd::pki::SigningKey::from_pkcs8_pem(
        &std::fs::read(dir.join("ca.key")).expect("ca.key"),
    )
    .expect("key");
    let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
    let aki = ca.subject_key_id.clone().unwrap_or_default();
    revocd::crl::build::build(
        &revocd::crl::build::CrlParams {
            issuer_name: &ca.subject_der,
            authority_key_id: &aki,
            number,
            this_update: now,
            next_update: now + 86_400,
            entries: &[],
            distribution_point: None,
            delta_of: None,
        },
        &key,
    )
    .expect("sign")
}

#[test]
fn several_sources_make_one_pem_bundle_in_ca_order() {
    let (a, b) = (demo_pki(), demo_pki());
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    std::fs::write(w.join("a.crl"), signed_crl(a.path(), 7)).expect("a");
    std::fs::write(w.join("b.crl"), signed_crl(b.path(), 9)).expect("b");
    let out = w.join("bundle.pem");
    let (code, stderr) = crl_sync_once(&[
        "--source",
        &format!("file://{}", w.join("b.crl").display()),
        "--source",
        &format!("file://{}", w.join("a.crl").display()),
        "--ca",
        &a.path().join("ca.pem").to_string_lossy(),
        "--ca",
        &b.path().join("ca.pem").to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let crls = revocd::tools::sync::decode_bundle(&std::fs::read(&out).expect("bundle"));
    assert_eq!(crls.len(), 2);
    // CA order (a, then b), whatever the order of the sources.
    assert_eq!(
        crl_number_of(&crls[0], &load_cert(&a.path().join("ca.pem"))),
        7
    );
    assert_eq!(
        crl_number_of(&crls[1], &load_cert(&b.path().join("ca.pem"))),
        9
    );
    // openssl reads the PEM bundle.
    let text = openssl(w, &["crl", "-in", "bundle.pem", "-noout", "-crlnumber"]);
    assert!(text.contains("crlNumber=0x07"), "{text}");
    // A DER file cannot hold two CRLs: refused up front.
    let (code, stderr) = crl_sync_once(&[
        "--source",
        &format!("file://{}", w.join("a.crl").display()),
        "--source",
        &format!("file://{}", w.join("b.crl").display()),
        "--ca",
        &a.path().join("ca.pem").to_string_lossy(),
        "--out",
        &w.join("x.der").to_string_lossy(),
        "--format",
        "der",
    ]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("use --format pem"), "{stderr}");
}

/// CRLs made by python `cryptography` (a producer nobody here wrote), signed
/// with the demo CA's key, one file per case, into `dir`.
const MAKE_CRLS: &str = r#"
import sys, datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
d = sys.argv[1]
ca = x509.load_pem_x509_certificate(open(d + "/ca.pem", "rb").read())
key = serialization.load_pem_private_key(open(d + "/ca.key", "rb").read(), None)
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
def base(number, this_update=now):
    return (x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(this_update)
        .next_update(this_update + datetime.timedelta(days=1))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .add_extension(x509.CRLNumber(number), False))
def sign(b, name, pem=False):
    crl = b.sign(key, hashes.SHA256())
    enc = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    open(d + "/" + name, "wb").write(crl.public_bytes(enc))
odd = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")
sign(base(10).add_extension(x509.UnrecognizedExtension(odd, b"\x05\x00"), True), "unknown-critical.crl")
entry = (x509.RevokedCertificateBuilder().serial_number(0x1234).revocation_date(now)
    .add_extension(x509.UnrecognizedExtension(odd, b"\x05\x00"), True).build())
sign(base(11).add_revoked_certificate(entry), "unknown-critical-entry.crl")
def idp(full_name=None, ca_only=False):
    return x509.IssuingDistributionPoint(full_name=full_name, relative_name=None,
        only_contains_user_certs=False, only_contains_ca_certs=ca_only, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False)
shard = idp(full_name=[x509.UniformResourceIdentifier("http://crl.example.test/demo/0.crl")])
sign(base(12).add_extension(shard, True), "shard.crl")
sign(base(13).add_extension(idp(ca_only=True), True), "only-ca.crl")
sign(base(14, now + datetime.timedelta(days=30)), "future.crl")
sign(base(2**159 - 1), "number-20-octets.crl")
sign(base(15), "plain.crl", pem=True)
print("ok")
"#;

/// Issue 14, item 5: crl-sync refuses, with the reason and keeping the old
/// file, every CRL a consumer's server would reject, and accepts what RFC
/// 5280 allows. Each row also runs openssl verify: on the refused CRL, to
/// show the server would indeed reject it; on the installed file otherwise.
#[test]
fn crl_sync_refuses_what_a_server_would_reject_and_accepts_what_rfc_5280_allows() {
    let dir = demo_pki();
    let p = dir.path();
    let out = run(Command::new(python()).args(["-c", MAKE_CRLS]).arg(p));
    assert!(
        out.status.success() && text(&out).contains("ok"),
        "{}",
        text(&out)
    );
    let ca = p.join("ca.pem").to_string_lossy().to_string();
    // (file, shard source?, --max-bytes, refused because / None, what openssl says of it)
    let rows: [(&str, bool, &str, Option<&str>, &str); 9] = [
        (
            "unknown-critical.crl",
            false,
            "1000000",
            Some("unhandled critical CRL extension"),
            "unhandled critical CRL extension",
        ),
        (
            "unknown-critical-entry.crl",
            false,
            "1000000",
            Some("critical entry extension"),
            "unhandled critical CRL extension",
        ),
        (
            "shard.crl",
            false,
            "1000000",
            Some("Issuing Distribution Point"),
            "different CRL scope",
        ),
        (
            "only-ca.crl",
            false,
            "1000000",
            Some("Issuing Distribution Point"),
            "different CRL scope",
        ),
        (
            "future.crl",
            false,
            "1000000",
            Some("not yet valid"),
            "CRL is not yet valid",
        ),
        (
            "plain.crl",
            false,
            "100",
            Some("larger than the 100-byte cap"),
            "OK",
        ),
        ("shard.crl", true, "1000000", None, ""),
        ("number-20-octets.crl", false, "1000000", None, "OK"),
        ("plain.crl", false, "1000000", None, "OK"),
    ];
    for (n, (file, shard, max, refused, openssl_says)) in rows.into_iter().enumerate() {
        let name = format!("{file} (shard {shard}, max {max})");
        let installed = p.join(format!("installed-{n}.pem"));
        let previous = signed_crl(p, 1);
        std::fs::write(
            &installed,
            revocd::tools::sync::encode_bundle(
                &[Some(revocd::tools::sync::Installed {
                    der: previous.clone(),
                    ca: 0,
                    number: 1,
                    number_bytes: vec![1],
                    this_update: 0,
                    next_update: 1,
                })],
                revocd::tools::sync::Format::Pem,
            ),
        )
        .expect("old file");
        let before = std::fs::read(&installed).expect("read");
        let source = format!("file://{}", p.join(file).display());
        let flag = if shard { "--shard-source" } else { "--source" };
        let (code, stderr) = crl_sync_once(&[
            flag,
            &source,
            "--ca",
            &ca,
            "--out",
            &installed.to_string_lossy(),
            "--max-bytes",
            max,
        ]);
        let verify = |crl_file: &str| {
            run(Command::new(require("openssl")).current_dir(p).args([
                "verify",
                "-crl_check",
                "-CAfile",
                "ca.pem",
                "-CRLfile",
                crl_file,
                "leaf-good.pem",
            ]))
        };
        match refused {
            Some(why) => {
                assert_eq!(code, Some(1), "{name}: {stderr}");
                assert!(stderr.contains(why), "{name}: expected {why:?} in {stderr}");
                assert_eq!(
                    std::fs::read(&installed).expect("read"),
                    before,
                    "{name}: the old file stays"
                );
                // What the server would have said of it.
                let pem = p.join(format!("candidate-{n}.pem"));
                let der = std::fs::read(p.join(file)).expect("crl");
                let der = revocd::tools::sync::crl_der(&der).expect("one crl");
                std::fs::write(
                    &pem,
                    revocd::tools::sync::encode_bundle(
                        &[Some(revocd::tools::sync::Installed {
                            der,
                            ca: 0,
                            number: 0,
                            number_bytes: vec![],
                            this_update: 0,
                            next_update: 0,
                        })],
                        revocd::tools::sync::Format::Pem,
                    ),
                )
                .expect("write");
                let v = verify(&pem.to_string_lossy());
                assert!(
                    text(&v).contains(openssl_says),
                    "{name}: openssl says {}",
                    text(&v)
                );
            }
            None => {
                assert_eq!(code, Some(0), "{name}: {stderr}");
                assert_ne!(
                    std::fs::read(&installed).expect("read"),
                    before,
                    "{name}: installed"
                );
                if !openssl_says.is_empty() {
                    let v = verify(&installed.to_string_lossy());
                    assert!(
                        v.status.success() && text(&v).contains("leaf-good.pem: OK"),
                        "{name}: {}",
                        text(&v)
                    );
                }
            }
        }
    }
}
