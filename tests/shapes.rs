//! Every shape sleeps and wakes: a Fargate service without an ASG, seed 002's 2
//! instances and 8 tasks behind an NLB, seed 003's autoscaled service behind an alias
//! record. Real daemon, real SDK, emulated AWS (the emulator plays ECS's scheduler).

mod common;

use std::time::Duration;

use common::proxy::{Deny, Faults, Proxied};
use common::world::Leaf;
use common::{eventually, feed, now_ms, Daemon, World, FAST_WATCHDOG, PERIOD_MS};

const WAKE: Duration = Duration::from_secs(40);

/// Feeds background chatter (20 B/s) until the leaf's service is at 0.
async fn idle_until_asleep(world: &World, leaf: &Leaf) {
    let quiet_from = now_ms().div_euclid(PERIOD_MS) * PERIOD_MS;
    let stopped = feed(world, leaf, |_| 100.0, Duration::from_secs(120), || async { (world.service_desired(leaf).await == 0).then_some(()) }).await;
    assert!(stopped.is_some(), "the idle leaf was put to sleep within two minutes of {quiet_from}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fargate_service_wakes_on_a_query_points_dns_at_its_task_and_sleeps_when_idle() {
    let world = World::new().await;
    let leaf = world.fargate_leaf("fargate").await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", FAST_WATCHDOG));
    daemon.wait_for_log(&["adopting", &leaf.name], WAKE).await;

    world.query_now(&leaf).await;

    eventually("service desired 1", WAKE, || async { (world.service_desired(&leaf).await == 1).then_some(()) }).await;
    let ip = eventually("a running task with a public IP", WAKE, || async { world.task_ips(&leaf).await.into_iter().next() }).await;
    eventually("the A record at the task's IP", WAKE, || async { (world.record_values(&leaf).await == [ip.clone()]).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].subject.contains("starting") && alerts[0].message.contains(&ip), "says where to connect: {alerts:?}");

    idle_until_asleep(&world, &leaf).await;
    eventually("the A record back at 0.0.0.0", WAKE, || async { (world.record_values(&leaf).await == ["0.0.0.0"]).then_some(()) }).await;
    eventually("no task left", WAKE, || async { world.task_ips(&leaf).await.is_empty().then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert_eq!(alerts.len(), 2, "starting, then one idle alert: {alerts:?}");
    assert!(alerts[1].subject.contains("idle"), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_002_wakes_two_instances_and_eight_tasks_and_is_ready_only_with_healthy_targets() {
    let world = World::new().await;
    let (leaf, nlb) = world.seed_002_leaf().await;
    world.set_health(&nlb.target_group, "initial").await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", FAST_WATCHDOG));
    daemon.wait_for_log(&["adopting", &leaf.name], WAKE).await;

    world.query_now(&leaf).await;

    eventually("ASG desired 2 and service desired 8", WAKE, || async {
        (world.asg_size(&leaf).await.2 == 2 && world.service_desired(&leaf).await == 8).then_some(())
    })
    .await;
    let ips = eventually("two InService instances", WAKE, || async { Some(world.instance_ips(&leaf).await).filter(|ips| ips.len() == 2) }).await;
    eventually("both instances in the A record", WAKE, || async { (world.record_values(&leaf).await == ips).then_some(()) }).await;
    eventually("/status counting the unhealthy targets", WAKE, || async {
        let status = daemon.status().await;
        let view = status["leafs"].as_array()?.iter().find(|l| l["name"] == leaf.name.as_str())?.clone();
        (view["healthy_targets"] == 0 && view["phase"] == "up").then_some(())
    })
    .await;
    daemon.quiet().await;
    assert!(world.alerts(&leaf).await.is_empty(), "no 'starting' while the targets still fail their health checks");

    world.set_health(&nlb.target_group, "healthy").await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].subject.contains("starting"), "{alerts:?}");
    assert!(ips.iter().all(|ip| alerts[0].message.contains(ip.as_str())), "names both IPs: {}", alerts[0].message);

    idle_until_asleep(&world, &leaf).await;
    eventually("ASG at 0", WAKE, || async { (world.asg_size(&leaf).await == (0, 2, 0)).then_some(()) }).await;
    eventually("the A record back at 0.0.0.0", WAKE, || async { (world.record_values(&leaf).await == ["0.0.0.0"]).then_some(()) }).await;
    assert_eq!(world.settled_alerts(&daemon, &leaf, 2).await.len(), 2, "one idle alert");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_003_asleep_nothing_scales_it_out_a_wake_restores_its_policy_bounds_and_its_alias_is_never_touched() {
    let world = World::new().await;
    let (leaf, _nlb) = world.seed_003_leaf().await;
    let alias = world.record_set(&leaf).await;
    assert!(alias.as_ref().is_some_and(|r| r.alias_target().is_some()), "the seed's alias record: {alias:?}");
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", FAST_WATCHDOG));

    eventually("the asleep leaf's scaling parked at 0/0", WAKE, || async { (world.scalable_bounds(&leaf).await == Some((0, 0))).then_some(()) }).await;
    daemon.passes(1).await;
    let status = daemon.status().await;
    let view = status["leafs"].as_array().unwrap().iter().find(|l| l["name"] == leaf.name.as_str()).unwrap().clone();
    assert_eq!(view["scaling"]["parked"]["service"], serde_json::json!({"min": 1, "max": 10}), "/status shows the bounds it will restore: {view}");
    assert!(world.alerts(&leaf).await.is_empty(), "parking is no news");

    world.query_now(&leaf).await;

    eventually("min 1 / max 10 restored and 1 task wanted", WAKE, || async {
        (world.scalable_bounds(&leaf).await == Some((1, 10)) && world.service_desired(&leaf).await == 1).then_some(())
    })
    .await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert!(alerts[0].subject.contains("starting") && alerts[0].message.contains("load balancer"), "{alerts:?}");

    // The policy scales out while awake: the daemon leaves its count alone.
    world.ecs.update_service().cluster(&leaf.ecs.as_ref().unwrap().0).service(&leaf.ecs.as_ref().unwrap().1).desired_count(4).send().await.unwrap();
    daemon.passes(2).await;
    assert_eq!(world.service_desired(&leaf).await, 4, "while awake the policy decides the count");

    idle_until_asleep(&world, &leaf).await;
    eventually("parked again", WAKE, || async { (world.scalable_bounds(&leaf).await == Some((0, 0))).then_some(()) }).await;
    assert_eq!(world.settled_alerts(&daemon, &leaf, 2).await.len(), 2, "starting, idle");
    assert_eq!(world.record_set(&leaf).await, alias, "the alias record is exactly as the operator made it");
    assert!(daemon.lines_with(&["point_record"]).is_empty(), "no record write was even tried");
}

/// A proxy rule refusing the service's desired-count update to `count` (only an
/// UpdateService body holds a desired count and the service's name).
fn deny_count(leaf: &Leaf, count: i32) -> Faults {
    let (_, service) = leaf.ecs.as_ref().unwrap();
    Faults { deny: vec![Deny { service: "ecs".into(), contains: vec![format!("\"desiredCount\":{count}"), format!("\"service\":\"{service}\"")] }], ..Faults::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_the_calls_of_a_wake_and_of_a_sleep_the_next_run_finishes_each_with_one_alert() {
    let world = World::new().await;
    let (leaf, _nlb) = world.seed_003_leaf().await;
    let config = world.config_with(&[&leaf], "", FAST_WATCHDOG);
    let proxied = Proxied::start().await;

    // Wake: the bounds are restored, then the count is refused; killed there.
    proxied.set(&deny_count(&leaf, 1));
    let mut first = proxied.daemon(&config, &[]);
    eventually("parked", WAKE, || async { (world.scalable_bounds(&leaf).await == Some((0, 0))).then_some(()) }).await;
    world.query_now(&leaf).await;
    eventually("bounds restored before the count", WAKE, || async { (world.scalable_bounds(&leaf).await == Some((1, 10))).then_some(()) }).await;
    first.wait_for_log(&["action failed", "wake"], WAKE).await;
    first.kill9();
    assert_eq!(world.service_desired(&leaf).await, 0, "killed between the two calls");

    proxied.set(&Faults::default());
    let second = proxied.daemon(&config, &[]);
    eventually("the wake finished", WAKE, || async { (world.service_desired(&leaf).await == 1).then_some(()) }).await;
    // The refusal itself was a problem alert (access denied); the transitions are counted apart.
    let transitions = |alerts: Vec<common::world::Alert>| alerts.into_iter().filter(|a| !a.subject.contains("needs attention")).collect::<Vec<_>>();
    let alerts = transitions(world.settled_alerts(&second, &leaf, 2).await);
    assert_eq!(alerts.len(), 1, "one starting alert: {alerts:?}");

    // Sleep: the bounds are parked, then the count is refused; killed there.
    proxied.set(&deny_count(&leaf, 0));
    let mut second = second;
    let parked = feed(&world, &leaf, |_| 100.0, Duration::from_secs(120), || async { (world.scalable_bounds(&leaf).await == Some((0, 0))).then_some(()) }).await;
    assert!(parked.is_some(), "the idle leaf's bounds were parked");
    second.wait_for_log(&["action failed", "idle"], WAKE).await;
    second.kill9();
    assert_eq!(world.service_desired(&leaf).await, 1, "killed between the two calls");

    proxied.set(&Faults::default());
    let third = proxied.daemon(&config, &[]);
    eventually("the sleep finished", WAKE, || async { (world.service_desired(&leaf).await == 0).then_some(()) }).await;
    let alerts = transitions(world.settled_alerts(&third, &leaf, 3).await);
    assert_eq!(alerts.len(), 2, "starting, then one idle alert, however many runs it took: {alerts:?}");
    assert!(alerts[1].subject.contains("idle"), "{alerts:?}");

    // The recorded bounds survived both kills: the next wake restores them.
    world.query_now(&leaf).await;
    eventually("min 1 / max 10 again", WAKE, || async { (world.scalable_bounds(&leaf).await == Some((1, 10))).then_some(()) }).await;
}
