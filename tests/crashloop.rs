//! The crash-loop breaker against the emulators: a crashing container stops the leaf
//! once, DNS queries do not restart it during the cooldown, and do after.

mod common;

use std::time::Duration;

use common::{eventually, Daemon, LeafOptions, World};

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_container_is_stopped_once_and_not_restarted_until_the_cooldown_ends() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", "[leaf.crash_loop]\ncooldown = \"20s\""));
    world.query_now(&leaf).await;
    eventually("the leaf to be up", WAIT, || async { world.instance_ip(&leaf).await }).await;
    assert_eq!(world.settled_alerts(&daemon, &leaf, 1).await.len(), 1);

    let task = world.crash_task(&leaf, "EssentialContainerExited", 1).await;

    eventually("ASG desired 0", WAIT, || async { (world.desired(&leaf).await == 0).then_some(()) }).await;
    eventually("A record at the idle IP", WAIT, || async { (world.record(&leaf).await == Some(("0.0.0.0".into(), 1))).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert_eq!(alerts.len(), 2, "one crash-loop alert, no separate 'stopped': {alerts:?}");
    let crash = &alerts[1].message;
    for needle in [task.as_str(), "EssentialContainerExited", "exit code 1", "game server crashed"] {
        assert!(crash.contains(needle), "the alert names {needle}: {crash}");
    }

    // A player during the cooldown: the original would start the crashing container again.
    world.query_now(&leaf).await;
    daemon.wait_for_log(&["does not wake the leaf", "quarantined"], WAIT).await;
    daemon.quiet().await;
    assert_eq!(world.desired(&leaf).await, 0, "quarantined");

    daemon.wait_for_log(&["quarantine over"], WAIT).await;
    world.query_now(&leaf).await;
    eventually("ASG desired 1 after the cooldown", WAIT, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 3).await;
    assert_eq!(alerts.len(), 3, "starting, crash loop, starting: {alerts:?}");
    assert_eq!(daemon.lines_with(&["task failed"]).len(), 1, "the crashed task was counted once");
}
