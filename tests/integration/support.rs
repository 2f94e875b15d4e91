//! Starting daemons, finding tools, running clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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

/// Adds `extra` lines to the `[crl]` section of `config`.
pub fn set_crl(config: &Path, extra: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    std::fs::write(config, text.replace("[crl]\n", &format!("[crl]\n{extra}"))).expect("write");
}

/// An admin token file `admin.token` in `dir`, mode 0600 as revocd requires.
pub fn write_admin_token(dir: &Path, token: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("admin.token");
    std::fs::write(&path, format!("{token}\n")).expect("token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// `revocd init` with more arguments (`--algorithm ml-dsa-44`).
pub fn demo_pki_with(args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(Command::new(BIN)
        .args(["init", "--dir"])
        .arg(dir.path())
        .args(args));
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

/// Everything a child process printed (stderr and stdout, in the order the
/// lines arrived, colour codes removed), kept whole: reading never
/// consumes, so a second look, or a negative check made after the process
/// exited, sees every line.
pub struct LogBook {
    inner: Mutex<LogLines>,
    grew: Condvar,
}

#[derive(Default)]
struct LogLines {
    lines: Vec<String>,
    /// Streams still open (each reader thread closes its own at EOF).
    open: usize,
}

impl LogBook {
    pub fn new() -> Arc<LogBook> {
        Arc::new(LogBook {
            inner: Mutex::new(LogLines::default()),
            grew: Condvar::new(),
        })
    }

    /// Reads `stream` line by line into the book on a thread of its own.
    pub fn follow(self: &Arc<Self>, stream: impl Read + Send + 'static) {
        self.lock().open += 1;
        let book = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                book.lock().lines.push(strip_ansi(&line));
                book.grew.notify_all();
            }
            book.lock().open -= 1;
            book.grew.notify_all();
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogLines> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every line so far, joined with newlines.
    pub fn text(&self) -> String {
        self.lock().lines.join("\n")
    }

    /// Waits up to `secs` for a line for which `matches` holds and returns
    /// it; None once the time is up or every stream has ended without one.
    pub fn find(&self, secs: u64, matches: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = 0;
        let mut inner = self.lock();
        loop {
            if let Some(l) = inner.lines[seen..].iter().find(|l| matches(l)) {
                return Some(l.clone());
            }
            seen = inner.lines.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || inner.open == 0 {
                return None;
            }
            inner = self
                .grew
                .wait_timeout(inner, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits up to `secs` for every stream to end (the process and anything
    /// holding its pipes exited); whether they did.
    pub fn wait_closed(&self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut inner = self.lock();
        while inner.open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self
                .grew
                .wait_timeout(inner, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// `line` without ANSI colour sequences (ESC [ ... m).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How long a test waits for a log line, a metric or a file that some
/// other thread or process produces: long enough for a loaded CI machine,
/// and only ever spent when something is wrong.
pub const WAIT_SECS: u64 = 30;

/// A running `revocd serve`, killed on drop.
pub struct Daemon {
    child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// The admin listener speaks TLS (`admin.tls-*`).
    pub admin_tls: bool,
    /// The plain health and metrics listener (`listen.metrics`), if any.
    pub metrics: Option<SocketAddr>,
    log: Arc<LogBook>,
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

    /// Starts revocd with its public listener on a port picked free and
    /// written into the config by `configure(port)` (for URLs that must
    /// name the port before the daemon starts). A port picked free can be
    /// taken before revocd binds it; revocd then exits ("binding the public
    /// listener") and this tries again on another port, up to 5 times.
    pub fn start_on_free_port(mut configure: impl FnMut(u16) -> PathBuf) -> (Daemon, u16) {
        let mut tried = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            let config = configure(port);
            match Self::try_spawn(&config, &[], false, "/readyz") {
                Ok(d) => return (d, port),
                Err(logs) if logs.contains("binding the public listener") => tried.push(port),
                Err(logs) => panic!("revocd did not start:\n{logs}"),
            }
        }
        panic!("revocd could not bind any of the ports tried: {tried:?}");
    }

    fn spawn(config: &Path, env: &[(&str, &str)], any_public_port: bool, probe: &str) -> Daemon {
        Self::try_spawn(config, env, any_public_port, probe)
            .unwrap_or_else(|logs| panic!("revocd did not start:\n{logs}"))
    }

    /// Starts revocd and waits until `probe` answers 200; on failure (it
    /// exited, or did not get ready within 90 s) kills it and returns
    /// everything it printed.
    fn try_spawn(
        config: &Path,
        env: &[(&str, &str)],
        any_public_port: bool,
        probe: &str,
    ) -> Result<Daemon, String> {
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
        let log = LogBook::new();
        log.follow(child.stderr.take().expect("stderr"));
        log.follow(child.stdout.take().expect("stdout"));
        let listener = |prefix: &'static str| -> Option<SocketAddr> {
            let line = log.find(60, |l| l.starts_with(prefix))?;
            line.strip_prefix(prefix)?
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .parse()
                .ok()
        };
        let (Some(public), Some(admin)) = (
            listener("revocd: public listener on "),
            listener("revocd: admin listener on "),
        ) else {
            let _ = child.kill();
            let _ = child.wait();
            log.wait_closed(5);
            return Err(format!(
                "revocd did not report its listeners:\n{}",
                log.text()
            ));
        };
        // Printed before the admin line when configured.
        let metrics = log
            .find(0, |l| l.starts_with("revocd: metrics listener on "))
            .and_then(|l| {
                l.trim_start_matches("revocd: metrics listener on http://")
                    .trim()
                    .parse()
                    .ok()
            });
        let admin_tls = log
            .find(0, |l| l.starts_with("revocd: admin listener on https://"))
            .is_some();
        let mut d = Daemon {
            child,
            public,
            admin,
            admin_tls,
            metrics,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some((200, _, _)) = d.http_admin("GET", probe) {
                return Ok(d);
            }
            if !d.is_alive() || Instant::now() > deadline {
                d.kill();
                d.log.wait_closed(5);
                return Err(format!(
                    "revocd never answered {probe} with 200:\n{}",
                    d.log.text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.public)
    }

    /// A request without credentials to the admin listener (health,
    /// readiness, metrics). With admin TLS it goes to the plain metrics
    /// listener when there is one, else over TLS with curl (trusting any
    /// certificate: the tests of TLS itself verify it).
    pub fn http_admin(&self, method: &str, path: &str) -> Option<(u16, String, Vec<u8>)> {
        let plain = |addr| {
            raw_http(
                addr,
                &format!("{method} {path} HTTP/1.0\r\n\r\n").into_bytes(),
            )
        };
        match (self.admin_tls, self.metrics) {
            (false, _) => plain(self.admin),
            (true, Some(m)) => plain(m),
            (true, None) => {
                let out = Command::new(require("curl"))
                    .args(["-sk", "--max-time", "5", "-X", method, "-D", "-"])
                    .arg(format!("https://{}{path}", self.admin))
                    .output()
                    .ok()?;
                let all = out.stdout;
                let split = all.windows(4).position(|w| w == b"\r\n\r\n")?;
                let head = String::from_utf8_lossy(&all[..split]).to_string();
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                Some((status, head, all[split + 4..].to_vec()))
            }
        }
    }

    /// Everything the daemon printed so far (never consumed). For a line
    /// that may still be on its way, use `wait_log`; for "never logged",
    /// `stop` first and look at what it returns.
    pub fn logs(&self) -> String {
        self.log.text()
    }

    /// Waits (up to `WAIT_SECS`) for a log line containing `needle` and
    /// returns it; on timeout panics with everything the daemon printed.
    pub fn wait_log(&self, needle: &str) -> String {
        self.log
            .find(WAIT_SECS, |l| l.contains(needle))
            .unwrap_or_else(|| {
                panic!(
                    "no log line containing {needle:?} within {WAIT_SECS} s; the daemon printed:\n{}",
                    self.logs()
                )
            })
    }

    /// Waits (up to `WAIT_SECS`) for a log line for which `matches` holds;
    /// on timeout panics naming `what`, with everything the daemon printed.
    pub fn wait_log_where(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        self.log.find(WAIT_SECS, matches).unwrap_or_else(|| {
            panic!(
                "no log line {what} within {WAIT_SECS} s; the daemon printed:\n{}",
                self.logs()
            )
        })
    }

    /// SIGTERM, then waits (bounded) for the exit and for the last line of
    /// output: its exit status and everything it printed. What a negative
    /// check ("never logged X") must look at.
    pub fn stop(&mut self) -> (std::process::ExitStatus, String) {
        if self.is_alive() {
            self.signal("TERM");
        }
        let status = self
            .wait_exit(60)
            .unwrap_or_else(|| panic!("revocd still running 60 s after SIGTERM:\n{}", self.logs()));
        (status, self.final_logs())
    }

    /// Everything the process printed, once it has exited (killed or
    /// stopped) and its output is read to the end.
    pub fn final_logs(&mut self) -> String {
        assert!(!self.is_alive(), "final_logs of a running daemon");
        assert!(
            self.log.wait_closed(WAIT_SECS),
            "revocd's output did not end after its exit:\n{}",
            self.logs()
        );
        self.logs()
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
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// A connection to `addr` from the loopback address `from` (127.0.0.2, ...):
/// another client address than the tests' own 127.0.0.1.
pub fn connect_from(from: std::net::Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(socket.into())
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
) -> revocd::tools::query::Verdict {
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
) -> revocd::tools::query::Verdict {
    try_ocsp_status_at(d, ca, serial, now).expect("verified OCSP answer")
}

/// Asks over OCSP POST; the verified answer, or why there is none (an
/// error status such as unauthorized, a transport or signature problem).
pub fn try_ocsp_status_at(
    d: &Daemon,
    ca: &revocd::pki::Cert,
    serial: &revocd::state::Serial,
    now: i64,
) -> anyhow::Result<revocd::tools::query::Verdict> {
    let der = revocd::tools::query::build_request(ca, serial, revocd::pki::HashAlg::Sha1);
    let (status, _, body) =
        ocsp_post(d.public, &der).ok_or_else(|| anyhow::anyhow!("no HTTP answer"))?;
    anyhow::ensure!(status == 200, "HTTP {status}");
    revocd::tools::query::verify(&body, ca, serial, now)
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

/// A free loopback port (bound, then released): free when picked, not
/// reserved. Only for programs that must be told their port beforehand;
/// start them with `on_free_port`, which retries when the port was taken.
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

/// Starts a server that must be told its port beforehand (nginx, HAProxy):
/// `start(port)` on a free port, then waits until the port accepts
/// connections. A port picked free can be taken before the server binds
/// it (by another test's server, or as the local port of an outgoing
/// connection); the server then exits, and this tries again on another
/// port, up to 5 times. Returns the server and what `start` returned.
pub fn on_free_port<T>(what: &str, mut start: impl FnMut(u16) -> (Child, T)) -> (Server, T) {
    let mut tried = Vec::new();
    for _ in 0..5 {
        let port = free_port();
        let (child, extra) = start(port);
        let mut server = Server {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (server, extra);
            }
            let exited = server
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                tried.push(port);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("{what} exited at start on every port tried: {tried:?}");
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

/// moto (PyPI `moto[server]`, from the test venv) on a port the OS picks
/// (`tests/python/moto_server.py` prints it).
pub fn moto() -> Server {
    moto_with_commands().0
}

/// The commands `tests/python/moto_server.py` takes on stdin, for what
/// moto's APIs cannot do (a delegated responder or a CRL signed with a mock
/// Private CA's own key).
pub struct MotoCommands {
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl MotoCommands {
    /// Runs one command; panics unless moto answers "ok".
    pub fn run(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to moto");
        self.stdin.flush().expect("flush");
        let answer = self
            .lines
            .recv_timeout(Duration::from_secs(WAIT_SECS))
            .expect("moto answers its command");
        assert_eq!(answer.trim(), "ok", "moto: {command}: {answer}");
    }
}

/// moto, and its command channel.
pub fn moto_with_commands() -> (Server, MotoCommands) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/moto_server.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .and_then(|l| l.trim().parse::<u16>().ok());
    let Some(port) = port else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto did not report its port within 60 s");
    };
    wait_port(port, "moto");
    (
        Server {
            child: Some(child),
            port,
        },
        MotoCommands { stdin, lines: rx },
    )
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

/// Like `eventually`, for a condition that can say why it does not hold
/// yet: on timeout the last reason is in the panic.
pub fn eventually_ok<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) => assert!(
                Instant::now() < deadline,
                "timed out after {secs}s waiting for {what}; last: {why}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to `WAIT_SECS`) until `metric(d, name)` is at least `min`, and
/// returns it: for counts made by another thread after the action the test
/// took (a publish, a purge, a closed connection).
pub fn metric_reaches(d: &Daemon, name: &str, min: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(WAIT_SECS);
    loop {
        let v = metric(d, name);
        if v >= min {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {v} after {WAIT_SECS} s, expected at least {min}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the wall clock's whole second has moved past `t` (Unix
/// seconds): for stores and clocks that keep whole seconds (S3's
/// LastModified, OCSP times), so that what comes next is later than `t`.
pub fn until_after_second(t: i64) {
    use revocd::clock::Clock;
    eventually(5, "the next second", || {
        (revocd::clock::SystemClock.now() > t).then_some(())
    });
}

/// Waits, if need be, until the current `window`-second window (of the
/// wall clock) has at least `need` seconds left, so that a test that must
/// run inside one window does not straddle a rollover: a wait on the clock
/// itself, taken only in the last `need` seconds of a window.
pub fn until_window_has_left(window: i64, need: i64) {
    use revocd::clock::Clock;
    let left = || window - revocd::clock::SystemClock.now().rem_euclid(window);
    if left() < need {
        let secs = u64::try_from(need + 1).unwrap_or(0);
        eventually(secs, "the next window", || (left() >= need).then_some(()));
    }
}

/// libfaketime's preload library (Debian package libfaketime).
pub fn libfaketime() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("libfaketime not found; ./scripts/test installs it (apt-get install libfaketime)")
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
    /// Where requests go; may be changed (a restarted upstream on a new port).
    pub upstream: Arc<AtomicU16>,
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
    let upstream = Arc::new(AtomicU16::new(upstream));
    let gate = serial.then(|| Arc::new(Mutex::new(())));
    let (m, st, up) = (mode.clone(), statuses.clone(), upstream.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let (m, st, gate) = (m.clone(), st.clone(), gate.clone());
            let upstream = up.load(Ordering::SeqCst);
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
        upstream,
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
