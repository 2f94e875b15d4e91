//! `revocd crl-sync --haproxy-socket`: a real HAProxy 2.6 doing mutual TLS
//! gets each new CRL through its runtime API. A revoked client certificate
//! is refused after the sync with no reload, a good one still connects; and
//! replacing the file alone (the control) changes nothing in HAProxy.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::*;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client (or server) certificate from the demo CA.
pub(crate) fn issue(dir: &Path, name: &str, ext: &str) -> String {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "5",
            "-sha256",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    serial_of(&dir.join(format!("{name}.pem")))
}

/// `curl` with a client certificate: did the TLS handshake and request pass?
fn connects(dir: &Path, port: u16, client: &str) -> bool {
    let out = run(Command::new(require("curl"))
        .current_dir(dir)
        .args(["-s", "-k", "--max-time", "5", "--cert"])
        .arg(format!("{client}.pem"))
        .arg("--key")
        .arg(format!("{client}.key"))
        .arg(format!("https://127.0.0.1:{port}/")));
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok")
}

#[test]
fn haproxy_refuses_a_revoked_client_after_crl_sync_without_a_reload() {
    let haproxy = require("haproxy");
    let dir = demo_pki();
    let p = dir.path();
    let config = p.join("revocd.toml");
    let cfg = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        cfg.replace("[crl]\n", "[crl]\ndebounce = \"1s\"\nmax-delay = \"2s\"\n"),
    )
    .expect("config");
    let d = Daemon::start(&config);
    let client_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";
    let alice = issue(p, "alice", client_ext);
    issue(p, "bob", client_ext);
    issue(
        p,
        "server",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    );
    let server_pem = [
        std::fs::read(p.join("server.pem")).expect("pem"),
        std::fs::read(p.join("server.key")).expect("key"),
    ]
    .concat();
    std::fs::write(p.join("server-bundle.pem"), server_pem).expect("bundle");
    let crl_url = format!("{}crl/demo.crl", d.url());
    let crl = p.join("crl.pem");
    let sync_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--source", &crl_url, "--ca", "ca.pem", "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(crl.display().to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let once = |extra: &[&str]| {
        let out = run(Command::new(BIN)
            .current_dir(p)
            .args(["crl-sync", "--once"])
            .args(sync_args(extra)));
        assert!(out.status.success(), "crl-sync --once: {}", text(&out));
    };
    once(&[]);

    let socket = p.join("haproxy.sock");
    let configure = |port: u16| {
        std::fs::write(
        p.join("haproxy.cfg"),
        format!(
            "global\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n\
             frontend mtls\n  bind 127.0.0.1:{port} ssl crt {} ca-file {} verify required crl-file {}\n\
             \x20 http-request return status 200 content-type text/plain string \"ok\\n\"\n",
            socket.display(),
            p.join("server-bundle.pem").display(),
            p.join("ca.pem").display(),
            crl.display(),
        ),
    )
    .expect("haproxy.cfg");
        let check = run(Command::new(&haproxy)
            .args(["-c", "-f"])
            .arg(p.join("haproxy.cfg")));
        assert!(check.status.success(), "haproxy -c: {}", text(&check));
        let child = Command::new(&haproxy)
            .args(["-db", "-f"])
            .arg(p.join("haproxy.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy");
        (child, ())
    };
    let (ha, ()) = on_free_port("haproxy", configure);
    let port = ha.port;
    let pid = ha.child.as_ref().expect("haproxy").id();
    assert!(connects(p, port, "alice") && connects(p, port, "bob"));

    // Alice is revoked; revocd publishes the CRL.
    let tok = token(p);
    revoke(&d, &tok, &alice, "keyCompromise");
    let ca = load_cert(&p.join("ca.pem"));
    eventually(WAIT_SECS, "the revocation on revocd's CRL", || {
        let (s, _, der) = http_get(d.public, "/crl/demo.crl")?;
        let f = revocd::crl::build::check(&der, &ca).ok()?;
        (s == 200 && f.n_entries == 2).then_some(())
    });
    // The control: the file replaced, HAProxy not told. It still lets
    // Alice in (it reads crl-file only at start).
    once(&[]);
    assert!(
        connects(p, port, "alice"),
        "HAProxy re-read the file by itself?"
    );
    // Through the runtime API: refused at once, no reload.
    let socket_arg = socket.display().to_string();
    once(&["--haproxy-socket", &socket_arg]);
    assert!(
        !connects(p, port, "alice"),
        "the revoked client still connects"
    );
    assert!(connects(p, port, "bob"), "the good client is refused");
    assert_eq!(ha.child.as_ref().expect("haproxy").id(), pid);

    // The daemon mode: a later revocation of Bob follows on its own.
    let sync = Killed(
        Command::new(BIN)
            .current_dir(p)
            .arg("crl-sync")
            .args(sync_args(&[
                "--interval",
                "1s",
                "--haproxy-socket",
                &socket_arg,
            ]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("crl-sync"),
    );
    let bob = serial_of(&p.join("bob.pem"));
    revoke(&d, &tok, &bob, "superseded");
    eventually(30, "Bob refused through the running crl-sync", || {
        (!connects(p, port, "bob")).then_some(())
    });
    drop(sync);
    assert_eq!(
        ha.child.as_ref().expect("haproxy").id(),
        pid,
        "never reloaded"
    );
}
