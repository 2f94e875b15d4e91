//! The admin API's JSON: a strict parser (no key twice) and the field
//! readers, each refusal naming the field.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::reply::{Bad, MAX_BATCH};
use crate::state::Serial;

/// Parses a JSON body, refusing an object with the same key twice (serde
/// would keep the last one silently: `"reason":"certificateHold",
/// "reason":"unspecified"` must not become a permanent revocation).
pub(super) fn parse_json(body: &[u8]) -> Result<Value, Bad> {
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
    const KNOWN: [&str; 8] = [
        "revocations",
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

pub(super) fn serial_field(v: &Value, field: &'static str) -> Result<Serial, Bad> {
    match v.get(field) {
        Some(Value::String(s)) => {
            Serial::from_hex(s).map_err(|e| Bad::field(field, format!("{s:?}: {e}")))
        }
        Some(_) => Err(Bad::field(field, "must be a hex string")),
        None => Err(Bad::field(field, "is required")),
    }
}

pub(super) fn time_field(v: &Value, field: &'static str) -> Result<Option<i64>, Bad> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Some(t.unix_timestamp()))
            .map_err(|_| Bad::field(field, format!("{s:?} is not an RFC 3339 time"))),
        Some(_) => Err(Bad::field(field, "must be an RFC 3339 string")),
    }
}

/// A request body: one object, or a batch.
pub(super) enum Items<'a> {
    One(&'a Value),
    Batch(Vec<&'a Value>),
}

/// Splits a parsed body into its objects: one object, or a batch of 1 to
/// `MAX_BATCH` as a JSON array or `{key: [...]}`.
pub(super) fn items<'a>(v: &'a Value, key: &'static str) -> Result<Items<'a>, Bad> {
    let batch = match v {
        Value::Array(a) => a.iter().collect::<Vec<_>>(),
        Value::Object(o) => match o.get(key) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(_) => return Err(Bad::field(key, "must be an array")),
            None => return Ok(Items::One(v)),
        },
        _ => {
            return Err(Bad(
                "body must be a JSON object or an array of objects".into(),
                None,
            ))
        }
    };
    if batch.is_empty() || batch.len() > MAX_BATCH {
        return Err(Bad::field(key, format!("give 1 to {MAX_BATCH} {key}")));
    }
    Ok(Items::Batch(batch))
}
