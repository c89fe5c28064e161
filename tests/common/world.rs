//! Provisioning leafs in the emulators with the real SDK, and reading back what the
//! daemon did to them, the way an operator would look in the AWS console.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::Daemon;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use aws_sdk_ecs::types::SchedulingStrategy;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};

/// The region the leafs live in; query logs live in us-east-1 as on AWS.
pub const REGION: &str = "us-west-2";
const LOG_REGION: &str = "us-east-1";

/// How the leaf's ECS service is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecs {
    /// No ECS service.
    None,
    /// A REPLICA service (scaled by the daemon).
    Replica,
    /// A DAEMON service (never scaled).
    Daemon,
}

/// What to provision.
#[derive(Debug, Clone)]
pub struct LeafOptions {
    /// ECS service kind.
    pub ecs: Ecs,
    /// Log group to use (shared between leafs of one test); a new one when None.
    pub log_group: Option<String>,
    /// Prefix of the leaf's name.
    pub prefix: &'static str,
    /// Launch into a subnet that gives no public IPs.
    pub private: bool,
}

impl Default for LeafOptions {
    fn default() -> Self {
        Self { ecs: Ecs::Replica, log_group: None, prefix: "leaf", private: false }
    }
}

/// A provisioned leaf.
#[derive(Debug)]
pub struct Leaf {
    /// Leaf name.
    pub name: String,
    /// Its domain.
    pub domain: String,
    /// Its hosted zone id.
    pub zone_id: String,
    /// ASG name.
    pub asg: String,
    /// ECS cluster and service, if any.
    pub ecs: Option<(String, String)>,
    /// Query-log group and stream.
    pub log_group: String,
    /// Its alert topic.
    pub topic_arn: String,
    /// More `[[leaf]]` keys for its config (`dns = "all"`, `awake_tasks = 8`, ...),
    /// then optionally `[leaf.watchdog]` and keys of that table.
    pub keys: String,
    /// Where its watchdog reads traffic: the metric the tests push datapoints to.
    pub traffic: TrafficMetric,
    queue_url: String,
    received: Mutex<Vec<Alert>>,
}

impl Leaf {
    /// A leaf of existing resources; [`World::adopt`] makes its alerts readable.
    pub fn new(name: String, domain: String, zone_id: String, asg: String, ecs: Option<(String, String)>, log_group: String, topic_arn: String) -> Self {
        Self { name, domain, zone_id, asg, ecs, log_group, topic_arn, keys: String::new(), traffic: TrafficMetric::Instances, queue_url: String::new(), received: Mutex::new(Vec::new()) }
    }
}

/// The metric a leaf's watchdog reads, as the tests feed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficMetric {
    /// AWS/EC2 NetworkIn of the ASG (bytes per period).
    Instances,
    /// ProcessedBytes of a network load balancer `net/NAME/ID` (bytes per period).
    LoadBalancer(String),
    /// ECS/ContainerInsights NetworkRxBytes of the service (bytes per second).
    Service,
}

/// An alert as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Subject line.
    pub subject: String,
    /// Body.
    pub message: String,
    /// The daemon's id for the alert (the `alert_id` message attribute): the same alert
    /// delivered twice has the same id.
    pub id: String,
}

/// SDK clients for every emulated service, and a scratch directory.
pub struct World {
    pub ec2: aws_sdk_ec2::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub route53: aws_sdk_route53::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub scaling: aws_sdk_applicationautoscaling::Client,
    pub dir: PathBuf,
}

async fn sdk(region: &str) -> SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_AUTO_SCALING").is_ok() && std::env::var("AWS_ENDPOINT_URL_ROUTE_53").is_ok(),
        "the integration tests need the emulators: run them with `tests/run.sh`"
    );
    aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned())).load().await
}

