//! Read-only AWS calls of the adoption tools (`check --live`, `config from-stack`).
//!
//! The daemon never makes these calls, so they live here rather than in `crate::aws`,
//! whose every call must be in the least-privilege policy (`iam::CALLS`). They still go
//! through [`crate::aws::call`], so failures are classified the same way: a `NotFound`
//! is an answer ("it does not exist"), a `Denied` means "could not tell".

use aws_config::SdkConfig;
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum};

use crate::aws::{call, AwsError, ErrorKind};

/// Where an ASG's instances get their settings from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Launch {
    /// A launch template (id or name) at a version (`$Default` when the group names none).
    Template {
        /// `lt-...` id, when the group names it by id.
        id: Option<String>,
        /// Its name, when the group names it by name.
        name: Option<String>,
        /// The version the group launches.
        version: String,
    },
    /// A (legacy) launch configuration.
    Configuration(String),
    /// Neither could be read from the group.
    Unknown,
}

/// What the checks need of one ASG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsgFacts {
    /// Its max size.
    pub max: i32,
    /// What its instances launch from.
    pub launch: Launch,
}

/// One resource of a stack (or of one of its nested stacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    /// Logical id in the template.
    pub logical: String,
    /// CloudFormation type, e.g. `AWS::AutoScaling::AutoScalingGroup`.
    pub kind: String,
    /// Physical id (a name, an id or an ARN, depending on the type).
    pub physical: String,
}

/// A stack's outputs and parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackHead {
    /// Output key to value.
    pub outputs: std::collections::BTreeMap<String, String>,
    /// Parameter key to value.
    pub parameters: std::collections::BTreeMap<String, String>,
    /// Tag key to value.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// What the checks need of the `[daemon.ha]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    /// Its key schema: (attribute, its type, HASH or RANGE).
    pub key: Vec<(String, String, String)>,
    /// Billed per request (on-demand) rather than provisioned.
    pub on_demand: bool,
}

/// One (action, resource) pair the simulator did not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// IAM action.
    pub action: String,
    /// Resource ARN as simulated.
    pub resource: String,
    /// `implicitDeny` or `explicitDeny`.
    pub decision: String,
}

/// Clients for the reads, in the leafs' region (Route53 and IAM are global).
#[derive(Debug, Clone)]
pub struct Reads {
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    route53: aws_sdk_route53::Client,
    sts: aws_sdk_sts::Client,
    iam: aws_sdk_iam::Client,
    cloudformation: aws_sdk_cloudformation::Client,
}

