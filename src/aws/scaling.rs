//! Application Auto Scaling: an ECS service's scalable target, whose min and max the
//! daemon parks at 0 while the leaf sleeps (so no policy scales it out) and restores
//! on wake.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_applicationautoscaling::Client;

use super::{call, AwsError};
use crate::state::Bounds;

/// DescribeScalableTargets takes up to 50 resource ids.
pub const IDS_PER_CALL: usize = 50;

/// The resource id Application Auto Scaling gives an ECS service.
pub fn service_resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// Application Auto Scaling client.
#[derive(Clone, Debug)]
pub struct ScalingApi {
    client: Client,
}

impl ScalingApi {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// The desired-count bounds of the given ECS services' scalable targets, 50 per
    /// call; a service without one is absent from the answer.
    pub async fn service_bounds(&self, resource_ids: &[String]) -> Result<HashMap<String, Bounds>, AwsError> {
        let mut found = HashMap::new();
        for chunk in resource_ids.chunks(IDS_PER_CALL) {
            let mut token = None;
            loop {
                let out = call(
                    "application-autoscaling",
                    "DescribeScalableTargets",
                    self.client
                        .describe_scalable_targets()
                        .service_namespace(ServiceNamespace::Ecs)
                        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                        .set_resource_ids(Some(chunk.to_vec()))
                        .set_next_token(token)
                        .send(),
                )
                .await?;
                for t in out.scalable_targets() {
                    found.insert(t.resource_id().to_owned(), Bounds { min: t.min_capacity(), max: t.max_capacity() });
                }
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Sets the scalable target's bounds (RegisterScalableTarget updates an existing one).
    pub async fn set_service_bounds(&self, resource_id: &str, bounds: Bounds) -> Result<(), AwsError> {
        call(
            "application-autoscaling",
            "RegisterScalableTarget",
            self.client
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(resource_id)
                .min_capacity(bounds.min)
                .max_capacity(bounds.max)
                .send(),
        )
        .await
        .map(drop)
    }
}
