//! Revoking many serials at once: `revocd revoke --serials-file` and
//! `revocd import-index` send batches of up to 10,000 revocations (each one
//! ledger commit on the daemon) with a bounded number in flight, show
//! progress on a terminal, and retry what could not be made durable. Run
//! again, the same file is safe: what is already revoked comes back
//! `unchanged` (a revocation that states no time takes the recorded one).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::tools::client::AdminClient;

pub use crate::tools::cli::{BULK_BATCH as BATCH, BULK_CONCURRENCY as CONCURRENCY};
/// Attempts per batch before its items count as failed.
const ATTEMPTS: u32 = 6;

/// One revocation to send, with the line it came from (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub line: usize,
    pub body: Value,
}

/// What the fields of every revocation in a serials file are.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub reason: Option<String>,
    pub revoked_at: Option<String>,
    pub invalidity_date: Option<String>,
}

/// A serials file as revocations: one hex serial per line (blank lines and
/// `#` comments skipped); returns the items and the bad lines (number, why).
pub fn read_serials(text: &str, fields: &Fields) -> (Vec<Item>, Vec<(usize, String)>) {
    let mut items = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match crate::state::Serial::from_hex(line) {
            Ok(serial) => {
                let mut body = json!({ "serial": serial.to_hex() });
                for (key, value) in [
                    ("reason", &fields.reason),
                    ("revoked_at", &fields.revoked_at),
                    ("invalidity_date", &fields.invalidity_date),
                ] {
                    if let Some(v) = value {
                        body[key] = json!(v);
                    }
                }
                items.push(Item { line: i + 1, body });
            }
            Err(e) => bad.push((i + 1, format!("{line:?}: {e}"))),
        }
    }
    (items, bad)
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub sent: usize,
    pub revoked: usize,
    pub released: usize,
    pub unchanged: usize,
    /// Refused by the daemon: (line, serial, why).
    pub refused: Vec<(usize, String, String)>,
    /// Not made durable after every attempt: (line, serial, why).
    pub failed: Vec<(usize, String, String)>,
    pub elapsed: Duration,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.sent += other.sent;
        self.revoked += other.revoked;
        self.released += other.released;
        self.unchanged += other.unchanged;
        self.refused.extend(other.refused);
        self.failed.extend(other.failed);
    }

    pub fn done(&self) -> usize {
        self.revoked + self.released + self.unchanged + self.refused.len() + self.failed.len()
    }

    pub fn ok(&self) -> bool {
        self.refused.is_empty() && self.failed.is_empty()
    }
}

/// Sends `items` to issuer `issuer`'s revocations endpoint in batches of
/// `batch`, `concurrency` at a time.
pub async fn send(
    client: Arc<AdminClient>,
    issuer: &str,
    items: Vec<Item>,
    batch: usize,
    concurrency: usize,
) -> Summary {
    let started = Instant::now();
    let total = items.len();
    let path = format!("/v1/issuers/{issuer}/revocations");
    let progress = std::io::stderr().is_terminal();
    let mut summary = Summary::default();
    let batch = batch.clamp(1, BATCH);
    let mut rest = items.into_iter();
    let mut set = tokio::task::JoinSet::new();
    loop {
        while set.len() < concurrency.max(1) {
            let chunk: Vec<Item> = rest.by_ref().take(batch).collect();
            if chunk.is_empty() {
                break;
            }
            let (client, path) = (Arc::clone(&client), path.clone());
            set.spawn(async move { send_batch(&client, &path, chunk).await });
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        summary.add(done.unwrap_or_default());
        if progress {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r{} of {total} revocations answered ({:.0}/s)   ",
                summary.done(),
                summary.done() as f64 / secs
            );
        }
    }
    if progress {
        eprintln!();
    }
    summary.elapsed = started.elapsed();
    summary
}

