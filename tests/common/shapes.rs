//! Leafs of the shapes beyond one instance, provisioned as the seeds describe them, and
//! the read-backs an operator would look at in the console (task IPs, a multi-value
//! record, a scalable target's bounds, target health).
//!
//! The emulator plays ECS's scheduler (tests/emulators/moto_main.py): a service's
//! tasks follow its desired count, a FARGATE task gets an ENI with a public IP and is
//! registered in its service's IP target group, and a target group's tag
//! `cm-test:health` sets what DescribeTargetHealth answers for its targets.

use aws_sdk_applicationautoscaling::types::{MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace, TargetTrackingScalingPolicyConfiguration};
use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, Compatibility, LaunchType, LoadBalancer, NetworkConfiguration, NetworkMode};
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum, Tag, TargetTypeEnum};
use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};

use super::world::{Leaf, TrafficMetric, World, REGION};

/// A VPC of a leaf's own: two subnets that give public IPs, and a security group.
#[derive(Debug, Clone)]
pub struct Network {
    /// VPC id.
    pub vpc: String,
    /// Subnet ids (two zones, as a load balancer needs).
    pub subnets: Vec<String>,
    /// Security group id.
    pub security_group: String,
}

/// A network load balancer with one TCP target group and a listener.
#[derive(Debug, Clone)]
pub struct Nlb {
    /// The balancer's ARN.
    pub arn: String,
    /// `net/NAME/ID`, as CloudWatch's `LoadBalancer` dimension names it.
    pub id: String,
    /// Its DNS name (what an alias record points at).
    pub dns_name: String,
    /// Its canonical hosted zone (the alias target's zone).
    pub zone_id: String,
    /// The target group.
    pub target_group: String,
}

impl World {
    /// A VPC with DNS hostnames (awsvpc tasks need them), two subnets that map public
    /// IPs on launch, and a security group.
    pub async fn network(&self, name: &str) -> Network {
        let vpc = self.ec2.create_vpc().cidr_block("10.20.0.0/16").send().await.expect("create vpc");
        let vpc = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
        let on = aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build();
        self.ec2.modify_vpc_attribute().vpc_id(&vpc).enable_dns_hostnames(on.clone()).send().await.expect("enable DNS hostnames");
        let mut subnets = Vec::new();
        for (i, zone) in ["a", "b"].iter().enumerate() {
            let subnet = self.ec2.create_subnet().vpc_id(&vpc).cidr_block(format!("10.20.{i}.0/24")).availability_zone(format!("{REGION}{zone}")).send().await.expect("create subnet");
            let id = subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned();
            self.ec2.modify_subnet_attribute().subnet_id(&id).map_public_ip_on_launch(on.clone()).send().await.expect("map public IPs");
            subnets.push(id);
        }
        let sg = self.ec2.create_security_group().group_name(format!("{name}-sg")).description("game").vpc_id(&vpc).send().await.expect("create security group");
        Network { vpc, subnets, security_group: sg.group_id().unwrap().to_owned() }
    }

