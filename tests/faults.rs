//! Faults and surprises: AWS failing, throttling, denying, disappearing, and the daemon
//! being killed. Each test drives the real daemon through the fault-injecting proxy.
//! Figures are printed as `reliability: ...` lines (collected into docs/reliability.md).

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Deny, Faults, Proxied};
use common::world::{Ecs, Leaf};
use common::{eventually, feed, now_ms, Daemon, LeafOptions, World, FAST_WATCHDOG, PERIOD_MS};

const WAIT: Duration = Duration::from_secs(60);

/// A daemon behind a fresh fault proxy, with a systemd notification socket of its own
/// (`watchdog_usec` as systemd would set it): the daemon, the proxy and the socket.
fn notified(world: &World, leaf: &Leaf, faulty: &Proxied, watchdog_usec: &str) -> (Daemon, std::os::unix::net::UnixDatagram) {
    let socket_path = world.dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let notify = socket_path.display().to_string();
    let daemon = faulty.daemon(&world.config(&[leaf], ""), &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", watchdog_usec)]);
    (daemon, socket)
}

/// An environment variable's number of seconds, or `default`.
fn secs_from_env(name: &str, default: u64) -> Duration {
    Duration::from_secs(std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default))
}

async fn up(world: &World, leaf: &Leaf) {
    eventually("ASG desired 1", WAIT, || async { (world.desired(leaf).await == 1).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifth_of_all_calls_failing_cycles_still_complete_with_one_alert_per_transition() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let faulty = Proxied::start().await;
    faulty.set(&Faults::random(0.2));
    let daemon = faulty.daemon(&world.config_with(&[&leaf], "", FAST_WATCHDOG), &[]);
    let cycles = 3;
    // An alert whose Publish answer was cut may or may not have arrived; the daemon
    // does not repeat it (never twice) and says so in its log.
    let accounted = |daemon: &Daemon, received: usize| received + daemon.lines_with(&["alert sent but unconfirmed"]).len();
    for cycle in 1..=cycles {
        world.query_now(&leaf).await;
        up(&world, &leaf).await;
        let quiet_from = now_ms();
        feed(&world, &leaf, |_| 100.0, Duration::from_secs(120), || async { (world.desired(&leaf).await == 0).then_some(()) })
            .await
            .unwrap_or_else(|| panic!("cycle {cycle}: the idle leaf was not stopped"));
        println!("cycle {cycle}: idle stop {:.1} s after traffic went quiet", common::secs(now_ms() - quiet_from));
        eventually("this cycle's alerts", WAIT, || async { (accounted(&daemon, world.alerts(&leaf).await.len()) >= 2 * cycle).then_some(()) }).await;
    }
    daemon.quiet().await;
    let alerts = world.alerts(&leaf).await;
    let (injected, requests) = faulty.injected();
    let panics = daemon.lines_with(&["panicked"]).len();
    let uncertain = daemon.lines_with(&["alert sent but unconfirmed"]).len();
    println!(
        "reliability: random-faults cycles={cycles} requests={requests} faults_injected={injected} alerts={} uncertain={uncertain} expected={} panics={panics}",
        alerts.len(),
        2 * cycles
    );
    assert_eq!(panics, 0);
    assert!(injected > 0, "faults were injected");
    for kind in ["starting", "idle"] {
        let n = alerts.iter().filter(|a| a.subject.contains(kind)).count();
        assert!(n <= cycles, "at most one {kind} alert per cycle: {alerts:?}");
    }
    assert!(alerts.len() + uncertain >= 2 * cycles, "no alert lost silently: {alerts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_delays_the_wake_without_losing_it_and_the_watchdog_keeps_being_fed() {
    let outage = secs_from_env("CM_OUTAGE_SECS", 60);
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let faulty = Proxied::start().await;
    let (daemon, socket) = notified(&world, &leaf, &faulty, "2000000");
    socket.set_nonblocking(true).unwrap();
    daemon.wait_for_log(&["ready: config loaded and AWS answering"], WAIT).await;

    faulty.set(&Faults { outage: true, ..Faults::default() });
    world.query_now(&leaf).await; // written straight to the emulator: AWS has it, the daemon cannot see it
    let drain = |s: &std::os::unix::net::UnixDatagram| {
        let mut buf = [0u8; 4096];
        let mut pings = 0;
        while let Ok(n) = s.recv(&mut buf) {
            pings += usize::from(String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1"));
        }
        pings
    };
    drain(&socket);
    let (code, body) = eventually("/healthz to go 503", WAIT, || async {
        let (code, body) = daemon.get("/healthz").await;
        (code == 503).then_some((code, body))
    })
    .await;
    println!("during the outage /healthz said: {code} {}", body.trim());
    tokio::time::sleep(outage.saturating_sub(Duration::from_secs(10))).await;
    let pings_late_in_outage = drain(&socket);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pings = pings_late_in_outage + drain(&socket);
    assert_eq!(world.desired(&leaf).await, 0, "nothing could be done during the outage");
    assert!(pings >= 5, "the systemd watchdog was fed throughout the outage ({pings} pings in its last part)");
    assert!(body.contains("tail") || body.contains("reconcile"), "503 says which loop fails: {body}");

    faulty.set(&Faults::default());
    let back = Instant::now();
    up(&world, &leaf).await;
    let took = back.elapsed();
    println!("reliability: outage seconds={} wake_after_recovery_ms={} watchdog_pings_in_last_part={pings}", outage.as_secs(), took.as_millis());
    assert!(took < Duration::from_secs(30), "the wake follows soon after AWS is back ({took:?})");
    assert_eq!(world.settled_alerts(&daemon, &leaf, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_three_minute_brown_out_is_slow_not_stuck_and_the_watchdog_is_fed_throughout() {
    let brown_out = secs_from_env("CM_BLACKHOLE_SECS", 180);
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let faulty = Proxied::start().await;
    // The unit's WatchdogSec=60s.
    let (daemon, socket) = notified(&world, &leaf, &faulty, "60000000");
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    daemon.wait_for_log(&["ready: config loaded and AWS answering"], WAIT).await;
    // Every WATCHDOG=1 the daemon sends, with its arrival time, until told to stop.
    let listening = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pings = std::thread::spawn({
        let listening = std::sync::Arc::clone(&listening);
        move || {
            let (mut buf, mut at) = ([0u8; 4096], Vec::new());
            while listening.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf)
                    && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
                {
                    at.push(Instant::now());
                }
            }
            at
        }
    });

    // Connections accepted, answers never coming.
    let started = Instant::now();
    faulty.set(&Faults { blackhole: true, ..Faults::default() });
    world.query_now(&leaf).await; // written straight to the emulator
    let (code, body) = eventually("/healthz to go 503", WAIT, || async {
        let (code, body) = daemon.get("/healthz").await;
        (code == 503).then_some((code, body))
    })
    .await;
    println!("during the brown-out /healthz said: {code} {}", body.trim());
    assert!(body.contains("not stuck"), "/healthz tells a slow AWS from a stuck daemon: {body}");
    tokio::time::sleep(brown_out.saturating_sub(started.elapsed())).await;
    let passes = daemon.status().await["workers"]["reconcile"]["iteration"].as_u64().unwrap();
    faulty.set(&Faults::default());
    let ended = Instant::now();
    up(&world, &leaf).await;
    let wake_after = ended.elapsed();
    listening.store(false, std::sync::atomic::Ordering::Relaxed);
    let pings = pings.join().unwrap();
    let during: Vec<Instant> = pings.into_iter().filter(|t| *t >= started && *t <= ended).collect();
    let longest_gap = during.windows(2).map(|w| w[1] - w[0]).chain([during.first().map_or(brown_out, |t| *t - started)]).max().unwrap_or(brown_out);
    let held = faulty.injected().0;
    println!(
        "reliability: brown_out seconds={} requests_held={held} watchdog_pings={} longest_gap_ms={} reconcile_passes={passes} wake_after_ms={}",
        brown_out.as_secs(),
        during.len(),
        longest_gap.as_millis(),
        wake_after.as_millis()
    );
    assert!(held > 0, "the daemon's calls were held");
    assert!(longest_gap < Duration::from_secs(60), "systemd (WatchdogSec=60s) would not have killed it: longest gap {longest_gap:?}");
    assert!(daemon.lines_with(&["a loop is stuck"]).is_empty(), "never called stuck");
    assert_eq!(world.settled_alerts(&daemon, &leaf, 1).await.len(), 1, "the wake, once, after the brown-out");
}

#[tokio::test(flavor = "multi_thread")]
async fn access_denied_on_one_leaf_marks_it_failed_once_and_the_others_keep_working() {
    let world = World::new().await;
    let group = world.log_group().await;
    let denied = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "denied", ..LeafOptions::default() }).await;
    let fine = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "fine", ..LeafOptions::default() }).await;
    let faulty = Proxied::start().await;
    let rule = Deny { service: "autoscaling".into(), contains: vec!["Action=SetDesiredCapacity".into(), denied.asg.clone()] };
    faulty.set(&Faults { deny: vec![rule], ..Faults::default() });
    let daemon = faulty.daemon(&world.config(&[&denied, &fine], ""), &[]);
    daemon.wait_for_log(&["adopting", &fine.name], WAIT).await;

    world.query_now(&denied).await;
    world.query_now(&fine).await;
    up(&world, &fine).await;
    assert_eq!(world.settled_alerts(&daemon, &fine, 1).await.len(), 1, "the other leaf woke and said so");
    let alerts = world.settled_alerts(&daemon, &denied, 1).await;
    daemon.quiet().await; // more failing ticks
    let alerts_later = world.alerts(&denied).await;
    assert_eq!(alerts_later.len(), 1, "one problem alert, not one per tick: {alerts_later:?}");
    assert!(alerts[0].message.contains("autoscaling:SetDesiredCapacity") && alerts[0].message.contains("iam-policy"), "names the missing permission: {}", alerts[0].message);
    assert_eq!(world.desired(&denied).await, 0);
    let (_, status) = daemon.get("/status").await;
    assert!(status.contains("AWS denied autoscaling:SetDesiredCapacity"), "{status}");

    // The permission is granted: the pending wake goes through, the problem clears.
    faulty.set(&Faults::default());
    up(&world, &denied).await;
    daemon.wait_for_log(&["problem resolved", &denied.name], WAIT).await;
}

/// One daemon with two leafs, killed with SIGKILL at random moments while its leafs
/// wake and sleep; returns (trials, lost wakes, duplicate alerts, lost alerts, corrupt states).
async fn kill_trials(world: &World, trials: usize, seed: u64) -> (usize, usize, usize, usize, usize) {
    let a = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "kill", ..LeafOptions::default() }).await;
    let b = world.leaf(LeafOptions { ecs: Ecs::Replica, prefix: "kill", ..LeafOptions::default() }).await;
    let config = world.config(&[&a, &b], "");
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_log(&["adopting"], WAIT).await;
    let mut expected = [0usize; 2];
    let (mut lost_wakes, mut corrupt) = (0, 0);
    for _ in 0..trials {
        let token = std::fs::read_to_string(world.state_file().with_file_name("control.token")).unwrap();
        let mut targets = [0i32; 2];
        for (i, leaf) in [&a, &b].into_iter().enumerate() {
            if world.desired(leaf).await == 0 {
                world.query_now(leaf).await;
                targets[i] = 1;
            } else {
                let (code, _) = container_manager::control::request(daemon.http_addr(), "POST", &format!("/leafs/{}/sleep", leaf.name), Some(token.trim())).await.unwrap();
                assert_eq!(code, 202);
                targets[i] = 0;
            }
            expected[i] += 1;
        }
        tokio::time::sleep(Duration::from_millis(next(1500))).await;
        daemon.kill9();
        let text = std::fs::read_to_string(world.state_file()).unwrap_or_default();
        if !text.is_empty() && serde_json::from_str::<serde_json::Value>(&text).is_err() {
            corrupt += 1;
        }
        daemon = Daemon::start(&config);
        for (i, leaf) in [&a, &b].into_iter().enumerate() {
            let reached = tokio::time::timeout(WAIT, async {
                while world.desired(leaf).await != targets[i] {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await;
            if reached.is_err() && targets[i] == 1 {
                lost_wakes += 1;
            }
        }
        // Let the alerts of this trial go out before the next kill.
        daemon.quiet().await;
    }
    daemon.quiet().await;
    // Counted by the daemon's alert id: a loss and a duplicate cannot cancel out.
    let (mut duplicates, mut lost_alerts) = (0, 0);
    for (i, leaf) in [&a, &b].into_iter().enumerate() {
        let got = world.alerts(leaf).await;
        let ids: std::collections::HashSet<&str> = got.iter().map(|a| a.id.as_str()).collect();
        assert!(!ids.contains(""), "every alert carries its id");
        duplicates += got.len() - ids.len();
        lost_alerts += expected[i].saturating_sub(ids.len());
    }
    (trials, lost_wakes, duplicates, lost_alerts, corrupt)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_nine_at_random_moments_loses_no_wake_and_repeats_no_alert() {
    let trials: usize = std::env::var("CM_KILL_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed = std::env::var("CM_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(now_ms().unsigned_abs() | 1);
    println!("kill trials: {trials} (CM_FAULT_SEED={seed})");
    // Three daemons side by side, each with its own leafs and state file.
    let (w1, w2, w3) = (World::new().await, World::new().await, World::new().await);
    let per = trials.div_ceil(3);
    let results = tokio::join!(kill_trials(&w1, per, seed), kill_trials(&w2, per, seed.wrapping_add(7919)), kill_trials(&w3, per, seed.wrapping_add(15_838)));
    let sum = [results.0, results.1, results.2].iter().fold((0, 0, 0, 0, 0), |acc, r| (acc.0 + r.0, acc.1 + r.1, acc.2 + r.2, acc.3 + r.3, acc.4 + r.4));
    println!("reliability: kill9 trials={} lost_wakes={} duplicate_alerts={} lost_alerts={} corrupt_state_files={}", sum.0, sum.1, sum.2, sum.3, sum.4);
    assert_eq!(sum.1, 0, "no wake lost");
    assert_eq!(sum.2, 0, "no alert sent twice");
    assert_eq!(sum.4, 0, "the state file is never left corrupt");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_without_a_public_ip_is_reported_once_and_dns_stays_idle() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, private: true, ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config(&[&leaf], ""));
    world.query_now(&leaf).await;
    up(&world, &leaf).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    daemon.quiet().await;
    assert_eq!(world.alerts(&leaf).await.len(), 1, "one alert: {alerts:?}");
    assert!(alerts[0].message.contains("no public IP"), "{}", alerts[0].message);
    assert_eq!(world.record(&leaf).await, Some(("0.0.0.0".into(), 1)), "DNS is not pointed at nowhere");
    assert!(daemon.lines_with(&["panicked"]).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_asg_and_a_deleted_hosted_zone_are_reported_once_each() {
    let world = World::new().await;
    let group = world.log_group().await;
    let gone_asg = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "noasg", ..LeafOptions::default() }).await;
    let gone_zone = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "nozone", ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config(&[&gone_asg, &gone_zone], ""));
    daemon.wait_for_log(&["adopting", &gone_zone.name], WAIT).await;

    world.asg.delete_auto_scaling_group().auto_scaling_group_name(&gone_asg.asg).force_delete(true).send().await.unwrap();
    world.delete_zone(&gone_zone).await;
    world.query_now(&gone_zone).await; // wakes, then cannot point its record anywhere
    up(&world, &gone_zone).await;

    let asg_alerts = world.settled_alerts(&daemon, &gone_asg, 1).await;
    let zone_alerts = world.settled_alerts(&daemon, &gone_zone, 1).await;
    daemon.quiet().await;
    assert_eq!(world.alerts(&gone_asg).await.len(), 1, "{asg_alerts:?}");
    assert_eq!(world.alerts(&gone_zone).await.len(), 1, "{zone_alerts:?}");
    assert!(asg_alerts[0].message.contains("does not exist"), "{}", asg_alerts[0].message);
    assert!(zone_alerts[0].message.contains("route53") && zone_alerts[0].message.contains("No hosted zone"), "{}", zone_alerts[0].message);
    assert!(daemon.lines_with(&["panicked"]).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_group_that_does_not_exist_yet_is_reported_then_followed_once_created() {
    let world = World::new().await;
    let mut leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    leaf.log_group = format!("/aws/route53/{}", common::unique("later"));
    let daemon = Daemon::start(&world.config(&[&leaf], ""));
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert!(alerts[0].message.contains("logs:FilterLogEvents") || alerts[0].message.contains("FilterLogEvents"), "{}", alerts[0].message);
    world.logs.create_log_group().log_group_name(&leaf.log_group).send().await.unwrap();
    world.logs.create_log_stream().log_group_name(&leaf.log_group).log_stream_name("FRA6").send().await.unwrap();
    world.query_now(&leaf).await;
    up(&world, &leaf).await;
    daemon.wait_for_log(&["problem resolved"], WAIT).await;
    assert_eq!(world.settled_alerts(&daemon, &leaf, 2).await.len(), 2, "the problem once, then starting");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicated_and_out_of_order_datapoints_are_judged_like_clean_ones() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", FAST_WATCHDOG));
    world.query_now(&leaf).await;
    up(&world, &leaf).await;
    // Each period's datapoint arrives twice, and the previous period's again, late.
    let stopped = feed(&world, &leaf, |_| 100.0, Duration::from_secs(90), || async {
        let period = now_ms().div_euclid(PERIOD_MS) * PERIOD_MS;
        world.put_network_in(&leaf, 100.0, period + 2_000).await;
        world.put_network_in(&leaf, 100.0, period - PERIOD_MS + 3_000).await;
        (world.desired(&leaf).await == 0).then_some(())
    })
    .await;
    assert!(stopped.is_some(), "still judged idle");
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert!(alerts[1].subject.contains("idle"), "{alerts:?}");
    assert!(daemon.lines_with(&["panicked"]).is_empty());
}
