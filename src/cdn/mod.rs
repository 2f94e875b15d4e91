//! CDN purge on revocation: every revocation or release this replica
//! acknowledges, from any source, becomes a CloudFront invalidation of the
//! serial's GET paths, so the edge stops serving the old answer in about
//! the time an invalidation takes instead of up to max-age.
//!
//! Changes are gathered for `cdn.batch` into one invalidation; paths in
//! invalidations not yet completed stay within `cdn.max-paths-in-progress`
//! (CloudFront allows 3,000). A backlog larger than what is left becomes one
//! wildcard path over every OCSP answer. A failed request is retried with
//! backoff, nothing dropped. Pending purges live in memory: after a crash
//! the CDN's copies expire by max-age (the window's end) as before.

pub mod paths;
pub mod sigv4;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Cdn as Options;
use crate::ledger::Acknowledged;
use crate::ocsp::Responder;

/// One invalidation CloudFront has not completed yet.
struct InProgress {
    id: String,
    paths: usize,
}

pub struct Purger {
    options: Options,
    responder: Arc<Responder>,
    /// `ocsp.path`.
    prefix: String,
    client: reqwest::Client,
    creds: sigv4::Credentials,
    in_progress: Vec<InProgress>,
    sequence: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    #[error("no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    NoCredentials,
    #[error("CloudFront {what}: {why}")]
    Api { what: &'static str, why: String },
}

impl Purger {
    pub fn new(
        options: Options,
        responder: Arc<Responder>,
        prefix: String,
    ) -> Result<Self, CdnError> {
        let creds = sigv4::Credentials::from_env().ok_or(CdnError::NoCredentials)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CdnError::Api {
                what: "client",
                why: e.to_string(),
            })?;
        Ok(Self {
            options,
            responder,
            prefix,
            client,
            creds,
            in_progress: Vec::new(),
            sequence: 0,
        })
    }

