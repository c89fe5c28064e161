//! What an operator sees for each kind of mistake in `leafs.toml`.

use std::path::Path;

use super::*;

const GOOD: &str = r#"
[daemon]
region = "us-west-2"
query_log_group = "/aws/route53/example.com"

[[leaf]]
name = "minecraft"
domain = "mc.example.com"
hosted_zone_id = "Z1"
asg = "mc-asg"
[leaf.watchdog]
threshold = 1175

[[leaf]]
name = "valheim"
domain = "valheim.example.com"
hosted_zone_id = "Z2"
asg = "valheim-asg"
ecs_cluster = "valheim"
ecs_service = "valheim"
[leaf.watchdog]
threshold = 400
idle_after = "10m"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("leafs.toml"), text)
}

/// Replaces the first `from` in GOOD with `to` and expects a refusal.
fn refused(from: &str, to: &str) -> ConfigError {
    assert!(GOOD.contains(from), "test bug: {from:?} not in GOOD");
    load(&GOOD.replacen(from, to, 1)).expect_err("config should be refused")
}

fn line_of(needle: &str, text: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle present") + 1
}

#[test]
fn a_good_file_loads_with_defaults() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.leafs.len(), 2);
    assert_eq!(c.daemon.query_log_region.as_str(), "us-east-1");
    assert_eq!(c.daemon.poll_interval.to_string(), "1s");
    assert_eq!(c.daemon.reconcile_interval.to_string(), "5s");
    let mc = &c.leafs[0];
    assert_eq!(mc.dns_ttl(), 1);
    assert_eq!(mc.idle_ip.to_string(), "0.0.0.0");
    assert_eq!(mc.watchdog.idle_after.get().to_string(), "7m");
    assert_eq!(mc.watchdog.period.to_string(), "1m");
    assert_eq!(mc.watchdog.left_up_after.to_string(), "8h");
    assert!(!mc.watchdog.left_up_stop);
    assert!(mc.ecs().is_none());
    assert_eq!(mc.crash_loop.max_failures(), 1);
    assert_eq!(mc.crash_loop.window.to_string(), "15m");
    assert_eq!(mc.crash_loop.cooldown.to_string(), "30m");
    assert_eq!(c.leafs[1].ecs().map(|(c, s)| (c.as_str(), s.as_str())), Some(("valheim", "valheim")));
}

#[test]
fn the_shipped_example_is_valid() {
    let text = include_str!("../../config/leafs.toml");
    let c = load(text).unwrap();
    assert_eq!(c.leafs[0].name().as_str(), "minecraft");
    assert_eq!(c.leafs[0].alert_topics(&c.daemon).len(), 2);
}

#[test]
fn a_syntax_error_names_its_line() {
    let e = refused("asg = \"mc-asg\"", "asg = \"mc-asg");
    assert_eq!(e.line, Some(line_of("asg = \"mc-asg", GOOD)));
}

#[test]
fn an_unknown_key_is_named() {
    let e = refused("threshold = 1175", "threshold = 1175\nthreshhold = 3");
    assert!(e.message.contains("threshhold"), "{e}");
    assert_eq!(e.line, Some(line_of("threshold = 1175", GOOD) + 1));
}

#[test]
fn a_misspelt_daemon_key_is_named() {
    let e = refused("region = \"us-west-2\"", "regoin = \"us-west-2\"");
    assert!(e.to_string().contains("regoin"), "{e}");
}

#[test]
fn a_missing_required_key_is_named() {
    let e = refused("threshold = 1175\n", "");
    assert_eq!(e.key.as_deref(), Some("leaf[0].watchdog.threshold"), "{e}");
    assert_eq!(e.line, Some(line_of("[leaf.watchdog]", GOOD)), "{e}");
    let e = refused("asg = \"mc-asg\"\n", "");
    assert!(e.to_string().contains("asg"), "{e}");
}

#[test]
fn duplicate_names_and_domains_point_at_the_second() {
    let e = refused("name = \"valheim\"", "name = \"minecraft\"");
    assert_eq!(e.key.as_deref(), Some("leaf[1].name"));
    assert_eq!(e.line, Some(line_of("name = \"valheim\"", GOOD)));
    assert!(e.message.contains("duplicate"), "{e}");
    let e = refused("domain = \"valheim.example.com\"", "domain = \"MC.example.com\"");
    assert_eq!(e.key.as_deref(), Some("leaf[1].domain"));
}

#[test]
fn a_malformed_domain_is_refused_at_its_line() {
    let e = refused("domain = \"mc.example.com\"", "domain = \"mc example.com\"");
    assert_eq!(e.key.as_deref(), Some("leaf[0].domain"));
    assert_eq!(e.line, Some(line_of("domain = \"mc.example.com\"", GOOD)));
}

