//! The admin API, JSON over HTTP(S), for named operators with scopes
//! (`access`). Transport-free: the `http` layer authenticates from the
//! headers and the TLS client certificate (`Access::authenticate`), checks
//! the endpoint's scopes (`AdminApi::permits`), and only then reads the body
//! and hands in the operator, method, path and body; it writes back the
//! status and JSON this returns.
//!
//! - `POST /v1/issuers/{id}/certificates`  register one or many (`register`)
//! - `POST /v1/issuers/{id}/revocations`   revoke (`revoke`), or release a
//!   hold (`release`)
//! - `GET  /v1/issuers/{id}/certificates/{serial}`  one serial's status (`read`)
//! - `POST /v1/issuers/{id}/crl/publish`   publish a CRL now (`publish`)
//!
//! Every change is recorded with the operator's name as its author.

pub mod access;
mod json;
mod reply;
mod revocations;

use reply::{error, forbidden, outcome_json, reply, Bad};
pub use reply::{ApiResponse, FieldError};
pub use revocations::parse_revocation;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::clock::rfc3339;
use crate::clock::Clock;
use crate::crl::CrlService;
use crate::issuer::Issuers;
use crate::ledger::{Ledger, Submitted};
use crate::pki::Cert;
use crate::state::{Change, Serial, Status};
use access::Operator;
use json::Items;
use json::{parse_json, serial_field, time_field};
use revocations::Checked;

pub struct AdminApi {
    /// Swapped whole on SIGHUP.
    access: std::sync::RwLock<Arc<access::Access>>,
    ledger: Ledger,
    issuers: Arc<Issuers>,
    clock: Arc<dyn Clock>,
    crl: Option<Arc<CrlService>>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("access", &self.access())
            .finish_non_exhaustive()
    }
}

impl AdminApi {
    pub fn new(
        access: access::Access,
        ledger: Ledger,
        issuers: Arc<Issuers>,
        clock: Arc<dyn Clock>,
        crl: Option<Arc<CrlService>>,
    ) -> Self {
        Self {
            access: std::sync::RwLock::new(Arc::new(access)),
            ledger,
            issuers,
            clock,
            crl,
        }
    }