impl World {
    /// Clients for the emulators named by the AWS_ENDPOINT_URL_* variables.
    pub async fn new() -> Self {
        let main = sdk(REGION).await;
        let logs = sdk(LOG_REGION).await;
        let dir = std::env::temp_dir().join(super::unique("cm-test"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            ec2: aws_sdk_ec2::Client::new(&main),
            asg: aws_sdk_autoscaling::Client::new(&main),
            ecs: aws_sdk_ecs::Client::new(&main),
            route53: aws_sdk_route53::Client::new(&main),
            logs: aws_sdk_cloudwatchlogs::Client::new(&logs),
            sns: aws_sdk_sns::Client::new(&main),
            sqs: aws_sdk_sqs::Client::new(&main),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&main),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&main),
            scaling: aws_sdk_applicationautoscaling::Client::new(&main),
            dir,
        }
    }

    /// A new query-log group with one stream per edge location we write from.
    pub async fn log_group(&self) -> String {
        let group = format!("/aws/route53/{}", super::unique("zone"));
        self.logs.create_log_group().log_group_name(&group).send().await.expect("create log group");
        for stream in ["FRA6", "IAD89"] {
            self.logs.create_log_stream().log_group_name(&group).log_stream_name(stream).send().await.expect("create log stream");
        }
        group
    }

    /// Provisions a sleeping leaf as the original stack would have: launch template,
    /// ASG (min 0, max 1, desired 0), hosted zone with the A record at 0.0.0.0, ECS
    /// cluster and service, and an SNS topic with an SQS queue subscribed.
    pub async fn leaf(&self, opts: LeafOptions) -> Leaf {
        let name = super::unique(opts.prefix);
        let template = self.launch_template(&format!("{name}-lt")).await;
        let asg = format!("{name}-asg");
        let mut create = self.new_asg(&asg, &template);
        create = if opts.private {
            // A VPC of its own whose subnet does not map public IPs on launch.
            let vpc = self.ec2.create_vpc().cidr_block("10.99.0.0/16").send().await.expect("create vpc");
            let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
            let subnet = self.ec2.create_subnet().vpc_id(&vpc_id).cidr_block("10.99.1.0/24").availability_zone(format!("{REGION}a")).send().await.expect("create subnet");
            create.vpc_zone_identifier(subnet.subnet().and_then(|s| s.subnet_id()).unwrap())
        } else {
            create.availability_zones(format!("{REGION}a"))
        };
        create.send().await.expect("create ASG");

        let ecs = match opts.ecs {
            Ecs::None => None,
            kind => Some(self.ec2_service(&name, kind).await),
        };
        self.finish(name, asg, ecs, opts.log_group).await
    }

    /// An ECS cluster with a service of `kind` (REPLICA at desired 0, or DAEMON) running
    /// the leaf's task definition on EC2 capacity; returns (cluster, service).
    pub async fn ec2_service(&self, name: &str, kind: Ecs) -> (String, String) {
        let cluster = format!("{name}-cluster");
        self.ecs.create_cluster().cluster_name(&cluster).send().await.expect("create cluster");
        self.ec2_service_in(&cluster, name, kind).await;
        (cluster, name.to_owned())
    }

    /// A service `name` of `kind` on EC2 capacity in an existing cluster.
    pub async fn ec2_service_in(&self, cluster: &str, name: &str, kind: Ecs) {
        let family = format!("{name}-task");
        self.ecs
            .register_task_definition()
            .family(&family)
            .container_definitions(aws_sdk_ecs::types::ContainerDefinition::builder().name("game").image("itzg/minecraft-server").memory(512).essential(true).build())
            .send()
            .await
            .expect("register task definition");
        let strategy = if kind == Ecs::Daemon { SchedulingStrategy::Daemon } else { SchedulingStrategy::Replica };
        let mut req = self.ecs.create_service().cluster(cluster).service_name(name).task_definition(&family).scheduling_strategy(strategy);
        if kind == Ecs::Replica {
            req = req.desired_count(0);
        }
        req.send().await.expect("create service");
    }

    /// The parts every leaf has, whatever its shape: a hosted zone with its A record at
    /// 0.0.0.0, a query-log group, and an SNS topic with an SQS queue subscribed.
    pub async fn finish(&self, name: String, asg: String, ecs: Option<(String, String)>, log_group: Option<String>) -> Leaf {
        let domain = format!("{name}.example.com");
        let zone = self
            .route53
            .create_hosted_zone()
            .name(&domain)
            .caller_reference(&name)
            .send()
            .await
            .expect("create hosted zone");
        let zone_id = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_owned();
        self.upsert_a(&zone_id, &domain, "0.0.0.0").await;
        let log_group = match log_group {
            Some(g) => g,
            None => self.log_group().await,
        };
        let topic_arn = self.sns.create_topic().name(format!("{name}-alerts")).send().await.expect("create topic").topic_arn().unwrap().to_owned();
        self.adopt(Leaf::new(name, domain, zone_id, asg, ecs, log_group, topic_arn)).await
    }

    /// Takes a leaf whose resources exist already (made by [`World::finish`], or by a
    /// CloudFormation stack): subscribes a queue to its topic, so the test receives its
    /// alerts, and gives its query-log group the streams the tests write to.
    pub async fn adopt(&self, mut leaf: Leaf) -> Leaf {
        for stream in ["FRA6", "IAD89"] {
            let _ = self.logs.create_log_stream().log_group_name(&leaf.log_group).log_stream_name(stream).send().await;
        }
        let queue_url = self.sqs.create_queue().queue_name(format!("{}-alerts", leaf.name)).send().await.expect("create queue").queue_url().unwrap().to_owned();
        let queue_arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue arn")
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .unwrap();
        self.sns.subscribe().topic_arn(&leaf.topic_arn).protocol("sqs").endpoint(queue_arn).send().await.expect("subscribe");
        leaf.queue_url = queue_url;
        leaf
    }

    /// A fresh `[daemon.ha]` lease table, as the operator (or host.yaml) makes it.
    pub async fn lease_table(&self) -> String {
        let client = aws_sdk_dynamodb::Client::new(&sdk(REGION).await);
        let name = super::unique("cm-lease");
        let key = aws_sdk_dynamodb::types::KeySchemaElement::builder().attribute_name("pk").key_type(aws_sdk_dynamodb::types::KeyType::Hash).build().unwrap();
        let pk = aws_sdk_dynamodb::types::AttributeDefinition::builder().attribute_name("pk").attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S).build().unwrap();
        client
            .create_table()
            .table_name(&name)
            .key_schema(key)
            .attribute_definitions(pk)
            .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create the lease table");
        name
    }

    /// The default VPC and its first subnet (moto's maps public IPs on launch).
    pub async fn default_subnet(&self) -> (String, String) {
        let vpcs = self.ec2.describe_vpcs().filters(aws_sdk_ec2::types::Filter::builder().name("isDefault").values("true").build()).send().await.expect("describe vpcs");
        let vpc = vpcs.vpcs()[0].vpc_id().unwrap().to_owned();
        let subnets = self.ec2.describe_subnets().filters(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build()).send().await.expect("describe subnets");
        let mut ids: Vec<(String, String)> = subnets.subnets().iter().map(|s| (s.availability_zone().unwrap_or_default().to_owned(), s.subnet_id().unwrap_or_default().to_owned())).collect();
        ids.sort();
        (vpc, ids.remove(0).1)
    }

    /// Turns on the leaf's zone's query logging into its log group, as Route53 needs it
    /// for queries to reach the daemon at all.
    pub async fn log_queries(&self, leaf: &Leaf) {
        self.route53
            .create_query_logging_config()
            .hosted_zone_id(&leaf.zone_id)
            .cloud_watch_logs_log_group_arn(format!("arn:aws:logs:{LOG_REGION}:000000000000:log-group:{}:*", leaf.log_group))
            .send()
            .await
            .expect("create query logging config");
    }

    /// A launch template for the leafs' instances; returns its name.
    pub async fn launch_template(&self, name: &str) -> String {
        self.ec2
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                    // As the original's template: NetworkIn every minute, not every 5.
                    .monitoring(aws_sdk_ec2::types::LaunchTemplatesMonitoringRequest::builder().enabled(true).build())
                    .build(),
            )
            .send()
            .await
            .expect("create launch template");
        name.to_owned()
    }

    /// A CreateAutoScalingGroup request for a sleeping leaf (min 0, max 1, desired 0).
    pub fn new_asg(&self, name: &str, template: &str) -> aws_sdk_autoscaling::operation::create_auto_scaling_group::builders::CreateAutoScalingGroupFluentBuilder {
        self.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_template(LaunchTemplateSpecification::builder().launch_template_name(template).version("$Latest").build())
            .min_size(0)
            .max_size(1)
            .desired_capacity(0)
    }

    /// Writes a `leafs.toml` for `leafs` with fast test intervals; `extra` is appended
    /// to `[daemon]`.
    pub fn config(&self, leafs: &[&Leaf], extra: &str) -> PathBuf {
        self.config_with(leafs, extra, "")
    }

    /// Like [`World::config`], with `leaf_extra` appended to each leaf's
    /// `[leaf.watchdog]` (which may open further tables such as `[leaf.crash_loop]`).
    pub fn config_with(&self, leafs: &[&Leaf], extra: &str, leaf_extra: &str) -> PathBuf {
        // Fast test intervals and a budget above the default; `extra` may set its own.
        let mut text = String::from("[daemon]\n");
        for (key, fast) in [("poll_interval", "\"500ms\""), ("reconcile_interval", "\"1s\""), ("query_log_calls_per_second", "10")] {
            if !extra.contains(key) {
                let _ = writeln!(text, "{key} = {fast}");
            }
        }
        if !extra.contains("state_file") {
            let _ = writeln!(text, "state_file = \"{}\"", self.dir.join("state.json").display());
        }
        let _ = write!(text, "region = \"{REGION}\"\nlisten = \"127.0.0.1:{}\"\n{extra}\n", super::free_port());
        for l in leafs {
            let _ = write!(
                text,
                "\n[[leaf]]\nname = \"{}\"\ndomain = \"{}\"\nhosted_zone_id = \"{}\"\nquery_log_group = \"{}\"\nalert_topic_arn = \"{}\"\n",
                l.name, l.domain, l.zone_id, l.log_group, l.topic_arn
            );
            if !l.asg.is_empty() {
                let _ = writeln!(text, "asg = \"{}\"", l.asg);
            }
            if let Some((cluster, service)) = &l.ecs {
                let _ = writeln!(text, "ecs_cluster = \"{cluster}\"\necs_service = \"{service}\"");
            }
            let (keys, watchdog) = l.keys.split_once("[leaf.watchdog]\n").unwrap_or((&l.keys, ""));
            let _ = writeln!(text, "{keys}\n[leaf.watchdog]\nthreshold = 1175\n{watchdog}\n{leaf_extra}");
        }
        let path = self.dir.join(format!("leafs-{}.toml", super::unique("cfg")));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Path of the daemon's state file for configs made by [`World::config`].
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Appends a raw line to a query-log stream with the given event time.
    pub async fn put_line(&self, group: &str, stream: &str, at_ms: i64, message: &str) {
        self.logs
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .log_events(InputLogEvent::builder().timestamp(at_ms).message(message).build().unwrap())
            .send()
            .await
            .expect("put log event");
    }

    /// Logs a DNS query of `qtype` for `name` as Route53 would.
    pub async fn query(&self, leaf: &Leaf, name: &str, qtype: &str, at_ms: i64) {
        self.put_line(&leaf.log_group, "FRA6", at_ms, &super::query_line(at_ms, &leaf.zone_id, name, qtype)).await;
    }

    /// Logs an `A` query for the leaf's domain now.
    pub async fn query_now(&self, leaf: &Leaf) {
        self.query(leaf, &leaf.domain, "A", super::now_ms()).await;
    }

    /// The ASG's desired capacity.
    pub async fn desired(&self, leaf: &Leaf) -> i32 {
        let out = self.asg.describe_auto_scaling_groups().auto_scaling_group_names(&leaf.asg).send().await.expect("describe ASG");
        out.auto_scaling_groups()[0].desired_capacity().unwrap_or(-1)
    }

    /// Sets the ASG's desired capacity, as the watchdog or an operator would.
    pub async fn set_desired(&self, leaf: &Leaf, n: i32) {
        self.asg.set_desired_capacity().auto_scaling_group_name(&leaf.asg).desired_capacity(n).send().await.expect("set desired");
    }

    /// Public IP of the ASG's InService instance, if any.
    pub async fn instance_ip(&self, leaf: &Leaf) -> Option<String> {
        let out = self.asg.describe_auto_scaling_groups().auto_scaling_group_names(&leaf.asg).send().await.expect("describe ASG");
        let id = out.auto_scaling_groups()[0]
            .instances()
            .iter()
            .find(|i| i.lifecycle_state().map(aws_sdk_autoscaling::types::LifecycleState::as_str) == Some("InService"))?
            .instance_id()?
            .to_owned();
        let out = self.ec2.describe_instances().instance_ids(id).send().await.expect("describe instances");
        out.reservations().first()?.instances().first()?.public_ip_address().map(str::to_owned)
    }

    /// The leaf's A record: (value, TTL).
    pub async fn record(&self, leaf: &Leaf) -> Option<(String, i64)> {
        let out = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&leaf.zone_id)
            .start_record_name(&leaf.domain)
            .start_record_type(RrType::A)
            .max_items(1)
            .send()
            .await
            .expect("list records");
        let r = out.resource_record_sets().first().filter(|r| r.name().trim_end_matches('.') == leaf.domain && *r.r#type() == RrType::A)?;
        Some((r.resource_records().first()?.value().to_owned(), r.ttl()?))
    }

    /// Sets the leaf's A record directly (provisioning, or an operator's edit).
    pub async fn upsert_a(&self, zone_id: &str, domain: &str, ip: &str) {
        let record = ResourceRecordSet::builder()
            .name(domain)
            .r#type(RrType::A)
            .ttl(1)
            .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
            .build()
            .unwrap();
        self.route53
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(ChangeBatch::builder().changes(Change::builder().action(ChangeAction::Upsert).resource_record_set(record).build().unwrap()).build().unwrap())
            .send()
            .await
            .expect("upsert record");
    }

    /// Deletes the leaf's hosted zone (its A record first, as Route53 requires).
    pub async fn delete_zone(&self, leaf: &Leaf) {
        if let Some((ip, ttl)) = self.record(leaf).await {
            let record = ResourceRecordSet::builder()
                .name(&leaf.domain)
                .r#type(RrType::A)
                .ttl(ttl)
                .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
                .build()
                .unwrap();
            self.route53
                .change_resource_record_sets()
                .hosted_zone_id(&leaf.zone_id)
                .change_batch(ChangeBatch::builder().changes(Change::builder().action(ChangeAction::Delete).resource_record_set(record).build().unwrap()).build().unwrap())
                .send()
                .await
                .expect("delete record");
        }
        self.route53.delete_hosted_zone().id(&leaf.zone_id).send().await.expect("delete hosted zone");
    }

    /// The ECS service's desired count.
    pub async fn service_desired(&self, leaf: &Leaf) -> i32 {
        let (cluster, service) = leaf.ecs.as_ref().expect("leaf has a service");
        let out = self.ecs.describe_services().cluster(cluster).services(service).send().await.expect("describe service");
        out.services()[0].desired_count()
    }

    /// Pushes one AWS/EC2 NetworkIn datapoint for the leaf's ASG, as EC2 detailed
    /// monitoring would.
    pub async fn put_network_in(&self, leaf: &Leaf, bytes: f64, at_ms: i64) {
        let period_secs = f64::from(u32::try_from(super::PERIOD_MS / 1000).unwrap());
        match &leaf.traffic {
            TrafficMetric::Instances => self.put_metric("AWS/EC2", "NetworkIn", "AutoScalingGroupName", &leaf.asg, bytes, at_ms).await,
            TrafficMetric::LoadBalancer(lb) => self.put_metric("AWS/NetworkELB", "ProcessedBytes", "LoadBalancer", lb, bytes, at_ms).await,
            TrafficMetric::Service => {
                let (cluster, service) = leaf.ecs.as_ref().expect("a service leaf");
                self.put_metric_dims("ECS/ContainerInsights", "NetworkRxBytes", &[("ClusterName", cluster), ("ServiceName", service)], bytes / period_secs, at_ms).await;
            }
        }
    }

    /// Pushes one datapoint of a metric with one dimension.
    pub async fn put_metric(&self, namespace: &str, metric: &str, dimension: &str, value: &str, sum: f64, at_ms: i64) {
        self.put_metric_dims(namespace, metric, &[(dimension, value)], sum, at_ms).await;
    }

    /// Pushes one datapoint of a metric with several dimensions.
    pub async fn put_metric_dims(&self, namespace: &str, metric: &str, dimensions: &[(&str, &str)], sum: f64, at_ms: i64) {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
        let datum = MetricDatum::builder()
            .metric_name(metric)
            .set_dimensions(Some(dimensions.iter().map(|(n, v)| Dimension::builder().name(*n).value(*v).build()).collect()))
            .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_millis(at_ms))
            .value(sum)
            .unit(StandardUnit::Bytes)
            .build();
        self.cloudwatch.put_metric_data().namespace(namespace).metric_data(datum).send().await.expect("put metric data");
    }

    /// Runs a task of the leaf's service on its instance and stops it the way a
    /// crashing container would (the moto launcher records the stop code and exit code).
    /// Returns the task id.
    pub async fn crash_task(&self, leaf: &Leaf, stop_code: &str, exit_code: i32) -> String {
        let (cluster, service) = leaf.ecs.as_ref().expect("leaf has a service");
        let instance = self.instance_id(leaf).await.expect("an instance to run on");
        let registered = self.ecs.list_container_instances().cluster(cluster).send().await.expect("list container instances");
        if registered.container_instance_arns().is_empty() {
            // What the ECS agent does when the instance boots.
            self.ecs
                .register_container_instance()
                .cluster(cluster)
                .instance_identity_document(format!("{{\"instanceId\": \"{instance}\", \"region\": \"{REGION}\"}}"))
                .send()
                .await
                .expect("register container instance");
        }
        let run = self
            .ecs
            .run_task()
            .cluster(cluster)
            .task_definition(format!("{}-task", leaf.name))
            .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
            .group(format!("service:{service}")) // what ECS gives a service's task
            .send()
            .await
            .expect("run task");
        let arn = run.tasks().first().and_then(|t| t.task_arn()).unwrap_or_else(|| panic!("no task started: {:?}", run.failures())).to_owned();
        let reason = format!(
            "cm-test:{{\"stopCode\": \"{stop_code}\", \"exitCode\": {exit_code}, \"reason\": \"Essential container in task exited\", \"containerReason\": \"game server crashed\"}}"
        );
        self.ecs.stop_task().cluster(cluster).task(&arn).reason(reason).send().await.expect("stop task");
        arn.rsplit('/').next().unwrap().to_owned()
    }

    /// Id of the ASG's InService instance, if any.
    pub async fn instance_id(&self, leaf: &Leaf) -> Option<String> {
        let out = self.asg.describe_auto_scaling_groups().auto_scaling_group_names(&leaf.asg).send().await.expect("describe ASG");
        let group = out.auto_scaling_groups().first()?;
        let i = group.instances().iter().find(|i| i.lifecycle_state().map(aws_sdk_autoscaling::types::LifecycleState::as_str) == Some("InService"))?;
        i.instance_id().map(str::to_owned)
    }

    /// Every alert the leaf's topic has delivered so far.
    pub async fn alerts(&self, leaf: &Leaf) -> Vec<Alert> {
        loop {
            let out = self.sqs.receive_message().queue_url(&leaf.queue_url).max_number_of_messages(10).wait_time_seconds(0).send().await.expect("receive");
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                let body: serde_json::Value = serde_json::from_str(m.body().unwrap_or("{}")).expect("SNS envelope");
                leaf.received.lock().unwrap().push(Alert {
                    subject: body["Subject"].as_str().unwrap_or_default().to_owned(),
                    message: body["Message"].as_str().unwrap_or_default().to_owned(),
                    id: body["MessageAttributes"]["alert_id"]["Value"].as_str().unwrap_or_default().to_owned(),
                });
                self.sqs.delete_message().queue_url(&leaf.queue_url).receipt_handle(m.receipt_handle().unwrap()).send().await.expect("delete");
            }
        }
        leaf.received.lock().unwrap().clone()
    }

    /// Waits until the leaf has received `n` alerts and the daemon has settled (see
    /// [`Daemon::quiet`]), then until every delivery SNS accepted for the leaf's topic
    /// has arrived, and returns them all: a duplicate would be among them.
    pub async fn settled_alerts(&self, daemon: &Daemon, leaf: &Leaf, n: usize) -> Vec<Alert> {
        super::eventually(&format!("{n} alerts for {}", leaf.name), Duration::from_secs(30), || async {
            (self.alerts(leaf).await.len() >= n).then_some(())
        })
        .await;
        daemon.quiet().await;
        let published = daemon.metric("cm_alerts_published_total", &[&format!("topic=\"{}\"", leaf.topic_arn)]).await;
        super::eventually(&format!("{published} deliveries to {}", leaf.name), Duration::from_secs(30), || async {
            let received = self.alerts(leaf).await;
            (f64::from(u32::try_from(received.len()).unwrap()) >= published).then_some(received)
        })
        .await
    }
}
