//! Each planted fault gets its own named line and a fix; a correct leaf passes.

use std::path::Path;

use super::*;

fn config() -> Config {
    let text = "[daemon]\nregion = \"eu-west-1\"\nquery_log_group = \"/aws/route53/example.com\"\nalert_topic_arn = \"arn:aws:sns:eu-west-1:123456789012:all\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"mc-asg\"\necs_cluster = \"mc\"\necs_service = \"mc\"\n[leaf.watchdog]\nthreshold = 1175\n";
    Config::parse(Path::new("t.toml"), text).unwrap()
}

fn good() -> LeafFacts {
    LeafFacts {
        asg: Some(Ok(Some(AsgFacts { max: 1, launch: Launch::Template { id: Some("lt-1".into()), name: None, version: "$Default".into() } }))),
        parked_max: None,
        monitoring: Some(Ok(Some(true))),
        service: Some(Ok(Some(false))),
        zone: Some(Ok("example.com".into())),
        record: Some(Ok(Some(ARecord { values: vec!["0.0.0.0".into()], ttl: Some(1) }))),
        logging: Some(Ok(vec!["arn:aws:logs:us-east-1:123456789012:log-group:/aws/route53/example.com:*".into()])),
    }
}

fn facts(leaf: LeafFacts) -> Facts {
    Facts {
        leafs: vec![leaf],
        log_groups: [("/aws/route53/example.com".to_owned(), Ok(true))].into(),
        topics: [("arn:aws:sns:eu-west-1:123456789012:all".to_owned(), Ok(true))].into(),
        credentials: Credentials::Simulated { principal: "arn:aws:iam::123456789012:role/cm".into(), actions: 20, refused: vec![] },
        ha_table: None,
    }
}

/// Plants one fault in good facts.
type Plant = Box<dyn Fn(&mut Facts)>;

fn failed(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().filter(|f| f.level == Level::Fail).map(|f| f.check).collect()
}

#[test]
fn a_correct_leaf_passes_every_check() {
    let findings = judge(&config(), &facts(good()));
    assert!(findings.iter().all(|f| f.level == Level::Ok), "{findings:#?}");
    let checks: Vec<&str> = findings.iter().map(|f| f.check).collect();
    assert_eq!(checks, ["asg_max", "detailed_monitoring", "service", "record", "query_logging", "log_group", "topic", "credentials"]);
}

#[test]
fn each_planted_fault_is_named_with_its_fix() {
    let cases: Vec<(&str, Plant, &str)> = vec![
        ("asg", Box::new(|f| f.leafs[0].asg = Some(Ok(None))), "leaf.yaml"),
        ("asg_max", Box::new(|f| f.leafs[0].asg = Some(Ok(Some(AsgFacts { max: 0, launch: Launch::Unknown })))), "--max-size 1"),
        ("detailed_monitoring", Box::new(|f| f.leafs[0].monitoring = Some(Ok(Some(false)))), "Monitoring Enabled=true"),
        ("service", Box::new(|f| f.leafs[0].service = Some(Ok(None))), "ecs_service"),
        ("record", Box::new(|f| f.leafs[0].record = Some(Ok(None))), "TTL 1"),
        ("query_logging", Box::new(|f| f.leafs[0].logging = Some(Ok(vec![]))), "create-query-logging-config --hosted-zone-id Z1"),
        ("query_logging", Box::new(|f| f.leafs[0].logging = Some(Ok(vec!["arn:aws:logs:us-east-1:1:log-group:/other".into()]))), "set query_log_group"),
        ("zone", Box::new(|f| f.leafs[0].zone = Some(Err(AwsError::answer("route53", "GetHostedZone", ErrorKind::NotFound, "no such zone")))), "hosted_zone_id"),
        ("zone", Box::new(|f| f.leafs[0].zone = Some(Ok("example.org".into()))), "does not hold mc.example.com"),
        ("log_group", Box::new(|f| f.log_groups.insert("/aws/route53/example.com".into(), Ok(false)).map(drop).unwrap_or_default()), "zone.yaml"),
        ("topic", Box::new(|f| f.topics.insert("arn:aws:sns:eu-west-1:123456789012:all".into(), Ok(false)).map(drop).unwrap_or_default()), "alert_topic_arn"),
        (
            "credentials",
            Box::new(|f| f.credentials = Credentials::Simulated { principal: "r".into(), actions: 3, refused: vec![Refusal { action: "autoscaling:SetDesiredCapacity".into(), resource: "arn".into(), decision: "implicitDeny".into() }] }),
            "autoscaling:SetDesiredCapacity on arn",
        ),
    ];
    for (check, plant, fix) in cases {
        let mut f = facts(good());
        plant(&mut f);
        let findings = judge(&config(), &f);
        assert_eq!(failed(&findings), [check], "{findings:#?}");
        let line = findings.iter().find(|f| f.level == Level::Fail).unwrap().to_string();
        assert!(line.starts_with("FAIL") && line.contains(check) && line.contains(fix), "{line}");
    }
}

