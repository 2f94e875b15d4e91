//! OpenSSL `index.txt` (the database `openssl ca` writes), parsed into state
//! changes. Pure: text in, changes and per-line errors out.
//!
//! A line is six tab-separated fields: flag (`V` valid, `R` revoked, `E`
//! expired), expiry (`YYMMDDHHMMSSZ`, or `YYYYMMDDHHMMSSZ` from 2050), the
//! revocation field (`time[,reason[,extra]]`, empty unless revoked), serial
//! (hex), file name, subject.

use crate::state::{Change, Reason, Serial};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The changes one index file describes, in file order; lines that do not
/// parse are reported and skipped.
#[derive(Debug, Default)]
pub struct Parsed {
    pub changes: Vec<Change>,
    /// The line (1-based) each change came from.
    pub lines: Vec<usize>,
    pub errors: Vec<LineError>,
}

/// `now` bounds revocation times from above (see
/// [`crate::state::check_revocation_times`]).
pub fn parse(text: &str, now: i64) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, now) {
            Ok(changes) => {
                out.lines.extend(std::iter::repeat_n(i + 1, changes.len()));
                out.changes.extend(changes);
            }
            Err(message) => out.errors.push(LineError {
                line: i + 1,
                message,
            }),
        }
    }
    out
}

fn parse_line(line: &str, now: i64) -> Result<Vec<Change>, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() < 4 {
        return Err(format!(
            "expected at least 4 tab-separated fields, found {}",
            fields.len()
        ));
    }
    let serial = Serial::from_hex(fields[3]).map_err(|e| format!("serial {:?}: {e}", fields[3]))?;
    let not_after = parse_time(fields[1])
        .ok_or_else(|| format!("expiry {:?} is not a valid time", fields[1]))?;
    let register = Change::Register {
        serial: serial.clone(),
        not_after,
    };
    match fields[0] {
        "V" | "E" => Ok(vec![register]),
        "R" => {
            let mut parts = fields[2].split(',');
            let at_text = parts.next().unwrap_or("");
            let at = parse_time(at_text)
                .ok_or_else(|| format!("revocation time {at_text:?} is not a valid time"))?;
            let (reason, invalidity_date) = match parts.next() {
                None | Some("") => (Reason::Unspecified, None),
                Some(name) => parse_reason(name, parts.next())?,
            };
            crate::state::check_revocation_times(at, invalidity_date, now)
                .map_err(|(field, why)| format!("{field} {why}"))?;
            Ok(vec![
                register,
                Change::Revoke {
                    serial,
                    at,
                    reason,
                    invalidity_date,
                },
            ])
        }
        other => Err(format!(
            "unknown status flag {other:?} (expected V, R or E)"
        )),
    }
}

/// openssl's reason words, including `keyTime`/`CAkeyTime` (a compromise with
/// the compromise time as invalidity date) and `holdInstruction`.
fn parse_reason(name: &str, extra: Option<&str>) -> Result<(Reason, Option<i64>), String> {
    let with_time = |reason| {
        let t = extra
            .and_then(parse_time)
            .ok_or_else(|| format!("{name} needs a compromise time"))?;
        Ok((reason, Some(t)))
    };
    match name {
        "keyTime" => with_time(Reason::KeyCompromise),
        "CAkeyTime" => with_time(Reason::CaCompromise),
        "holdInstruction" => Ok((Reason::CertificateHold, None)),
        _ => Reason::from_name(name)
            .map(|r| (r, None))
            .ok_or_else(|| format!("unknown revocation reason {name:?}")),
    }
}

/// `YYMMDDHHMMSSZ` (UTCTime rules: YY < 50 is 20YY) or `YYYYMMDDHHMMSSZ`.
pub fn parse_time(text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match digits.len() {
        12 => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        14 => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<u8>().ok();
    let month = time::Month::try_from(num(0..2)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, num(2..4)?).ok()?;
    let t = time::Time::from_hms(num(4..6)?, num(6..8)?, num(8..10)?).ok()?;
    Some(date.with_time(t).assume_utc().unix_timestamp())
}

/// Formats a Unix time the way `openssl ca` writes it in index.txt.
pub fn format_time(unix: i64) -> String {
    let text = crate::asn1::generalized_time_text(unix);
    if (1950..2050).contains(&text[..4].parse::<i32>().unwrap_or(0)) {
        text[2..].to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_lines_and_reports_bad_ones_by_number() {
        let text = "V\t341114221320Z\t\t1001\tunknown\t/CN=good\n\
                    R\t341114221320Z\t231114221320Z,keyCompromise\t1002\tunknown\t/CN=bad\n\
                    garbage line\n\
                    R\t341114221320Z\t231114221320Z,keyTime,231110000000Z\t1003\tunknown\t/CN=k\n\
                    R\t341114221320Z\t231114221320Z\t1004\tunknown\t/CN=u\n\
                    X\t341114221320Z\t\t1005\tunknown\t/CN=x\n";
        let parsed = parse(text, i64::MAX);
        assert_eq!(
            parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [3, 6]
        );
        assert_eq!(parsed.changes.len(), 7);
        assert_eq!(
            parsed.changes[2],
            Change::Revoke {
                serial: Serial::from_hex("1002").expect("hex"),
                at: 1_700_000_000,
                reason: Reason::KeyCompromise,
                invalidity_date: None,
            }
        );
        assert!(matches!(
            parsed.changes[4],
            Change::Revoke {
                reason: Reason::KeyCompromise,
                invalidity_date: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parsed.changes[6],
            Change::Revoke {
                reason: Reason::Unspecified,
                ..
            }
        ));
    }

    #[test]
    fn times_round_trip_both_forms() {
        assert_eq!(parse_time("231114221320Z"), Some(1_700_000_000));
        assert_eq!(format_time(1_700_000_000), "231114221320Z");
        let far = parse_time("20600101000000Z").expect("2060");
        assert_eq!(format_time(far), "20600101000000Z");
        assert_eq!(parse_time("231314221320Z"), None);
        assert_eq!(parse_time("2311142213Z"), None);
    }
}
