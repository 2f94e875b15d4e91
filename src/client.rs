//! The admin API client behind `revocd revoke|status|register|import-index`.
//! Reads the admin address and token from the configuration; `--admin-url`
//! overrides the address.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::config::Config;
use crate::state::Change;

pub struct AdminClient {
    base: String,
    token: String,
    /// The only issuer, when the config has exactly one.
    pub default_issuer: Option<String>,
}

impl AdminClient {
    pub fn from_config(config: &Path, admin_url: Option<&str>) -> anyhow::Result<Self> {
        let c = Config::load(config)?;
        let token_file = c
            .admin_token_file
            .as_ref()
            .ok_or_else(|| anyhow!("{}: admin.token-file is not set", config.display()))?;
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("reading {}", token_file.display()))?
            .trim()
            .to_string();
        let base = match admin_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", c.listen.admin),
        };
        let default_issuer = (c.issuers.len() == 1).then(|| c.issuers[0].id.clone());
        Ok(Self {
            base,
            token,
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
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let url = format!("{}{}", self.base, path);
        let req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))?;
        let resp = tokio::time::timeout(std::time::Duration::from_secs(60), client.request(req))
            .await
            .map_err(|_| anyhow!("{url}: no answer within 60s"))?
            .with_context(|| format!("calling {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&bytes) }));
        Ok((status, v))
    }
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

/// An index.txt as admin API calls: one bulk registration, then each revocation.
pub fn index_requests(text: &str) -> (Vec<Value>, Vec<Value>, Vec<String>) {
    let parsed = crate::index::parse(text, crate::clock::Clock::now(&crate::clock::SystemClock));
    let mut registrations = Vec::new();
    let mut revocations = Vec::new();
    for c in parsed.changes {
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
            } => revocations.push(json!({
                "serial": serial.to_hex(),
                "reason": reason.name(),
                "revoked_at": crate::clock::rfc3339(at),
                "invalidity_date": invalidity_date.map(crate::clock::rfc3339),
            })),
            Change::Release { .. } => {}
        }
    }
    let errors = parsed.errors.iter().map(ToString::to_string).collect();
    (registrations, revocations, errors)
}
