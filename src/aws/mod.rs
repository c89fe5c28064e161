//! Thin, batched adapters over the AWS SDK.
//!
//! Every call goes through [`call`], which counts it, times it and classifies its
//! failure, so metrics, logs and the retry policy are the same for every service.
//! Endpoints come only from aws-config's standard sources (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_<SERVICE>`, profiles): nothing here knows about emulators.

pub mod asg;
pub mod cloudwatch;
pub mod dynamodb;
pub mod ec2;
pub mod ecs;
pub mod elbv2;
pub mod error;
pub mod logs;
pub mod route53;
pub mod scaling;
pub mod sns;

use std::future::Future;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};

pub use error::{AwsError, ErrorKind};

use crate::config::DaemonConfig;

/// Clients for every service the daemon uses, built once at start.
#[derive(Clone, Debug)]
pub struct Aws {
    /// AutoScaling in the leafs' region.
    pub asg: asg::AsgApi,
    /// EC2 in the leafs' region (instance IPs).
    pub ec2: ec2::Ec2Api,
    /// ECS in the leafs' region.
    pub ecs: ecs::EcsApi,
    /// Route53 (global).
    pub route53: route53::Route53Api,
    /// CloudWatch Logs in the query-log region.
    pub logs: logs::LogsApi,
    /// SNS in whatever region each topic lives.
    pub sns: sns::SnsApi,
    /// CloudWatch metrics in the leafs' region (the watchdog's traffic figures).
    pub cloudwatch: cloudwatch::CloudWatchApi,
    /// ELBv2 in the leafs' region (target health: when a leaf is ready).
    pub elbv2: elbv2::Elbv2Api,
    /// Application Auto Scaling in the leafs' region (services' scalable targets).
    pub scaling: scaling::ScalingApi,
}

/// Calls slower than this are cut and retried next tick rather than stalling a loop.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Loads the shared SDK config for `region` from the default credential chain.
pub async fn sdk_config(region: &str) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(OPERATION_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .timeout_config(timeouts)
        .load()
        .await
}

impl Aws {
    /// Builds every client; no network traffic happens here.
    pub async fn connect(daemon: &DaemonConfig) -> Self {
        let main = sdk_config(daemon.region.as_str()).await;
        let logs = sdk_config(daemon.query_log_region.as_str()).await;
        Self {
            asg: asg::AsgApi::new(&main),
            ec2: ec2::Ec2Api::new(&main),
            ecs: ecs::EcsApi::new(&main),
            route53: route53::Route53Api::new(&main),
            logs: logs::LogsApi::new(&logs),
            cloudwatch: cloudwatch::CloudWatchApi::new(&main),
            elbv2: elbv2::Elbv2Api::new(&main),
            scaling: scaling::ScalingApi::new(&main),
            sns: sns::SnsApi::new(main),
        }
    }
}

/// Awaits one SDK call, counting it and classifying its failure.
pub async fn call<T, E>(
    service: &'static str,
    operation: &'static str,
    fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let started = std::time::Instant::now();
    let result = fut.await.map_err(|e| error::classify(service, operation, e));
    record(service, operation, started.elapsed(), result.as_ref().err());
    result
}

/// Counts and traces one call. Here rather than in `events`: the adapters sit below
/// everything that logs domain events, and must not depend on them.
fn record(service: &'static str, operation: &'static str, elapsed: Duration, error: Option<&AwsError>) {
    let outcome = error.map_or("ok", |e| e.kind.label());
    crate::metrics::count("cm_aws_calls_total", "AWS API calls by service, operation and outcome", &[("service", service), ("operation", operation), ("outcome", outcome)], 1);
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match error {
        None => tracing::trace!(service, operation, ms, "aws call"),
        Some(e) => tracing::debug!(service, operation, ms, error = %e, "aws call failed"),
    }
}
