//! Starting daemons, finding tools, running clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_revocd");

/// Panics (never skips) when a tool the test needs is missing.
pub fn require(tool: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| {
        panic!(
            "{tool} is not installed; run ./scripts/test, which installs every tool the tests need"
        )
    })
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// The python with `cryptography`: $REVOCD_TEST_PYTHON or target/test-venv.
pub fn python() -> PathBuf {
    let p = std::env::var_os("REVOCD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python")
        });
    let ok = Command::new(&p)
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python with `cryptography` not found at {}; run ./scripts/test, which creates it",
        p.display()
    );
    p
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `revocd init` into a fresh temporary directory.
pub fn demo_pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(Command::new(BIN).args(["init", "--dir"]).arg(dir.path()));
    assert!(out.status.success(), "init failed: {}", text(&out));
    dir
}

/// The serial (hex) `openssl x509` reads from a certificate.
pub fn serial_of(cert: &Path) -> String {
    let out = run(Command::new(require("openssl"))
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert));
    text(&out).trim().trim_start_matches("serial=").to_string()
}

/// A running `revocd serve`, killed on drop.
pub struct Daemon {
    child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `revocd serve --config CONFIG` on OS-chosen ports and waits
    /// until /readyz says ready.
    pub fn start(config: &Path) -> Daemon {
        Self::start_with(config, &[], true)
    }

    /// Like `start`, with environment variables, and keeping the config's
    /// public address when `any_public_port` is false.
    pub fn start_with(config: &Path, env: &[(&str, &str)], any_public_port: bool) -> Daemon {
        Self::spawn(config, env, any_public_port, "/readyz")
    }

    /// Starts and waits only for /healthz: the admin API works, the
    /// pre-signer may still be signing the current window.
    pub fn start_live(config: &Path, env: &[(&str, &str)]) -> Daemon {
        Self::spawn(config, env, true, "/healthz")
    }

    fn spawn(config: &Path, env: &[(&str, &str)], any_public_port: bool, probe: &str) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--admin-listen", "127.0.0.1:0"])
            .envs(env.iter().copied());
        if any_public_port {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn revocd");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = addr_tx.send(line);
            }
        });
        let mut public = None;
        let mut admin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while public.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match addr_rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let logs: Vec<String> = rx.try_iter().collect();
                    panic!("revocd did not report its listeners:\n{}", logs.join("\n"));
                }
            };
            let addr = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|a| a.trim_start_matches("http://").parse().ok())
            };
            if let Some(a) = addr("revocd: public listener on ") {
                public = Some(a);
            }
            if let Some(a) = addr("revocd: admin listener on ") {
                admin = Some(a);
            }
        }
        let d = Daemon {
            child,
            public: public.expect("public"),
            admin: admin.expect("admin"),
            stderr: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _, _)) = d.http_admin("GET", probe) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "revocd never answered {probe} with 200"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.public)
    }

    pub fn http_admin(&self, method: &str, path: &str) -> Option<(u16, String, Vec<u8>)> {
        raw_http(
            self.admin,
            &format!("{method} {path} HTTP/1.0\r\n\r\n").into_bytes(),
        )
    }

    /// What the daemon logged on stderr so far.
    pub fn logs(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let out = run(Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string()));
        assert!(out.status.success(), "kill -{name}: {}", text(&out));
    }

    /// Waits up to `secs` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes, reads to EOF (or 10 s), splits status, headers, body.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    // A server may answer (413) and close before reading everything: keep
    // whatever answer arrived even if the write was cut short.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head, buf[split + 4..].to_vec()))
}

/// `openssl ocsp -reqout` for the given certificates (SHA-1 unless `sha256`).
pub fn openssl_request(dir: &Path, certs: &[&str], sha256: bool, out: &Path) {
    let mut cmd = Command::new(require("openssl"));
    cmd.current_dir(dir)
        .args(["ocsp", "-issuer", "ca.pem", "-no_nonce"]);
    if sha256 {
        cmd.arg("-sha256");
    }
    for c in certs {
        cmd.args(["-cert", c]);
    }
    cmd.arg("-reqout").arg(out);
    let o = run(&mut cmd);
    assert!(o.status.success(), "openssl -reqout: {}", text(&o));
}

/// The admin token `revocd init` wrote.
pub fn token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("admin.token"))
        .expect("token")
        .trim()
        .to_string()
}

