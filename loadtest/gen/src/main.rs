//! revocd-load: drives an OCSP responder with real requests minted for an
//! issuer and a serial set (GET and POST, SHA-1 and SHA-256 CertIDs, a hot
//! share of serials), over keep-alive HTTP/1.1 connections, and reports
//! throughput and latency percentiles from an HDR histogram as text and JSON.
//!
//! With `--rate`, each connection sends on a fixed schedule and latency is
//! measured from the scheduled time, so a stalled server is not hidden by
//! the generator waiting for it (no coordinated omission).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

use revocd::pki::{Cert, HashAlg};
use revocd::state::Serial;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    Get,
    Post,
    /// Alternate GET and POST.
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Hash {
    Sha1,
    Sha256,
    /// Both, half each.
    Mixed,
}

/// What an abusive client sends: every request distinct, so each is a
/// cache miss a stranger can produce (issue 14's abuse scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Abuse {
    /// 2 or 3 random CertIDs of known serials in one POST.
    Multi,
    /// One random serial no CA issued (a miss under `unknown-serial =
    /// "unknown"` or `"revoked"`).
    Unknown,
    /// Half each.
    Mixed,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for OCSP responders")]
struct Args {
    /// Responder URL, e.g. http://127.0.0.1:8080/ (GET appends the request
    /// in base64).
    #[arg(long)]
    url: String,
    /// The issuing CA certificate (PEM or DER).
    #[arg(long)]
    issuer: PathBuf,
    /// A file with one hex serial per line.
    #[arg(long)]
    serials: PathBuf,
    #[arg(long, value_enum, default_value_t = Method::Get)]
    method: Method,
    #[arg(long, value_enum, default_value_t = Hash::Sha1)]
    hash: Hash,
    /// Share of requests (0 to 1) that go to the hot set.
    #[arg(long, default_value_t = 0.0)]
    hot_share: f64,
    /// How many serials (the first of the file) make the hot set.
    #[arg(long, default_value_t = 100)]
    hot_count: usize,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests per second across all connections (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Name of what is measured, in the report.
    #[arg(long, default_value = "target")]
    label: String,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Send abusive POSTs instead of the minted requests: each one new.
    #[arg(long, value_enum)]
    abuse: Option<Abuse>,
    /// Instead of load: fetch every minted GET once and write each answer
    /// under DIR at its request path (a static-file docroot serving the very
    /// same bytes), plus DIR.b64 with one base64 answer per line (the
    /// `cfssl ocspserve -responses` format).
    #[arg(long)]
    dump: Option<PathBuf>,
}

/// One minted request.
struct Minted {
    post: bool,
    /// GET: path and query of the request; POST: the path of the URL.
    path: String,
    /// The whole HTTP/1.1 request, ready to write.
    wire: Vec<u8>,
    /// The DER OCSPRequest.
    der: Vec<u8>,
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The HTTP/1.1 request bytes for `m`.
fn wire(host: &str, post: bool, path: &str, der: &[u8]) -> Vec<u8> {
    if post {
        let mut w = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
            der.len()
        )
        .into_bytes();
        w.extend_from_slice(der);
        w
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
    }
}

/// What one connection saw.
struct Tally {
    latency: Histogram<u64>,
    /// From the actual send to the answer. With `--rate` the latency counts
    /// from the scheduled slot instead, which includes the timer's lateness
    /// (tokio's timers tick in whole milliseconds) as well as any stall.
    service: Histogram<u64>,
    ok: u64,
    non_200: u64,
    errors: u64,
    bytes: u64,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            service: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            ok: 0,
            non_200: 0,
            errors: 0,
            bytes: 0,
        })
    }

    fn merge(&mut self, other: &Tally) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.service.add(&other.service)?;
        self.ok += other.ok;
        self.non_200 += other.non_200;
        self.errors += other.errors;
        self.bytes += other.bytes;
        Ok(())
    }
}

