//! What the admin API answers: the response, the request problems with the
//! field they are about, and the answers every endpoint shares (403 naming
//! the scope, a change's outcome as JSON).

use serde_json::{json, Value};

use super::access::{Operator, Scope};
use crate::ledger::{ApplyError, Outcome};

/// Most certificates one registration request, or revocations one
/// revocation request, may carry.
pub(super) const MAX_BATCH: usize = 10_000;

#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
}

pub(super) fn reply(status: u16, body: Value) -> ApiResponse {
    ApiResponse {
        status,
        body: format!("{body}\n"),
    }
}

pub(super) fn error(status: u16, message: impl Into<String>, field: Option<&str>) -> ApiResponse {
    let mut v = json!({ "error": message.into() });
    if let Some(f) = field {
        v["field"] = json!(f);
    }
    reply(status, v)
}

/// A request problem: message and the field it is about.
#[derive(Debug)]
pub(super) struct Bad(pub(super) String, pub(super) Option<&'static str>);

impl Bad {
    pub(super) fn field(field: &'static str, message: impl Into<String>) -> Self {
        Bad(message.into(), Some(field))
    }
}

/// 403 naming the scope the operator lacks.
pub(super) fn forbidden(op: &Operator, scope: Scope) -> ApiResponse {
    reply(
        403,
        json!({
            "error": format!("operator {:?} lacks the scope {:?}", op.name, scope.name()),
            "field": "scope",
            "scope": scope.name(),
        }),
    )
}

/// A request field problem, for callers outside this module (fuzzing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub message: String,
    pub field: Option<&'static str>,
}

pub(super) fn outcome_json(serial: &str, outcome: &Outcome, done: &str) -> (u16, Value) {
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
