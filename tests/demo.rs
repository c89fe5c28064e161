//! The README's demo: one leaf on the local emulators wakes on a simulated DNS query,
//! gets its DNS record, and goes back to sleep. `tests/demo.sh` runs it with its
//! narration visible; the test suite runs it too, so the demo cannot silently rot.

mod common;

use std::time::Duration;

use common::{eventually, feed, now_ms, Daemon, LeafOptions, World, FAST_WATCHDOG};

const STEP: Duration = Duration::from_secs(60);

fn say(text: &str) {
    println!("\n>>> {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_a_leaf_wakes_on_a_dns_query_gets_its_record_and_sleeps_again() {
    let world = World::new().await;
    say("Provisioning a demo leaf in the emulators, as the CDK stack would: a launch template, an ASG (min 0, max 1, desired 0), a hosted zone with its A record at 0.0.0.0, a Route53 query-log group, an ECS cluster and REPLICA service, and an SNS topic with an SQS queue to read the alerts.");
    let leaf = world.leaf(LeafOptions { prefix: "minecraft", ..LeafOptions::default() }).await;
    let config = world.config_with(&[&leaf], "", FAST_WATCHDOG);
    say(&format!("The daemon's config ({}):\n{}", config.display(), std::fs::read_to_string(&config).unwrap()));
    say("Starting: containerd --config leafs.toml");
    let daemon = Daemon::start(&config);
    daemon.wait_for_log(&["adopting"], STEP).await;
    say(&format!(
        "The leaf sleeps: ASG desired {}, {} A {}. A player now looks up {}: Route53 writes a query-log line.",
        world.desired(&leaf).await,
        leaf.domain,
        world.record(&leaf).await.map(|r| r.0).unwrap_or_default(),
        leaf.domain
    ));
    world.query_now(&leaf).await;

    eventually("ASG desired 1", STEP, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let ip = eventually("an InService instance", STEP, || async { world.instance_ip(&leaf).await }).await;
    eventually("the A record", STEP, || async { (world.record(&leaf).await == Some((ip.clone(), 1))).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    say(&format!("Awake: ASG desired 1, instance at {ip}, {} A {ip} (TTL 1), ECS desired {}.", leaf.domain, world.service_desired(&leaf).await));
    say(&format!("Alert received by the SNS subscriber:\n  Subject: {}\n  {}", alerts[0].subject, alerts[0].message.replace('\n', "\n  ")));

    say("The player plays for 10 seconds (10 kB/s of NetworkIn), then leaves: only 20 B/s of background chatter. This demo compresses time: 5-second periods, idle after 20 seconds (the defaults are 1 minute and 7 minutes). The test plays EC2's part, pushing NetworkIn datapoints into CloudWatch; the daemon's watchdog reads them once per period.");
    let busy_until = now_ms().div_euclid(common::PERIOD_MS) * common::PERIOD_MS + 10_000;
    feed(&world, &leaf, |p| if p < busy_until { 50_000.0 } else { 100.0 }, STEP * 2, || async { (world.desired(&leaf).await == 0).then_some(()) })
        .await
        .expect("the watchdog scales the idle leaf to zero");
    eventually("the A record back at 0.0.0.0", STEP, || async { (world.record(&leaf).await == Some(("0.0.0.0".into(), 1))).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    say(&format!(
        "Asleep again: {} A 0.0.0.0, ECS desired {}.\n  Subject: {}\n  {}",
        leaf.domain,
        world.service_desired(&leaf).await,
        alerts[1].subject,
        alerts[1].message.replace('\n', "\n  ")
    ));
    assert_eq!(alerts.len(), 2, "one alert per transition");
    assert!(alerts[1].subject.contains("idle"), "{alerts:?}");
    say("Demo done: one wake on a DNS query, the record pointed at the instance and back, one alert for the start and one for the idle stop.");
}