#[test]
fn what_cannot_be_told_warns_and_does_not_fail() {
    let mut f = facts(good());
    f.leafs[0].asg = Some(Err(AwsError::answer("autoscaling", "DescribeAutoScalingGroups", ErrorKind::Denied, "not allowed")));
    f.credentials = Credentials::Unavailable("iam SimulatePrincipalPolicy: not implemented".into());
    let findings = judge(&config(), &f);
    assert!(failed(&findings).is_empty(), "{findings:#?}");
    assert_eq!(findings.iter().filter(|f| f.level == Level::Warn).map(|f| f.check).collect::<Vec<_>>(), ["asg", "credentials"]);
}

#[test]
fn a_leaf_the_daemon_parked_is_judged_by_its_recorded_max() {
    let mut leaf = good();
    leaf.asg = Some(Ok(Some(AsgFacts { max: 0, launch: Launch::Unknown })));
    leaf.parked_max = Some(10);
    let findings = judge(&config(), &facts(leaf));
    assert!(failed(&findings).is_empty(), "{findings:#?}");
    assert!(findings[0].message.contains("parked"), "{}", findings[0]);
}

#[test]
fn log_group_arns_are_read_with_and_without_the_star() {
    assert_eq!(log_group_of("arn:aws:logs:us-east-1:123:log-group:/aws/route53/x:*"), Some(("us-east-1", "/aws/route53/x")));
    assert_eq!(log_group_of("arn:aws:logs:us-east-1:123:log-group:/aws/route53/x"), Some(("us-east-1", "/aws/route53/x")));
    assert_eq!(log_group_of("arn:aws:sns:us-east-1:123:topic"), None);
}

#[test]
fn the_ha_table_must_exist_keyed_by_pk_alone() {
    let text = "[daemon]\nregion = \"eu-west-1\"\nquery_log_group = \"/aws/route53/example.com\"\nalert_topic_arn = \"arn:aws:sns:eu-west-1:123456789012:all\"\n[daemon.ha]\ntable = \"cm-lease\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"mc-asg\"\necs_cluster = \"mc\"\necs_service = \"mc\"\n[leaf.watchdog]\nthreshold = 1175\n";
    let config = Config::parse(Path::new("t.toml"), text).unwrap();
    let pk = |ty: &str| vec![("pk".to_owned(), ty.to_owned(), "HASH".to_owned())];
    for (table, level, needle) in [
        (Ok(None), Level::Fail, "does not exist"),
        (Ok(Some(TableFacts { key: pk("N"), on_demand: true })), Level::Fail, "pk (N, HASH)"),
        (Ok(Some(TableFacts { key: pk("S"), on_demand: false })), Level::Warn, "provisioned"),
        (Ok(Some(TableFacts { key: pk("S"), on_demand: true })), Level::Ok, "on-demand"),
    ] {
        let mut f = facts(good());
        f.ha_table = Some(table);
        let findings = judge(&config, &f);
        let line = findings.iter().find(|f| f.check == "ha_table").expect("an ha_table line");
        assert!(line.level == level && line.message.contains(needle), "{line}");
    }
}