    /// An internet-facing NLB with a TCP target group of `target_type` on `port`.
    pub async fn nlb(&self, name: &str, net: &Network, target_type: TargetTypeEnum, port: i32) -> Nlb {
        let lb = self
            .elbv2
            .create_load_balancer()
            .name(format!("{name}-nlb").chars().take(32).collect::<String>())
            .r#type(LoadBalancerTypeEnum::Network)
            .set_subnets(Some(net.subnets.clone()))
            .send()
            .await
            .expect("create load balancer");
        let lb = &lb.load_balancers()[0];
        let arn = lb.load_balancer_arn().unwrap().to_owned();
        let tg = self
            .elbv2
            .create_target_group()
            .name(format!("{name}-tg").chars().rev().take(32).collect::<String>().chars().rev().collect::<String>())
            .protocol(ProtocolEnum::Tcp)
            .port(port)
            .vpc_id(&net.vpc)
            .target_type(target_type)
            .send()
            .await
            .expect("create target group");
        let target_group = tg.target_groups()[0].target_group_arn().unwrap().to_owned();
        let forward = Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&target_group).build();
        self.elbv2.create_listener().load_balancer_arn(&arn).protocol(ProtocolEnum::Tcp).port(port).default_actions(forward).send().await.expect("create listener");
        Nlb {
            id: arn.split(":loadbalancer/").nth(1).unwrap().to_owned(),
            dns_name: lb.dns_name().unwrap_or_default().to_owned(),
            zone_id: lb.canonical_hosted_zone_id().unwrap_or("Z26RNL4JYFTOTI").to_owned(),
            arn,
            target_group,
        }
    }

    /// A FARGATE service (desired 0, public IPs) in a cluster of its own; with a target
    /// group, its tasks are registered there as IP targets on `port`.
    pub async fn fargate_service(&self, name: &str, net: &Network, target_group: Option<&str>) -> (String, String) {
        let cluster = format!("{name}-cluster");
        self.ecs.create_cluster().cluster_name(&cluster).send().await.expect("create cluster");
        self.fargate_service_in(&cluster, name, net, target_group).await;
        (cluster, name.to_owned())
    }

    /// A FARGATE service `name` (desired 0, public IPs) in an existing cluster.
    pub async fn fargate_service_in(&self, cluster: &str, name: &str, net: &Network, target_group: Option<&str>) {
        let family = format!("{name}-task");
        let port = aws_sdk_ecs::types::PortMapping::builder().container_port(25565).build();
        let container = aws_sdk_ecs::types::ContainerDefinition::builder().name("game").image("itzg/minecraft-server").memory(1024).essential(true).port_mappings(port).build();
        self.ecs
            .register_task_definition()
            .family(&family)
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("512")
            .memory("1024")
            .container_definitions(container)
            .send()
            .await
            .expect("register task definition");
        let vpc = AwsVpcConfiguration::builder().set_subnets(Some(net.subnets.clone())).security_groups(&net.security_group).assign_public_ip(AssignPublicIp::Enabled).build().unwrap();
        let mut create = self
            .ecs
            .create_service()
            .cluster(cluster)
            .service_name(name)
            .task_definition(&family)
            .launch_type(LaunchType::Fargate)
            .desired_count(0)
            .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build());
        if let Some(tg) = target_group {
            create = create.load_balancers(LoadBalancer::builder().target_group_arn(tg).container_name("game").container_port(25565).build());
        }
        create.send().await.expect("create service");
    }

    /// Shape 1, the peer's: a Fargate service and no ASG; the A record follows the task's
    /// public IP; the watchdog reads the service's Container Insights traffic.
    pub async fn fargate_leaf(&self, prefix: &'static str) -> Leaf {
        let name = super::unique(prefix);
        let net = self.network(&name).await;
        let ecs = self.fargate_service(&name, &net, None).await;
        let mut leaf = self.finish(name, String::new(), Some(ecs), None).await;
        leaf.keys = "[leaf.watchdog]\ntraffic = \"service\"\n".into();
        leaf.traffic = TrafficMetric::Service;
        leaf
    }

    /// Shape 2, seed 002: an ASG of 2 (min 0, max 2) registered in an NLB's instance
    /// target group, and an EC2 service of 8 tasks; every instance in the A record.
    pub async fn seed_002_leaf(&self) -> (Leaf, Nlb) {
        let name = super::unique("nlb8");
        let net = self.network(&name).await;
        let nlb = self.nlb(&name, &net, TargetTypeEnum::Instance, 80).await;
        let template = self.launch_template(&format!("{name}-lt")).await;
        let asg = format!("{name}-asg");
        self.new_asg(&asg, &template).max_size(2).vpc_zone_identifier(net.subnets.join(",")).target_group_arns(&nlb.target_group).send().await.expect("create ASG");
        let ecs = self.ec2_service(&name, super::world::Ecs::Replica).await;
        let mut leaf = self.finish(name, asg, Some(ecs), None).await;
        leaf.keys = format!(
            "awake_instances = 2\nawake_tasks = 8\ndns = \"all\"\ntarget_group_arns = [\"{}\"]\nready_targets = 2\n[leaf.watchdog]\ntraffic = \"load_balancer\"\nload_balancer = \"{}\"\n",
            nlb.target_group, nlb.id
        );
        leaf.traffic = TrafficMetric::LoadBalancer(nlb.id.clone());
        (leaf, nlb)
    }

    /// Shape 3, seed 003: a Fargate service with a scalable target (min 1, max 10, CPU
    /// 75%) behind an NLB, and an alias record to the balancer (`dns = "none"`).
    pub async fn seed_003_leaf(&self) -> (Leaf, Nlb) {
        let name = super::unique("compose");
        let net = self.network(&name).await;
        let nlb = self.nlb(&name, &net, TargetTypeEnum::Ip, 25565).await;
        let ecs = self.fargate_service(&name, &net, Some(&nlb.target_group)).await;
        let resource = format!("service/{}/{}", ecs.0, ecs.1);
        self.scaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(&resource)
            .min_capacity(1)
            .max_capacity(10)
            .send()
            .await
            .expect("register scalable target");
        let cpu = PredefinedMetricSpecification::builder().predefined_metric_type(MetricType::EcsServiceAverageCpuUtilization).build().unwrap();
        self.scaling
            .put_scaling_policy()
            .policy_name(format!("{name}-cpu"))
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(&resource)
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(TargetTrackingScalingPolicyConfiguration::builder().target_value(75.0).predefined_metric_specification(cpu).build().unwrap())
            .send()
            .await
            .expect("put scaling policy");
        let mut leaf = self.finish(name, String::new(), Some(ecs), None).await;
        self.alias_to(&leaf, &nlb).await;
        leaf.keys = format!("dns = \"none\"\ntarget_group_arns = [\"{}\"]\n[leaf.watchdog]\ntraffic = \"load_balancer\"\nload_balancer = \"{}\"\n", nlb.target_group, nlb.id);
        leaf.traffic = TrafficMetric::LoadBalancer(nlb.id.clone());
        (leaf, nlb)
    }

    /// Replaces the leaf's A record with an alias to the balancer, as compose-on-ECS does.
    async fn alias_to(&self, leaf: &Leaf, nlb: &Nlb) {
        let change = |action, record| Change::builder().action(action).resource_record_set(record).build().unwrap();
        let simple = ResourceRecordSet::builder()
            .name(&leaf.domain)
            .r#type(RrType::A)
            .ttl(1)
            .resource_records(aws_sdk_route53::types::ResourceRecord::builder().value("0.0.0.0").build().unwrap())
            .build()
            .unwrap();
        let target = AliasTarget::builder().hosted_zone_id(&nlb.zone_id).dns_name(&nlb.dns_name).evaluate_target_health(false).build().unwrap();
        let alias = ResourceRecordSet::builder().name(&leaf.domain).r#type(RrType::A).alias_target(target).build().unwrap();
        let batch = ChangeBatch::builder().changes(change(ChangeAction::Delete, simple)).changes(change(ChangeAction::Create, alias)).build().unwrap();
        self.route53.change_resource_record_sets().hosted_zone_id(&leaf.zone_id).change_batch(batch).send().await.expect("alias record");
    }

    /// The leaf's A record set exactly as Route53 holds it (alias or values).
    pub async fn record_set(&self, leaf: &Leaf) -> Option<ResourceRecordSet> {
        let out = self.route53.list_resource_record_sets().hosted_zone_id(&leaf.zone_id).start_record_name(&leaf.domain).start_record_type(RrType::A).max_items(1).send().await.expect("list records");
        out.resource_record_sets().first().filter(|r| r.name().trim_end_matches('.') == leaf.domain && *r.r#type() == RrType::A).cloned()
    }

    /// The values of the leaf's A record, sorted.
    pub async fn record_values(&self, leaf: &Leaf) -> Vec<String> {
        let mut values: Vec<String> = self.record_set(leaf).await.map(|r| r.resource_records().iter().map(|v| v.value().to_owned()).collect()).unwrap_or_default();
        values.sort();
        values
    }

    /// Public IPs of the service's running tasks (task ENI -> public IP), sorted.
    pub async fn task_ips(&self, leaf: &Leaf) -> Vec<String> {
        let (cluster, service) = leaf.ecs.as_ref().expect("a service");
        let arns = self.ecs.list_tasks().cluster(cluster).service_name(service).desired_status(aws_sdk_ecs::types::DesiredStatus::Running).send().await.expect("list tasks");
        if arns.task_arns().is_empty() {
            return Vec::new();
        }
        let tasks = self.ecs.describe_tasks().cluster(cluster).set_tasks(Some(arns.task_arns().to_vec())).send().await.expect("describe tasks");
        let enis: Vec<String> = tasks
            .tasks()
            .iter()
            .flat_map(aws_sdk_ecs::types::Task::attachments)
            .flat_map(aws_sdk_ecs::types::Attachment::details)
            .filter(|d| d.name() == Some("networkInterfaceId"))
            .filter_map(|d| d.value().map(str::to_owned))
            .collect();
        if enis.is_empty() {
            return Vec::new();
        }
        let out = self.ec2.describe_network_interfaces().set_network_interface_ids(Some(enis)).send().await.expect("describe ENIs");
        let mut ips: Vec<String> = out.network_interfaces().iter().filter_map(|n| n.association().and_then(|a| a.public_ip()).map(str::to_owned)).collect();
        ips.sort();
        ips
    }

    /// Public IPs of the ASG's InService instances, sorted.
    pub async fn instance_ips(&self, leaf: &Leaf) -> Vec<String> {
        let out = self.asg.describe_auto_scaling_groups().auto_scaling_group_names(&leaf.asg).send().await.expect("describe ASG");
        let ids: Vec<String> = out.auto_scaling_groups()[0]
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state().map(aws_sdk_autoscaling::types::LifecycleState::as_str) == Some("InService"))
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let out = self.ec2.describe_instances().set_instance_ids(Some(ids)).send().await.expect("describe instances");
        let mut ips: Vec<String> = out.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances).filter_map(|i| i.public_ip_address().map(str::to_owned)).collect();
        ips.sort();
        ips
    }

    /// The service's scalable target bounds (min, max).
    pub async fn scalable_bounds(&self, leaf: &Leaf) -> Option<(i32, i32)> {
        let (cluster, service) = leaf.ecs.as_ref().expect("a service");
        let out = self
            .scaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(format!("service/{cluster}/{service}"))
            .send()
            .await
            .expect("describe scalable targets");
        out.scalable_targets().first().map(|t| (t.min_capacity(), t.max_capacity()))
    }

    /// Makes every target of `target_group` answer `state` (healthy, initial, unhealthy).
    pub async fn set_health(&self, target_group: &str, state: &str) {
        let tag = Tag::builder().key("cm-test:health").value(state).build();
        self.elbv2.add_tags().resource_arns(target_group).tags(tag).send().await.expect("tag target group");
    }

    /// The ASG's (min, max, desired).
    pub async fn asg_size(&self, leaf: &Leaf) -> (i32, i32, i32) {
        let out = self.asg.describe_auto_scaling_groups().auto_scaling_group_names(&leaf.asg).send().await.expect("describe ASG");
        let g = &out.auto_scaling_groups()[0];
        (g.min_size().unwrap_or(-1), g.max_size().unwrap_or(-1), g.desired_capacity().unwrap_or(-1))
    }
}
