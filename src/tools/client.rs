//! The admin API client behind `revocd revoke|status|register|import-index`.
//! Reads the admin address, TLS and token from the configuration; flags
//! override each (`--admin-url`, `--admin-ca`, `--client-cert` and
//! `--client-key`, `--token-file`). Over TLS it trusts the certificates of
//! the config's `admin.tls-certificate` (a self-signed certificate, or the
//! chain whose issuers then anchor it) and `--admin-ca`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::config::Config;
use crate::state::Change;

pub struct AdminClient {
    base: String,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The only issuer, when the config has exactly one.
    pub default_issuer: Option<String>,
}

impl AdminClient {
    pub fn from_args(args: &crate::tools::cli::AdminArgs) -> anyhow::Result<Self> {
        let c = Config::load(&args.config)?;
        let token_file: Option<PathBuf> = args.token_file.clone().or_else(|| {
            c.admin_token_file.clone().or_else(|| {
                let files: Vec<&PathBuf> = c
                    .admin_operators
                    .iter()
                    .filter_map(|o| o.token_file.as_ref())
                    .collect();
                (files.len() == 1).then(|| files[0].clone())
            })
        });
        let token = match &token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        if token.is_none() && args.client_cert.is_none() {
            bail!(
                "{}: no admin credentials: give --token-file or --client-cert, or set admin.token-file",
                args.config.display()
            );
        }
        let scheme = if c.admin_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let base = match &args.admin_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("{scheme}://{}", c.listen.admin),
        };
        let tls = if base.starts_with("https://") {
            let mut roots: Vec<PathBuf> =
                c.admin_tls.iter().map(|t| t.certificate.clone()).collect();
            roots.extend(args.admin_ca.clone());
            let identity = args.client_cert.as_deref().zip(args.client_key.as_deref());
            Some(Arc::new(crate::http::tls::client_config(&roots, identity)?))
        } else {
            None
        };
        let default_issuer = (c.issuers.len() == 1).then(|| c.issuers[0].id.clone());
        Ok(Self {
            base,
            token,
            tls,
            default_issuer,
        })
    }

    pub fn issuer(&self, given: Option<String>) -> anyhow::Result<String> {
        given
            .or_else(|| self.default_issuer.clone())
            .ok_or_else(|| anyhow!("--issuer is required when the config serves several issuers"))
    }

    /// Sends one request; returns the status and the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{}", self.base, path);
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            self.send(method, &url, body),
        )
        .await
        .map_err(|_| anyhow!("{url}: no answer within 60s"))?
        .with_context(|| format!("calling {url}"))
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let uri: hyper::Uri = url.parse()?;
        let host = uri.host().ok_or_else(|| anyhow!("no host in {url}"))?;
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header("host", uri.authority().map_or(host, |a| a.as_str()))
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))?;
        let resp = match (https, &self.tls) {
            (true, Some(tls)) => {
                let name = rustls::pki_types::ServerName::try_from(
                    host.trim_matches(['[', ']']).to_string(),
                )?;
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
                    .connect(name, tcp)
                    .await?;
                request(stream, req).await?
            }
            (false, _) => request(tcp, req).await?,
            (true, None) => bail!("{url}: https without a TLS configuration"),
        };
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&bytes) }));
        Ok((status, v))
    }
}

/// One HTTP/1.1 request on its own connection.
async fn request<S>(
    stream: S,
    req: hyper::Request<Full<Bytes>>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

/// Turns an answer into a printable line, or an error for a non-2xx status.
pub fn expect_ok(status: u16, v: &Value) -> anyhow::Result<String> {
    if (200..300).contains(&status) {
        Ok(serde_json::to_string_pretty(v)?)
    } else {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("request failed");
        match v.get("field").and_then(Value::as_str) {
            Some(f) => bail!("HTTP {status}: {msg} (field {f})"),
            None => bail!("HTTP {status}: {msg}"),
        }
    }
}

/// An index.txt as admin API calls: the registrations, then the
/// revocations with their line numbers; and the lines that did not parse.
pub fn index_requests(text: &str) -> (Vec<Value>, Vec<(usize, Value)>, Vec<String>) {
    let parsed =
        crate::sources::index::parse(text, crate::clock::Clock::now(&crate::clock::SystemClock));
    let mut registrations = Vec::new();
    let mut revocations = Vec::new();
    for (c, line) in parsed.changes.into_iter().zip(parsed.lines) {
        match c {
            Change::Register { serial, not_after } => registrations.push(json!({
                "serial": serial.to_hex(),
                "not_after": crate::clock::rfc3339(not_after),
            })),
            Change::Revoke {
                serial,
                at,
                reason,
                invalidity_date,
            } => revocations.push((
                line,
                json!({
                    "serial": serial.to_hex(),
                    "reason": reason.name(),
                    "revoked_at": crate::clock::rfc3339(at),
                    "invalidity_date": invalidity_date.map(crate::clock::rfc3339),
                }),
            )),
            Change::Release { .. } => {}
        }
    }
    let errors = parsed.errors.iter().map(ToString::to_string).collect();
    (registrations, revocations, errors)
}
