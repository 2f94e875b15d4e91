//! The ceiling for `loadtest/limit`: a bare hyper 1 server (one runtime,
//! http1, keep-alive, TCP_NODELAY, as revocd's listener) answering every
//! request with one fixed body and fixed headers, taken from files. What
//! revocd's cache-hit GET would cost if looking up the answer were free.
//!
//!   revocd-bare --listen 127.0.0.1:0 --body answer.der --headers headers.txt
//!
//! `headers.txt` holds `Name: value` lines (a response's header block, as
//! `curl -D` writes it; the status line, Date, Content-Length and Connection
//! are skipped: hyper writes those).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long)]
    body: PathBuf,
    #[arg(long)]
    headers: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(std::fs::read(&args.body)?);
    let mut headers = Vec::new();
    for line in std::fs::read_to_string(&args.headers)?.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let name = k.trim().to_ascii_lowercase();
        if ["date", "content-length", "connection", "keep-alive"].contains(&name.as_str()) {
            continue;
        }
        headers.push((
            hyper::header::HeaderName::from_bytes(name.as_bytes())?,
            hyper::header::HeaderValue::from_str(v.trim())?,
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "revocd-bare: listening on http://{}",
        listener.local_addr()?
    );
    let template = std::sync::Arc::new((body, headers));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let t = std::sync::Arc::clone(&template);
        let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
            let t = std::sync::Arc::clone(&t);
            async move {
                let mut r = Response::new(Full::new(t.0.clone()));
                for (k, v) in &t.1 {
                    r.headers_mut().insert(k.clone(), v.clone());
                }
                Ok::<_, Infallible>(r)
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
