//! Both kinds of stack become a config the parser accepts.

use std::path::Path;

use super::*;
use crate::config::Config;

fn head(outputs: &[(&str, &str)]) -> StackHead {
    StackHead { outputs: outputs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), ..StackHead::default() }
}

fn resource(kind: &str, physical: &str) -> StackResource {
    StackResource { logical: "X".into(), kind: kind.into(), physical: physical.into() }
}

#[test]
fn this_projects_stack_is_read_from_its_outputs() {
    let found = Found {
        stack: "mc".into(),
        region: "eu-west-1".into(),
        head: head(&[
            ("LeafName", "mc"),
            ("Domain", "mc.example.com"),
            ("HostedZoneId", "Z1"),
            ("IdleIp", "0.0.0.0"),
            ("AutoScalingGroupName", "mc-asg"),
            ("ClusterName", "mc"),
            ("ServiceName", "mc-svc"),
            ("TopicArn", "arn:aws:sns:eu-west-1:123456789012:mc"),
            ("Threshold", "400"),
        ]),
        log_group: Some(("us-east-1".into(), "/aws/route53/container-manager".into())),
        ..Found::default()
    };
    let text = render(&found, false).unwrap();
    let config = Config::parse(Path::new("out.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let leaf = &config.leafs[0];
    assert_eq!((leaf.name().as_str(), leaf.asg().unwrap().as_str(), leaf.ecs().unwrap().1.as_str()), ("mc", "mc-asg", "mc-svc"), "{text}");
    assert!((*leaf.watchdog.threshold - 400.0).abs() < f64::EPSILON);
    assert_eq!(config.daemon.query_log_group.as_ref().unwrap().as_str(), "/aws/route53/container-manager");
    assert!(!text.contains("idle_ip"), "0.0.0.0 is the default: {text}");
}

#[test]
fn an_original_stack_is_read_from_its_resources_and_alarms() {
    let mut alarms = Watchdog::default();
    let template = r#"{"Resources": {
        "Activity": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"ComparisonOperator": "LessThanOrEqualToThreshold", "Threshold": 1175, "EvaluationPeriods": 7, "Period": 60}},
        "LeftUp": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"ComparisonOperator": "GreaterThanThreshold", "Threshold": 0, "EvaluationPeriods": 480, "AlarmActions": [{"Ref": "Topic"}]}}}}"#;
    alarms_in(template, &mut alarms);
    assert_eq!(alarms, Watchdog { threshold: Some(1175.0), idle_minutes: Some(7), left_up_hours: Some(8), left_up_stop: Some(false) });
    let mut found = Found {
        stack: "ContainerManager-Minecraft".into(),
        region: "us-west-2".into(),
        head: head(&[("DomainName", "minecraft.example.com")]),
        resources: vec![
            (resource("AWS::SNS::Topic", "arn:aws:sns:us-west-2:123456789012:drain-hook"), true),
            (resource("AWS::SNS::Topic", "arn:aws:sns:us-west-2:123456789012:leaf-topic"), false),
            (resource("AWS::AutoScaling::AutoScalingGroup", "ContainerManager-Minecraft-Asg-XYZ"), true),
            (resource("AWS::ECS::Cluster", "minecraft-ecs-cluster"), true),
            (resource("AWS::ECS::Service", "arn:aws:ecs:us-west-2:1:service/minecraft-ecs-cluster/Ec2Service-ABC"), true),
            (resource("AWS::EFS::FileSystem", "fs-123"), true),
        ],
        alarms,
        zone: Some("/hostedzone/ZSUB".into()),
        ..Found::default()
    };
    found.head.tags.insert("ContainerId".into(), "Minecraft".into());
    let text = render(&found, false).unwrap();
    let config = Config::parse(Path::new("out.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let leaf = &config.leafs[0];
    assert_eq!(leaf.name().as_str(), "minecraft");
    assert_eq!(leaf.hosted_zone_id.to_string(), "ZSUB");
    assert_eq!(leaf.ecs().unwrap().1.as_str(), "Ec2Service-ABC");
    assert_eq!(leaf.alert_topic_arn.as_ref().unwrap().as_str(), "arn:aws:sns:us-west-2:123456789012:leaf-topic", "the root topic, not the drain hook's");
    assert_eq!(leaf.efs.as_ref().unwrap().as_str(), "fs-123");
    assert!(text.contains("idle_after = \"7m\"") && text.contains("left_up_after = \"8h\"") && text.contains("left_up_stop = false"), "{text}");
    assert!(text.contains("# The zone has no query logging config yet"), "{text}");
    let only = render(&found, true).unwrap();
    assert!(only.contains("[[leaf]]") && !only.contains("[daemon]"), "{only}");
}

#[test]
fn a_stack_that_is_no_leaf_is_refused_by_name() {
    let found = Found { stack: "vpc".into(), head: head(&[("VpcId", "vpc-1")]), ..Found::default() };
    let e = render(&found, false).unwrap_err().to_string();
    assert!(e.contains("stack vpc is not a leaf stack"), "{e}");
    let found = Found { stack: "half".into(), head: head(&[("DomainName", "a.example.com")]), zone: Some("Z".into()), ..Found::default() };
    let e = render(&found, false).unwrap_err().to_string();
    assert!(e.contains("nothing to wake"), "{e}");
}
