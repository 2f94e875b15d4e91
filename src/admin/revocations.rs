//! Revocations through the admin API: one object, or a batch (a JSON array,
//! or `{"revocations": [...]}`) of up to 10,000, written as one ledger
//! commit and answered with a result per item, in order. Each item stands
//! or fails on its own: a bad field is that item's 400, a missing scope its
//! 403, a contradiction of the recorded state its 409.
//!
//! A revocation that states no `revoked_at` means "revoked, as of now if
//! not yet": on a serial already revoked for the same reason it takes the
//! recorded time, so a retried request or a resumed `revoke --serials-file`
//! run is `unchanged` rather than a conflict.

use serde_json::{json, Value};

use super::access::{Operator, Scope};
#[cfg(test)]
use super::json::{items, Items};
use super::json::{parse_json, serial_field, time_field};
use super::reply::{forbidden, outcome_json, reply, ApiResponse, Bad, FieldError};
use crate::ledger::{Outcome, Submitted};
use crate::state::{Change, Entry, Reason, Status};

/// One revocation object as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Revocation {
    pub(super) change: Change,
    /// Whether it gave `revoked_at` (otherwise `now` was taken).
    pub(super) time_stated: bool,
}

/// Parses a revocation body into a change, as of `now`. Pure: the fuzz
/// target `admin_json` holds it to never panicking.
pub fn parse_revocation(body: &[u8], now: i64) -> Result<Change, FieldError> {
    let err = |Bad(message, field)| FieldError { message, field };
    let v: Value = parse_json(body).map_err(err)?;
    if !v.is_object() {
        return Err(err(Bad("body must be a JSON object".into(), None)));
    }
    revocation_of(&v, now).map(|r| r.change).map_err(err)
}

/// Reads one revocation object, as of `now`.
pub(super) fn revocation_of(v: &Value, now: i64) -> Result<Revocation, Bad> {
    if !v.is_object() {
        return Err(Bad("a revocation must be a JSON object".into(), None));
    }
    let serial = serial_field(v, "serial")?;
    let reason = match v.get("reason") {
        None | Some(Value::Null) => Reason::Unspecified,
        Some(Value::String(s)) => Reason::from_name(s).ok_or_else(|| {
            Bad::field(
                "reason",
                format!("{s:?} is not an RFC 5280 reason (keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, removeFromCRL, privilegeWithdrawn, aACompromise, unspecified)"),
            )
        })?,
        Some(_) => return Err(Bad::field("reason", "must be a string")),
    };
    let stated = time_field(v, "revoked_at")?;
    let at = stated.unwrap_or(now);
    let invalidity_date = time_field(v, "invalidity_date")?;
    crate::state::check_revocation_times(at, invalidity_date, now)
        .map_err(|(field, why)| Bad::field(field, why))?;
    let change = if reason == Reason::RemoveFromCrl {
        Change::Release { serial }
    } else {
        Change::Revoke {
            serial,
            at,
            reason,
            invalidity_date,
        }
    };
    Ok(Revocation {
        change,
        time_stated: stated.is_some(),
    })
}

/// A revocation with no stated time, against the serial's recorded entry:
/// already revoked for the same reason (and the same invalidity date, when
/// one is given) takes the recorded time and date, so it is `unchanged`.
pub(super) fn keep_recorded_time(change: Change, recorded: Option<&Entry>) -> Change {
    let (
        Change::Revoke {
            serial,
            reason,
            invalidity_date,
            ..
        },
        Some(Entry {
            status:
                Status::Revoked {
                    at: old_at,
                    reason: old_reason,
                    invalidity_date: old_invalidity,
                },
            ..
        }),
    ) = (&change, recorded)
    else {
        return change;
    };
    if reason != old_reason || (invalidity_date.is_some() && invalidity_date != old_invalidity) {
        return change;
    }
    Change::Revoke {
        serial: serial.clone(),
        at: *old_at,
        reason: *reason,
        invalidity_date: *old_invalidity,
    }
}

