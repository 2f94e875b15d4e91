//! AWS Private CA events as EventBridge delivers them to SQS, decoded into
//! what revocd can act on (pure: bytes in, an [`Event`] or the reason it is
//! skipped out; no IO, no clock).
//!
//! Four shapes are understood, all from `source: aws.acm-pca`:
//! - `AWS API Call via CloudTrail` for `RevokeCertificate`: the CA's ARN,
//!   the serial (colon-separated hex) and the reason in
//!   `detail.requestParameters`; a failed call carries `detail.errorCode`;
//! - `ACM Private CA Certificate Revocation` and `ACM Private CA
//!   Certificate Issuance`: `resources` holds the CA's ARN and the
//!   certificate's, `detail.result` is `success` or a failure;
//! - `ACM Private CA CRL Generation`: the CA's ARN.
//!
//! A message may also be an SNS notification wrapping the event (a queue
//! subscribed to a topic the rule targets); the envelope is unwrapped.

use serde_json::Value;

use crate::state::{Reason, Serial};

/// What one event asks of revocd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `RevokeCertificate` succeeded (CloudTrail): the serial and reason
    /// are in the event.
    Revoked {
        ca: String,
        serial: Serial,
        reason: Reason,
        /// When the call was made (Unix seconds), if the event says.
        at: Option<i64>,
    },
    /// A revocation (Private CA's own event): the certificate must be read
    /// to learn its serial.
    RevokedCertificate {
        ca: String,
        certificate: String,
        at: Option<i64>,
    },
    /// A certificate was issued: read it, then register its serial.
    Issued { ca: String, certificate: String },
    /// The CA wrote a new CRL: poll its CRLs now.
    CrlGenerated { ca: String },
}

impl Event {
    /// The CA the event is about.
    pub fn ca(&self) -> &str {
        match self {
            Event::Revoked { ca, .. }
            | Event::RevokedCertificate { ca, .. }
            | Event::Issued { ca, .. }
            | Event::CrlGenerated { ca } => ca,
        }
    }

    /// The metric label of the event's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Event::Revoked { .. } => Kind::RevokeCall,
            Event::RevokedCertificate { .. } => Kind::Revocation,
            Event::Issued { .. } => Kind::Issuance,
            Event::CrlGenerated { .. } => Kind::CrlGeneration,
        }
    }
}

/// The kinds of event, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RevokeCall,
    Revocation,
    Issuance,
    CrlGeneration,
    /// Anything else (another service, another API call, a body that is
    /// not an event).
    Other,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::RevokeCall,
        Kind::Revocation,
        Kind::Issuance,
        Kind::CrlGeneration,
        Kind::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::RevokeCall => "revoke_call",
            Kind::Revocation => "revocation",
            Kind::Issuance => "issuance",
            Kind::CrlGeneration => "crl_generation",
            Kind::Other => "other",
        }
    }
}

/// Why an event is not acted on. Each is logged, counted and deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    /// Not JSON, not an event, or a field revocd needs is missing or bad.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The call or operation failed; nothing changed at the CA.
    #[error("the CA reported a failure: {0}")]
    Failed(String),
    /// Another service, or another Private CA event or API call.
    #[error("not an event revocd acts on: {0}")]
    Unhandled(String),
}

impl Skipped {
    /// The `result` label of a skipped event.
    pub fn label(&self) -> &'static str {
        match self {
            Skipped::Malformed(_) => "malformed",
            Skipped::Failed(_) => "failed_call",
            Skipped::Unhandled(_) => "unhandled",
        }
    }
}

/// The largest message body read (SQS's own limit is 256 KiB; a CloudTrail
/// event is a few KiB).
pub const MAX_BODY: usize = 256 * 1024;

