//! Restarts at awkward moments: nothing lost, nothing done twice.

mod common;

use std::time::Duration;

use common::world::Ecs;
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
    let alerts = world.settled_alerts(&leaf, 1).await;
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
    // call: both orders must end with exactly one wake.
    let state = world.state_file();
    eventually("the wake request in the state file", WAKE, || async {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let leaf_state = &json["leafs"][&leaf.name];
        (leaf_state.get("wake").is_some() || leaf_state.get("woken_by").is_some()).then_some(())
    })
    .await;
    first.kill9();
    let woke_before_kill = first.lines_with(&["set ASG"]).len();

    let second = Daemon::start(&config);
    eventually("ASG desired 1", WAKE, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let alerts = world.settled_alerts(&leaf, 1).await;
    assert_eq!(alerts.len(), 1, "exactly one starting alert across the restart: {alerts:?}");
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
    assert_eq!(world.settled_alerts(&leaf, 1).await.len(), 1);
    daemon.kill9();

    let daemon = Daemon::start(&config);
    daemon.wait_for_log(&["reconcile", "observed"], WAKE).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(world.alerts(&leaf).await.len(), 1, "no repeat of the starting alert");
    assert_eq!(world.service_desired(&leaf).await, 1);

    world.set_desired(&leaf, 0).await;
    let alerts = world.settled_alerts(&leaf, 2).await;
    assert_eq!(alerts.len(), 2, "the stop is still announced once: {alerts:?}");
}
