//! Restarts at awkward moments: nothing lost, nothing done twice.

mod common;

use std::time::Duration;

use common::world::Ecs;
use common::proxy::Proxied;
use common::{eventually, Daemon, LeafOptions, World};

const WAKE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn a_query_logged_while_the_daemon_was_down_wakes_once_at_start() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let config = world.config(&[&leaf], "");
    // Run once so the daemon has a state file and knows the leaf asleep, then stop.
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_log(&["adopting"], WAKE).await;
    assert_eq!(daemon.stop(), Some(0), "SIGTERM exits cleanly");

    world.query_now(&leaf).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let daemon = Daemon::start(&config);

    eventually("ASG desired 1", WAKE, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(daemon.lines_with(&["set ASG"]).len(), 1, "one wake action");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_right_after_reading_a_query_it_still_wakes_exactly_once() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let config = world.config(&[&leaf], "");
    let mut first = Daemon::start(&config);
    first.wait_for_log(&["adopting"], WAKE).await;

    world.query_now(&leaf).await;
    // Kill as soon as the wake request is in the state file, before or after the ASG
    // call: both orders must end with exactly one wake. The whole wake takes tens of
    // milliseconds, so the state file is watched every millisecond, not every 250.
    let state = world.state_file();
    let requested = || {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let leaf_state = &json["leafs"][&leaf.name];
        leaf_state.get("wake").is_some() || leaf_state.get("woken_by").is_some()
    };
    let deadline = std::time::Instant::now() + WAKE;
    while !requested() {
        assert!(std::time::Instant::now() < deadline, "the wake request never reached the state file");
        std::thread::sleep(Duration::from_millis(1));
    }
    first.kill9();
    let woke_before_kill = first.lines_with(&["set ASG"]).len();

    let second = Daemon::start(&config);
    eventually("ASG desired 1", WAKE, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    second.wait_for_log(&["observed 1 leafs {\"up\": 1}"], WAKE).await;
    // An alert whose delivery the kill interrupted may or may not have gone out and is
    // not repeated (never a duplicate, by design; the second run says so in its log).
    // Otherwise exactly one arrives.
    if second.lines_with(&["stopped while publishing"]).is_empty() {
        let alerts = world.settled_alerts(&second, &leaf, 1).await;
        assert_eq!(alerts.len(), 1, "exactly one starting alert across the restart: {alerts:?}");
    } else {
        second.quiet().await;
        let alerts = world.alerts(&leaf).await;
        assert!(alerts.len() <= 1, "no duplicate after an interrupted delivery: {alerts:?}");
    }
    let woke_after = second.lines_with(&["set ASG"]).len();
    assert_eq!(woke_before_kill + woke_after, 1, "the wake was applied by exactly one of the two runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_while_the_leaf_is_up_sends_no_second_alert() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let config = world.config(&[&leaf], "");
    let mut daemon = Daemon::start(&config);
    world.query_now(&leaf).await;
    assert_eq!(world.settled_alerts(&daemon, &leaf, 1).await.len(), 1);
    daemon.kill9();

    let daemon = Daemon::start(&config);
    daemon.wait_for_log(&["reconcile", "observed"], WAKE).await;
    daemon.quiet().await;
    assert_eq!(world.alerts(&leaf).await.len(), 1, "no repeat of the starting alert");
    assert_eq!(world.service_desired(&leaf).await, 1);

    world.set_desired(&leaf, 0).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert_eq!(alerts.len(), 2, "the stop is still announced once: {alerts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_the_stale_records_of_a_whole_zone_are_corrected_with_one_read() {
    // Four sleeping leafs in one hosted zone, whose records still point at an instance
    // that stopped while the daemon was down.
    let world = World::new().await;
    let log_group = world.log_group().await;
    let mut leafs = Vec::new();
    for _ in 0..4 {
        leafs.push(world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(log_group.clone()), ..LeafOptions::default() }).await);
    }
    let (zone, apex) = (leafs[0].zone_id.clone(), leafs[0].domain.clone());
    for leaf in &mut leafs {
        if leaf.zone_id != zone {
            (leaf.zone_id, leaf.domain) = (zone.clone(), format!("{}.{apex}", leaf.name));
        }
        world.upsert_a(&zone, &leaf.domain, "203.0.113.7").await;
    }

    let proxied = Proxied::start().await;
    let _daemon = proxied.daemon(&world.config(&leafs.iter().collect::<Vec<_>>(), ""), &[]);
    for leaf in &leafs {
        eventually("the record back at the idle IP", WAKE, || async { (world.record(leaf).await == Some(("0.0.0.0".into(), 1))).then_some(()) }).await;
    }
    let count = |operation: &str| proxied.localstack.calls().iter().filter(|c| c.operation == operation).count();
    assert_eq!(count("ListResourceRecordSets"), 1, "one page of the zone holds all four records");
    assert_eq!(count("ChangeResourceRecordSets"), 1, "and one change batch corrects them");
}
