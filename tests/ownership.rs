//! One owner per state file: a second daemon started by hand next to the service, or a
//! state file written by a newer version, is refused at start with exit 2 and a message
//! that says what to do; nothing is acted on and nothing is overwritten.

mod common;

use std::time::Duration;

use common::world::Ecs;
use common::{eventually, Daemon, LeafOptions, World};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_second_daemon_on_the_same_state_file_exits_2_naming_the_holder() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let first = Daemon::start(&world.config(&[&leaf], ""));
    first.wait_for_log(&["adopting", &leaf.name], WAIT).await;

    // The same state file, its own HTTP port: what `containerd run` by hand would be.
    let mut second = Daemon::start(&world.config(&[&leaf], ""));
    assert_eq!(second.wait_exit(WAIT), Some(2), "refused with exit 2");
    let said = second.lines_with(&["state"]).join("\n");
    assert!(said.contains(&world.state_file().display().to_string()), "names the state file: {said}");
    assert!(said.contains(&format!("pid {}", first.pid())), "names the daemon holding it: {said}");

    // Only the first one acts: one wake, one alert.
    world.query_now(&leaf).await;
    eventually("ASG desired 1", WAIT, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let alerts = world.settled_alerts(&first, &leaf, 1).await;
    assert_eq!(alerts.len(), 1, "one starting alert: {alerts:?}");
    assert_eq!(first.lines_with(&["set ASG", "desired capacity to 1"]).len(), 1);
    assert!(second.lines_with(&["set ASG"]).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_state_file_from_a_newer_version_is_refused_and_left_untouched() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let text = r#"{"version": 999, "leafs": {}, "written_by": "container-manager 9.0", "future_field": [1, 2, 3]}"#;
    std::fs::write(world.state_file(), text).unwrap();
    world.query_now(&leaf).await;

    let mut daemon = Daemon::start(&world.config(&[&leaf], ""));
    assert_eq!(daemon.wait_exit(WAIT), Some(2), "refused with exit 2");
    let said = daemon.logs().join("\n");
    assert!(said.contains("999") && said.contains("newer"), "says the file is from a newer version: {said}");
    assert_eq!(std::fs::read_to_string(world.state_file()).unwrap(), text, "the file is left exactly as it was");
    assert_eq!(world.desired(&leaf).await, 0, "nothing was acted on");
}
