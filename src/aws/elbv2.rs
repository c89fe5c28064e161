//! Elastic Load Balancing v2: how many of a leaf's targets pass their health checks,
//! which is when a load-balanced leaf is really ready for players.

use aws_config::SdkConfig;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
use aws_sdk_elasticloadbalancingv2::Client;

use super::{call, AwsError};

/// Targets of one target group by health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Targets in state `healthy`.
    pub healthy: usize,
    /// Every registered target (initial, unhealthy, draining, ...).
    pub registered: usize,
}

/// ELBv2 client.
#[derive(Clone, Debug)]
pub struct Elbv2Api {
    client: Client,
}

impl Elbv2Api {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// DescribeTargetHealth of one target group (the API takes one per call).
    pub async fn health(&self, target_group_arn: &str) -> Result<Health, AwsError> {
        let out = call("elasticloadbalancing", "DescribeTargetHealth", self.client.describe_target_health().target_group_arn(target_group_arn).send()).await?;
        let states: Vec<Option<&TargetHealthStateEnum>> = out.target_health_descriptions().iter().map(|d| d.target_health().and_then(|h| h.state())).collect();
        Ok(Health { healthy: states.iter().filter(|s| **s == Some(&TargetHealthStateEnum::Healthy)).count(), registered: states.len() })
    }
}