/// Decodes one SQS message body. `Err` carries the kind it appeared to be
/// (for the metric) and why it is skipped.
pub fn parse(body: &str) -> Result<Event, (Kind, Skipped)> {
    let malformed = |why: String| (Kind::Other, Skipped::Malformed(why));
    if body.len() > MAX_BODY {
        return Err(malformed(format!(
            "{} bytes, more than {MAX_BODY}",
            body.len()
        )));
    }
    let mut v: Value =
        serde_json::from_str(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
    // An SNS notification carries the event as a string in `Message`.
    if v.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = v
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("an SNS notification without a Message".into()))?;
        v = serde_json::from_str(inner)
            .map_err(|e| malformed(format!("the SNS Message is not JSON: {e}")))?;
    }
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let source = text(&v, "source").ok_or_else(|| malformed("no \"source\"".into()))?;
    let detail_type =
        text(&v, "detail-type").ok_or_else(|| malformed("no \"detail-type\"".into()))?;
    if source != "aws.acm-pca" {
        return Err((
            Kind::Other,
            Skipped::Unhandled(format!("source {source:?}")),
        ));
    }
    let detail = v.get("detail").cloned().unwrap_or(Value::Null);
    let envelope_time = text(&v, "time").and_then(|t| crate::clock::parse_rfc3339(&t));
    let kind = match detail_type.as_str() {
        "AWS API Call via CloudTrail" => Kind::RevokeCall,
        "ACM Private CA Certificate Revocation" => Kind::Revocation,
        "ACM Private CA Certificate Issuance" => Kind::Issuance,
        "ACM Private CA CRL Generation" => Kind::CrlGeneration,
        other => {
            return Err((
                Kind::Other,
                Skipped::Unhandled(format!("detail-type {other:?}")),
            ))
        }
    };
    let bad = |why: String| (kind, Skipped::Malformed(why));
    if kind == Kind::RevokeCall {
        let name = text(&detail, "eventName").unwrap_or_default();
        if name != "RevokeCertificate" {
            return Err((
                Kind::Other,
                Skipped::Unhandled(format!("API call {name:?}")),
            ));
        }
        if let Some(code) = text(&detail, "errorCode") {
            let message = text(&detail, "errorMessage").unwrap_or_default();
            return Err((kind, Skipped::Failed(format!("{code}: {message}"))));
        }
        let params = detail
            .get("requestParameters")
            .ok_or_else(|| bad("no requestParameters".into()))?;
        let ca = text(params, "certificateAuthorityArn")
            .ok_or_else(|| bad("no requestParameters.certificateAuthorityArn".into()))?;
        let ca = ca_arn(&ca).map_err(bad)?;
        let hex = text(params, "certificateSerial")
            .ok_or_else(|| bad("no requestParameters.certificateSerial".into()))?;
        let serial =
            Serial::from_hex(&hex).map_err(|e| bad(format!("certificateSerial {hex:?}: {e}")))?;
        let reason = match text(params, "revocationReason") {
            None => Reason::Unspecified,
            Some(r) => reason(&r).ok_or_else(|| bad(format!("revocationReason {r:?}")))?,
        };
        let at = text(&detail, "eventTime")
            .and_then(|t| crate::clock::parse_rfc3339(&t))
            .or(envelope_time);
        return Ok(Event::Revoked {
            ca,
            serial,
            reason,
            at,
        });
    }
    match text(&detail, "result").as_deref() {
        Some("success") => {}
        Some(other) => {
            let why = text(&detail, "failureReason")
                .or_else(|| text(&detail, "failure_reason"))
                .unwrap_or_default();
            return Err((kind, Skipped::Failed(format!("result {other:?} {why}"))));
        }
        None => return Err(bad("no detail.result".into())),
    }
    let resources: Vec<String> = v
        .get("resources")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // The certificate's ARN is the CA's ARN followed by /certificate/<id>.
    let certificate = resources
        .iter()
        .find(|r| r.contains("/certificate/"))
        .cloned();
    let ca = match &certificate {
        Some(c) => c.split("/certificate/").next().map(str::to_string),
        None => resources
            .iter()
            .find(|r| r.contains(":certificate-authority/"))
            .cloned(),
    }
    .ok_or_else(|| bad("no certificate-authority ARN in resources".into()))?;
    let ca = ca_arn(&ca).map_err(bad)?;
    match kind {
        Kind::CrlGeneration => Ok(Event::CrlGenerated { ca }),
        Kind::Revocation | Kind::Issuance => {
            let certificate =
                certificate.ok_or_else(|| bad("no certificate ARN in resources".into()))?;
            Ok(if kind == Kind::Issuance {
                Event::Issued { ca, certificate }
            } else {
                Event::RevokedCertificate {
                    ca,
                    certificate,
                    at: envelope_time,
                }
            })
        }
        Kind::RevokeCall | Kind::Other => Err(bad("unreachable kind".into())),
    }
}

