//! The least-privilege IAM policy for exactly the configured leafs.
//!
//! [`CALLS`] lists every AWS API call the daemon makes (a test checks it against the
//! source of `src/aws/`), the IAM action it needs, and how narrowly that action can be
//! scoped. [`policy`] turns it into a policy document: mutating actions only on the
//! configured ASGs, services, hosted zones (A records of the leafs' domains, UPSERT
//! only) and topics; `*` only where AWS offers nothing narrower.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::config::Config;

/// How narrowly an action can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// AWS supports no resource-level permission for it (Describe*, GetMetricData).
    Any,
    /// The leafs' AutoScaling groups.
    Asg,
    /// The leafs' hosted zones.
    Zone,
    /// The leafs' hosted zones, only UPSERTs of A records of the leafs' domains.
    ZoneARecords,
    /// The leafs' ECS services.
    Service,
    /// Any resource, but only within the leafs' ECS clusters (condition `ecs:cluster`).
    InCluster,
    /// Tasks of the leafs' ECS clusters.
    ClusterTasks,
    /// The query-log groups.
    LogGroup,
    /// The alert topics.
    Topic,
    /// Scalable targets of ECS services' desired count (conditions on namespace and
    /// dimension: their ARNs carry an opaque id).
    EcsScalableTarget,
    /// The `[daemon.ha]` table.
    Table,
}

/// One AWS call the daemon makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// Service name as passed to `aws::call`.
    pub service: &'static str,
    /// Operation name as passed to `aws::call`.
    pub operation: &'static str,
    /// IAM action.
    pub action: &'static str,
    /// How it is scoped.
    pub scope: Scope,
}

/// Every call the daemon makes.
pub const CALLS: &[Call] = &[
    Call { service: "autoscaling", operation: "DescribeAutoScalingGroups", action: "autoscaling:DescribeAutoScalingGroups", scope: Scope::Any },
    Call { service: "autoscaling", operation: "SetDesiredCapacity", action: "autoscaling:SetDesiredCapacity", scope: Scope::Asg },
    Call { service: "autoscaling", operation: "DescribePolicies", action: "autoscaling:DescribePolicies", scope: Scope::Any },
    Call { service: "autoscaling", operation: "UpdateAutoScalingGroup", action: "autoscaling:UpdateAutoScalingGroup", scope: Scope::Asg },
    Call { service: "ec2", operation: "DescribeInstances", action: "ec2:DescribeInstances", scope: Scope::Any },
    Call { service: "ec2", operation: "DescribeNetworkInterfaces", action: "ec2:DescribeNetworkInterfaces", scope: Scope::Any },
    Call { service: "elasticloadbalancing", operation: "DescribeTargetHealth", action: "elasticloadbalancing:DescribeTargetHealth", scope: Scope::Any },
    Call { service: "application-autoscaling", operation: "DescribeScalableTargets", action: "application-autoscaling:DescribeScalableTargets", scope: Scope::Any },
    Call { service: "application-autoscaling", operation: "RegisterScalableTarget", action: "application-autoscaling:RegisterScalableTarget", scope: Scope::EcsScalableTarget },
    Call { service: "ecs", operation: "DescribeServices", action: "ecs:DescribeServices", scope: Scope::Service },
    Call { service: "ecs", operation: "UpdateService", action: "ecs:UpdateService", scope: Scope::Service },
    Call { service: "ecs", operation: "ListTasks", action: "ecs:ListTasks", scope: Scope::InCluster },
    Call { service: "ecs", operation: "DescribeTasks", action: "ecs:DescribeTasks", scope: Scope::ClusterTasks },
    Call { service: "ecs", operation: "DescribeTaskDefinition", action: "ecs:DescribeTaskDefinition", scope: Scope::Any },
    Call { service: "route53", operation: "ListResourceRecordSets", action: "route53:ListResourceRecordSets", scope: Scope::Zone },
    Call { service: "route53", operation: "GetHostedZone", action: "route53:GetHostedZone", scope: Scope::Zone },
    Call { service: "route53", operation: "ChangeResourceRecordSets", action: "route53:ChangeResourceRecordSets", scope: Scope::ZoneARecords },
    Call { service: "logs", operation: "FilterLogEvents", action: "logs:FilterLogEvents", scope: Scope::LogGroup },
    Call { service: "sns", operation: "Publish", action: "sns:Publish", scope: Scope::Topic },
    Call { service: "cloudwatch", operation: "GetMetricData", action: "cloudwatch:GetMetricData", scope: Scope::Any },
    Call { service: "dynamodb", operation: "GetItem", action: "dynamodb:GetItem", scope: Scope::Table },
    Call { service: "dynamodb", operation: "UpdateItem", action: "dynamodb:UpdateItem", scope: Scope::Table },
    Call { service: "dynamodb", operation: "Scan", action: "dynamodb:Scan", scope: Scope::Table },
    // A transaction needs the action of each of its parts: PutItem here, DeleteItem and
    // ConditionCheckItem added to the same statement (TRANSACTION_PARTS).
    Call { service: "dynamodb", operation: "TransactWriteItems", action: "dynamodb:PutItem", scope: Scope::Table },
];

