//! What an upstream CRL or issuance report means for the state, pure:
//! the changes to submit, and what must not be applied.

use std::collections::HashMap;

use crate::crl::build::CrlEntry;
use crate::state::{Change, Reason, Serial};

/// What one full-CRL source listed when last applied: serial -> reason.
pub type Listed = HashMap<Serial, Reason>;

/// The changes a CRL leads to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Serials the previous CRL of this source listed with a permanent
    /// reason and this one does not: never applied (a revocation is not
    /// undone by a CRL forgetting it), logged, counted, alerted.
    pub vanished: Vec<Serial>,
}

/// A full CRL (or one shard) against what the same source listed before.
/// Every entry is a revocation (reason changes are revocations the state's
/// rules accept or refuse); a certificateHold the new CRL no longer lists is
/// a release (RFC 5280 5.3.1).
pub fn full(previous: Option<&Listed>, entries: &[CrlEntry]) -> Plan {
    let mut plan = Plan::default();
    let mut now_listed = std::collections::HashSet::with_capacity(entries.len());
    for e in entries {
        now_listed.insert(&e.serial);
        if e.reason == Reason::RemoveFromCrl {
            // Only meaningful in a delta CRL.
            continue;
        }
        plan.changes.push(Change::Revoke {
            serial: e.serial.clone(),
            at: e.revoked_at,
            reason: e.reason,
            invalidity_date: e.invalidity_date,
        });
    }
    let mut gone: Vec<(&Serial, &Reason)> = previous
        .into_iter()
        .flatten()
        .filter(|(s, _)| !now_listed.contains(s))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    for (serial, reason) in gone {
        if *reason == Reason::CertificateHold {
            plan.changes.push(Change::Release {
                serial: serial.clone(),
            });
        } else {
            plan.vanished.push(serial.clone());
        }
    }
    plan
}

/// A delta CRL: its entries on top of its base. removeFromCRL releases a
/// hold; anything else revokes. A serial a delta stops listing has moved
/// into a newer base, so nothing vanishes.
pub fn delta(entries: &[CrlEntry]) -> Plan {
    let changes = entries
        .iter()
        .map(|e| match e.reason {
            Reason::RemoveFromCrl => Change::Release {
                serial: e.serial.clone(),
            },
            reason => Change::Revoke {
                serial: e.serial.clone(),
                at: e.revoked_at,
                reason,
                invalidity_date: e.invalidity_date,
            },
        })
        .collect();
    Plan {
        changes,
        vanished: Vec::new(),
    }
}

/// What a full CRL lists, for the next comparison.
pub fn listed(entries: &[CrlEntry]) -> Listed {
    entries
        .iter()
        .filter(|e| e.reason != Reason::RemoveFromCrl)
        .map(|e| (e.serial.clone(), e.reason))
        .collect()
}

/// One issued certificate an issuance source reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub serial: Serial,
    pub not_after: i64,
}

/// Parses an AWS Private CA audit report, JSON (an array of objects) or CSV
/// (a header line naming the columns), as AWS documents both. Each
/// certificate's `serial` and `notAfter` are read; revocations in the report
/// are not applied (the report is not signed: revocations come from the
/// CA's signed CRL). Returns the certificates and the problems, by row.
pub fn audit_report(bytes: &[u8]) -> (Vec<Issued>, Vec<String>) {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let rows: Vec<(usize, Option<String>, Option<String>)> = if trimmed.starts_with('[') {
        match serde_json::from_str::<Vec<serde_json::Value>>(trimmed) {
            Ok(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                    (i + 1, field("serial"), field("notAfter"))
                })
                .collect(),
            Err(e) => return (Vec::new(), vec![format!("not a JSON audit report: {e}")]),
        }
    } else {
        let mut lines = csv_records(trimmed).into_iter();
        let Some(header) = lines.next() else {
            return (Vec::new(), vec!["empty audit report".into()]);
        };
        let col = |name: &str| header.iter().position(|h| h.trim() == name);
        let (Some(serial), Some(not_after)) = (col("serial"), col("notAfter")) else {
            return (
                Vec::new(),
                vec!["not an audit report: the CSV header lacks serial or notAfter".into()],
            );
        };
        lines
            .enumerate()
            .filter(|(_, r)| !(r.len() == 1 && r[0].trim().is_empty()))
            .map(|(i, r)| (i + 2, r.get(serial).cloned(), r.get(not_after).cloned()))
            .collect()
    };
    let mut issued = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    for (row, serial, not_after) in rows {
        let serial = serial.as_deref().map(Serial::from_hex);
        let not_after = not_after.as_deref().map(report_time);
        match (serial, not_after) {
            (Some(Ok(serial)), Some(Some(not_after))) => issued.push(Issued { serial, not_after }),
            (Some(Err(e)), _) => problems.push(format!("row {row}: serial: {e}")),
            (None, _) => problems.push(format!("row {row}: no serial")),
            (_, _) => problems.push(format!("row {row}: no readable notAfter")),
        }
    }
    (issued, problems)
}

