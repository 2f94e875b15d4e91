//! AWS Private CA in real time: the SQS queue that EventBridge rules feed
//! with Private CA's own events and CloudTrail's `RevokeCertificate` calls.
//! Seconds after the call, instead of the CRL's 30 minutes:
//!
//! - `RevokeCertificate` (CloudTrail): the serial is revoked with its reason;
//! - a revocation event: the certificate is read (`GetCertificate`: the
//!   event names it, not its serial), checked against the issuer, and its
//!   serial revoked, reason unspecified until the CA's CRL says more;
//! - an issuance event: the certificate is read, checked, and its serial
//!   registered, so it is `good` at once instead of `unauthorized` until
//!   the next audit report;
//! - a CRL generation event: the issuer's `upstream-crls` are polled now.
//!
//! Events may only revoke or register: never release or un-revoke (only the
//! CA's signed CRL, through `upstream`, may). Every change goes through the
//! ledger like any other (OCSP at once, CDN purge, CRLs, metrics); a
//! revocation learned here is expected on the CA's next CRLs
//! (`upstream::confirm`). A message is deleted only once its change is
//! acknowledged (durable), or once it is known to change nothing (another
//! CA, a failed call, a duplicate, a malformed body): each of those is
//! logged and counted by kind. One that cannot be handled now (the AWS API
//! or the ledger down) stays in the queue and SQS delivers it again.

pub mod event;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use tokio::sync::{watch, Notify};

use crate::config::AwsEvents;
use crate::ledger::{ApplyError, Ledger, Outcome, Submitted};
use crate::pki::Cert;
use crate::shared::Shared;
use crate::sources::upstream::confirm::Unconfirmed;
use crate::state::{Change, Reason, Serial};
use event::{Event, Kind};

/// The author of every change an event makes, in the ledger and audit log.
pub const AUTHOR: &str = "aws-events";

/// Messages asked for per ReceiveMessage (SQS's maximum).
const BATCH: i32 = 10;
/// Backoff after a failed receive: 1 s doubling to a minute.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// This area's metrics, registered with the daemon's registry.
#[derive(Clone)]
pub struct EventMetrics {
    /// Events by kind and what came of them.
    events: IntCounterVec,
    messages: IntCounter,
    receive_errors: IntCounter,
    last_receive: IntGauge,
    /// From the message's arrival in SQS to its change acknowledged.
    apply_seconds: Histogram,
    unconfirmed: IntGaugeVec,
}

impl EventMetrics {
    pub fn new(metrics: &crate::metrics::Metrics) -> Self {
        let m = Self {
            events: IntCounterVec::new(
                Opts::new(
                    "revocd_aws_events_total",
                    "AWS Private CA events from the SQS queue, by kind and result (applied, unchanged, foreign, failed_call, malformed, unhandled, conflict, refused, polled, retried)",
                ),
                &["kind", "result"],
            )
            .expect("static metric"),
            messages: IntCounter::new(
                "revocd_aws_events_messages_total",
                "SQS messages received from the events queue",
            )
            .expect("static metric"),
            receive_errors: IntCounter::new(
                "revocd_aws_events_receive_errors_total",
                "Failed SQS ReceiveMessage calls (retried with backoff)",
            )
            .expect("static metric"),
            last_receive: IntGauge::new(
                "revocd_aws_events_last_receive_timestamp_seconds",
                "Unix time of the last successful SQS ReceiveMessage",
            )
            .expect("static metric"),
            apply_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "revocd_aws_events_apply_seconds",
                    "From an event's arrival in SQS to its change acknowledged by the ledger",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
            )
            .expect("static metric"),
            unconfirmed: IntGaugeVec::new(
                Opts::new(
                    "revocd_aws_events_unconfirmed_revocations",
                    "Revocations learned from events that the CA's CRLs have not listed within aws-events.confirm-within (kept revoked)",
                ),
                &["issuer"],
            )
            .expect("static metric"),
        };
        for c in [
            Box::new(m.events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.messages.clone()),
            Box::new(m.receive_errors.clone()),
            Box::new(m.last_receive.clone()),
            Box::new(m.apply_seconds.clone()),
            Box::new(m.unconfirmed.clone()),
        ] {
            if let Err(e) = metrics.register(c) {
                tracing::error!(error = %e, "aws events metrics not registered");
            }
        }
        m
    }

    fn count(&self, kind: Kind, result: &str) {
        self.events.with_label_values(&[kind.label(), result]).inc();
    }
}

/// A served issuer that is a Private CA.
struct PcaIssuer {
    idx: usize,
    id: String,
    client: aws_sdk_acmpca::Client,
    /// Its upstream sources' waker, when it has CRLs to poll.
    wake: Option<Arc<Notify>>,
}