/// The other actions a state write's transaction needs besides PutItem.
const TRANSACTION_PARTS: &[&str] = &["dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"];

/// The IAM action for a call, if the table knows it.
pub fn action_for(service: &str, operation: &str) -> Option<&'static str> {
    CALLS.iter().find(|c| c.service == service && c.operation == operation).map(|c| c.action)
}

fn actions(scope: Scope) -> Vec<&'static str> {
    CALLS.iter().filter(|c| c.scope == scope).map(|c| c.action).collect()
}

/// The policy document for `config`.
pub fn policy(config: &Config) -> Value {
    let region = config.daemon.region.as_str();
    let log_region = config.daemon.query_log_region.as_str();
    let set = |f: &dyn Fn(&crate::config::LeafConfig) -> Option<String>| -> Vec<String> {
        config.leafs.iter().filter_map(f).collect::<BTreeSet<_>>().into_iter().collect()
    };
    let asgs = set(&|l| l.asg().map(|asg| format!("arn:aws:autoscaling:{region}:*:autoScalingGroup:*:autoScalingGroupName/{asg}")));
    let zones = set(&|l| Some(format!("arn:aws:route53:::hostedzone/{}", l.hosted_zone_id)));
    let domains = set(&|l| Some(l.domain().to_string()));
    let services = set(&|l| l.ecs().map(|(c, s)| format!("arn:aws:ecs:{region}:*:service/{c}/{s}")));
    let clusters = set(&|l| l.ecs().map(|(c, _)| format!("arn:aws:ecs:{region}:*:cluster/{c}")));
    let tasks = set(&|l| l.ecs().map(|(c, _)| format!("arn:aws:ecs:{region}:*:task/{c}/*")));
    let groups = set(&|l| Some(format!("arn:aws:logs:{log_region}:*:log-group:{}:*", l.log_group(&config.daemon))));
    let topics: BTreeSet<String> = config.leafs.iter().flat_map(|l| l.alert_topics(&config.daemon)).map(ToString::to_string).collect();

    let mut statements = vec![
        json!({"Sid": "ReadOnlyWithoutResourceLevelPermissions", "Effect": "Allow", "Action": actions(Scope::Any), "Resource": "*"}),
        json!({"Sid": "ReadTheLeafsRecords", "Effect": "Allow", "Action": actions(Scope::Zone), "Resource": zones}),
        json!({
            "Sid": "PointTheLeafsARecords",
            "Effect": "Allow",
            "Action": actions(Scope::ZoneARecords),
            "Resource": zones,
            "Condition": {"ForAllValues:StringEquals": {
                "route53:ChangeResourceRecordSetsNormalizedRecordNames": domains,
                "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
                "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
            }},
        }),
        json!({"Sid": "ReadTheQueryLog", "Effect": "Allow", "Action": actions(Scope::LogGroup), "Resource": groups}),
    ];
    if !asgs.is_empty() {
        statements.insert(1, json!({"Sid": "WakeAndStopTheLeafs", "Effect": "Allow", "Action": actions(Scope::Asg), "Resource": asgs}));
    }
    if !services.is_empty() {
        statements.push(json!({"Sid": "ScaleTheLeafsServices", "Effect": "Allow", "Action": actions(Scope::Service), "Resource": services}));
        statements.push(json!({
            "Sid": "ParkAndRestoreTheServicesScalingBounds",
            "Effect": "Allow",
            "Action": actions(Scope::EcsScalableTarget),
            "Resource": "*",
            "Condition": {"StringEquals": {"application-autoscaling:service-namespace": "ecs", "application-autoscaling:scalable-dimension": "ecs:service:DesiredCount"}},
        }));
        statements.push(json!({"Sid": "ListTheLeafsTasks", "Effect": "Allow", "Action": actions(Scope::InCluster), "Resource": "*", "Condition": {"ArnEquals": {"ecs:cluster": clusters}}}));
        statements.push(json!({"Sid": "ReadTheLeafsStoppedTasks", "Effect": "Allow", "Action": actions(Scope::ClusterTasks), "Resource": tasks}));
    }
    if !topics.is_empty() {
        statements.push(json!({"Sid": "PublishAlerts", "Effect": "Allow", "Action": actions(Scope::Topic), "Resource": topics}));
    }
    if let Some(ha) = &config.daemon.ha {
        let mut table_actions = actions(Scope::Table);
        table_actions.extend_from_slice(TRANSACTION_PARTS);
        statements.push(json!({"Sid": "ShareTheLeaseAndTheState", "Effect": "Allow", "Action": table_actions, "Resource": format!("arn:aws:dynamodb:{region}:*:table/{}", ha.table.as_str())}));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every `call("service", "Operation", ...)` in the AWS adapters.
    fn calls_in_source() -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for chunk in text.split("call(").skip(1) {
                let mut quoted = chunk.split('"');
                let (Some(before), Some(service), Some(comma), Some(operation)) = (quoted.next(), quoted.next(), quoted.next(), quoted.next()) else { continue };
                if before.trim().is_empty() && comma.trim() == "," {
                    found.push((service.to_owned(), operation.to_owned()));
                }
            }
        }
        found
    }

    fn config(ecs: bool) -> Config {
        let ecs = if ecs { "ecs_cluster = \"mc\"\necs_service = \"mc-svc\"\n" } else { "" };
        let text = format!(
            "[daemon]\nregion = \"eu-west-1\"\nquery_log_group = \"/aws/route53/example.com\"\nalert_topic_arn = \"arn:aws:sns:eu-west-1:123456789012:all\"\n[daemon.ha]\ntable = \"cm-lease\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"mc-asg\"\nalert_topic_arn = \"arn:aws:sns:us-east-1:123456789012:mc\"\n{ecs}[leaf.watchdog]\nthreshold = 1\n"
        );
        Config::parse(Path::new("t.toml"), &text).unwrap()
    }

    #[test]
    fn every_call_in_the_source_is_in_the_table() {
        let found = calls_in_source();
        assert!(found.len() >= CALLS.len(), "the scan found the calls: {found:?}");
        for (service, operation) in &found {
            assert!(action_for(service, operation).is_some(), "{service} {operation} is called but has no IAM action in iam::CALLS");
        }
        for c in CALLS {
            assert!(found.iter().any(|(s, o)| s == c.service && o == c.operation), "{} {} is in the table but never called", c.service, c.operation);
        }
    }

    #[test]
    fn every_action_is_granted_and_mutations_are_scoped() {
        let p = policy(&config(true));
        let statements = p["Statement"].as_array().unwrap();
        for c in CALLS {
            assert!(statements.iter().any(|s| s["Action"].as_array().unwrap().iter().any(|a| a == c.action)), "{} not granted", c.action);
        }
        for s in statements {
            // `*` is only for reads, or with a condition that narrows it.
            if s["Resource"] == "*" && s.get("Condition").is_none() {
                for a in s["Action"].as_array().unwrap() {
                    let a = a.as_str().unwrap();
                    let read_only = a.contains(":Describe") || a.contains(":List") || a.contains(":Get");
                    assert!(read_only, "{a} is granted on * ");
                }
            }
        }
        let text = p.to_string();
        for needle in [
            "autoScalingGroupName/mc-asg",
            "hostedzone/Z1",
            "service/mc/mc-svc",
            "cluster/mc",
            "log-group:/aws/route53/example.com:*",
            "arn:aws:sns:eu-west-1:123456789012:all",
            "arn:aws:sns:us-east-1:123456789012:mc",
            "\"mc.example.com\"",
            "table/cm-lease",
            "dynamodb:ConditionCheckItem",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn a_fargate_leaf_gets_no_asg_permission_and_a_conditioned_scalable_target_one() {
        let text = "[daemon]\nregion = \"eu-west-1\"\nquery_log_group = \"g\"\n[[leaf]]\nname = \"web\"\ndomain = \"web.example.com\"\nhosted_zone_id = \"Z1\"\necs_cluster = \"c\"\necs_service = \"web\"\n[leaf.watchdog]\nthreshold = 1\ntraffic = \"service\"\n";
        let p = policy(&Config::parse(Path::new("t.toml"), text).unwrap());
        let statements = p["Statement"].as_array().unwrap();
        let granted = |action: &str| statements.iter().find(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action));
        assert!(granted("autoscaling:SetDesiredCapacity").is_none(), "no ASG, no ASG write: {p}");
        let register = granted("application-autoscaling:RegisterScalableTarget").expect("parking needs it");
        assert_eq!(register["Condition"]["StringEquals"]["application-autoscaling:service-namespace"], "ecs", "{register}");
    }

    #[test]
    fn leafs_without_ecs_get_no_ecs_write_permission() {
        let text = policy(&config(false)).to_string();
        assert!(!text.contains("ecs:UpdateService") && !text.contains("ecs:ListTasks"), "{text}");
    }
}
