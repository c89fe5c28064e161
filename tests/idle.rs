//! Scale-down with compressed time: 5-second periods, idle after 20 seconds. The test
//! plays EC2's part, pushing NetworkIn datapoints into the CloudWatch the daemon reads.

mod common;

use std::time::Duration;

use common::world::{Ecs, Leaf};
use common::{eventually, feed, now_ms, Daemon, LeafOptions, World, PERIOD_MS};

const WAKE: Duration = Duration::from_secs(30);
const WATCHDOG: &str = common::FAST_WATCHDOG;

async fn woken(world: &World, daemon: &Daemon, leaf: &Leaf) {
    world.query_now(leaf).await;
    eventually("ASG desired 1", WAKE, || async { (world.desired(leaf).await == 1).then_some(()) }).await;
    assert_eq!(world.settled_alerts(daemon, leaf, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaf_nobody_plays_on_goes_back_to_zero_with_one_alert() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", WATCHDOG));
    woken(&world, &daemon, &leaf).await;

    // Ten seconds of players (10 kB/s), then 20 B/s of background chatter.
    let busy_until = now_ms().div_euclid(PERIOD_MS) * PERIOD_MS + 10_000;
    let stopped_at = feed(&world, &leaf, |p| if p < busy_until { 50_000.0 } else { 100.0 }, Duration::from_secs(120), || async {
        (world.desired(&leaf).await == 0).then(now_ms)
    })
    .await
    .expect("the idle leaf was scaled to 0 within two minutes");
    println!("measured: last busy period ended -> desired 0 in {:.1} s (idle_after 20 s, period 5 s)", common::secs(stopped_at - busy_until));
    assert!(stopped_at - busy_until >= 20_000, "not before idle_after: {} ms", stopped_at - busy_until);

    eventually("A record back at the idle IP", WAKE, || async { (world.record(&leaf).await == Some(("0.0.0.0".into(), 1))).then_some(()) }).await;
    eventually("ECS desired 0", WAKE, || async { (world.service_desired(&leaf).await == 0).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert_eq!(alerts.len(), 2, "starting, then one idle alert (no separate 'stopped'): {alerts:?}");
    assert!(alerts[1].subject.contains("idle"), "{alerts:?}");
    assert!(alerts[1].message.contains("idle for 20s") && alerts[1].message.contains("20 B/s"), "says why, with figures: {}", alerts[1].message);
    assert_eq!(daemon.lines_with(&["set ASG", "desired capacity to 0"]).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaf_with_players_stays_up() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", WATCHDOG));
    woken(&world, &daemon, &leaf).await;

    // 10 kB/s, well above 1175 B/s, for twice idle_after plus the grace periods.
    let stopped = feed(&world, &leaf, |_| 50_000.0, Duration::from_secs(45), || async { (world.desired(&leaf).await == 0).then_some(()) }).await;
    assert!(stopped.is_none(), "a busy leaf must not be scaled down");
    assert_eq!(world.alerts(&leaf).await.len(), 1);
    assert!(!daemon.lines_with(&["watchdog", "Busy"]).is_empty(), "the watchdog did judge it (and found it busy)");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_queries_keep_a_quiet_leaf_up() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", WATCHDOG));
    woken(&world, &daemon, &leaf).await;

    // No traffic to speak of, but a player's resolver asks every few seconds.
    let mut last_query = 0;
    let stopped = feed(&world, &leaf, |_| 0.0, Duration::from_secs(40), || {
        let world = &world;
        let leaf = &leaf;
        let due = now_ms() - last_query > 4_000;
        if due {
            last_query = now_ms();
        }
        async move {
            if due {
                world.query_now(leaf).await;
            }
            (world.desired(leaf).await == 0).then_some(())
        }
    })
    .await;
    assert!(stopped.is_none(), "DNS activity counts as activity whatever the bytes");
    assert!(!daemon.lines_with(&["watchdog", "DnsActivity"]).is_empty(), "the watchdog judged it and saw the queries");
}
