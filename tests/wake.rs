//! The wake path end to end: real daemon, real SDK, emulated AWS.

mod common;

use std::time::Duration;

use common::world::Ecs;
use common::{eventually, now_ms, Daemon, LeafOptions, World};

const WAKE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_query_wakes_a_sleeping_leaf_and_it_goes_back_to_sleep_at_zero() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let daemon = Daemon::start(&world.config(&[&leaf], ""));

    world.query_now(&leaf).await;

    eventually("ASG desired 1", WAKE, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let ip = eventually("an InService instance", WAKE, || async { world.instance_ip(&leaf).await }).await;
    eventually("A record at the instance's IP", WAKE, || async { (world.record(&leaf).await == Some((ip.clone(), 1))).then_some(()) }).await;
    eventually("ECS desired 1", WAKE, || async { (world.service_desired(&leaf).await == 1).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert_eq!(alerts.len(), 1, "exactly one alert: {alerts:?}");
    assert!(alerts[0].subject.contains("starting"), "{alerts:?}");
    assert!(alerts[0].message.contains(&leaf.domain) && alerts[0].message.contains(&ip), "says where to connect: {alerts:?}");
    assert!(alerts[0].message.contains("DNS query"), "says why: {alerts:?}");

    world.set_desired(&leaf, 0).await;

    eventually("A record back at 0.0.0.0", WAKE, || async { (world.record(&leaf).await == Some(("0.0.0.0".into(), 1))).then_some(()) }).await;
    eventually("ECS desired 0", WAKE, || async { (world.service_desired(&leaf).await == 0).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert_eq!(alerts.len(), 2, "one stopped alert after the starting one: {alerts:?}");
    assert!(alerts[1].subject.contains("stopped"), "{alerts:?}");
    assert_eq!(world.desired(&leaf).await, 0, "nothing woke it again");
}

#[tokio::test(flavor = "multi_thread")]
async fn aaaa_srv_and_other_leafs_queries_do_not_wake_a_leaf() {
    let world = World::new().await;
    let group = world.log_group().await;
    let quiet = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "mc", ..LeafOptions::default() }).await;
    // Its name ends like the quiet leaf's: `x-mc-....example.com` must not wake `mc-....`.
    let other = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "x-mc", ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config(&[&quiet, &other], ""));

    let t = now_ms();
    world.query(&quiet, &quiet.domain, "AAAA", t).await;
    world.query(&quiet, &format!("_minecraft._tcp.{}", quiet.domain), "SRV", t).await;
    world.query(&quiet, &format!("_tcp.{}", quiet.domain), "A", t).await;
    world.query(&quiet, &format!("www.{}", quiet.domain), "A", t).await;
    world.query(&other, &other.domain, "A", t + 1).await;

    // The other leaf waking proves the daemon read every one of these lines.
    eventually("the other leaf to wake", WAKE, || async { (world.desired(&other).await == 1).then_some(()) }).await;
    daemon.quiet().await;
    assert_eq!(world.desired(&quiet).await, 0, "AAAA, SRV, _tcp and subdomain queries must not wake a leaf");
    assert!(world.alerts(&quiet).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_event_older_than_the_newest_seen_still_wakes() {
    let world = World::new().await;
    let group = world.log_group().await;
    let first = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "first", ..LeafOptions::default() }).await;
    let late = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "late", ..LeafOptions::default() }).await;
    let _daemon = Daemon::start(&world.config(&[&first, &late], ""));

    let now = now_ms();
    world.query(&first, &first.domain, "A", now).await;
    eventually("the first leaf to wake", WAKE, || async { (world.desired(&first).await == 1).then_some(()) }).await;

    // Delivered now, but stamped 40 s before the newest line the daemon has seen, from
    // another edge location's stream: a cursor on the newest timestamp would lose it.
    world.put_line(&group, "IAD89", now - 40_000, &common::query_line(now - 40_000, &late.zone_id, &late.domain, "A")).await;
    eventually("the late query to wake its leaf", WAKE, || async { (world.desired(&late).await == 1).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_service_is_never_given_a_desired_count() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::Daemon, ..LeafOptions::default() }).await;
    let before = world.service_desired(&leaf).await;
    let daemon = Daemon::start(&world.config(&[&leaf], ""));

    world.query_now(&leaf).await;
    let ip = eventually("an InService instance", WAKE, || async { world.instance_ip(&leaf).await }).await;
    eventually("A record at the instance", WAKE, || async { (world.record(&leaf).await == Some((ip.clone(), 1))).then_some(()) }).await;
    assert_eq!(world.settled_alerts(&daemon, &leaf, 1).await.len(), 1);
    assert_eq!(world.service_desired(&leaf).await, before, "a DAEMON service keeps its count");
    assert!(daemon.lines_with(&["scale_service"]).is_empty(), "no ECS action was even attempted");
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_go_to_the_daemon_topic_and_the_leafs_own_topic() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    // A second leaf's topic and queue stand in for the operator's daemon-wide topic.
    let everything = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config(&[&leaf], &format!("alert_topic_arn = \"{}\"", everything.topic_arn)));

    world.query_now(&leaf).await;
    let mine = world.settled_alerts(&daemon, &leaf, 1).await;
    let daemon_wide = world.settled_alerts(&daemon, &everything, 1).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(daemon_wide, mine, "the same alert on both topics");
    assert!(mine[0].message.contains(&leaf.name));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_logs_the_wake_and_changes_nothing() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let daemon = Daemon::start(&world.config(&[&leaf], "dry_run = true"));

    world.query_now(&leaf).await;
    daemon.wait_for_log(&["would set ASG", &leaf.asg, "desired capacity to 1"], WAKE).await;
    daemon.quiet().await;
    assert_eq!(world.desired(&leaf).await, 0);
    assert_eq!(world.record(&leaf).await, Some(("0.0.0.0".into(), 1)));
    assert!(world.alerts(&leaf).await.is_empty());
    assert_eq!(daemon.lines_with(&["would set ASG"]).len(), 1, "logged once, not on every tick");
}