/// What a revocation needs: the word its result uses and the scope.
fn needs(change: &Change) -> (&'static str, Scope) {
    if matches!(change, Change::Release { .. }) {
        ("released", Scope::Release)
    } else {
        ("revoked", Scope::Revoke)
    }
}

/// One item checked before the ledger.
pub(super) enum Checked {
    Submit {
        change: Change,
        word: &'static str,
    },
    /// A bad field (400), with the serial as given, if any.
    Invalid(Bad, Option<String>),
    /// The operator lacks the scope (403), for this serial.
    Forbidden(Scope, String),
}

impl Checked {
    /// The batch result of an item refused before the ledger.
    fn answer(self, op: &Operator) -> Option<(u16, Value)> {
        match self {
            Checked::Submit { .. } => None,
            Checked::Invalid(Bad(message, field), serial) => {
                let mut v = json!({ "error": message });
                if let Some(f) = field {
                    v["field"] = json!(f);
                }
                if let Some(s) = serial {
                    v["serial"] = json!(s);
                }
                Some((400, v))
            }
            Checked::Forbidden(scope, serial) => {
                let refused = forbidden(op, scope);
                let mut v: Value = serde_json::from_str(&refused.body).unwrap_or(Value::Null);
                v["serial"] = json!(serial);
                Some((refused.status, v))
            }
        }
    }
}

/// Checks one item: fields, scope, and the recorded time when none is
/// stated (`lookup` reads the serial's entry).
pub(super) fn check_item(
    op: &Operator,
    item: &Value,
    now: i64,
    lookup: impl Fn(&crate::state::Serial) -> Option<Entry>,
) -> Checked {
    let r = match revocation_of(item, now) {
        Ok(r) => r,
        Err(bad) => {
            let given = item
                .get("serial")
                .and_then(Value::as_str)
                .map(str::to_string);
            return Checked::Invalid(bad, given);
        }
    };
    let (word, scope) = needs(&r.change);
    if !op.has(scope) {
        return Checked::Forbidden(scope, r.change.serial().to_hex());
    }
    let change = if r.time_stated {
        r.change
    } else {
        let recorded = lookup(r.change.serial());
        keep_recorded_time(r.change, recorded.as_ref())
    };
    Checked::Submit { change, word }
}

/// Counts of a batch's results, by what happened.
#[derive(Debug, Default)]
struct Summary {
    revoked: usize,
    released: usize,
    unchanged: usize,
    refused: usize,
    failed: usize,
}

/// The batch answer: every item's result, in order, each with its status;
/// 503 when any failed for want of a durable write (retry those), 200
/// otherwise.
pub(super) fn batch_reply(results: Vec<(u16, Value)>) -> ApiResponse {
    let mut summary = Summary::default();
    let mut out = Vec::with_capacity(results.len());
    for (status, mut v) in results {
        match (status, v.get("result").and_then(Value::as_str)) {
            (200, Some("revoked")) => summary.revoked += 1,
            (200, Some("released")) => summary.released += 1,
            (200, _) => summary.unchanged += 1,
            (503, _) => summary.failed += 1,
            _ => summary.refused += 1,
        }
        v["status"] = json!(status);
        out.push(v);
    }
    let status = if summary.failed > 0 { 503 } else { 200 };
    reply(
        status,
        json!({
            "results": out,
            "revoked": summary.revoked,
            "released": summary.released,
            "unchanged": summary.unchanged,
            "refused": summary.refused,
            "failed": summary.failed,
        }),
    )
}