/// What became of one message.
#[derive(Debug)]
enum Verdict {
    /// Handled (or known to change nothing): delete it.
    Done(&'static str),
    /// Cannot be handled now: leave it for SQS to deliver again.
    Retry(String),
}

pub struct Consumer {
    options: AwsEvents,
    sqs: aws_sdk_sqs::Client,
    issuers: HashMap<String, PcaIssuer>,
    shared: Shared,
    ledger: Ledger,
    unconfirmed: Arc<Unconfirmed>,
    metrics: EventMetrics,
}

impl Consumer {
    /// `pcas` are (issuer id, CA ARN) of every issuer with `aws-pca-arn`;
    /// `wakers` the upstream pollers of issuers with upstream sources, and
    /// whether each polls CRLs.
    pub fn new(
        options: AwsEvents,
        sdk: &crate::aws::Sdk,
        pcas: &[(String, String)],
        wakers: HashMap<String, (Arc<Notify>, bool)>,
        shared: Shared,
        ledger: Ledger,
        unconfirmed: Arc<Unconfirmed>,
    ) -> Self {
        let metrics = EventMetrics::new(&shared.metrics);
        // Exported from the start, at 0, for dashboards and alert rules.
        for kind in Kind::ALL {
            metrics.events.with_label_values(&[kind.label(), "applied"]);
        }
        metrics.last_receive.set(shared.clock.now());
        let mut issuers = HashMap::new();
        for (id, arn) in pcas {
            let Some(idx) = shared.issuers.index(id) else {
                continue;
            };
            let wake = wakers.get(id);
            match wake {
                Some((_, true)) => {
                    metrics.unconfirmed.with_label_values(&[id]).set(0);
                }
                _ => tracing::info!(
                    issuer = %id,
                    "no upstream-crls: revocations from Private CA events are not cross-checked against the CA's CRLs"
                ),
            }
            issuers.insert(
                arn.clone(),
                PcaIssuer {
                    idx,
                    id: id.clone(),
                    client: crate::aws::private_ca(sdk, arn),
                    wake: wake.map(|(w, _)| Arc::clone(w)),
                },
            );
        }
        Self {
            sqs: crate::aws::sqs(sdk, &options.queue),
            options,
            issuers,
            shared,
            ledger,
            unconfirmed,
            metrics,
        }
    }

