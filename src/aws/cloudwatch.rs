//! CloudWatch metrics: period sums for the watchdog, many leafs per GetMetricData call.
//!
//! GetMetricData is billed per metric requested ($0.01 per 1,000), not per call or
//! datapoint, so the reconciler asks only for running leafs, once per period.

use std::collections::{BTreeMap, HashMap};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_cloudwatch::Client;

use super::{call, AwsError, ErrorKind};
use crate::clock::Timestamp;

/// GetMetricData accepts up to 500 queries per call.
pub const QUERIES_PER_CALL: usize = 500;

/// One metric to read per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumQuery {
    /// `AWS/EC2`, `AWS/EFS`, `AWS/NetworkELB`, `ECS/ContainerInsights`.
    pub namespace: &'static str,
    /// `NetworkIn`, `DataReadIOBytes`, `ProcessedBytes`, `NetworkRxBytes`.
    pub metric: &'static str,
    /// Dimension names and values (`AutoScalingGroupName` = the ASG, ...).
    pub dimensions: Vec<(&'static str, String)>,
    /// `Sum` for byte counts; `Average` for a metric that is already a rate.
    pub stat: &'static str,
    /// Period in seconds.
    pub period_secs: i32,
}

/// CloudWatch client.
#[derive(Clone, Debug)]
pub struct CloudWatchApi {
    client: Client,
}

impl CloudWatchApi {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// Period statistics of every query over [start, end): result `i` belongs to `queries[i]`
    /// and maps period start (epoch ms) to the sum. 500 queries per call.
    pub async fn sums(&self, queries: &[SumQuery], start: Timestamp, end: Timestamp) -> Result<Vec<BTreeMap<i64, f64>>, AwsError> {
        let mut results = vec![BTreeMap::new(); queries.len()];
        for (chunk_no, chunk) in queries.chunks(QUERIES_PER_CALL).enumerate() {
            let offset = chunk_no * QUERIES_PER_CALL;
            let data_queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let dimensions = q.dimensions.iter().map(|(name, value)| Dimension::builder().name(*name).value(value).build()).collect();
                    let metric = Metric::builder().namespace(q.namespace).metric_name(q.metric).set_dimensions(Some(dimensions)).build();
                    let sum = MetricStat::builder().metric(metric).period(q.period_secs).stat(q.stat).build();
                    MetricDataQuery::builder().id(format!("q{}", offset + i)).metric_stat(sum).return_data(true).build()
                })
                .collect();
            let mut token = None;
            loop {
                let out = call(
                    "cloudwatch",
                    "GetMetricData",
                    self.client
                        .get_metric_data()
                        .set_metric_data_queries(Some(data_queries.clone()))
                        .start_time(DateTime::from_millis(start.0))
                        .end_time(DateTime::from_millis(end.0))
                        .scan_by(ScanBy::TimestampAscending)
                        .set_next_token(token)
                        .send(),
                )
                .await?;
                for r in out.metric_data_results() {
                    let index: usize = r
                        .id()
                        .and_then(|id| id.strip_prefix('q'))
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n < queries.len())
                        .ok_or_else(|| AwsError::answer("cloudwatch", "GetMetricData", ErrorKind::Invalid, "result with an unknown id"))?;
                    // Duplicated datapoints (same period twice) keep the larger sum.
                    let mut by_period: HashMap<i64, f64> = HashMap::new();
                    for (t, v) in r.timestamps().iter().zip(r.values()) {
                        if let Ok(ms) = t.to_millis() {
                            let e = by_period.entry(ms).or_insert(*v);
                            *e = e.max(*v);
                        }
                    }
                    results[index].extend(by_period);
                }
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(results)
    }
}
