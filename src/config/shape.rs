//! How a leaf is built and reached: the choices that differ between an ASG of one
//! instance, a Fargate service, and N instances with M tasks behind a load balancer.

use serde::{Deserialize, Serialize};

/// What the daemon does with the leaf's A record (`dns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsMode {
    /// One value: the newest serving instance or task (the original's behaviour).
    #[default]
    Instance,
    /// Every serving instance or task, sorted (a multi-value A record).
    All,
    /// Never written: the record is an alias to a load balancer or managed elsewhere.
    /// Queries for the name still wake the leaf.
    None,
}

/// Where the watchdog reads player traffic (`[leaf.watchdog] traffic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficSource {
    /// AWS/EC2 NetworkIn of the ASG's instances, minus the EFS reads.
    #[default]
    Instances,
    /// ProcessedBytes of the leaf's NLB or ALB (`load_balancer`).
    LoadBalancer,
    /// ECS Container Insights NetworkRxBytes of the service (Fargate without a balancer).
    Service,
}

impl TrafficSource {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficSource::Instances => "instances",
            TrafficSource::LoadBalancer => "load_balancer",
            TrafficSource::Service => "service",
        }
    }
}
