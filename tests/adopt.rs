//! Adopting the daemon: `containerd check --live` finds what would stop a leaf from
//! waking or sleeping, names it and says what to do, and changes nothing.

mod common;

use std::process::Command;
use std::time::Duration;

use common::world::{Leaf, LeafOptions};
use common::{eventually, feed, World};

const WAKE: Duration = Duration::from_secs(40);

/// `containerd check --live --config CONFIG`: (exit code, stdout, stderr).
fn check_live(config: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_containerd")).args(["check", "--live", "--config"]).arg(config).output().expect("run containerd");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A query-log group early in name order. The emulator's CreateQueryLoggingConfig looks
/// a group up on the first page (50, by name) of DescribeLogGroups only, and by the time
/// this binary runs the other tests have made many `/aws/route53/zone-*` groups.
async fn early_group(world: &World, what: &str) -> String {
    let group = format!("/aws/route53/A-{}", common::unique(what));
    world.logs.create_log_group().log_group_name(&group).send().await.expect("create log group");
    group
}

/// A sleeping leaf whose zone logs its queries to `group`.
async fn leaf(world: &World, prefix: &'static str, group: &str) -> Leaf {
    let leaf = world.leaf(LeafOptions { prefix, log_group: Some(group.to_owned()), ..LeafOptions::default() }).await;
    world.log_queries(&leaf).await;
    leaf
}

#[tokio::test(flavor = "multi_thread")]
async fn check_live_names_each_planted_fault_passes_a_correct_leaf_and_changes_nothing() {
    let world = World::new().await;
    let group = early_group(&world, "adopt").await;
    let good = leaf(&world, "good", &group).await;
    let mut gone = leaf(&world, "noasg", &group).await;
    gone.asg = format!("{}-deleted", gone.asg);
    let zero = leaf(&world, "zeromax", &group).await;
    world.asg.update_auto_scaling_group().auto_scaling_group_name(&zero.asg).min_size(0).max_size(0).send().await.unwrap();
    let unlogged = world.leaf(LeafOptions { prefix: "unlogged", ..LeafOptions::default() }).await;
    let lost = leaf(&world, "nogroup", &early_group(&world, "lost").await).await;
    world.logs.delete_log_group().log_group_name(&lost.log_group).send().await.unwrap();
    let mute = leaf(&world, "notopic", &group).await;
    world.sns.delete_topic().topic_arn(&mute.topic_arn).send().await.unwrap();
    let blind = leaf(&world, "blind", &group).await;
    world
        .ec2
        .create_launch_template_version()
        .launch_template_name(format!("{}-lt", blind.name))
        .launch_template_data(aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id("ami-12c6146b").build())
        .send()
        .await
        .unwrap();

    let all = [&good, &gone, &zero, &unlogged, &lost, &mute, &blind];
    let (code, out, err) = check_live(&world.config(&all, "[daemon.ha]\ntable = \"cm-lease-never-made\"\n"));
    assert_eq!(code, 1, "a failed check exits 1\n{out}\n{err}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    for (about, check, fix) in [
        (&gone.name, "asg", "leaf.yaml"),
        (&zero.name, "asg_max", "--max-size 1"),
        (&unlogged.name, "query_logging", "create-query-logging-config"),
        (&lost.log_group, "log_group", "does not exist"),
        (&mute.topic_arn, "topic", "does not exist"),
        (&blind.name, "detailed_monitoring", "Monitoring Enabled=true"),
        (&"cm-lease-never-made".to_owned(), "ha_table", "create-table"),
    ] {
        assert!(fails.iter().any(|l| l.contains(about.as_str()) && l.contains(&format!(" {check} ")) && l.contains(fix)), "no FAIL {check} line for {about} with its fix:\n{out}");
    }
    assert_eq!(fails.len(), 7, "exactly the planted faults:\n{out}");
    assert!(!fails.iter().any(|l| l.contains(&good.name)), "{out}");
    let credentials = out.lines().find(|l| l.contains(" credentials ")).expect("a credentials line");
    assert!(credentials.starts_with("ok") || credentials.starts_with("WARN"), "the emulator cannot simulate IAM: a warning, not a failure: {credentials}");

    let table = world.lease_table().await;
    let (code, out, err) = check_live(&world.config(&[&good], &format!("[daemon.ha]\ntable = \"{table}\"\n")));
    assert_eq!(code, 0, "a correct leaf passes\n{out}\n{err}");
    for check in ["asg_max", "detailed_monitoring", "service", "record", "query_logging", "log_group", "topic", "ha_table"] {
        assert!(out.lines().any(|l| l.starts_with("ok") && l.contains(&format!(" {check} "))), "ok {check}:\n{out}");
    }

    for leaf in [&good, &zero, &blind] {
        assert_eq!(world.desired(leaf).await, 0, "nothing was woken");
        assert_eq!(world.record(leaf).await.map(|r| r.0), Some("0.0.0.0".to_owned()), "no record was written");
    }
    let max = world.asg.describe_auto_scaling_groups().auto_scaling_group_names(&zero.asg).send().await.unwrap().auto_scaling_groups()[0].max_size();
    assert_eq!(max, Some(0), "the check reports, it does not repair");
}

/// Runs `tests/cfn/deploy.py` (the emulators' boto3): a template made into stacks on the
/// emulators. Returns its JSON answer.
fn deploy(region: &str, args: &[&str]) -> serde_json::Value {
    let python = std::env::var("CM_MOTO_PYTHON").expect("CM_MOTO_PYTHON: run the tests with tests/run.sh");
    let out = Command::new(python).args(args).env("AWS_REGION", region).env("AWS_DEFAULT_REGION", region).output().expect("run deploy.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `containerd config from-stack STACK ARGS...`: its stdout.
fn from_stack(stack: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_containerd")).args(["config", "from-stack", stack, "--region", common::world::REGION]).args(args).output().expect("run containerd");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "from-stack {stack}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaf_deployed_from_the_template_is_configured_from_its_stack_checked_woken_and_put_to_sleep() {
    let world = World::new().await;
    let id = common::unique("cfn");
    // Route53 logs queries only to us-east-1: the zone's stack goes there, the leaf's to
    // the leafs' region.
    let zone = deploy("us-east-1", &["tests/cfn/deploy.py", "deploy/cloudformation/zone.yaml", &format!("{id}-zone"), &format!("ZoneName={id}.example.com"), &format!("LogGroupName=/aws/route53/{id}")]);
    let zone_id = zone["outputs"]["HostedZoneId"].as_str().unwrap().to_owned();
    let (vpc, subnet) = world.default_subnet().await;
    let domain = format!("mc.{id}.example.com");
    let stack = format!("{id}-leaf");
    let made = deploy(common::world::REGION, &[
        "tests/cfn/deploy.py",
        "deploy/cloudformation/leaf.yaml",
        &stack,
        "LeafName=mc",
        &format!("Domain={domain}"),
        &format!("HostedZoneId={zone_id}"),
        "Image=itzg/minecraft-server",
        &format!("VpcId={vpc}"),
        &format!("SubnetId={subnet}"),
        "EfsEnabled=false",
    ]);
    let topic = made["outputs"]["TopicArn"].as_str().unwrap().to_owned();

    // The compute half of the stack (everything but the record and the topic, which the
    // emulators split off to the Route53/SNS emulator) names everything else.
    let entry = from_stack(made["stacks"]["compute"].as_str().unwrap(), &["--leaf-only"]);
    for key in ["name = \"mc\"", &format!("domain = \"{domain}\""), &format!("hosted_zone_id = \"{zone_id}\""), "asg = ", "ecs_cluster = ", "ecs_service = ", "threshold = 1175"] {
        assert!(entry.contains(key), "{key} missing from:\n{entry}");
    }
    let asg = entry.lines().find_map(|l| l.strip_prefix("asg = ")).unwrap().trim_matches('"').to_owned();
    let config = world.dir.join("from-stack.toml");
    let header = format!(
        "[daemon]\nregion = \"{}\"\nquery_log_group = \"/aws/route53/{id}\"\nalert_topic_arn = \"{topic}\"\nstate_file = \"{}\"\nlisten = \"127.0.0.1:{}\"\npoll_interval = \"500ms\"\nreconcile_interval = \"1s\"\nquery_log_calls_per_second = 10\n",
        common::world::REGION,
        world.state_file().display(),
        common::free_port()
    );
    std::fs::write(&config, format!("{header}\n{entry}{}\n", common::FAST_WATCHDOG)).unwrap();

    let (code, out, err) = check_live(&config);
    assert_eq!(code, 0, "what the template made passes every live check:\n{out}\n{err}");
    assert!(out.contains("detailed_monitoring") && out.contains("query_logging"), "{out}");

    let leaf = world.adopt(Leaf::new("mc".into(), domain, zone_id, asg, None, format!("/aws/route53/{id}"), topic)).await;
    let daemon = common::Daemon::start(&config);
    daemon.wait_for_log(&["adopting", "mc"], WAKE).await;
    world.query_now(&leaf).await;
    eventually("the stack's ASG wants an instance", WAKE, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let ip = eventually("an instance with a public IP", WAKE, || async { world.instance_ip(&leaf).await }).await;
    eventually("the stack's record points at it", WAKE, || async { (world.record(&leaf).await.map(|r| r.0) == Some(ip.clone())).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert!(alerts.len() == 1 && alerts[0].subject.contains("starting") && alerts[0].message.contains(&ip), "one starting alert on the stack's topic: {alerts:?}");

    let asleep = feed(&world, &leaf, |_| 100.0, Duration::from_secs(120), || async { (world.desired(&leaf).await == 0).then_some(()) }).await;
    assert!(asleep.is_some(), "idle, the leaf is put to sleep");
    eventually("the record back at the idle IP", WAKE, || async { (world.record(&leaf).await.map(|r| r.0).as_deref() == Some("0.0.0.0")).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert!(alerts.len() == 2 && alerts[1].subject.contains("idle"), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaf_stack_of_the_original_cdk_project_becomes_a_config_that_check_accepts() {
    let world = World::new().await;
    let leaf = format!("orig{}", std::process::id());
    let made = deploy(common::world::REGION, &["tests/cfn/original/deploy.py", "--leaf", &leaf, "--domain", &format!("{leaf}.example.com")]);
    let text = from_stack(made["stack"].as_str().unwrap(), &[]);
    let service = made["service"].as_str().unwrap().rsplit('/').next().unwrap();
    for (key, value) in [
        ("name", leaf.as_str()),
        ("asg", made["asg"].as_str().unwrap()),
        ("ecs_cluster", made["cluster"].as_str().unwrap()),
        ("ecs_service", service),
        ("alert_topic_arn", made["topic_arn"].as_str().unwrap()),
        ("hosted_zone_id", made["zone_id"].as_str().unwrap()),
        ("query_log_group", made["log_group"].as_str().unwrap()),
    ] {
        assert!(text.contains(&format!("{key} = \"{value}\"")), "{key} = {value:?} missing from:\n{text}");
    }
    for line in ["threshold = 1175", "idle_after = \"7m\"", "left_up_after = \"8h\"", "left_up_stop = false", "efs = \"fs-"] {
        assert!(text.contains(line), "the original's watchdog and volume: {line} missing from:\n{text}");
    }
    let config = world.dir.join("original.toml");
    std::fs::write(&config, &text).unwrap();
    let (code, out, err) = check_live(&config);
    assert_eq!(code, 0, "check accepts it, and so does AWS:\n{out}\n{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_containerd")).args(["config", "from-stack", "no-such-stack", "--region", common::world::REGION]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("DescribeStacks") && err.contains("no-such-stack"), "a stack that is not there is named: {err}");
}
