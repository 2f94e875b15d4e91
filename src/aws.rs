//! The one AWS client setup, for every AWS API revocd calls (SQS for Private
//! CA events, Private CA, CloudFront). aws-config's default chain finds
//! credentials (environment, profile, web identity / IRSA, ECS task role,
//! EC2 instance metadata) and endpoints (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_SQS`, ...) as every AWS SDK does, so an operator on EC2
//! or EKS needs no static keys and a test points revocd at moto with
//! environment variables alone.
//!
//! Each client takes its region from what it talks to when that names one
//! (the queue URL, the CA's ARN), so a daemon serving CAs in two regions
//! needs no `AWS_REGION`; otherwise the SDK's own region.

use aws_config::{BehaviorVersion, Region};

/// What every client is made from: credentials, region and endpoints, as
/// the default chain found them.
pub type Sdk = aws_config::SdkConfig;

/// Loads the SDK configuration once for the daemon (it reads files and the
/// environment, and may ask the instance metadata service for a region).
pub async fn load() -> Sdk {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The region an ARN names (`arn:aws:acm-pca:<region>:...`).
pub fn region_of_arn(arn: &str) -> Option<Region> {
    arn.split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .map(|r| Region::new(r.to_string()))
}

/// The region an SQS queue URL names: `https://sqs.<region>.amazonaws.com/
/// <account>/<name>` (or the legacy `<region>.queue.amazonaws.com`).
/// None for other hosts (a VPC endpoint, a local mock).
pub fn region_of_queue(url: &str) -> Option<Region> {
    let host = url.split_once("://")?.1.split('/').next()?;
    let host = host.split(':').next()?;
    let labels: Vec<&str> = host.split('.').collect();
    let region = match labels.as_slice() {
        ["sqs", region, "amazonaws", ..] => *region,
        [region, "queue", "amazonaws", ..] => *region,
        _ => return None,
    };
    Some(Region::new(region.to_string()))
}

/// An SQS client for `queue`.
pub fn sqs(sdk: &Sdk, queue: &str) -> aws_sdk_sqs::Client {
    let mut conf = aws_sdk_sqs::config::Builder::from(sdk);
    if let Some(region) = region_of_queue(queue) {
        conf = conf.region(region);
    }
    aws_sdk_sqs::Client::from_conf(conf.build())
}

/// A Private CA client for the CA `arn`.
pub fn private_ca(sdk: &Sdk, arn: &str) -> aws_sdk_acmpca::Client {
    let mut conf = aws_sdk_acmpca::config::Builder::from(sdk);
    if let Some(region) = region_of_arn(arn) {
        conf = conf.region(region);
    }
    aws_sdk_acmpca::Client::from_conf(conf.build())
}

/// A CloudFront client. CloudFront is global: its API lives in us-east-1
/// whatever region the rest of the daemon uses. `endpoint` (`[cdn]
/// endpoint`) overrides the SDK's, as `AWS_ENDPOINT_URL_CLOUDFRONT` does.
pub fn cloudfront(sdk: &Sdk, endpoint: Option<&str>) -> aws_sdk_cloudfront::Client {
    let mut conf = aws_sdk_cloudfront::config::Builder::from(sdk);
    if sdk.region().is_none() {
        conf = conf.region(Region::from_static("us-east-1"));
    }
    if let Some(e) = endpoint {
        conf = conf.endpoint_url(e);
    }
    aws_sdk_cloudfront::Client::from_conf(conf.build())
}

/// An SDK error in one line: the service's error code and message when
/// there is one, else the transport's.
pub fn describe<E, R>(e: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => DisplayErrorContext(e).to_string(),
            }
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

/// Whether an SDK error may go away by itself (network, timeout, throttling,
/// a 5xx), as opposed to a request the service refused for good.
pub fn is_transient<E, R>(e: &aws_sdk_sqs::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    use aws_sdk_sqs::error::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("RequestInProgress")
                || code.contains("ServiceUnavailable")
                || code.contains("InternalError")
                || code.contains("InternalFailure")
                || code.contains("RequestFailed")
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_from_queue_urls_and_arns() {
        let r = |o: Option<Region>| o.map(|r| r.to_string());
        assert_eq!(
            r(region_of_queue(
                "https://sqs.eu-west-3.amazonaws.com/111122223333/revocd"
            )),
            Some("eu-west-3".into())
        );
        assert_eq!(
            r(region_of_queue(
                "https://us-east-2.queue.amazonaws.com/111122223333/q"
            )),
            Some("us-east-2".into())
        );
        assert_eq!(
            r(region_of_queue("http://127.0.0.1:5000/123456789012/q")),
            None
        );
        assert_eq!(
            r(region_of_arn(
                "arn:aws:acm-pca:ap-south-1:1:certificate-authority/x"
            )),
            Some("ap-south-1".into())
        );
        assert_eq!(r(region_of_arn("arn:aws:s3:::bucket")), None);
    }
}
