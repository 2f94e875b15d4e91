//! Asks a responder about every serial of a file once (OCSP GET, SHA-1
//! CertID, keep-alive connections on several threads), verifies each answer
//! (signature, CertID, times) with revocd's own client and counts the
//! statuses: after a mass revocation, every answer must say `revoked`.
//!
//!   revocd-census --url http://127.0.0.1:8080/ --issuer ca.pem --serials FILE [--threads 4]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::Parser;
use revocd::pki::{Cert, HashAlg};
use revocd::state::Serial;

#[derive(Debug, Parser)]
#[command(about = "Every serial's OCSP answer once, verified, statuses counted")]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    issuer: PathBuf,
    /// One hex serial per line.
    #[arg(long)]
    serials: PathBuf,
    #[arg(long, default_value_t = 4)]
    threads: usize,
}

#[derive(Debug, Default)]
struct Count {
    good: usize,
    revoked: usize,
    other: usize,
    failed: usize,
    first_failure: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rest = args
        .url
        .strip_prefix("http://")
        .context("--url must be http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    };
    let prefix = if path.ends_with('/') {
        path
    } else {
        format!("{path}/")
    };
    let issuer = Cert::parse(&std::fs::read(&args.issuer)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.issuer.display()))?;
    let text = std::fs::read_to_string(&args.serials)?;
    let serials: Vec<Serial> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Serial::from_hex)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.serials.display()))?;
    let started = Instant::now();
    let per = serials.len().div_ceil(args.threads.max(1)).max(1);
    let counts: Vec<Count> = std::thread::scope(|scope| {
        let handles: Vec<_> = serials
            .chunks(per)
            .map(|chunk| {
                let (host, prefix, issuer) = (&host, &prefix, &issuer);
                scope.spawn(move || census(host, prefix, issuer, chunk))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut total = Count::default();
    for c in counts {
        total.good += c.good;
        total.revoked += c.revoked;
        total.other += c.other;
        total.failed += c.failed;
        total.first_failure = total.first_failure.or(c.first_failure);
    }
    println!(
        "census of {} serials in {:.1} s: revoked {}, good {}, other {}, failed {}",
        serials.len(),
        started.elapsed().as_secs_f64(),
        total.revoked,
        total.good,
        total.other,
        total.failed
    );
    if let Some(f) = total.first_failure {
        println!("  first failure: {f}");
    }
    Ok(())
}

fn census(host: &str, prefix: &str, issuer: &Cert, serials: &[Serial]) -> Count {
    let mut count = Count::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    for serial in serials {
        let der = revocd::tools::query::build_request(issuer, serial, HashAlg::Sha1);
        let path = format!(
            "{prefix}{}",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let now = revocd::clock::Clock::now(&revocd::clock::SystemClock);
        let answer = get(&mut conn, host, &path)
            .and_then(|body| revocd::tools::query::verify(&body, issuer, serial, now));
        match answer {
            Ok(v) if v.status == "revoked" => count.revoked += 1,
            Ok(v) if v.status == "good" => count.good += 1,
            Ok(_) => count.other += 1,
            Err(e) => {
                conn = None;
                count.failed += 1;
                if count.first_failure.is_none() {
                    count.first_failure = Some(format!("{}: {e:#}", serial.to_hex()));
                }
            }
        }
    }
    count
}

/// One GET on the kept connection (opened when there is none).
fn get(conn: &mut Option<BufReader<TcpStream>>, host: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    if conn.is_none() {
        let s = TcpStream::connect(host)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        *conn = Some(BufReader::new(s));
    }
    let Some(r) = conn.as_mut() else {
        bail!("no connection");
    };
    r.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let mut length = None;
    let mut close = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        }
    }
    let mut body = vec![0; length.context("no content-length")?];
    r.read_exact(&mut body)?;
    if close {
        *conn = None;
    }
    if status != 200 {
        bail!("HTTP {status}");
    }
    Ok(body)
}