#[test]
fn a_malformed_arn_is_refused_at_its_line() {
    let e = refused("asg = \"mc-asg\"", "asg = \"mc-asg\"\nalert_topic_arn = \"arn:aws:sns:oops\"");
    assert_eq!(e.key.as_deref(), Some("leaf[0].alert_topic_arn"));
    assert!(e.message.contains("ARN"), "{e}");
}

#[test]
fn a_bad_duration_names_the_nested_key() {
    let e = refused("idle_after = \"10m\"", "idle_after = \"10 minutes\"");
    assert_eq!(e.key.as_deref(), Some("leaf[1].watchdog.idle_after"));
    assert_eq!(e.line, Some(line_of("idle_after = \"10m\"", GOOD)));
    assert!(e.message.contains("invalid duration"), "{e}");
}

#[test]
fn a_negative_threshold_is_refused() {
    let e = refused("threshold = 400", "threshold = -1");
    assert_eq!(e.key.as_deref(), Some("leaf[1].watchdog.threshold"));
    assert_eq!(e.line, Some(line_of("threshold = 400", GOOD)));
}

#[test]
fn half_an_ecs_pair_is_refused() {
    let e = refused("ecs_service = \"valheim\"\n", "");
    assert_eq!(e.key.as_deref(), Some("leaf[1].ecs_cluster"));
}

#[test]
fn a_zero_ttl_is_refused() {
    let e = refused("asg = \"mc-asg\"", "asg = \"mc-asg\"\ndns_ttl = 0");
    assert_eq!(e.key.as_deref(), Some("leaf[0].dns_ttl"));
}

#[test]
fn idle_after_shorter_than_a_period_is_refused() {
    let e = refused("idle_after = \"10m\"", "idle_after = \"30s\"");
    assert!(e.message.contains("shorter than one period"), "{e}");
}

#[test]
fn a_leaf_without_any_log_group_is_refused() {
    let e = refused("query_log_group = \"/aws/route53/example.com\"\n", "");
    assert_eq!(e.key.as_deref(), Some("leaf[0].query_log_group"));
}

#[test]
fn the_message_reads_file_line_key() {
    let e = refused("threshold = 400", "threshold = -1");
    let line = line_of("threshold = 400", GOOD);
    assert!(e.to_string().starts_with(&format!("leafs.toml:{line}: leaf[1].watchdog.threshold: ")), "{e}");
}

#[test]
fn crash_loop_settings_are_read_and_checked() {
    let c = load(&GOOD.replacen("idle_after = \"10m\"", "idle_after = \"10m\"\n[leaf.crash_loop]\nmax_failures = 3\ncooldown = \"1h\"", 1)).unwrap();
    assert_eq!(c.leafs[1].crash_loop.max_failures(), 3);
    assert_eq!(c.leafs[1].crash_loop.cooldown.to_string(), "1h");
    let e = refused("idle_after = \"10m\"", "idle_after = \"10m\"\n[leaf.crash_loop]\nmax_failures = 0");
    assert_eq!(e.key.as_deref(), Some("leaf[1].crash_loop.max_failures"));
}

#[test]
fn a_period_cloudwatch_does_not_offer_is_refused() {
    for bad in ["90s", "45s", "500ms"] {
        let e = refused("idle_after = \"10m\"", &format!("idle_after = \"10m\"\nperiod = \"{bad}\""));
        assert_eq!(e.key.as_deref(), Some("leaf[1].watchdog.period"), "{bad}: {e}");
    }
    assert!(load(&GOOD.replacen("idle_after = \"10m\"", "idle_after = \"10m\"\nperiod = \"5m\"", 1)).is_ok());
}

#[test]
fn regression_a_bad_period_is_reported_on_its_own_line() {
    let text = GOOD.replacen("idle_after = \"10m\"", "idle_after = \"10m\"\nperiod = \"90s\"", 1);
    let e = load(&text).unwrap_err();
    assert_eq!(e.line, Some(line_of("period = \"90s\"", &text)), "{e}");
}

#[test]
fn regression_two_leafs_may_not_share_an_asg_or_a_service() {
    let e = refused("asg = \"valheim-asg\"", "asg = \"mc-asg\"");
    assert_eq!((e.key.as_deref(), e.line), (Some("leaf[1].asg"), Some(line_of("asg = \"valheim-asg\"", GOOD))), "{e}");
    assert!(e.message.contains("leaf[0]"), "{e}");
    let text = GOOD.replacen("asg = \"mc-asg\"", "asg = \"mc-asg\"\necs_cluster = \"valheim\"\necs_service = \"valheim\"", 1);
    let e = load(&text).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("leaf[1].ecs_service"), "{e}");
    assert!(e.message.contains("valheim/valheim"), "{e}");
}

