//! revocd-revoke-probe: how long a revocation takes to be visible at the
//! origin. For each serial, in turn: send the revocation to the admin API,
//! then ask the public listener over OCSP until the verified answer says
//! revoked; the latency is from sending the revocation to reading that
//! answer. Two keep-alive HTTP/1.1 connections, one request at a time, so
//! run it beside a load (revocd-load) to see it under traffic. Reports
//! percentiles (HDR histogram) and how many answers were still "good" after
//! the revocation was acknowledged (docs/design.md: a revocation is visible at the origin at once).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;

use revocd::pki::{Cert, HashAlg};
use revocd::state::Serial;

#[derive(Debug, Parser)]
#[command(about = "Revocation-to-origin latency of an OCSP responder")]
struct Args {
    /// Admin listener, e.g. 127.0.0.1:9090.
    #[arg(long)]
    admin: String,
    /// Public (OCSP) listener, e.g. 127.0.0.1:8080.
    #[arg(long)]
    public: String,
    /// File holding the admin bearer token.
    #[arg(long)]
    token: PathBuf,
    /// Issuer id in revocd's configuration.
    #[arg(long, default_value = "demo")]
    issuer_id: String,
    /// The issuing CA certificate (PEM or DER).
    #[arg(long)]
    issuer: PathBuf,
    /// A file with one hex serial per line: registered, not yet revoked.
    #[arg(long)]
    serials: PathBuf,
    /// How many of them to revoke.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> anyhow::Result<Self> {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Sends `head` + `body`, returns (status, body).
    fn exchange(&mut self, head: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut req = head.as_bytes().to_vec();
        req.extend_from_slice(body);
        self.writer.write_all(&req)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = std::fs::read_to_string(&args.token)?.trim().to_string();
    let ca = Cert::parse(&std::fs::read(&args.issuer)?)?;
    let serials: Vec<String> = std::fs::read_to_string(&args.serials)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(args.count)
        .map(String::from)
        .collect();
    if serials.len() < args.count {
        bail!(
            "{} holds {} serials, fewer than --count",
            args.serials.display(),
            serials.len()
        );
    }
    let mut admin = Conn::open(&args.admin)?;
    let mut public = Conn::open(&args.public)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut stale_after_ack = 0usize;
    for hex in &serials {
        let serial = Serial::from_hex(hex)?;
        let der = revocd::tools::query::build_request(&ca, &serial, HashAlg::Sha1);
        let ocsp_head = format!(
            "POST / HTTP/1.1\r\nHost: revocd\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
            der.len()
        );
        let body = format!(r#"{{"serial": "{hex}", "reason": "keyCompromise"}}"#);
        let admin_head = format!(
            "POST /v1/issuers/{}/revocations HTTP/1.1\r\nHost: revocd\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            args.issuer_id,
            body.len()
        );
        let started = Instant::now();
        let (status, reply) = admin.exchange(&admin_head, body.as_bytes())?;
        if status != 200 {
            bail!(
                "revoking {hex}: HTTP {status}: {}",
                String::from_utf8_lossy(&reply)
            );
        }
        let acknowledged = Instant::now();
        loop {
            let (status, reply) = public.exchange(&ocsp_head, &der)?;
            if status != 200 {
                bail!("OCSP for {hex}: HTTP {status}");
            }
            let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
            let verdict = revocd::tools::query::verify(&reply, &ca, &serial, now)?;
            if verdict.status == "revoked" {
                break;
            }
            stale_after_ack += 1;
            if acknowledged.elapsed() > Duration::from_secs(10) {
                bail!(
                    "{hex} still {} 10 s after its revocation was acknowledged",
                    verdict.status
                );
            }
        }
        hist.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))?;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} revocations: visible at the origin after p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} answers still good after the acknowledgement",
        serials.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0,
        stale_after_ack
    );
    if let Some(path) = &args.json {
        let v = serde_json::json!({
            "revocations": serials.len(),
            "visible_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": hist.max() as f64 / 1000.0},
            "good_after_ack": stale_after_ack,
        });
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}
