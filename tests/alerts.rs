//! Alerts off the hot path: SNS being slow or failing, or thousands of problems at once,
//! never hold up a wake, another topic, or a shutdown.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::proxy::{Deny, Faults, Proxied};
use common::world::Ecs;
use common::{eventually, Daemon, LeafOptions, World};

const WAIT: Duration = Duration::from_secs(60);

/// The unit's `TimeoutStopSec`: systemd kills the daemon after this.
const TIMEOUT_STOP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_failing_topic_holds_up_no_other_topic_and_gets_its_alert_once_it_recovers() {
    let world = World::new().await;
    let group = world.log_group().await;
    let blocked = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "blocked", ..LeafOptions::default() }).await;
    let fine = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "fine", ..LeafOptions::default() }).await;
    let faulty = Proxied::start().await;
    // Every Publish to the first leaf's topic is throttled, as SNS does to a topic over
    // its quota; the other topic answers.
    let topic = Deny { service: "sns".into(), contains: vec!["Publish".into(), blocked.topic_arn.replace(':', "%3A")] };
    faulty.set(&Faults { throttle_matching: vec![topic], ..Faults::default() });
    let daemon = faulty.daemon(&world.config(&[&blocked, &fine], ""), &[]);
    daemon.wait_for_log(&["adopting", &fine.name], WAIT).await;

    world.query_now(&blocked).await;
    world.query_now(&fine).await;
    eventually("both leafs woken", WAIT, || async { (world.desired(&blocked).await == 1 && world.desired(&fine).await == 1).then_some(()) }).await;
    let got = eventually("the other topic's alert", WAIT, || async { Some(world.alerts(&fine).await).filter(|a| !a.is_empty()) }).await;
    assert!(got[0].subject.contains("starting"), "{got:?}");
    daemon.passes(2).await;
    let status = daemon.status().await;
    assert_eq!(status["outbox"]["queued"], 1, "the blocked topic's alert waits in the outbox: {}", status["outbox"]);
    assert!(world.alerts(&blocked).await.is_empty());

    faulty.set(&Faults::default());
    let alerts = world.settled_alerts(&daemon, &blocked, 1).await;
    assert_eq!(alerts.len(), 1, "delivered once the topic recovers, once: {alerts:?}");
    assert!(alerts[0].subject.contains("starting"), "{alerts:?}");
    assert_eq!(world.alerts(&fine).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_five_thousand_missing_asgs_make_one_digest_while_a_wake_is_served_and_sigterm_is_prompt() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    // A second leaf's topic and queue stand in for the operator's daemon-wide topic.
    let everything = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let path = world.config(&[&leaf], &format!("alert_topic_arn = \"{}\"", everything.topic_arn));
    // 5,000 leafs whose ASGs do not exist (a config pasted from another account, say).
    let apex = leaf.domain.split_once('.').unwrap().1;
    let mut text = std::fs::read_to_string(&path).unwrap();
    for i in 0..5_000 {
        let _ = write!(
            text,
            "\n[[leaf]]\nname = \"gone{i}\"\ndomain = \"gone{i}.{apex}\"\nhosted_zone_id = \"{}\"\nasg = \"gone-{i}-{}\"\nquery_log_group = \"{}\"\n[leaf.watchdog]\nthreshold = 1175\n",
            leaf.zone_id, leaf.name, leaf.log_group
        );
    }
    std::fs::write(&path, text).unwrap();
    let mut daemon = Daemon::start(&path);
    let digest = eventually("the digest on the daemon-wide topic", WAIT, || async {
        world.alerts(&everything).await.into_iter().find(|a| a.subject.contains("5000 leafs need attention"))
    })
    .await;
    assert!(digest.message.contains("gone0") && digest.message.contains("more"), "names the leafs: {}", digest.message);

    // A player arrives while the problems are still being reported.
    let before = daemon.status().await["workers"]["reconcile"]["iteration"].as_u64().unwrap();
    world.query_now(&leaf).await;
    eventually("ASG desired 1", WAIT, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let after = daemon.status().await["workers"]["reconcile"]["iteration"].as_u64().unwrap();
    println!("reliability: problems=5000 reconcile_passes_to_wake={}", after - before);
    assert!(after - before <= 3, "woken within the pass after the tail read the query, not behind the alerts ({} passes)", after - before);

    let alerts = world.settled_alerts(&daemon, &everything, 2).await;
    let subjects: Vec<&str> = alerts.iter().map(|a| a.subject.as_str()).collect();
    assert_eq!(alerts.len(), 2, "one digest and the starting alert, not 5,000 alerts: {subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("starting")), "{subjects:?}");

    let (code, took) = daemon.stop_timed();
    println!("reliability: problems=5000 sigterm_exit_ms={}", took.as_millis());
    assert_eq!(code, Some(0), "a clean exit on SIGTERM");
    assert!(took < TIMEOUT_STOP, "exits before systemd would kill it ({took:?})");
}