fn read_serials(path: &PathBuf) -> anyhow::Result<Vec<Serial>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(
            Serial::from_hex(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?,
        );
    }
    if out.is_empty() {
        bail!("{} holds no serials", path.display());
    }
    Ok(out)
}

/// Every request the run may send, per serial: [GET/POST] x [hash].
fn mint(args: &Args, host: &str, base_path: &str) -> anyhow::Result<Vec<Vec<Minted>>> {
    let bytes = std::fs::read(&args.issuer)
        .with_context(|| format!("reading {}", args.issuer.display()))?;
    let issuer =
        Cert::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", args.issuer.display()))?;
    let hashes: &[HashAlg] = match args.hash {
        Hash::Sha1 => &[HashAlg::Sha1],
        Hash::Sha256 => &[HashAlg::Sha256],
        Hash::Mixed => &[HashAlg::Sha1, HashAlg::Sha256],
    };
    let methods: &[bool] = match args.method {
        Method::Get => &[false],
        Method::Post => &[true],
        Method::Mixed => &[false, true],
    };
    let prefix = if base_path.ends_with('/') {
        base_path.to_string()
    } else {
        format!("{base_path}/")
    };
    Ok(read_serials(&args.serials)?
        .iter()
        .map(|serial| {
            let mut variants = Vec::new();
            for &alg in hashes {
                let der = revocd::tools::query::build_request(&issuer, serial, alg);
                for &post in methods {
                    let path = if post {
                        base_path.to_string()
                    } else {
                        format!(
                            "{prefix}{}",
                            base64::engine::general_purpose::STANDARD.encode(&der)
                        )
                    };
                    variants.push(Minted {
                        post,
                        wire: wire(host, post, &path, &der),
                        path,
                        der: der.clone(),
                    });
                }
            }
            variants
        })
        .collect())
}

/// A small xorshift: which serial and variant to send next.
struct Pick(u64);

