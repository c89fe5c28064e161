//! ECS: the leaf's service, which a REPLICA strategy scales with the instance.

use aws_config::SdkConfig;
use aws_sdk_ecs::types::SchedulingStrategy;
use aws_sdk_ecs::Client;

use super::{call, AwsError};

/// DescribeServices takes up to 10 services of one cluster.
pub const SERVICES_PER_CALL: usize = 10;

/// What the daemon needs of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service name.
    pub name: String,
    /// DAEMON services run one task per instance by themselves and are never scaled.
    pub daemon: bool,
    /// Desired task count.
    pub desired: i32,
}

/// Services of one cluster: those found, and the names ECS said are missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Services {
    /// Found (ACTIVE or DRAINING) services.
    pub found: Vec<Service>,
    /// Names ECS reported as missing or inactive.
    pub missing: Vec<String>,
}

/// ECS client.
#[derive(Clone, Debug)]
pub struct EcsApi {
    client: Client,
}

impl EcsApi {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// Describes `names` in `cluster`, 10 per call.
    pub async fn describe(&self, cluster: &str, names: &[String]) -> Result<Services, AwsError> {
        let mut services = Services::default();
        for chunk in names.chunks(SERVICES_PER_CALL) {
            let out = call(
                "ecs",
                "DescribeServices",
                self.client.describe_services().cluster(cluster).set_services(Some(chunk.to_vec())).send(),
            )
            .await?;
            for s in out.services() {
                let name = s.service_name().unwrap_or_default().to_owned();
                if s.status() == Some("INACTIVE") {
                    services.missing.push(name);
                    continue;
                }
                services.found.push(Service {
                    name,
                    daemon: s.scheduling_strategy() == Some(&SchedulingStrategy::Daemon),
                    desired: s.desired_count(),
                });
            }
            for f in out.failures() {
                let arn = f.arn().unwrap_or_default();
                services.missing.push(arn.rsplit('/').next().unwrap_or(arn).to_owned());
            }
        }
        Ok(services)
    }

    /// Sets a REPLICA service's desired count.
    pub async fn set_desired(&self, cluster: &str, service: &str, desired: i32) -> Result<(), AwsError> {
        call(
            "ecs",
            "UpdateService",
            self.client.update_service().cluster(cluster).service(service).desired_count(desired).send(),
        )
        .await
        .map(drop)
    }
}