/// One admin API call over a fresh HTTP/1.0 connection.
pub fn admin_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, serde_json::Value)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _, body) = raw_http(addr, req.as_bytes())?;
    Some((
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    ))
}

/// Asks the daemon about `serial` over OCSP POST and verifies the answer.
pub fn ocsp_status(
    d: &Daemon,
    ca: &revocd::pki::Cert,
    serial: &revocd::state::Serial,
) -> revocd::query::Verdict {
    ocsp_status_at(
        d,
        ca,
        serial,
        revocd::clock::Clock::now(&revocd::clock::SystemClock),
    )
}

/// `ocsp_status`, checking the answer's times against `now`.
pub fn ocsp_status_at(
    d: &Daemon,
    ca: &revocd::pki::Cert,
    serial: &revocd::state::Serial,
    now: i64,
) -> revocd::query::Verdict {
    try_ocsp_status_at(d, ca, serial, now).expect("verified OCSP answer")
}

/// Asks over OCSP POST; the verified answer, or why there is none (an
/// error status such as unauthorized, a transport or signature problem).
pub fn try_ocsp_status_at(
    d: &Daemon,
    ca: &revocd::pki::Cert,
    serial: &revocd::state::Serial,
    now: i64,
) -> anyhow::Result<revocd::query::Verdict> {
    let der = revocd::query::build_request(ca, serial, revocd::pki::HashAlg::Sha1);
    let (status, _, body) =
        ocsp_post(d.public, &der).ok_or_else(|| anyhow::anyhow!("no HTTP answer"))?;
    anyhow::ensure!(status == 200, "HTTP {status}");
    revocd::query::verify(&body, ca, serial, now)
}

/// POSTs the OCSP request `der` over HTTP/1.0: (status, headers, body).
pub fn ocsp_post(addr: SocketAddr, der: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let mut req = format!(
        "POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        der.len()
    )
    .into_bytes();
    req.extend_from_slice(der);
    raw_http(addr, &req)
}

/// The sum of every sample of the daemon's /metrics whose line starts with
/// `name` (a metric name, or a name with labels).
pub fn metric(d: &Daemon, name: &str) -> f64 {
    let (_, _, body) = d.http_admin("GET", "/metrics").unwrap_or_default();
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn load_cert(path: &Path) -> revocd::pki::Cert {
    revocd::pki::Cert::parse(&std::fs::read(path).expect("read cert")).expect("parse cert")
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `port`.
pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
}

impl Server {
    /// SIGTERM, then SIGKILL after 5 s: a server with worker processes
    /// (nginx's master) stops its workers on TERM; KILL would orphan them.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `moto_server` (PyPI `moto[server]`, from the test venv) on a free port.
pub fn moto(port: Option<u16>) -> Server {
    let python = python();
    let bin = python.parent().expect("venv bin").join("moto_server");
    assert!(
        bin.is_file(),
        "moto_server not found at {}; run ./scripts/test, which installs moto[server]",
        bin.display()
    );
    let port = port.unwrap_or_else(free_port);
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    wait_port(port, "moto_server");
    Server {
        child: Some(child),
        port,
    }
}

/// Creates a bucket on an S3 endpoint that accepts unsigned requests (moto).
pub fn create_bucket(port: u16, bucket: &str) {
    let out = run(Command::new(require("curl"))
        .args(["-s", "-f", "-X", "PUT"])
        .arg(format!("http://127.0.0.1:{port}/{bucket}")));
    assert!(out.status.success(), "create bucket: {}", text(&out));
}

/// The `[crl]` section pointing at an S3 endpoint, replacing the demo's.
pub fn use_s3(config: &Path, port: u16, bucket_prefix: &str, extra: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replace(
        "[crl]\nstore = \"file://crl\"\n",
        &format!(
            "[crl]\nstore = \"s3://{bucket_prefix}\"\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"us-east-1\"\nallow-http = true\n{extra}"
        ),
    );
    std::fs::write(config, text).expect("write config");
}

pub const MOTO_ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

/// Polls `f` every 100 ms until it returns Some, or panics after `secs`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET over HTTP/1.0: (status, headers, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String, Vec<u8>)> {
    raw_http(
        addr,
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
}

/// A signed (SigV4) GET of `path` on an S3 endpoint via curl:
/// (status, headers lowercased, body).
pub fn s3_get(
    port: u16,
    path: &str,
    region: &str,
    key: &str,
    secret: &str,
) -> Option<(u16, String, Vec<u8>)> {
    let dir = tempfile::tempdir().ok()?;
    let body = dir.path().join("body");
    let out = Command::new(require("curl"))
        .args(["-s", "--max-time", "5", "-D", "-", "-o"])
        .arg(&body)
        .args([
            "--aws-sigv4",
            &format!("aws:amz:{region}:s3"),
            "--user",
            &format!("{key}:{secret}"),
        ])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .ok()?;
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head, std::fs::read(&body).unwrap_or_default()))
}