/// `2019-02-26T19:39:57+0000` (the audit report's form) or RFC 3339.
fn report_time(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    // ±HHMM without a colon.
    let (head, offset) = s.split_at(s.len().checked_sub(5)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(3..5)?.parse().ok()?;
    let t = time::OffsetDateTime::parse(&format!("{head}Z"), &Rfc3339).ok()?;
    Some(t.unix_timestamp() - sign * (hours * 3600 + minutes * 60))
}

/// RFC 4180 records: commas, double-quoted fields with `""` escapes, CRLF
/// or LF line ends (a quoted field may span lines).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(serial: &str, reason: Reason) -> CrlEntry {
        CrlEntry {
            serial: Serial::from_hex(serial).expect("hex"),
            revoked_at: 1_700_000_000,
            reason,
            invalidity_date: None,
        }
    }

    #[test]
    fn a_full_crl_revokes_releases_dropped_holds_and_never_unrevokes() {
        let before = [
            entry("01", Reason::KeyCompromise),
            entry("02", Reason::CertificateHold),
            entry("03", Reason::Superseded),
        ];
        let after = [
            entry("01", Reason::KeyCompromise),
            entry("04", Reason::CessationOfOperation),
        ];
        let plan = full(Some(&listed(&before)), &after);
        let kinds: Vec<(&str, String)> = plan
            .changes
            .iter()
            .map(|c| (c.kind(), c.serial().to_hex()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("revoke", "01".to_string()),
                ("revoke", "04".to_string()),
                ("release", "02".to_string())
            ]
        );
        assert_eq!(plan.vanished, [Serial::from_hex("03").expect("hex")]);
        // The first CRL a source serves has nothing to compare with.
        assert!(full(None, &after).vanished.is_empty());
    }

    #[test]
    fn a_delta_releases_with_remove_from_crl_and_revokes_the_rest() {
        let plan = delta(&[
            entry("0A", Reason::RemoveFromCrl),
            entry("0B", Reason::CertificateHold),
        ]);
        assert_eq!(plan.changes[0].kind(), "release");
        assert_eq!(plan.changes[1].kind(), "revoke");
        assert!(plan.vanished.is_empty());
    }

    #[test]
    fn audit_reports_in_json_and_csv_as_aws_documents_them() {
        let json = br#"[{"awsAccountId":"123456789012","certificateArn":"arn:aws:acm-pca:region:account:certificate-authority/CA_ID/certificate/e8cb","serial":"e8:cb:d2:be:db:12:23:29:f9:77:06:bc:fe:c9:90:f8","subject":"CN=a","notBefore":"2018-02-26T18:39:57+0000","notAfter":"2019-02-26T19:39:57+0000","issuedAt":"2018-02-26T19:39:58+0000","revokedAt":"2018-02-26T20:00:36+0000","revocationReason":"KEY_COMPROMISE"},{"serial":"2b:ae","notAfter":"2019-01-17T21:10:49-0100"},{"serial":"zz","notAfter":"2019-01-17T21:10:49+0000"}]"#;
        let (issued, problems) = audit_report(json);
        assert_eq!(issued.len(), 2);
        assert_eq!(
            issued[0].serial.to_hex(),
            "E8CBD2BEDB122329F97706BCFEC990F8"
        );
        assert_eq!(issued[0].not_after, 1_551_209_997);
        assert_eq!(issued[1].not_after, 1_547_759_449 + 3600);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let csv = "awsAccountId,requestedByServicePrincipal,certificateArn,serial,subject,notBefore,notAfter,issuedAt,revokedAt,revocationReason,templateArn\r\n\
123456789012,,arn:aws:acm-pca:r:a:certificate-authority/CA/certificate/c1,00:11:22:33,\"2.5.4.5=#0123,CN=x, \"\"quoted\"\"\",2018-02-26T18:39:57+0000,2019-02-26T19:39:57+0000,2018-02-26T19:39:58+0000,,,arn:aws:acm-pca:::template/EndEntityCertificate/V1\r\n";
        let (issued, problems) = audit_report(csv.as_bytes());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].serial.to_hex(), "112233");
        assert_eq!(issued[0].not_after, 1_551_209_997);
        assert!(!audit_report(b"hello,world\n1,2\n").1.is_empty());
    }
}
