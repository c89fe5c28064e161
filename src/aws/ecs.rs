//! ECS: the leaf's service, which a REPLICA strategy scales with the instance.

use aws_config::SdkConfig;
use aws_sdk_ecs::types::{DesiredStatus, SchedulingStrategy};
use aws_sdk_ecs::Client;

use super::{call, AwsError};
use crate::clock::Timestamp;

/// DescribeTasks takes up to 100 tasks.
const TASKS_PER_CALL: usize = 100;

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
    /// Bounds of its Application Auto Scaling scalable target, if it has one (from
    /// DescribeScalableTargets, filled in by the reconciler).
    pub scalable: Option<crate::state::Bounds>,
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
                    scalable: None,
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

/// A task as DescribeTasks returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Task ARN.
    pub arn: String,
    /// `service:NAME` for a service's task: which leaf it belongs to.
    pub group: Option<String>,
    /// `PROVISIONING`, `PENDING`, `RUNNING`, ..., `STOPPED`.
    pub last_status: String,
    /// When its containers started running.
    pub started_at: Option<Timestamp>,
    /// Its elastic network interface (awsvpc mode), whose public IP players reach.
    pub eni: Option<String>,
    /// Its task definition (which containers are essential is there).
    pub task_definition: String,
    /// `TaskFailedToStart`, `EssentialContainerExited`, ...
    pub stop_code: Option<String>,
    /// ECS's stopped reason.
    pub stopped_reason: Option<String>,
    /// When it stopped.
    pub stopped_at: Option<Timestamp>,
    /// (name, exit code, reason) of each container.
    pub containers: Vec<(String, Option<i32>, Option<String>)>,
}

impl EcsApi {
    /// ARNs of the service's stopped tasks (ECS shows them for about an hour).
    pub async fn stopped_tasks(&self, cluster: &str, service: &str) -> Result<Vec<String>, AwsError> {
        self.list_tasks(cluster, Some(service), DesiredStatus::Stopped).await
    }

    /// ARNs of every task of the cluster that ECS wants running (all its services in
    /// one listing: calls grow with clusters, not with leafs).
    pub async fn running_tasks(&self, cluster: &str) -> Result<Vec<String>, AwsError> {
        self.list_tasks(cluster, None, DesiredStatus::Running).await
    }

    async fn list_tasks(&self, cluster: &str, service: Option<&str>, status: DesiredStatus) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let out = call(
                "ecs",
                "ListTasks",
                self.client
                    .list_tasks()
                    .cluster(cluster)
                    .set_service_name(service.map(str::to_owned))
                    .desired_status(status.clone())
                    .set_next_token(token)
                    .send(),
            )
            .await?;
            arns.extend(out.task_arns().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(arns);
            }
        }
    }

    /// Describes tasks of one cluster, 100 per call.
    pub async fn describe_tasks(&self, cluster: &str, arns: &[String]) -> Result<Vec<Task>, AwsError> {
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(TASKS_PER_CALL) {
            let out = call("ecs", "DescribeTasks", self.client.describe_tasks().cluster(cluster).set_tasks(Some(chunk.to_vec())).send()).await?;
            tasks.extend(out.tasks().iter().map(|t| Task {
                arn: t.task_arn().unwrap_or_default().to_owned(),
                group: t.group().map(str::to_owned),
                last_status: t.last_status().unwrap_or_default().to_owned(),
                started_at: t.started_at().and_then(|d| d.to_millis().ok()).map(Timestamp),
                eni: t
                    .attachments()
                    .iter()
                    .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
                    .flat_map(aws_sdk_ecs::types::Attachment::details)
                    .find(|d| d.name() == Some("networkInterfaceId"))
                    .and_then(|d| d.value().map(str::to_owned)),
                task_definition: t.task_definition_arn().unwrap_or_default().to_owned(),
                stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
                stopped_reason: t.stopped_reason().map(str::to_owned),
                stopped_at: t.stopped_at().and_then(|d| d.to_millis().ok()).map(Timestamp),
                containers: t
                    .containers()
                    .iter()
                    .map(|c| (c.name().unwrap_or_default().to_owned(), c.exit_code(), c.reason().map(str::to_owned)))
                    .collect(),
            }));
        }
        Ok(tasks)
    }

    /// Names of the essential containers of a task definition (immutable: cache it).
    pub async fn essential_containers(&self, task_definition: &str) -> Result<Vec<String>, AwsError> {
        let out = call("ecs", "DescribeTaskDefinition", self.client.describe_task_definition().task_definition(task_definition).send()).await?;
        Ok(out
            .task_definition()
            .map(|d| {
                d.container_definitions()
                    .iter()
                    .filter(|c| c.essential().unwrap_or(true))
                    .filter_map(|c| c.name().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}