impl Reads {
    /// Builds the clients; no network traffic happens here.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            asg: aws_sdk_autoscaling::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            route53: aws_sdk_route53::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
        }
    }

    /// Max size and launch source of each named group that exists (one call per 100).
    pub async fn groups(&self, names: &[String]) -> Result<std::collections::HashMap<String, AsgFacts>, AwsError> {
        let mut found = std::collections::HashMap::new();
        for chunk in names.chunks(crate::aws::asg::NAMES_PER_CALL) {
            let out = call("autoscaling", "DescribeAutoScalingGroups", self.asg.describe_auto_scaling_groups().set_auto_scaling_group_names(Some(chunk.to_vec())).max_records(100).send()).await?;
            for g in out.auto_scaling_groups() {
                let template = g.launch_template().or_else(|| g.mixed_instances_policy().and_then(|m| m.launch_template()).and_then(|t| t.launch_template_specification()));
                let launch = match (template, g.launch_configuration_name()) {
                    (Some(t), _) => Launch::Template {
                        id: t.launch_template_id().map(str::to_owned),
                        name: t.launch_template_name().map(str::to_owned),
                        version: t.version().unwrap_or("$Default").to_owned(),
                    },
                    (None, Some(lc)) => Launch::Configuration(lc.to_owned()),
                    (None, None) => Launch::Unknown,
                };
                found.insert(g.auto_scaling_group_name().unwrap_or_default().to_owned(), AsgFacts { max: g.max_size().unwrap_or(0), launch });
            }
        }
        Ok(found)
    }

    /// Whether instances launched from `launch` get detailed (1-minute) monitoring.
    /// A launch configuration enables it unless told otherwise; a template only when
    /// it says so.
    pub async fn detailed_monitoring(&self, launch: &Launch) -> Result<Option<bool>, AwsError> {
        match launch {
            Launch::Template { id, name, version } => {
                let out = call(
                    "ec2",
                    "DescribeLaunchTemplateVersions",
                    self.ec2.describe_launch_template_versions().set_launch_template_id(id.clone()).set_launch_template_name(if id.is_some() { None } else { name.clone() }).versions(version).send(),
                )
                .await?;
                let data = out.launch_template_versions().first().and_then(|v| v.launch_template_data());
                Ok(Some(data.and_then(|d| d.monitoring()).and_then(aws_sdk_ec2::types::LaunchTemplatesMonitoring::enabled).unwrap_or(false)))
            }
            Launch::Configuration(name) => {
                let out = call("autoscaling", "DescribeLaunchConfigurations", self.asg.describe_launch_configurations().launch_configuration_names(name).send()).await?;
                let config = out.launch_configurations().first().ok_or_else(|| AwsError::answer("autoscaling", "DescribeLaunchConfigurations", ErrorKind::NotFound, format!("launch configuration {name} not found")))?;
                Ok(Some(config.instance_monitoring().and_then(aws_sdk_autoscaling::types::InstanceMonitoring::enabled).unwrap_or(true)))
            }
            Launch::Unknown => Ok(None),
        }
    }

    /// The log group ARNs the zone's query logging configs write to.
    pub async fn query_logging(&self, zone: &str) -> Result<Vec<String>, AwsError> {
        let out = call("route53", "ListQueryLoggingConfigs", self.route53.list_query_logging_configs().hosted_zone_id(zone).send()).await?;
        // Keep only this zone's: the filter is the request's, and an answer that ignored
        // it must not lend one zone another's logging.
        let zone_id = zone.trim_start_matches("/hostedzone/");
        Ok(out.query_logging_configs().iter().filter(|c| c.hosted_zone_id().trim_start_matches("/hostedzone/") == zone_id).map(|c| c.cloud_watch_logs_log_group_arn().to_owned()).collect())
    }

    /// The caller's ARN and account.
    pub async fn caller(&self) -> Result<(String, String), AwsError> {
        let out = call("sts", "GetCallerIdentity", self.sts.get_caller_identity().send()).await?;
        Ok((out.arn().unwrap_or_default().to_owned(), out.account().unwrap_or_default().to_owned()))
    }

    /// The ARN of role `name` (its path is not in an assumed-role ARN).
    pub async fn role_arn(&self, name: &str) -> Result<String, AwsError> {
        let out = call("iam", "GetRole", self.iam.get_role().role_name(name).send()).await?;
        Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
    }

    /// Simulates `actions` on `resources` for `principal` with `context`; returns what
    /// was not allowed.
    pub async fn simulate(&self, principal: &str, actions: &[String], resources: &[String], context: &[(String, Vec<String>)]) -> Result<Vec<Refusal>, AwsError> {
        let entries: Vec<ContextEntry> = context
            .iter()
            .map(|(key, values)| ContextEntry::builder().context_key_name(key).set_context_key_values(Some(values.clone())).context_key_type(ContextKeyTypeEnum::StringList).build())
            .collect();
        let mut refused = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = call(
                "iam",
                "SimulatePrincipalPolicy",
                self.iam
                    .simulate_principal_policy()
                    .policy_source_arn(principal)
                    .set_action_names(Some(actions.to_vec()))
                    .set_resource_arns(Some(resources.to_vec()))
                    .set_context_entries(Some(entries.clone()))
                    .set_marker(marker.clone())
                    .send(),
            )
            .await?;
            for r in out.evaluation_results() {
                let decision = r.eval_decision().as_str();
                if decision != "allowed" {
                    refused.push(Refusal { action: r.eval_action_name().to_owned(), resource: r.eval_resource_name().unwrap_or("*").to_owned(), decision: decision.to_owned() });
                }
            }
            marker = out.marker().map(str::to_owned).filter(|_| out.is_truncated());
            if marker.is_none() {
                return Ok(refused);
            }
        }
    }

    /// A stack's outputs and parameters.
    pub async fn stack(&self, name: &str) -> Result<StackHead, AwsError> {
        let out = call("cloudformation", "DescribeStacks", self.cloudformation.describe_stacks().stack_name(name).send()).await?;
        let stack = out.stacks().first().ok_or_else(|| AwsError::answer("cloudformation", "DescribeStacks", ErrorKind::NotFound, format!("stack {name} not found")))?;
        Ok(StackHead {
            outputs: stack.outputs().iter().filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned()))).collect(),
            parameters: stack.parameters().iter().filter_map(|p| Some((p.parameter_key()?.to_owned(), p.parameter_value()?.to_owned()))).collect(),
            tags: stack.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect(),
        })
    }

    /// The template body of stack `name` (JSON or YAML, as it was submitted).
    pub async fn template(&self, name: &str) -> Result<String, AwsError> {
        let out = call("cloudformation", "GetTemplate", self.cloudformation.get_template().stack_name(name).send()).await?;
        Ok(out.template_body().unwrap_or_default().to_owned())
    }

    /// The public hosted zone named exactly `name`, if there is one.
    pub async fn zone_named(&self, name: &str) -> Result<Option<String>, AwsError> {
        let out = call("route53", "ListHostedZonesByName", self.route53.list_hosted_zones_by_name().dns_name(name).max_items(10).send()).await?;
        let wanted = name.trim_end_matches('.').to_ascii_lowercase();
        Ok(out
            .hosted_zones()
            .iter()
            .filter(|z| z.name().trim_end_matches('.').eq_ignore_ascii_case(&wanted))
            .find(|z| !z.config().is_some_and(aws_sdk_route53::types::HostedZoneConfig::private_zone))
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned()))
    }

    /// Every resource of stack `name`, all pages.
    pub async fn stack_resources(&self, name: &str) -> Result<Vec<StackResource>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = call("cloudformation", "ListStackResources", self.cloudformation.list_stack_resources().stack_name(name).set_next_token(token.clone()).send()).await?;
            found.extend(out.stack_resource_summaries().iter().map(|r| StackResource {
                logical: r.logical_resource_id().unwrap_or_default().to_owned(),
                kind: r.resource_type().unwrap_or_default().to_owned(),
                physical: r.physical_resource_id().unwrap_or_default().to_owned(),
            }));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(found);
            }
        }
    }
}