/// `s3_get` against moto with the test credentials.
pub fn moto_get(port: u16, path: &str) -> Option<(u16, String, Vec<u8>)> {
    s3_get(port, path, "us-east-1", "testing", "testing")
}

/// A single-node Garage (crates.io `garage`) with bucket `pki` and a key.
pub struct Garage {
    pub server: Server,
    pub key: String,
    pub secret: String,
    _dir: tempfile::TempDir,
}

pub fn garage() -> Garage {
    let bin = require("garage");
    let dir = tempfile::tempdir().expect("tmp");
    // Ports come from the OS but are only reserved once Garage binds them; a
    // test running alongside may take one first, so a start that fails is
    // retried on fresh ports. Garage's own log explains a final failure.
    let mut failures = Vec::new();
    let (server, config, status) = loop {
        let attempt = failures.len() + 1;
        match start_garage(&bin, dir.path(), attempt) {
            Ok(started) => break started,
            Err(why) if attempt < 3 => failures.push(why),
            Err(why) => {
                failures.push(why);
                panic!("garage did not start:\n{}", failures.join("\n---\n"))
            }
        }
    };
    let cli = |args: &[&str]| -> String {
        let out = run(Command::new(&bin).arg("-c").arg(&config).args(args));
        let t = text(&out);
        assert!(out.status.success(), "garage {args:?}: {t}");
        t
    };
    let node = status
        .lines()
        .skip_while(|l| !l.starts_with("ID"))
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("garage node id")
        .to_string();
    cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
    cli(&["layout", "apply", "--version", "1"]);
    cli(&["bucket", "create", "pki"]);
    let key_info = cli(&["key", "create", "revocd"]);
    let field = |name: &str| {
        key_info
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {key_info}"))
    };
    let key = field("Key ID:");
    let secret = field("Secret key:");
    cli(&[
        "bucket", "allow", "--read", "--write", "--owner", "pki", "--key", "revocd",
    ]);
    wait_port(server.port, "garage s3");
    Garage {
        server,
        key,
        secret,
        _dir: dir,
    }
}

/// One attempt at a single-node Garage under `root/<attempt>`: the running
/// server, its config file and the output of `garage status`.
fn start_garage(
    bin: &Path,
    root: &Path,
    attempt: usize,
) -> Result<(Server, PathBuf, String), String> {
    let p = root.join(attempt.to_string());
    std::fs::create_dir_all(&p).expect("garage dir");
    let (s3, rpc) = (free_port(), free_port());
    if s3 == rpc {
        return Err(format!("attempt {attempt}: the OS gave port {s3} twice"));
    }
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ (s3 as u8);
    }
    let config = p.join("garage.toml");
    std::fs::write(
        &config,
        format!(
            "metadata_dir = \"{m}\"\ndata_dir = \"{d}\"\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
            m = p.join("meta").display(),
            d = p.join("data").display(),
            secret = hex::encode(secret),
        ),
    )
    .expect("garage.toml");
    let log_path = p.join("garage.log");
    let log = std::fs::File::create(&log_path).expect("garage.log");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .arg("server")
        .env("RUST_LOG", "garage=info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn garage");
    let mut server = Server {
        child: Some(child),
        port: s3,
    };
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Some(Ok(Some(exit))) = server.child.as_mut().map(|c| c.try_wait()) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "attempt {attempt}: garage exited ({exit}) with s3 port {s3}, rpc port {rpc}:\n{log}"
            ));
        }
        let out = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .arg("status")
            .output()
            .map_err(|e| format!("garage status: {e}"))?;
        if out.status.success() {
            let status = String::from_utf8_lossy(&out.stdout).to_string();
            if status.lines().any(|l| l.starts_with("ID")) {
                return Ok((server, config, status));
            }
        }
        if Instant::now() > deadline {
            let last = text(&out);
            server.stop();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "attempt {attempt}: `garage status` failed for 45 s (s3 port {s3}, rpc port {rpc}): {last}\nserver log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs openssl in `dir`, asserting success; returns what it printed.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new(require("openssl")).current_dir(dir).args(args));
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    text(&out)
}

