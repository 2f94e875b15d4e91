//! nginx OCSP stapling from revocd: `ssl_stapling on` with
//! `ssl_stapling_responder` pointing at revocd, `ssl_stapling_verify on`, and
//! `openssl s_client -status` reading the staple (the first handshake after
//! start has none; later ones do).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

fn nginx_bin() -> PathBuf {
    which_sbin("nginx")
}

/// nginx lives in /usr/sbin, which a CI PATH may not hold.
fn which_sbin(tool: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(tool);
    if sbin.is_file() {
        return sbin;
    }
    require(tool)
}

struct Nginx {
    _server: Server,
    port: u16,
}

/// nginx with OCSP stapling from `responder`, on a free port.
fn nginx(dir: &Path, cert: &str, key: &str, responder: &str) -> Nginx {
    let (server, ()) = on_free_port("nginx", |port| {
        (nginx_on(dir, cert, key, responder, port), ())
    });
    Nginx {
        port: server.port,
        _server: server,
    }
}

fn nginx_on(dir: &Path, cert: &str, key: &str, responder: &str, port: u16) -> Child {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("nginx-tmp")).expect("tmp");
    let conf = format!(
        "user root;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/nginx-error.log info;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/nginx-tmp/body;\n  proxy_temp_path {d}/nginx-tmp/proxy;\n\
           fastcgi_temp_path {d}/nginx-tmp/fcgi;\n  uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n  scgi_temp_path {d}/nginx-tmp/scgi;\n\
           server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n\
             ssl_certificate {d}/{cert};\n    ssl_certificate_key {d}/{key};\n\
             ssl_stapling on;\n    ssl_stapling_verify on;\n    ssl_trusted_certificate {d}/ca.pem;\n\
             ssl_stapling_responder {responder};\n    location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("nginx.conf");
    Command::new(nginx_bin())
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx")
}

fn s_client(dir: &Path, port: u16) -> String {
    let out = run(Command::new(require("openssl"))
        .current_dir(dir)
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-status",
            "-CAfile",
            "ca.pem",
        ])
        .stdin(Stdio::null()));
    text(&out)
}

#[test]
fn nginx_staples_a_good_answer_from_revocd() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let n = nginx(p, "leaf-good.pem", "leaf-good.key", &d.url());
    let out = eventually(30, "a staple in s_client -status", || {
        let out = s_client(p, n.port);
        out.contains("OCSP Response Status: successful")
            .then_some(out)
    });
    assert!(out.contains("Cert Status: good"), "{out}");
    assert!(out.contains("Response Type: Basic OCSP Response"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let log = std::fs::read_to_string(p.join("nginx-error.log")).unwrap_or_default();
    assert!(!log.contains("OCSP response not successful"), "{log}");
    assert!(!log.contains("certificate status"), "{log}");
}

#[test]
fn after_a_revocation_nginx_refetches_and_refuses_to_staple_revoked() {
    let dir = demo_pki();
    let p = dir.path();
    let d = Daemon::start(&p.join("revocd.toml"));
    let n = nginx(p, "leaf-good.pem", "leaf-good.key", &d.url());
    eventually(30, "a good staple", || {
        s_client(p, n.port)
            .contains("Cert Status: good")
            .then_some(())
    });
    let good = serial_of(&p.join("leaf-good.pem"));
    revoke(&d, &token(p), &good, "keyCompromise");
    // nginx refetches at the earliest 5 minutes later; a restart makes it
    // fetch now. nginx never staples a revoked answer: it logs the status and
    // sends no staple (ngx_ssl_stapling_ocsp_handler), so clients fall back to
    // asking revocd, which says revoked.
    drop(n);
    let n = nginx(p, "leaf-good.pem", "leaf-good.key", &d.url());
    let log = eventually(30, "nginx to fetch the revoked answer", || {
        let _ = s_client(p, n.port);
        let log = std::fs::read_to_string(p.join("nginx-error.log")).unwrap_or_default();
        log.contains("certificate status \"revoked\" in the OCSP response")
            .then_some(log)
    });
    assert!(log.contains("revoked"), "{log}");
    let out = s_client(p, n.port);
    assert!(out.contains("OCSP response: no response sent"), "{out}");
    let ca = load_cert(&p.join("ca.pem"));
    let serial = revocd::state::Serial::from_hex(&good).expect("hex");
    assert_eq!(ocsp_status(&d, &ca, &serial).status, "revoked");
}