    /// Receives and handles messages until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(queue = %self.options.queue, issuers = self.issuers.len(), "consuming AWS Private CA events");
        let mut backoff = Duration::from_secs(1);
        let mut failing = false;
        let mut checked = tokio::time::Instant::now();
        loop {
            let received = tokio::select! {
                r = self.receive() => r,
                () = crate::shutdown::stopped(&mut shutdown) => return,
            };
            match received {
                Ok(messages) => {
                    if failing {
                        tracing::info!(queue = %self.options.queue, "SQS reachable again");
                        failing = false;
                    }
                    backoff = Duration::from_secs(1);
                    self.metrics.last_receive.set(self.shared.clock.now());
                    self.handle_all(messages).await;
                }
                Err(why) => {
                    self.metrics.receive_errors.inc();
                    if !failing {
                        tracing::warn!(queue = %self.options.queue, error = %why, "cannot receive from SQS; retrying with backoff (OCSP and CRLs are unaffected)");
                        failing = true;
                    } else {
                        tracing::debug!(error = %why, "SQS receive failed again");
                    }
                    let jitter = Duration::from_millis(u64::from(
                        SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map(|d| d.subsec_millis())
                            .unwrap_or(0)
                            % 250,
                    ));
                    tokio::select! {
                        () = tokio::time::sleep(backoff + jitter) => {}
                        () = crate::shutdown::stopped(&mut shutdown) => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            if checked.elapsed() >= Duration::from_secs(10) {
                checked = tokio::time::Instant::now();
                self.check_confirmations();
            }
        }
    }

    /// One long-poll ReceiveMessage.
    async fn receive(&self) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
        let wait = i32::try_from(self.options.wait.as_secs()).unwrap_or(20);
        self.sqs
            .receive_message()
            .queue_url(&self.options.queue)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map(|out| out.messages.unwrap_or_default())
            .map_err(|e| crate::aws::describe(&e))
    }

    /// Handles every message of a receive, then deletes the handled ones
    /// in one call.
    async fn handle_all(&self, messages: Vec<aws_sdk_sqs::types::Message>) {
        let mut done = Vec::new();
        for (n, m) in messages.iter().enumerate() {
            self.metrics.messages.inc();
            let sent = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|t| t.parse::<u64>().ok());
            let verdict = self.handle(m.body().unwrap_or_default(), sent).await;
            match verdict {
                Verdict::Done(_) => {
                    if let Some(handle) = m.receipt_handle() {
                        done.push(
                            DeleteMessageBatchRequestEntry::builder()
                                .id(n.to_string())
                                .receipt_handle(handle)
                                .build(),
                        );
                    }
                }
                Verdict::Retry(why) => {
                    let count = m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .cloned()
                        .unwrap_or_default();
                    tracing::warn!(message = m.message_id().unwrap_or_default(), receive_count = %count, "{why}; left in the queue for SQS to deliver again");
                }
            }
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> =
            done.into_iter().filter_map(Result::ok).collect();
        if entries.is_empty() {
            return;
        }
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.options.queue)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    tracing::warn!(
                        entry = f.id(),
                        code = f.code(),
                        "SQS did not delete a handled message; its next delivery changes nothing"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::aws::describe(&e), "cannot delete handled messages; their next delivery changes nothing")
            }
        }
    }

    /// Handles one message body; counts and logs what came of it.
    async fn handle(&self, body: &str, sent_ms: Option<u64>) -> Verdict {
        let (kind, verdict) = match event::parse(body) {
            Err((kind, skipped)) => {
                match &skipped {
                    event::Skipped::Malformed(_) => {
                        tracing::warn!(kind = kind.label(), "{skipped}; deleted")
                    }
                    _ => tracing::info!(kind = kind.label(), "{skipped}; deleted"),
                }
                (kind, Verdict::Done(skipped.label()))
            }
            Ok(e) => (e.kind(), self.act(&e, sent_ms).await),
        };
        let label = match &verdict {
            Verdict::Done(result) => result,
            Verdict::Retry(_) => "retried",
        };
        self.metrics.count(kind, label);
        verdict
    }

    async fn act(&self, e: &Event, sent_ms: Option<u64>) -> Verdict {
        let Some(pca) = self.issuers.get(e.ca()) else {
            tracing::info!(
                ca = e.ca(),
                kind = e.kind().label(),
                "event for a CA no issuer names (aws-pca-arn); deleted"
            );
            return Verdict::Done("foreign");
        };
        match e {
            Event::Revoked {
                serial, reason, at, ..
            } => {
                self.revoke(
                    pca,
                    serial.clone(),
                    *reason,
                    *at,
                    sent_ms,
                    "RevokeCertificate",
                )
                .await
            }
            Event::RevokedCertificate {
                certificate, at, ..
            } => {
                let cert = match self.certificate(pca, e.ca(), certificate).await {
                    Ok(c) => c,
                    Err(v) => return v,
                };
                let serial = Serial::from_content(&cert.serial);
                // The revocation event carries no reason: unspecified, until
                // RevokeCertificate's event or the CA's CRL says more.
                let state = &self.shared.issuers[pca.idx].state;
                let revoked = state
                    .lookup(&serial)
                    .is_some_and(|e| matches!(e.status, crate::state::Status::Revoked { .. }));
                if revoked {
                    tracing::info!(issuer = %pca.id, serial = %serial.to_hex(), "revocation event for a serial already revoked; deleted");
                    return Verdict::Done("unchanged");
                }
                self.revoke(
                    pca,
                    serial,
                    Reason::Unspecified,
                    *at,
                    sent_ms,
                    "revocation event",
                )
                .await
            }
            Event::Issued { certificate, .. } => {
                let cert = match self.certificate(pca, e.ca(), certificate).await {
                    Ok(c) => c,
                    Err(v) => return v,
                };
                let change = Change::Register {
                    serial: Serial::from_content(&cert.serial),
                    not_after: cert.not_after,
                };
                self.submit(pca, change, sent_ms, "issuance event").await
            }
            Event::CrlGenerated { .. } => match &pca.wake {
                Some(w) => {
                    w.notify_one();
                    tracing::info!(issuer = %pca.id, "the CA wrote a new CRL: polling its upstream-crls now");
                    Verdict::Done("polled")
                }
                None => Verdict::Done("unhandled"),
            },
        }
    }

    async fn revoke(
        &self,
        pca: &PcaIssuer,
        serial: Serial,
        reason: Reason,
        at: Option<i64>,
        sent_ms: Option<u64>,
        what: &str,
    ) -> Verdict {
        let now = self.shared.clock.now();
        // Already revoked for this reason (another event for the same
        // revocation, or an operator who revoked in both places): the
        // times differ, the revocation is the same.
        let state = &self.shared.issuers[pca.idx].state;
        let same = state.lookup(&serial).is_some_and(
            |e| matches!(e.status, crate::state::Status::Revoked { reason: r, .. } if r == reason),
        );
        if same {
            tracing::info!(issuer = %pca.id, serial = %serial.to_hex(), "{what}: already revoked for this reason; deleted");
            return Verdict::Done("unchanged");
        }
        // The event's time, unless revocd cannot record it (a clock far off:
        // more than 5 minutes ahead, or before 1950): then now.
        let at = at
            .filter(|t| crate::state::check_revocation_times(*t, None, now).is_ok())
            .unwrap_or(now);
        let change = Change::Revoke {
            serial: serial.clone(),
            at,
            reason,
            invalidity_date: None,
        };
        let verdict = self.submit(pca, change, sent_ms, what).await;
        if matches!(verdict, Verdict::Done("applied")) && pca.wake.is_some() {
            self.unconfirmed.expect(&pca.id, serial, now);
        }
        verdict
    }

    /// Records `change` through the ledger; the message is done once the
    /// change is durable, known already, or refused for good.
    async fn submit(
        &self,
        pca: &PcaIssuer,
        change: Change,
        sent_ms: Option<u64>,
        what: &str,
    ) -> Verdict {
        let serial = change.serial().to_hex();
        let kind = change.kind();
        let outcome = self
            .ledger
            .submit(vec![Submitted {
                issuer: pca.id.clone(),
                change,
                author: AUTHOR.to_string(),
            }])
            .await
            .into_iter()
            .next();
        match outcome {
            Some(Outcome::Recorded { seq }) => {
                if let Some(ms) = sent_ms {
                    let now_ms = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(ms);
                    self.metrics
                        .apply_seconds
                        .observe(now_ms.saturating_sub(ms) as f64 / 1000.0);
                }
                tracing::info!(issuer = %pca.id, serial, seq, change = kind, "{what} from AWS Private CA recorded");
                Verdict::Done("applied")
            }
            Some(Outcome::Unchanged) => {
                tracing::info!(issuer = %pca.id, serial, change = kind, "{what}: already so; deleted");
                Verdict::Done("unchanged")
            }
            Some(Outcome::Refused(ApplyError::Conflict(c))) => {
                tracing::warn!(issuer = %pca.id, serial, "{what} not applied: {c}; deleted");
                Verdict::Done("conflict")
            }
            Some(Outcome::Refused(e)) => {
                tracing::warn!(issuer = %pca.id, serial, error = %e, "{what} not applied; deleted");
                Verdict::Done("conflict")
            }
            Some(Outcome::Failed(e)) => Verdict::Retry(format!("{what}: {e}")),
            None => Verdict::Retry(format!("{what}: no answer from the ledger")),
        }
    }

    /// The certificate an event names, read from Private CA and checked to
    /// be the issuer's. `Err` is the verdict for the message.
    async fn certificate(&self, pca: &PcaIssuer, ca: &str, arn: &str) -> Result<Cert, Verdict> {
        let got = pca
            .client
            .get_certificate()
            .certificate_authority_arn(ca)
            .certificate_arn(arn)
            .send()
            .await;
        let pem = match got {
            Ok(out) => out.certificate.unwrap_or_default(),
            Err(e) if crate::aws::is_transient(&e) => {
                return Err(Verdict::Retry(format!(
                    "GetCertificate {arn}: {}",
                    crate::aws::describe(&e)
                )))
            }
            Err(e) => {
                tracing::warn!(issuer = %pca.id, certificate = arn, error = %crate::aws::describe(&e), "GetCertificate refused; event deleted");
                return Err(Verdict::Done("refused"));
            }
        };
        let issuer = &self.shared.issuers[pca.idx].cert;
        match Cert::parse(pem.as_bytes()) {
            Ok(c) if c.is_issued_by(issuer) => Ok(c),
            Ok(_) => {
                tracing::warn!(issuer = %pca.id, certificate = arn, "the certificate is not issued by this issuer's CA certificate; event deleted");
                Err(Verdict::Done("refused"))
            }
            Err(e) => {
                tracing::warn!(issuer = %pca.id, certificate = arn, error = %e, "GetCertificate returned no certificate; event deleted");
                Err(Verdict::Done("refused"))
            }
        }
    }

    /// Reports revocations the CA's CRLs have not confirmed in time.
    fn check_confirmations(&self) {
        let now = self.shared.clock.now();
        for o in self.unconfirmed.overdue(now) {
            self.metrics
                .unconfirmed
                .with_label_values(&[&o.issuer])
                .set(i64::try_from(o.serials.len()).unwrap_or(i64::MAX));
            if !o.new.is_empty() {
                let shown: Vec<String> = o.new.iter().take(10).map(Serial::to_hex).collect();
                tracing::warn!(
                    issuer = %o.issuer,
                    count = o.new.len(),
                    serials = ?shown,
                    within_s = self.options.confirm_within.as_secs(),
                    "revoked from a Private CA event, and the CA's CRLs still do not list it: kept revoked; check the CA"
                );
            }
        }
    }
}