/// Pairs each submitted item's outcome with its result.
pub(super) fn submitted_results(
    slots: Vec<(usize, String, &'static str)>,
    outcomes: &[Outcome],
    results: &mut [Option<(u16, Value)>],
) {
    for ((i, serial, word), outcome) in slots.into_iter().zip(outcomes) {
        results[i] = Some(outcome_json(&serial, outcome, word));
    }
}

/// The submissions of checked items, with where each result goes; the
/// results of items refused before the ledger are set.
pub(super) fn submissions(
    checked: Vec<Checked>,
    issuer: &str,
    op: &Operator,
    results: &mut [Option<(u16, Value)>],
) -> (Vec<Submitted>, Vec<(usize, String, &'static str)>) {
    let mut submitted = Vec::new();
    let mut slots = Vec::new();
    for (i, c) in checked.into_iter().enumerate() {
        match c {
            Checked::Submit { change, word } => {
                slots.push((i, change.serial().to_hex(), word));
                submitted.push(Submitted {
                    issuer: issuer.to_string(),
                    change,
                    author: op.name.clone(),
                });
            }
            refused => results[i] = refused.answer(op),
        }
    }
    (submitted, slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Author, Serial};

    fn revoked(at: i64, reason: Reason) -> Entry {
        Entry {
            not_after: None,
            status: Status::Revoked {
                at,
                reason,
                invalidity_date: None,
            },
            revision: 1,
            author: Author::UNRECORDED,
        }
    }

    fn untimed(reason: &str) -> Change {
        let v = json!({ "serial": "0A", "reason": reason });
        let r = revocation_of(&v, 2_000).expect("valid");
        assert!(!r.time_stated);
        r.change
    }

    #[test]
    fn an_untimed_revocation_of_a_serial_revoked_for_the_same_reason_takes_the_recorded_time() {
        let kept = keep_recorded_time(
            untimed("keyCompromise"),
            Some(&revoked(1_000, Reason::KeyCompromise)),
        );
        assert!(matches!(kept, Change::Revoke { at: 1_000, .. }), "{kept:?}");
        // Another reason is a change (or a conflict) the state decides.
        let other = keep_recorded_time(
            untimed("superseded"),
            Some(&revoked(1_000, Reason::KeyCompromise)),
        );
        assert!(
            matches!(other, Change::Revoke { at: 2_000, .. }),
            "{other:?}"
        );
        // A serial still good is revoked now.
        let good = keep_recorded_time(untimed("keyCompromise"), None);
        assert!(matches!(good, Change::Revoke { at: 2_000, .. }), "{good:?}");
    }

    #[test]
    fn a_batch_is_an_array_or_an_object_of_revocations_of_one_to_ten_thousand() {
        let one = json!({ "serial": "01" });
        assert!(matches!(items(&one, "revocations"), Ok(Items::One(_))));
        let arr = json!([{ "serial": "01" }, { "serial": "02" }]);
        assert!(matches!(items(&arr, "revocations"), Ok(Items::Batch(b)) if b.len() == 2));
        let obj = json!({ "revocations": [{ "serial": "01" }] });
        assert!(matches!(items(&obj, "revocations"), Ok(Items::Batch(b)) if b.len() == 1));
        for bad in [
            json!([]),
            json!({ "revocations": "01" }),
            Value::Array(vec![
                json!({ "serial": "01" });
                super::super::reply::MAX_BATCH + 1
            ]),
        ] {
            let Err(Bad(_, field)) = items(&bad, "revocations") else {
                panic!("{bad} accepted")
            };
            assert_eq!(field, Some("revocations"));
        }
        assert!(items(&json!("01"), "revocations").is_err());
    }

    #[test]
    fn a_bad_item_is_its_own_400_naming_the_field_and_its_serial() {
        let op = Operator::test("ops", &[Scope::Revoke]);
        let lookup = |_: &Serial| None;
        let checked = check_item(&op, &json!({ "serial": "0B", "reason": "oops" }), 0, lookup);
        let Some((400, v)) = checked.answer(&op) else {
            panic!("accepted")
        };
        assert_eq!(
            (v["field"].as_str(), v["serial"].as_str()),
            (Some("reason"), Some("0B"))
        );
        // Releasing needs the release scope, item by item.
        let checked = check_item(
            &op,
            &json!({ "serial": "0C", "reason": "removeFromCRL" }),
            0,
            lookup,
        );
        let Some((403, v)) = checked.answer(&op) else {
            panic!("accepted")
        };
        assert_eq!(
            (v["scope"].as_str(), v["serial"].as_str()),
            (Some("release"), Some("0C"))
        );
    }
}