#[test]
fn regression_a_zero_left_up_guard_is_refused() {
    for stop in ["true", "false"] {
        let e = refused("idle_after = \"10m\"", &format!("idle_after = \"10m\"\nleft_up_after = \"0s\"\nleft_up_stop = {stop}"));
        assert_eq!(e.key.as_deref(), Some("leaf[1].watchdog.left_up_after"), "{e}");
        assert!(e.line.is_some(), "{e}");
    }
}

#[test]
fn regression_control_characters_in_names_are_refused() {
    for bad in ["mc\\u0007asg", "mc\\u001b[31masg", "mc\\tasg"] {
        let e = refused("asg = \"mc-asg\"", &format!("asg = \"{bad}\""));
        assert_eq!((e.key.as_deref(), e.line), (Some("leaf[0].asg"), Some(line_of("asg = \"mc-asg\"", GOOD))), "{bad}: {e}");
    }
}

#[test]
fn daemon_intervals_are_refused_at_their_line() {
    let e = refused("region = \"us-west-2\"", "region = \"us-west-2\"\npoll_interval = \"10ms\"");
    assert_eq!((e.key.as_deref(), e.line), (Some("daemon.poll_interval"), Some(line_of("region", GOOD) + 1)), "{e}");
    let e = refused("region = \"us-west-2\"", "region = \"us-west-2\"\nquery_log_calls_per_second = 30");
    assert_eq!(e.key.as_deref(), Some("daemon.query_log_calls_per_second"), "{e}");
}

#[test]
fn a_listener_other_hosts_can_reach_is_a_warning() {
    assert!(load(GOOD).unwrap().warnings().is_empty());
    let c = load(&GOOD.replacen("region = \"us-west-2\"", "region = \"us-west-2\"\nlisten = \"0.0.0.0:9477\"", 1)).unwrap();
    assert!(c.warnings().iter().any(|w| w.contains("daemon.listen") && w.contains("0.0.0.0:9477")), "{:?}", c.warnings());
}

#[test]
fn every_shape_loads_with_its_defaults() {
    let c = load(GOOD).unwrap();
    let mc = &c.leafs[0];
    assert_eq!((mc.awake_instances(), mc.awake_tasks(), mc.dns, mc.ready_targets()), (1, 1, DnsMode::Instance, 1));
    assert_eq!((mc.ready_timeout.to_string(), *mc.watchdog.traffic, mc.env()), ("10m".to_owned(), TrafficSource::Instances, ""));
    let fargate = GOOD.replacen(
        "asg = \"valheim-asg\"",
        "env = \"dev\"\nawake_tasks = 8\ndns = \"none\"\ntarget_group_arns = [\"arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/v/1\"]\nready_targets = 2\nready_timeout = \"5m\"",
        1,
    )
    .replacen("idle_after = \"10m\"", "idle_after = \"10m\"\ntraffic = \"load_balancer\"\nload_balancer = \"net/v/50dc6c495c0c9188\"", 1);
    let c = load(&fargate).unwrap();
    let v = &c.leafs[1];
    assert!(v.asg().is_none());
    assert_eq!((v.awake_tasks(), v.dns, v.ready_targets(), v.env()), (8, DnsMode::None, 2, "dev"));
    assert_eq!(v.watchdog.load_balancer.as_ref().map(LoadBalancerId::as_str), Some("net/v/50dc6c495c0c9188"));
}

#[test]
fn a_shape_that_cannot_work_names_its_key() {
    let e = refused("asg = \"mc-asg\"\n", "");
    assert_eq!(e.key.as_deref(), Some("leaf[0].asg"), "nothing to wake: {e}");
    let e = refused("asg = \"valheim-asg\"\n", "");
    assert_eq!(e.key.as_deref(), Some("leaf[1].watchdog.traffic"), "NetworkIn of which ASG? {e}");
    assert!(e.to_string().contains("traffic = \"service\""), "says what to use instead: {e}");
    let e = refused("asg = \"mc-asg\"\n", "ecs_cluster = \"mc\"\necs_service = \"mc\"\nawake_instances = 2\n");
    assert_eq!((e.key.as_deref(), e.line), (Some("leaf[0].awake_instances"), Some(line_of("asg = \"mc-asg\"", GOOD) + 2)), "{e}");
    let e = refused("threshold = 1175", "threshold = 1175\ntraffic = \"load_balancer\"");
    assert_eq!(e.key.as_deref(), Some("leaf[0].watchdog.traffic"), "{e}");
    let e = refused("threshold = 1175", "threshold = 1175\ntraffic = \"load_balancer\"\nload_balancer = \"my-nlb\"");
    assert!(e.to_string().contains("net/NAME/ID"), "{e}");
    let e = refused("asg = \"mc-asg\"", "asg = \"mc-asg\"\ndns = \"alias\"");
    assert_eq!(e.line, Some(line_of("asg = \"mc-asg\"", GOOD) + 1), "{e}");
}