    /// The operators now.
    pub fn access(&self) -> Arc<access::Access> {
        Arc::clone(&self.access.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the operators (SIGHUP).
    pub fn set_access(&self, access: access::Access) {
        *self.access.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(access);
    }

    /// Whether `op` may open `method path` at all, from the request line
    /// alone (the body is read only after this): `Err` is the 403 (or 404
    /// for no such endpoint) to answer.
    pub fn permits(&self, op: &Operator, method: &str, path: &str) -> Result<(), ApiResponse> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let rest = match parts.as_slice() {
            ["", "v1", "issuers", _, rest @ ..] => rest,
            _ => return Err(error(404, format!("no such endpoint: {path}"), None)),
        };
        match access::endpoint_scopes(method, rest) {
            Some(scopes) if scopes.iter().any(|s| op.has(*s)) => Ok(()),
            Some(scopes) => Err(forbidden(op, scopes[0])),
            // Not an endpoint: let `handle` say 404 or 405.
            None => Ok(()),
        }
    }

    pub async fn handle(
        &self,
        op: &Operator,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> ApiResponse {
        if let Err(refused) = self.permits(op, method, path) {
            return refused;
        }
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let (issuer, rest) = match parts.as_slice() {
            ["", "v1", "issuers", issuer, rest @ ..] => (*issuer, rest),
            _ => return error(404, format!("no such endpoint: {path}"), None),
        };
        if self.issuers.index(issuer).is_none() {
            return error(
                404,
                format!("issuer {issuer:?} is not served here"),
                Some("issuer"),
            );
        }
        let result = match (method, rest) {
            ("POST", ["certificates"]) => self.register(op, issuer, body).await,
            ("POST", ["revocations"]) => self.revoke(op, issuer, body).await,
            ("GET", ["certificates", serial]) => self.status(issuer, serial),
            ("POST", ["crl", "publish"]) => Ok(match &self.crl {
                Some(c) if c.request(issuer) => reply(
                    202,
                    json!({ "issuer": issuer, "result": "publish requested" }),
                ),
                _ => error(
                    409,
                    format!("CRLs are not configured for issuer {issuer:?} (no [crl] section or no CA key)"),
                    None,
                ),
            }),
            (_, ["certificates"] | ["revocations"] | ["crl", "publish"] | ["certificates", _]) => {
                Ok(error(
                    405,
                    format!("{method} is not allowed on {path}"),
                    None,
                ))
            }
            _ => Ok(error(404, format!("no such endpoint: {path}"), None)),
        };
        result.unwrap_or_else(|Bad(msg, field)| error(400, msg, field))
    }

    async fn register(&self, op: &Operator, issuer: &str, body: &[u8]) -> Result<ApiResponse, Bad> {
        let v: Value = parse_json(body)?;
        let body_items = json::items(&v, "certificates")?;
        let items: Vec<&Value> = match &body_items {
            Items::One(item) => vec![item],
            Items::Batch(list) => list.clone(),
        };
        let ca = self.issuer_cert(issuer);
        let mut changes = Vec::with_capacity(items.len());
        for item in &items {
            let change = match item.get("certificate") {
                Some(Value::String(text)) => {
                    let bytes = if text.trim_start().starts_with("-----BEGIN") {
                        text.as_bytes().to_vec()
                    } else {
                        base64::Engine::decode(
                            &base64::engine::general_purpose::STANDARD,
                            text.trim(),
                        )
                        .map_err(|_| Bad::field("certificate", "neither PEM nor base64 DER"))?
                    };
                    let cert = Cert::parse(&bytes)
                        .map_err(|e| Bad::field("certificate", e.to_string()))?;
                    if !ca.as_ref().is_some_and(|ca| cert.is_issued_by(ca)) {
                        return Err(Bad::field(
                            "certificate",
                            format!("{} is not issued by issuer {issuer:?}", cert.subject_text),
                        ));
                    }
                    Change::Register {
                        serial: Serial::from_content(&cert.serial),
                        not_after: cert.not_after,
                    }
                }
                Some(_) => return Err(Bad::field("certificate", "must be a string")),
                None => Change::Register {
                    serial: serial_field(item, "serial")?,
                    not_after: time_field(item, "not_after")?
                        .ok_or_else(|| Bad::field("not_after", "is required"))?,
                },
            };
            changes.push(Submitted {
                issuer: issuer.to_string(),
                change,
                author: op.name.clone(),
            });
        }
        let serials: Vec<String> = changes.iter().map(|c| c.change.serial().to_hex()).collect();
        let outcomes = self.ledger.submit(changes).await;
        let mut results = Vec::new();
        let mut worst = 200;
        for (serial, outcome) in serials.iter().zip(&outcomes) {
            let (code, v) = outcome_json(serial, outcome, "registered");
            worst = worst.max(code);
            results.push(v);
        }
        if let Items::One(_) = body_items {
            return Ok(reply(worst, results.swap_remove(0)));
        }
        Ok(reply(
            if worst == 503 { 503 } else { 200 },
            json!({ "results": results }),
        ))
    }

    /// One revocation, or a batch written as one ledger commit with a
    /// result per item (`revocations`).
    async fn revoke(&self, op: &Operator, issuer: &str, body: &[u8]) -> Result<ApiResponse, Bad> {
        let now = self.clock.now();
        let v = parse_json(body)?;
        let items = json::items(&v, "revocations")?;
        let Some(idx) = self.issuers.index(issuer) else {
            return Ok(error(
                404,
                format!("issuer {issuer:?} is not served here"),
                Some("issuer"),
            ));
        };
        let state = &self.issuers[idx].state;
        let check = |item| revocations::check_item(op, item, now, |s| state.lookup(s));
        let checked: Vec<Checked> = match &items {
            Items::One(item) => match check(item) {
                // One object keeps the plain answers: the error itself.
                Checked::Invalid(bad, _) => return Err(bad),
                Checked::Forbidden(scope, _) => return Ok(forbidden(op, scope)),
                submit => vec![submit],
            },
            Items::Batch(list) => list.iter().map(|item| check(item)).collect(),
        };
        let mut results: Vec<Option<(u16, Value)>> = vec![None; checked.len()];
        let (submitted, slots) = revocations::submissions(checked, issuer, op, &mut results);
        let outcomes = if submitted.is_empty() {
            Vec::new()
        } else {
            self.ledger.submit(submitted).await
        };
        revocations::submitted_results(slots, &outcomes, &mut results);
        let results: Vec<(u16, Value)> = results
            .into_iter()
            .map(|r| r.unwrap_or((503, json!({ "error": "ledger is closed" }))))
            .collect();
        Ok(match items {
            Items::One(_) => {
                let (status, v) = results.into_iter().next().unwrap_or((503, Value::Null));
                reply(status, v)
            }
            Items::Batch(_) => revocations::batch_reply(results),
        })
    }

    fn status(&self, issuer: &str, serial: &str) -> Result<ApiResponse, Bad> {
        let serial = Serial::from_hex(serial).map_err(|e| Bad::field("serial", e.to_string()))?;
        let Some(idx) = self.issuers.index(issuer) else {
            return Ok(error(
                404,
                format!("issuer {issuer:?} is not served here"),
                Some("issuer"),
            ));
        };
        let entry = self.issuers[idx].state.lookup(&serial);
        let Some(e) = entry else {
            return Ok(reply(
                404,
                json!({ "issuer": issuer, "serial": serial.to_hex(), "status": "unknown",
                        "error": "serial is not known", "field": "serial" }),
            ));
        };
        Ok(reply(200, entry_json(issuer, &serial, &e)))
    }

    fn issuer_cert(&self, issuer: &str) -> Option<Cert> {
        let idx = self.issuers.index(issuer)?;
        Some(self.issuers[idx].cert.clone())
    }
}

/// One serial's state as the status call and `ledger dump` show it.
fn entry_json(issuer: &str, serial: &Serial, e: &crate::state::Entry) -> Value {
    let mut v = json!({
        "issuer": issuer,
        "serial": serial.to_hex(),
        "status": match e.status { Status::Good => "good", Status::Revoked { .. } => "revoked" },
        "not_after": e.not_after.map(rfc3339),
        "changed_by": e.author.shown(),
    });
    if let Status::Revoked {
        at,
        reason,
        invalidity_date,
    } = e.status
    {
        v["revoked_at"] = json!(rfc3339(at));
        v["reason"] = json!(reason.name());
        if let Some(t) = invalidity_date {
            v["invalidity_date"] = json!(rfc3339(t));
        }
    }
    v
}

/// One JSON line of `revocd ledger dump` (and of the changes `repair` cut).
pub fn dump_line(line: &crate::ledger::tools::DumpLine<'_>) -> String {
    use crate::ledger::tools::DumpLine;
    use crate::state::Change;
    let v = match line {
        DumpLine::Entry {
            snapshot,
            issuer,
            serial,
            entry,
        } => {
            let mut v = entry_json(issuer, serial, entry);
            v["author"] = v["changed_by"].clone();
            v["source"] = json!("snapshot");
            v["seq"] = json!(snapshot);
            v
        }
        DumpLine::Record(rec) => {
            let mut v = json!({
                "source": "log",
                "seq": rec.seq,
                "issuer": rec.issuer,
                "change": rec.change.kind(),
                "serial": rec.change.serial().to_hex(),
                "author": if rec.author.is_empty() { "unattributed" } else { rec.author.as_str() },
            });
            match &rec.change {
                Change::Register { not_after, .. } => v["not_after"] = json!(rfc3339(*not_after)),
                Change::Revoke {
                    at,
                    reason,
                    invalidity_date,
                    ..
                } => {
                    v["revoked_at"] = json!(rfc3339(*at));
                    v["reason"] = json!(reason.name());
                    v["invalidity_date"] = json!(invalidity_date.map(rfc3339));
                }
                Change::Release { .. } => {}
            }
            v
        }
    };
    v.to_string()
}
