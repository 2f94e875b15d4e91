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

use std::sync::Arc;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::clock::Clock;
use crate::crl::CrlService;
use crate::issuer::Issuers;
use crate::ledger::{ApplyError, Ledger, Outcome, Submitted};
use crate::pki::Cert;
use crate::state::{Change, Reason, Serial, Status};
use access::{Operator, Scope};

/// How far in the future a revocation time may be (clock skew).
/// Most certificates one registration request may carry.
const MAX_BATCH: usize = 10_000;

#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
}

fn reply(status: u16, body: Value) -> ApiResponse {
    ApiResponse {
        status,
        body: format!("{body}\n"),
    }
}

fn error(status: u16, message: impl Into<String>, field: Option<&str>) -> ApiResponse {
    let mut v = json!({ "error": message.into() });
    if let Some(f) = field {
        v["field"] = json!(f);
    }
    reply(status, v)
}

/// A request problem: message and the field it is about.
struct Bad(String, Option<&'static str>);

impl Bad {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        Bad(message.into(), Some(field))
    }
}

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

/// 403 naming the scope the operator lacks.
fn forbidden(op: &Operator, scope: Scope) -> ApiResponse {
    reply(
        403,
        json!({
            "error": format!("operator {:?} lacks the scope {:?}", op.name, scope.name()),
            "field": "scope",
            "scope": scope.name(),
        }),
    )
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
        let items: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(o) if o.contains_key("certificates") => match &o["certificates"] {
                Value::Array(a) => a.iter().collect(),
                _ => return Err(Bad::field("certificates", "must be an array")),
            },
            Value::Object(_) => vec![&v],
            _ => {
                return Err(Bad(
                    "body must be an object or an array of objects".into(),
                    None,
                ))
            }
        };
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(Bad::field(
                "certificates",
                format!("give 1 to {MAX_BATCH} certificates"),
            ));
        }
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
        if items.len() == 1
            && v.is_object()
            && !v
                .as_object()
                .is_some_and(|o| o.contains_key("certificates"))
        {
            return Ok(reply(worst, results.swap_remove(0)));
        }
        Ok(reply(
            if worst == 503 { 503 } else { 200 },
            json!({ "results": results }),
        ))
    }

    async fn revoke(&self, op: &Operator, issuer: &str, body: &[u8]) -> Result<ApiResponse, Bad> {
        let now = self.clock.now();
        let change = parse_revocation(body, now).map_err(|e| Bad(e.message, e.field))?;
        let serial = change.serial().clone();
        let (word, scope) = if matches!(change, Change::Release { .. }) {
            ("released", Scope::Release)
        } else {
            ("revoked", Scope::Revoke)
        };
        if !op.has(scope) {
            return Ok(forbidden(op, scope));
        }
        let outcomes = self
            .ledger
            .submit(vec![Submitted {
                issuer: issuer.to_string(),
                change,
                author: op.name.clone(),
            }])
            .await;
        let outcome = outcomes
            .first()
            .cloned()
            .unwrap_or(Outcome::Failed(crate::ledger::LedgerError::Closed));
        let (code, body) = outcome_json(&serial.to_hex(), &outcome, word);
        Ok(reply(code, body))
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

/// A request field problem, for callers outside this module (fuzzing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub message: String,
    pub field: Option<&'static str>,
}

/// Parses a revocation body into a change, as of `now`. Pure: the fuzz
/// target `admin_json` holds it to never panicking.
pub fn parse_revocation(body: &[u8], now: i64) -> Result<Change, FieldError> {
    let err = |Bad(message, field)| FieldError { message, field };
    let v: Value = parse_json(body).map_err(err)?;
    if !v.is_object() {
        return Err(err(Bad("body must be a JSON object".into(), None)));
    }
    let serial = serial_field(&v, "serial").map_err(err)?;
    let reason = match v.get("reason") {
        None | Some(Value::Null) => Reason::Unspecified,
        Some(Value::String(s)) => Reason::from_name(s).ok_or_else(|| {
            err(Bad::field(
                "reason",
                format!("{s:?} is not an RFC 5280 reason (keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, removeFromCRL, privilegeWithdrawn, aACompromise, unspecified)"),
            ))
        })?,
        Some(_) => return Err(err(Bad::field("reason", "must be a string"))),
    };
    let at = time_field(&v, "revoked_at").map_err(err)?.unwrap_or(now);
    let invalidity_date = time_field(&v, "invalidity_date").map_err(err)?;
    crate::state::check_revocation_times(at, invalidity_date, now)
        .map_err(|(field, why)| err(Bad::field(field, why)))?;
    Ok(if reason == Reason::RemoveFromCrl {
        Change::Release { serial }
    } else {
        Change::Revoke {
            serial,
            at,
            reason,
            invalidity_date,
        }
    })
}

fn outcome_json(serial: &str, outcome: &Outcome, done: &str) -> (u16, Value) {
    match outcome {
        Outcome::Recorded { seq } => (200, json!({ "serial": serial, "result": done, "seq": seq })),
        Outcome::Unchanged => (200, json!({ "serial": serial, "result": "unchanged" })),
        Outcome::Refused(ApplyError::Conflict(c)) => (
            409,
            json!({ "serial": serial, "error": c.to_string(), "field": "serial" }),
        ),
        Outcome::Refused(e @ ApplyError::UnknownIssuer(_)) => (
            404,
            json!({ "serial": serial, "error": e.to_string(), "field": "issuer" }),
        ),
        Outcome::Failed(e) => (503, json!({ "serial": serial, "error": e.to_string() })),
    }
}

/// Parses a JSON body, refusing an object with the same key twice (serde
/// would keep the last one silently: `"reason":"certificateHold",
/// "reason":"unspecified"` must not become a permanent revocation).
fn parse_json(body: &[u8]) -> Result<Value, Bad> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = <Strict as serde::Deserialize>::deserialize(&mut de)
        .and_then(|s| de.end().map(|()| s.0))
        .map_err(|e| {
            let msg = e.to_string();
            match msg.strip_prefix("duplicate key ") {
                Some(rest) => {
                    let key = rest
                        .split(" at line")
                        .next()
                        .unwrap_or(rest)
                        .trim_matches('"');
                    Bad(
                        format!("duplicate key {key:?} in the JSON body"),
                        Some(leak_field(key)),
                    )
                }
                None => Bad(format!("body is not valid JSON: {msg}"), None),
            }
        })?;
    Ok(v)
}

/// Field names the API knows, for naming a duplicate key in errors.
fn leak_field(key: &str) -> &'static str {
    const KNOWN: [&str; 7] = [
        "serial",
        "reason",
        "revoked_at",
        "invalidity_date",
        "not_after",
        "certificate",
        "certificates",
    ];
    KNOWN.iter().find(|k| **k == key).copied().unwrap_or("body")
}

/// A JSON value whose objects may not repeat a key.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

fn serial_field(v: &Value, field: &'static str) -> Result<Serial, Bad> {
    match v.get(field) {
        Some(Value::String(s)) => {
            Serial::from_hex(s).map_err(|e| Bad::field(field, format!("{s:?}: {e}")))
        }
        Some(_) => Err(Bad::field(field, "must be a hex string")),
        None => Err(Bad::field(field, "is required")),
    }
}

fn time_field(v: &Value, field: &'static str) -> Result<Option<i64>, Bad> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Some(t.unix_timestamp()))
            .map_err(|_| Bad::field(field, format!("{s:?} is not an RFC 3339 time"))),
        Some(_) => Err(Bad::field(field, "must be an RFC 3339 string")),
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