/// The `[daemon.ha]` table `name`, if it exists, in the region `config` is for.
pub async fn table(config: &SdkConfig, name: &str) -> Result<Option<TableFacts>, AwsError> {
    let client = aws_sdk_dynamodb::Client::new(config);
    let out = match call("dynamodb", "DescribeTable", client.describe_table().table_name(name).send()).await {
        Ok(out) => out,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(t) = out.table() else { return Ok(None) };
    let types: std::collections::HashMap<&str, &str> = t.attribute_definitions().iter().map(|a| (a.attribute_name(), a.attribute_type().as_str())).collect();
    let key = t.key_schema().iter().map(|k| (k.attribute_name().to_owned(), types.get(k.attribute_name()).copied().unwrap_or("?").to_owned(), k.key_type().as_str().to_owned())).collect();
    let on_demand = t.billing_mode_summary().and_then(|b| b.billing_mode()).is_some_and(|m| *m == aws_sdk_dynamodb::types::BillingMode::PayPerRequest);
    Ok(Some(TableFacts { key, on_demand }))
}

/// Whether log group `name` exists in the region `config` is for.
pub async fn log_group_exists(config: &SdkConfig, name: &str) -> Result<bool, AwsError> {
    let client = aws_sdk_cloudwatchlogs::Client::new(config);
    let out = call("logs", "DescribeLogGroups", client.describe_log_groups().log_group_name_prefix(name).send()).await?;
    Ok(out.log_groups().iter().any(|g| g.log_group_name() == Some(name)))
}

/// Whether topic `arn` exists (in the region `config` is for, which must be the topic's).
pub async fn topic_exists(config: &SdkConfig, arn: &str) -> Result<bool, AwsError> {
    let client = aws_sdk_sns::Client::new(config);
    match call("sns", "GetTopicAttributes", client.get_topic_attributes().topic_arn(arn).send()).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