/// Revokes `serial` of the demo issuer through the admin API.
pub fn revoke(d: &Daemon, tok: &str, serial: &str, reason: &str) {
    let body = format!(r#"{{"serial": "{serial}", "reason": "{reason}"}}"#);
    let (s, v) = admin_call(
        d.admin,
        "POST",
        "/v1/issuers/demo/revocations",
        Some(tok),
        &body,
    )
    .expect("revoke");
    assert_eq!(s, 200, "{v}");
}

/// Runs `revocd serve` that is expected to exit on its own: its exit code
/// (None if it had to be killed after `secs`) and what it wrote to stderr.
pub fn serve_until_exit(config: &Path, env: &[(&str, &str)], secs: u64) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn revocd");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, reader.join().unwrap_or_default())
}

/// What the fault proxy does with each request.
pub const PASS: u8 = 0;
pub const FAIL: u8 = 1;
pub const SLOW: u8 = 2;

/// A TCP proxy in front of a real HTTP server (moto, revocd) that can answer 500
/// or hold every request for 3 seconds.
/// Every answer's HTTP status is recorded, in order.
pub struct FaultProxy {
    pub port: u16,
    pub mode: Arc<AtomicU8>,
    pub statuses: Arc<Mutex<Vec<u16>>>,
}

pub fn fault_proxy(upstream: u16) -> FaultProxy {
    proxy(upstream, false)
}

/// A proxy that forwards one request at a time. moto's conditional PUT is
/// check-then-write without a lock: under load two `If-None-Match: *`
/// creates of one key can both succeed (seen: 5 to 10 of 1,000 fleet
/// revocations lost with the CPU busy), where S3 guarantees one winner. In
/// front of moto this makes its conditional writes atomic, as the real
/// stores revocd targets are.
pub fn serial_proxy(upstream: u16) -> FaultProxy {
    proxy(upstream, true)
}

fn proxy(upstream: u16, serial: bool) -> FaultProxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mode = Arc::new(AtomicU8::new(PASS));
    let statuses: Arc<Mutex<Vec<u16>>> = Arc::default();
    let gate = serial.then(|| Arc::new(Mutex::new(())));
    let (m, st) = (mode.clone(), statuses.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let (m, st, gate) = (m.clone(), st.clone(), gate.clone());
            std::thread::spawn(move || {
                let mode = m.load(Ordering::SeqCst);
                if let Some(status) = relay(conn, upstream, mode, gate.as_deref()) {
                    st.lock().expect("lock").push(status);
                }
            });
        }
    });
    FaultProxy {
        port,
        mode,
        statuses,
    }
}

/// One request per connection: read it, then fail, delay or forward it.
fn relay(mut client: TcpStream, upstream: u16, mode: u8, gate: Option<&Mutex<()>>) -> Option<u16> {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut req = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&req[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while req.len() < head_end + length {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    if mode == FAIL {
        let body = "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>injected</Message></Error>";
        let _ = write!(
            client,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return Some(500);
    }
    if mode == SLOW {
        std::thread::sleep(Duration::from_secs(3));
    }
    // Forward with `Connection: close` so moto's answer ends at EOF.
    let mut forwarded: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .flat_map(|l| [l, "\r\n"])
        .collect::<String>()
        .into_bytes();
    forwarded.extend_from_slice(b"Connection: close\r\n\r\n");
    forwarded.extend_from_slice(&req[head_end..]);
    // With a gate, the upstream sees one request at a time.
    let _turn = gate.map(|g| g.lock().unwrap_or_else(|p| p.into_inner()));
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return None;
    };
    let _ = up.set_read_timeout(Some(Duration::from_secs(20)));
    if up.write_all(&forwarded).is_err() {
        return None;
    }
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    let _ = client.write_all(&answer);
    let _ = client.shutdown(Shutdown::Write);
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