    /// Gathers acknowledged changes and invalidates their paths until
    /// shutdown.
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Acknowledged>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut pending: Vec<Acknowledged> = Vec::new();
        let mut backoff = Duration::from_secs(1);
        loop {
            if pending.is_empty() {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(a) => pending.push(a),
                        None => return,
                    },
                    () = crate::shutdown::stopped(&mut shutdown) => return,
                }
            }
            // Gather the batch.
            let until = tokio::time::Instant::now() + self.options.batch;
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(a) => pending.push(a),
                        None => break,
                    },
                    () = tokio::time::sleep_until(until) => break,
                    () = crate::shutdown::stopped(&mut shutdown) => return,
                }
            }
            match self.purge(&pending).await {
                Ok(()) => {
                    pending.clear();
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    self.responder.metrics().cdn_errors.inc();
                    tracing::warn!(error = %e, pending = pending.len(), retry_in_s = backoff.as_secs(), "CDN invalidation failed; will retry");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = crate::shutdown::stopped(&mut shutdown) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// One invalidation for `pending`, within the paths-in-progress limit.
    async fn purge(&mut self, pending: &[Acknowledged]) -> Result<(), CdnError> {
        let mut wanted: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for a in pending {
            let Some(idx) = self.responder.issuer_index(&a.issuer) else {
                continue;
            };
            if !seen.insert((idx, a.serial.clone())) {
                continue;
            }
            let cert = &self.responder.issuers()[idx].cert;
            for p in paths::get_paths(&self.prefix, cert, &a.serial) {
                wanted.push(p);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        self.refresh_in_progress().await?;
        let busy: usize = self.in_progress.iter().map(|i| i.paths).sum();
        let room = self.options.max_paths_in_progress.saturating_sub(busy);
        if room == 0 {
            return Err(CdnError::Api {
                what: "limit",
                why: format!("{busy} paths still in progress (cdn.max-paths-in-progress)"),
            });
        }
        let paths = if wanted.len() > room {
            // One wildcard covers every answer; it counts as one path.
            let wildcard = if self.prefix == "/" {
                "/*".to_string()
            } else {
                format!("{}/*", self.prefix.trim_end_matches('/'))
            };
            tracing::warn!(
                paths = wanted.len(),
                room,
                wildcard,
                "too many paths for CloudFront's in-progress limit: invalidating every OCSP answer"
            );
            self.responder.metrics().cdn_wildcards.inc();
            vec![wildcard]
        } else {
            wanted
        };
        let id = self.create(&paths).await?;
        let m = self.responder.metrics();
        m.cdn_paths.inc_by(paths.len() as u64);
        for a in pending {
            m.cdn_invalidation_seconds
                .observe(a.at.elapsed().as_secs_f64());
        }
        tracing::info!(invalidation = %id, paths = paths.len(), changes = pending.len(), "CloudFront invalidation created");
        self.in_progress.push(InProgress {
            id,
            paths: paths.len(),
        });
        m.cdn_paths_in_progress
            .set(self.in_progress.iter().map(|i| i.paths as i64).sum());
        Ok(())
    }

    /// Forgets invalidations CloudFront has completed.
    async fn refresh_in_progress(&mut self) -> Result<(), CdnError> {
        let mut still = Vec::new();
        for inv in std::mem::take(&mut self.in_progress) {
            let path = format!(
                "/2020-05-31/distribution/{}/invalidation/{}",
                self.options.distribution, inv.id
            );
            match self.call("GET", &path, Vec::new()).await {
                // CloudFront says "Completed" (moto "COMPLETED").
                Ok((_, body))
                    if tag(&body, "Status")
                        .is_some_and(|s| s.eq_ignore_ascii_case("completed")) => {}
                Ok(_) => still.push(inv),
                Err(e) => {
                    still.push(inv);
                    self.in_progress = still;
                    return Err(e);
                }
            }
        }
        self.in_progress = still;
        self.responder
            .metrics()
            .cdn_paths_in_progress
            .set(self.in_progress.iter().map(|i| i.paths as i64).sum());
        Ok(())
    }

    async fn create(&mut self, paths: &[String]) -> Result<String, CdnError> {
        self.sequence += 1;
        let mut items = String::new();
        for p in paths {
            items.push_str("<Path>");
            items.push_str(&xml_escape(p));
            items.push_str("</Path>");
        }
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <InvalidationBatch xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
             <Paths><Quantity>{}</Quantity><Items>{items}</Items></Paths>\
             <CallerReference>revocd-{}-{}-{}</CallerReference></InvalidationBatch>",
            paths.len(),
            std::process::id(),
            self.responder.clock().now(),
            self.sequence
        );
        let path = format!(
            "/2020-05-31/distribution/{}/invalidation",
            self.options.distribution
        );
        let (status, reply) = self.call("POST", &path, body.into_bytes()).await?;
        match tag(&reply, "Id") {
            Some(id) if (200..300).contains(&status) => Ok(id),
            _ => Err(CdnError::Api {
                what: "CreateInvalidation",
                why: format!(
                    "HTTP {status}: {}",
                    reply.chars().take(300).collect::<String>()
                ),
            }),
        }
    }

    /// One signed request to the CloudFront API.
    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), CdnError> {
        let endpoint = &self.options.endpoint;
        let host = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut req = sigv4::Request {
            method,
            path,
            query: "",
            headers: vec![("host".into(), host)],
            body: &body,
        };
        if method == "POST" {
            req.headers
                .push(("content-type".into(), "application/xml".into()));
        }
        let auth = sigv4::sign(
            &mut req,
            &self.creds,
            &self.options.region,
            "cloudfront",
            &sigv4::amz_date(self.responder.clock().now()),
        );
        let mut builder = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET),
            format!("{endpoint}{path}"),
        );
        for (k, v) in req.headers.iter().filter(|(k, _)| k != "host") {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let api = |why: String| CdnError::Api {
            what: if method == "POST" {
                "CreateInvalidation"
            } else {
                "GetInvalidation"
            },
            why,
        };
        let resp = builder
            .header("authorization", auth)
            .body(body.clone())
            .send()
            .await
            .map_err(|e| api(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| api(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(api(format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        Ok((status, text))
    }
}

/// The text of the first `<name>` element.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The running purger: where the ledger reports acknowledged changes, and
/// its task.
pub type Running = (
    mpsc::UnboundedSender<Acknowledged>,
    tokio::task::JoinHandle<()>,
);

/// Starts the purger when `[cdn]` is configured.
pub fn start(
    options: Option<&Options>,
    responder: &Arc<Responder>,
    prefix: &str,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<Running>, CdnError> {
    let Some(options) = options else {
        return Ok(None);
    };
    let purger = Purger::new(options.clone(), Arc::clone(responder), prefix.to_string())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(purger.run(rx, shutdown));
    Ok(Some((tx, task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_invalidation_reply() {
        let xml = "<?xml version=\"1.0\"?><Invalidation><Id>I2J0I21PCUYOIK</Id><Status>InProgress</Status></Invalidation>";
        assert_eq!(tag(xml, "Id").as_deref(), Some("I2J0I21PCUYOIK"));
        assert_eq!(tag(xml, "Status").as_deref(), Some("InProgress"));
        assert_eq!(tag(xml, "Nope"), None);
        assert_eq!(xml_escape("/a&b<c>"), "/a&amp;b&lt;c&gt;");
    }
}
