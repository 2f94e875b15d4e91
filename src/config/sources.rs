//! `[upstream]` and `[aws-events]`: the revocation sources revocd follows
//! besides its own admin API, and `[cdn]`, the cache it purges when they
//! (or an operator) change a status.

use std::time::Duration;

use super::check::Check;
use super::issuers::IssuerConfig;
use super::raw::{RawAwsEvents, RawCdn, RawUpstream};

#[derive(Debug, Clone)]
pub struct Upstream {
    /// How often every upstream source is polled (conditional GETs).
    pub poll: Duration,
    pub source: crate::publish::SourceOptions,
    /// A larger CRL or report is refused.
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Cdn {
    /// The CloudFront distribution whose cached OCSP answers are
    /// invalidated on every revocation and release.
    pub distribution: String,
    /// The CloudFront API, when not the AWS SDK's (which follows
    /// `AWS_ENDPOINT_URL_CLOUDFRONT` and `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Changes are gathered this long into one invalidation.
    pub batch: Duration,
    /// Paths in invalidations not yet completed, at most (CloudFront: 3,000).
    pub max_paths_in_progress: usize,
}

/// `[aws-events]`: AWS Private CA events from an SQS queue.
#[derive(Debug, Clone)]
pub struct AwsEvents {
    /// The SQS queue URL.
    pub queue: String,
    /// Long-poll wait of each ReceiveMessage (1 to 20 s).
    pub wait: Duration,
    /// How long the CA's CRLs have to list a revocation learned here.
    pub confirm_within: Duration,
}

/// `[upstream]`, and every issuer's upstream URLs opened once to check them.
pub(super) fn upstream(
    u: Option<RawUpstream>,
    issuers: &[IssuerConfig],
    c: &mut Check,
) -> Upstream {
    let u = u.unwrap_or_default();
    let poll = c.duration("upstream.poll", u.poll, "30s");
    if poll < Duration::from_secs(1) {
        c.error("upstream.poll: at least 1s");
    }
    let upstream = Upstream {
        poll: poll.max(Duration::from_secs(1)),
        source: crate::publish::SourceOptions {
            endpoint: u.endpoint,
            region: u.region,
            allow_http: u.allow_http.unwrap_or(false),
        },
        max_bytes: u.max_bytes.unwrap_or(512 << 20),
    };
    for i in issuers {
        for url in i.upstream_crls.iter().chain(&i.audit_reports) {
            if let Err(e) = crate::publish::Source::open(url, &upstream.source) {
                c.error(format!("issuer {:?}: {e}", i.id));
            }
        }
    }
    upstream
}

pub(super) fn aws_events(
    a: RawAwsEvents,
    issuers: &[IssuerConfig],
    c: &mut Check,
) -> Option<AwsEvents> {
    let wait = c.duration("aws-events.wait", a.wait, "20s");
    if !(Duration::from_secs(1)..=Duration::from_secs(20)).contains(&wait) {
        c.error("aws-events.wait: 1s to 20s (SQS long polling)");
    }
    let confirm_within = c.duration("aws-events.confirm-within", a.confirm_within, "45m");
    if !issuers.iter().any(|i| i.aws_pca_arn.is_some()) {
        c.error("[aws-events]: no [[issuer]] has aws-pca-arn, so every event would be for a CA revocd does not serve");
    }
    let Some(queue) = a.queue else {
        c.error("aws-events.queue is required in [aws-events]: the SQS queue URL");
        return None;
    };
    if !(queue.starts_with("https://") || queue.starts_with("http://")) {
        c.error(format!(
            "aws-events.queue: {queue:?} is not a queue URL like https://sqs.us-east-1.amazonaws.com/111122223333/revocd-events"
        ));
    }
    Some(AwsEvents {
        queue,
        wait: wait.clamp(Duration::from_secs(1), Duration::from_secs(20)),
        confirm_within,
    })
}

pub(super) fn cdn(raw: RawCdn, c: &mut Check) -> Option<Cdn> {
    let Some(distribution) = raw.cloudfront_distribution else {
        c.error("cdn.cloudfront-distribution is required in [cdn]");
        return None;
    };
    if distribution.is_empty() || !distribution.chars().all(|c| c.is_ascii_alphanumeric()) {
        c.error(format!(
            "cdn.cloudfront-distribution: {distribution:?} is not a distribution id like E2QWRUHEXAMPLE"
        ));
    }
    let max_paths_in_progress = raw.max_paths_in_progress.unwrap_or(3000);
    if !(1..=3000).contains(&max_paths_in_progress) {
        c.error("cdn.max-paths-in-progress: 1 to 3000 (CloudFront's limit)");
    }
    if raw.region.is_some() {
        tracing::warn!("cdn.region is ignored: CloudFront's API is global (us-east-1)");
    }
    Some(Cdn {
        distribution,
        endpoint: raw.endpoint.map(|e| e.trim_end_matches('/').to_string()),
        batch: c.duration("cdn.batch", raw.batch, "1s"),
        max_paths_in_progress: max_paths_in_progress.clamp(1, 3000),
    })
}