/// One batch, retried (with backoff) while the daemon cannot be reached or
/// cannot make items durable (503); a retry is safe, as repeated
/// revocations are `unchanged`.
async fn send_batch(client: &AdminClient, path: &str, mut items: Vec<Item>) -> Summary {
    let mut summary = Summary {
        sent: items.len(),
        ..Summary::default()
    };
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let body = Value::Array(items.iter().map(|i| i.body.clone()).collect());
        let why = match client.call("POST", path, Some(body)).await {
            Ok((status, v)) => match v.get("results").and_then(Value::as_array) {
                Some(results) if results.len() == items.len() => {
                    items = tally(&mut summary, items, results);
                    if items.is_empty() {
                        return summary;
                    }
                    format!("HTTP {status}: not durable yet")
                }
                _ => {
                    let msg = v
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("no results");
                    if status != 503 && (400..500).contains(&status) {
                        // The whole request was refused: retrying cannot help.
                        refuse_all(&mut summary, items, &format!("HTTP {status}: {msg}"));
                        return summary;
                    }
                    format!("HTTP {status}: {msg}")
                }
            },
            Err(e) => format!("{e:#}"),
        };
        if attempt == ATTEMPTS {
            for item in items {
                let serial = serial_of(&item);
                summary.failed.push((item.line, serial, why.clone()));
            }
            return summary;
        }
        tracing::warn!(attempt, retry_in_ms = backoff.as_millis() as u64, error = %why, "batch not done; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    summary
}

/// Counts each item's result; returns the items to send again (503).
fn tally(summary: &mut Summary, items: Vec<Item>, results: &[Value]) -> Vec<Item> {
    let mut again = Vec::new();
    for (item, r) in items.into_iter().zip(results) {
        let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
        match (status, r.get("result").and_then(Value::as_str)) {
            (200, Some("revoked")) => summary.revoked += 1,
            (200, Some("released")) => summary.released += 1,
            (200, _) => summary.unchanged += 1,
            (503, _) => again.push(item),
            _ => {
                let why = r.get("error").and_then(Value::as_str).unwrap_or("refused");
                let why = match r.get("field").and_then(Value::as_str) {
                    Some(f) => format!("HTTP {status}: {why} (field {f})"),
                    None => format!("HTTP {status}: {why}"),
                };
                let serial = serial_of(&item);
                summary.refused.push((item.line, serial, why));
            }
        }
    }
    again
}

fn refuse_all(summary: &mut Summary, items: Vec<Item>, why: &str) {
    for item in items {
        let serial = serial_of(&item);
        summary.refused.push((item.line, serial, why.to_string()));
    }
}

fn serial_of(item: &Item) -> String {
    item.body["serial"].as_str().unwrap_or("?").to_string()
}

/// Prints the refused and failed lines (stderr) and the summary line
/// (stdout) of a run over `source`.
pub fn report(source: &str, summary: &Summary, bad_lines: &[(usize, String)]) {
    for (line, why) in bad_lines {
        eprintln!("{source}:{line}: {why} (skipped)");
    }
    for (line, serial, why) in &summary.refused {
        eprintln!("{source}:{line}: {serial}: refused: {why}");
    }
    for (line, serial, why) in &summary.failed {
        eprintln!("{source}:{line}: {serial}: not recorded: {why}");
    }
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "{source}: {} revocations sent in {secs:.1} s ({:.0}/s): {} revoked, {} released, {} unchanged, {} refused, {} failed; {} bad lines",
        summary.sent,
        summary.sent as f64 / secs.max(0.001),
        summary.revoked,
        summary.released,
        summary.unchanged,
        summary.refused.len(),
        summary.failed.len(),
        bad_lines.len(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serials_file_is_one_hex_serial_a_line_with_bad_lines_numbered() {
        let text = "# incident 42\n0A\n\n  01:ff  \nzz\n00\n";
        let fields = Fields {
            reason: Some("keyCompromise".into()),
            ..Fields::default()
        };
        let (items, bad) = read_serials(text, &fields);
        let got: Vec<(usize, &str)> = items
            .iter()
            .map(|i| (i.line, i.body["serial"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(got, vec![(2, "0A"), (4, "01FF")]);
        assert_eq!(items[0].body["reason"], "keyCompromise");
        assert!(
            items[0].body.get("revoked_at").is_none(),
            "no time: the daemon's now"
        );
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![5, 6]);
    }

    #[test]
    fn results_are_counted_by_what_happened_and_only_undurable_items_go_again() {
        let items: Vec<Item> = (1..=4)
            .map(|n| Item {
                line: n,
                body: json!({ "serial": format!("0{n}") }),
            })
            .collect();
        let results = [
            json!({ "status": 200, "result": "revoked" }),
            json!({ "status": 200, "result": "unchanged" }),
            json!({ "status": 409, "error": "already revoked", "field": "serial" }),
            json!({ "status": 503, "error": "ledger write failed" }),
        ];
        let mut s = Summary::default();
        let again = tally(&mut s, items, &results);
        assert_eq!((s.revoked, s.unchanged), (1, 1));
        assert_eq!(s.refused.len(), 1);
        assert_eq!(s.refused[0].0, 3);
        assert!(s.refused[0].2.contains("409") && s.refused[0].2.contains("field serial"));
        assert_eq!(again.iter().map(|i| i.line).collect::<Vec<_>>(), vec![4]);
    }
}