/// Checks that `arn` names a Private CA (`arn:<partition>:acm-pca:<region>:
/// <account>:certificate-authority/<id>`) and returns it as written.
pub fn ca_arn(arn: &str) -> Result<String, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "acm-pca"
        && parts[5]
            .strip_prefix("certificate-authority/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    if ok {
        Ok(arn.to_string())
    } else {
        Err(format!(
            "{arn:?} is not a Private CA ARN (arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>)"
        ))
    }
}

/// The region an ARN names, if any.
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// A Private CA revocation reason (`RevokeCertificate`'s `RevocationReason`).
/// Private CA has no certificateHold: an event never places a hold.
pub fn reason(name: &str) -> Option<Reason> {
    Some(match name {
        "UNSPECIFIED" => Reason::Unspecified,
        "KEY_COMPROMISE" => Reason::KeyCompromise,
        "CERTIFICATE_AUTHORITY_COMPROMISE" => Reason::CaCompromise,
        "AFFILIATION_CHANGED" => Reason::AffiliationChanged,
        "SUPERSEDED" => Reason::Superseded,
        "CESSATION_OF_OPERATION" => Reason::CessationOfOperation,
        "PRIVILEGE_WITHDRAWN" => Reason::PrivilegeWithdrawn,
        "A_A_COMPROMISE" => Reason::AaCompromise,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str =
        "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11223344-1234-1122-2233-112233445566";

    fn cloudtrail(params: &str, extra: &str) -> String {
        format!(
            r#"{{"version":"0","id":"e1","detail-type":"AWS API Call via CloudTrail","source":"aws.acm-pca",
            "account":"111122223333","time":"2026-12-04T10:00:05Z","region":"us-east-1","resources":[],
            "detail":{{"eventVersion":"1.08","eventTime":"2026-12-04T10:00:03Z","eventSource":"acm-pca.amazonaws.com",
            "eventName":"RevokeCertificate","awsRegion":"us-east-1","requestParameters":{params}{extra}}}}}"#
        )
    }

    fn native(detail_type: &str, resources: &[&str], result: &str) -> String {
        let resources: Vec<String> = resources.iter().map(|r| format!("{r:?}")).collect();
        format!(
            r#"{{"version":"0","id":"e2","detail-type":"{detail_type}","source":"aws.acm-pca","account":"111122223333",
            "time":"2026-12-04T10:00:07Z","region":"us-east-1","resources":[{}],"detail":{{"result":"{result}"}}}}"#,
            resources.join(",")
        )
    }

    #[test]
    fn a_cloudtrail_revoke_call_gives_the_serial_reason_and_time() {
        let body = cloudtrail(
            &format!(
                r#"{{"certificateAuthorityArn":"{CA}","certificateSerial":"e8:cb:d2:be:db:12:23:29","revocationReason":"KEY_COMPROMISE"}}"#
            ),
            "",
        );
        let e = parse(&body).expect("event");
        assert_eq!(
            e,
            Event::Revoked {
                ca: CA.to_string(),
                serial: Serial::from_hex("E8CBD2BEDB122329").expect("hex"),
                reason: Reason::KeyCompromise,
                at: crate::clock::parse_rfc3339("2026-12-04T10:00:03Z"),
            }
        );
        assert_eq!(e.kind(), Kind::RevokeCall);
    }

    #[test]
    fn a_failed_call_another_call_and_another_service_change_nothing() {
        let params = format!(r#"{{"certificateAuthorityArn":"{CA}","certificateSerial":"01"}}"#);
        let failed = cloudtrail(
            &params,
            r#","errorCode":"RequestAlreadyProcessedException","errorMessage":"already revoked""#,
        );
        assert!(matches!(
            parse(&failed),
            Err((Kind::RevokeCall, Skipped::Failed(_)))
        ));
        let other = cloudtrail(&params, "").replace("RevokeCertificate", "IssueCertificate");
        assert!(matches!(
            parse(&other),
            Err((Kind::Other, Skipped::Unhandled(_)))
        ));
        let s3 = native("Object Created", &[CA], "success").replace("aws.acm-pca", "aws.s3");
        assert!(matches!(
            parse(&s3),
            Err((Kind::Other, Skipped::Unhandled(_)))
        ));
    }

    #[test]
    fn native_events_name_the_ca_and_the_certificate() {
        let cert = format!("{CA}/certificate/6707447683a9b7f4055627ffd55cebcc");
        assert_eq!(
            parse(&native(
                "ACM Private CA Certificate Issuance",
                &[CA, &cert],
                "success"
            )),
            Ok(Event::Issued {
                ca: CA.to_string(),
                certificate: cert.clone()
            })
        );
        assert!(matches!(
            parse(&native("ACM Private CA Certificate Revocation", &[&cert], "success")),
            Ok(Event::RevokedCertificate { ca, at: Some(_), .. }) if ca == CA
        ));
        assert_eq!(
            parse(&native("ACM Private CA CRL Generation", &[CA], "success")),
            Ok(Event::CrlGenerated { ca: CA.to_string() })
        );
        assert!(matches!(
            parse(&native(
                "ACM Private CA Certificate Issuance",
                &[CA, &cert],
                "failure"
            )),
            Err((Kind::Issuance, Skipped::Failed(_)))
        ));
    }

    #[test]
    fn malformed_bodies_are_named_and_never_panic() {
        for body in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"source":"aws.acm-pca"}"#,
            &native("ACM Private CA Certificate Issuance", &[], "success"),
            &native("ACM Private CA Certificate Issuance", &[CA], "success"),
            &native(
                "ACM Private CA Certificate Issuance",
                &["arn:aws:s3:::bucket"],
                "success",
            ),
            &cloudtrail(
                r#"{"certificateAuthorityArn":"x","certificateSerial":"01"}"#,
                "",
            ),
            &cloudtrail(
                &format!(r#"{{"certificateAuthorityArn":"{CA}","certificateSerial":"zz"}}"#),
                "",
            ),
            &cloudtrail(
                &format!(
                    r#"{{"certificateAuthorityArn":"{CA}","certificateSerial":"01","revocationReason":"CERTIFICATE_HOLD"}}"#
                ),
                "",
            ),
            r#"{"Type":"Notification","Message":"{"}"#,
        ] {
            match parse(body) {
                Err((_, Skipped::Malformed(why))) => assert!(!why.is_empty()),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_sns_envelope_is_unwrapped() {
        let inner = native("ACM Private CA CRL Generation", &[CA], "success");
        let body = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        assert_eq!(parse(&body), Ok(Event::CrlGenerated { ca: CA.to_string() }));
    }

    #[test]
    fn arns_and_regions() {
        assert!(ca_arn(CA).is_ok());
        assert!(
            ca_arn("arn:aws:acm-pca:us-east-1:1:certificate-authority/a/certificate/b").is_err()
        );
        assert!(ca_arn("arn:aws:acm:us-east-1:1:certificate/a").is_err());
        assert_eq!(arn_region(CA), Some("us-east-1"));
    }
}