impl Pick {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Plan {
    addr: std::net::SocketAddr,
    /// Abusive requests are minted per send from these.
    abuse: Option<(Abuse, Cert, Vec<Serial>, String, String)>,
    requests: Vec<Vec<Minted>>,
    hot_share: f64,
    hot_count: usize,
    deadline: Instant,
    /// Time between two sends on one connection (None: back to back).
    interval: Option<Duration>,
}

/// One HTTP/1.1 exchange on `stream`: (status, body, server closes).
/// `buf` is reused between calls; the body is a range of it.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, std::ops::Range<usize>, bool)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    stream.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("closed before the headers"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut close = status_line.starts_with("HTTP/1.0");
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.trim().eq_ignore_ascii_case("close");
        }
    }
    match length {
        Some(len) => {
            while buf.len() < head_end + len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(bad("closed inside the body"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok((status, head_end..head_end + len, close))
        }
        None => {
            stream.read_to_end(buf).await?;
            Ok((status, head_end..buf.len(), true))
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connection(plan: Arc<Plan>, seed: u64) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    let mut pick = Pick(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let started = Instant::now();
    let mut sent: u32 = 0;
    let mut stream = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    while Instant::now() < plan.deadline {
        // With a rate, each send has its slot; latency counts from the slot.
        let scheduled = match plan.interval {
            Some(iv) => {
                let slot = started + iv * sent;
                tokio::time::sleep_until(slot.into()).await;
                slot
            }
            None => Instant::now(),
        };
        sent = sent.wrapping_add(1);
        if stream.is_none() {
            match connect(plan.addr).await {
                Ok(s) => stream = Some(s),
                Err(_) => {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let abusive;
        let m = if let Some((kind, issuer, serials, host, path)) = &plan.abuse {
            abusive = abusive_request(*kind, issuer, serials, host, path, &mut pick);
            &abusive
        } else {
            pick_minted(&plan, &mut pick)
        };
        let sent_at = Instant::now();
        match exchange(s, &m.wire, &mut buf).await {
            Ok((status, body, close)) => {
                let micros = scheduled.elapsed().as_micros().max(1) as u64;
                let _ = tally.latency.record(micros.min(60_000_000));
                let service = sent_at.elapsed().as_micros().max(1) as u64;
                let _ = tally.service.record(service.min(60_000_000));
                tally.bytes += body.len() as u64;
                if status == 200 && !body.is_empty() {
                    tally.ok += 1;
                } else {
                    tally.non_200 += 1;
                }
                if close {
                    // The server does not keep connections (openssl ocsp):
                    // reconnecting is part of its cost, not an error.
                    stream = None;
                }
            }
            Err(_) => {
                tally.errors += 1;
                stream = None;
            }
        }
    }
    Ok(tally)
}

/// The next minted request: a serial (from the hot set with `hot_share`)
/// and one of its variants.
fn pick_minted<'a>(plan: &'a Plan, pick: &mut Pick) -> &'a Minted {
    let n = plan.requests.len();
    let hot = plan.hot_count.clamp(1, n);
    let serial = if plan.hot_share > 0.0 && pick.unit() < plan.hot_share {
        (pick.next() % hot as u64) as usize
    } else {
        (pick.next() % n as u64) as usize
    };
    let variants = &plan.requests[serial];
    &variants[(pick.next() % variants.len() as u64) as usize]
}

/// One abusive POST, new each time.
fn abusive_request(
    kind: Abuse,
    issuer: &Cert,
    serials: &[Serial],
    host: &str,
    path: &str,
    pick: &mut Pick,
) -> Minted {
    use revocd::asn1::{integer_from_content, octet_string, sequence};
    let alg = HashAlg::Sha1;
    let cert_id = |content: &[u8]| {
        sequence(&[
            &alg.algorithm_identifier_der(),
            &octet_string(&issuer.name_hash(alg)),
            &octet_string(&issuer.key_hash(alg)),
            &integer_from_content(content),
        ])
    };
    let multi = match kind {
        Abuse::Multi => true,
        Abuse::Unknown => false,
        Abuse::Mixed => pick.next().is_multiple_of(2),
    };
    let ids: Vec<Vec<u8>> = if multi {
        let k = 2 + (pick.next() % 2) as usize;
        (0..k)
            .map(|_| cert_id(serials[(pick.next() % serials.len() as u64) as usize].content()))
            .collect()
    } else {
        let mut content = [0u8; 16];
        for chunk in content.chunks_mut(8) {
            chunk.copy_from_slice(&pick.next().to_be_bytes()[..chunk.len()]);
        }
        content[0] = (content[0] & 0x7f) | 0x40;
        vec![cert_id(&content)]
    };
    let requests: Vec<Vec<u8>> = ids.iter().map(|id| sequence(&[id])).collect();
    let refs: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
    let der = sequence(&[&sequence(&[&sequence(&refs)])]);
    Minted {
        post: true,
        wire: wire(host, true, path, &der),
        path: path.to_string(),
        der,
    }
}

/// `--dump`: one GET per minted request, answers written as files.
async fn dump(plan: &Plan, dir: &std::path::Path) -> anyhow::Result<usize> {
    let mut lines = String::new();
    let mut paths = String::new();
    let mut bodies = String::new();
    let mut n = 0;
    let mut stream = None;
    let mut buf = Vec::new();
    for m in plan.requests.iter().flatten().filter(|m| !m.post) {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => stream.insert(connect(plan.addr).await?),
        };
        let (status, body, close) = exchange(s, &m.wire, &mut buf).await?;
        if status != 200 {
            bail!("GET {} answered {status}", m.path);
        }
        if close {
            stream = None;
        }
        let body = &buf[body];
        let file = dir.join(m.path.trim_start_matches('/'));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, body)?;
        lines.push_str(&base64::engine::general_purpose::STANDARD.encode(body));
        lines.push('\n');
        paths.push_str(&m.path);
        paths.push('\n');
        bodies.push_str(&hex_of(&m.der));
        bodies.push('\n');
        n += 1;
    }
    std::fs::write(dir.with_extension("b64"), lines)?;
    // For other load generators (wrk): the GET paths and the DER requests.
    std::fs::write(dir.with_extension("paths"), paths)?;
    std::fs::write(dir.with_extension("hex"), bodies)?;
    Ok(n)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rest = args
        .url
        .strip_prefix("http://")
        .context("--url must be http:// (measure TLS at the CDN, not here)")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&host)?
        .next()
        .context("--url host does not resolve")?;
    let requests = mint(&args, &host, &path)?;
    let connections = args.connections.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let started = Instant::now();
    let abuse = match args.abuse {
        Some(kind) => {
            let bytes = std::fs::read(&args.issuer)?;
            let issuer = Cert::parse(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.issuer.display()))?;
            Some((
                kind,
                issuer,
                read_serials(&args.serials)?,
                host.clone(),
                path.clone(),
            ))
        }
        None => None,
    };
    let plan = Arc::new(Plan {
        addr,
        abuse,
        hot_share: args.hot_share.clamp(0.0, 1.0),
        hot_count: args.hot_count,
        deadline: started + Duration::from_secs(args.duration),
        interval: (args.rate > 0)
            .then(|| Duration::from_secs_f64(connections as f64 / args.rate as f64)),
        requests,
    });
    if let Some(dir) = &args.dump {
        let n = runtime.block_on(dump(&plan, dir))?;
        println!("{n} answers written under {}", dir.display());
        return Ok(());
    }
    let total = runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|i| tokio::spawn(connection(Arc::clone(&plan), i as u64 + 1)))
            .collect();
        let mut total = Tally::new()?;
        for t in tasks {
            total.merge(&t.await??)?;
        }
        Ok::<_, anyhow::Error>(total)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let h = &total.latency;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let requests = total.ok + total.non_200;
    let rps = requests as f64 / elapsed;
    let method = match args.abuse {
        Some(kind) => format!("abusive {kind:?} post").to_lowercase(),
        None => format!("{:?}", args.method).to_lowercase(),
    };
    let hash = format!("{:?}", args.hash).to_lowercase();
    println!(
        "{}: {} {} {} x {} connections, {:.1} s{}",
        args.label,
        args.url,
        method,
        hash,
        connections,
        elapsed,
        if args.rate > 0 {
            format!(", target {} req/s", args.rate)
        } else {
            String::new()
        }
    );
    println!(
        "  {requests} requests, {rps:.0} req/s, {} not 200, {} errors, {:.1} MB received",
        total.non_200,
        total.errors,
        total.bytes as f64 / 1e6
    );
    println!(
        "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    let sv = &total.service;
    let sms = |q: f64| sv.value_at_quantile(q) as f64 / 1000.0;
    if args.rate > 0 {
        println!(
            "  service ms (from the actual send): p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            sms(0.5),
            sms(0.9),
            sms(0.99),
            sms(0.999),
            sv.max() as f64 / 1000.0
        );
    }
    let report = serde_json::json!({
        "label": args.label,
        "url": args.url,
        "method": method,
        "hash": hash,
        "connections": connections,
        "threads": args.threads,
        "target_rate": args.rate,
        "hot_share": args.hot_share,
        "seconds": elapsed,
        "requests": requests,
        "requests_per_second": rps,
        "not_200": total.non_200,
        "errors": total.errors,
        "bytes": total.bytes,
        "latency_ms": {
            "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999),
            "max": h.max() as f64 / 1000.0, "mean": h.mean() / 1000.0,
        },
        "service_ms": {
            "p50": sms(0.5), "p90": sms(0.9), "p99": sms(0.99), "p999": sms(0.999),
            "max": sv.max() as f64 / 1000.0, "mean": sv.mean() / 1000.0,
        },
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
