//! Hostile and busy inputs, as a new operator's host meets them: a local user jamming the
//! HTTP port, a query-log line from 2099, a hosted zone busy with other names, a
//! throttled log, a zone that does not hold the leaf's domain, and a reload that drops a
//! running leaf. Each was reproduced against the daemon before it was fixed.

#![allow(clippy::float_cmp, clippy::cast_precision_loss, reason = "metrics and /status figures are floats holding small whole numbers")]

mod common;

use std::io::Read;
use std::time::Duration;

use common::busy::{self, Zone};
use common::proxy::{Faults, Proxied};
use common::world::{Ecs, Leaf};
use common::{eventually, feed, now_ms, query_line, Daemon, LeafOptions, World, FAST_WATCHDOG};

const WAIT: Duration = Duration::from_secs(60);

async fn desired(world: &World, leaf: &Leaf, n: i32) {
    eventually(&format!("ASG desired {n}"), WAIT, || async { (world.desired(leaf).await == n).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_idle_http_connections_under_a_tight_descriptor_limit_jam_nothing() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let daemon = Daemon::start_with_nofile(&world.config(&[&leaf], ""), &[], 64);
    daemon.wait_for_log(&["adopting"], WAIT).await;

    // Another local user opens 100 connections and never sends a byte.
    let addr = daemon.http_addr();
    let idle: Vec<std::net::TcpStream> = (0..100).filter_map(|_| std::net::TcpStream::connect(addr).ok()).collect();
    assert!(idle.len() >= 50, "the kernel accepted the connections ({})", idle.len());

    world.query_now(&leaf).await;
    desired(&world, &leaf, 1).await;
    let (code, body) = eventually("/healthz to answer 200", WAIT, || async {
        let (code, body) = daemon.get("/healthz").await;
        (code == 200).then_some((code, body))
    })
    .await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    // The daemon closed every idle connection (busy at once, or at the header timeout).
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        match s.read_to_end(&mut Vec::new()) {
            Ok(_) => {} // closed by the daemon (with or without a 503)
            Err(e) => assert!(e.kind() == std::io::ErrorKind::ConnectionReset, "an idle connection was left open: {e}"),
        }
    }
    assert!(daemon.lines_with(&["Too many open files"]).is_empty(), "no descriptor ran out");
    assert!(daemon.metric("cm_http_connections_refused_total", &[]).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_line_from_2099_neither_wakes_nor_keeps_a_leaf_up() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let daemon = Daemon::start(&world.config_with(&[&leaf], "", FAST_WATCHDOG));
    daemon.wait_for_log(&["adopting"], WAIT).await;

    let in_2099 = 4_102_444_800_000;
    world.put_line(&leaf.log_group, "FRA6", now_ms(), &query_line(in_2099, &leaf.zone_id, &leaf.domain, "A")).await;
    eventually("the line to be counted", WAIT, || async { (daemon.metric("cm_query_log_bad_time_total", &["why=\"future\""]).await == 1.0).then_some(()) }).await;
    daemon.passes(2).await;
    assert_eq!(world.desired(&leaf).await, 0, "a line from 2099 wakes nothing");

    // A real player: the leaf wakes, and once nobody plays it still goes back to sleep.
    world.query_now(&leaf).await;
    desired(&world, &leaf, 1).await;
    feed(&world, &leaf, |_| 100.0, Duration::from_secs(120), || async { (world.desired(&leaf).await == 0).then_some(()) })
        .await
        .expect("the idle leaf was stopped: the bogus line did not switch its watchdog off");
    let status = daemon.status().await;
    assert_eq!(status["leafs"][0]["wake_pending"], false, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_hosted_zone_neither_slows_a_wake_nor_hides_a_line_nor_spends_the_quota() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let zone = Zone { apex: leaf.domain.split_once('.').unwrap().1.to_owned(), zone_id: leaf.zone_id.clone(), lines_per_second: 200, streams: 20, max_delay: Duration::from_secs(20) };
    busy::create_streams(&world, &leaf.log_group, &zone).await;
    let proxied = Proxied::start().await;
    // The default budget (2.5 calls/s) and poll (1 s); a short look-back so the sweep runs soon.
    let extra = "query_log_calls_per_second = 2.5\npoll_interval = \"1s\"\nquery_log_lookback = \"30s\"";
    let daemon = proxied.daemon(&world.config(&[&leaf], extra), &[]);
    daemon.wait_for_log(&["adopting"], WAIT).await;
    let started = now_ms();

    let traffic = busy::start(&world, &leaf.log_group, &zone, 7);
    // The window fills with other names: 25 s of them at 200 lines/s.
    eventually("5,000 unrelated lines in the log", WAIT, || async { (traffic.written.load(std::sync::atomic::Ordering::Relaxed) >= 5_000).then_some(()) }).await;
    // The player's query, delivered 15 s after it was asked, in mixed case.
    let asked = now_ms() - 15_000;
    let mixed: String = leaf.domain.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c }).collect();
    world.put_line(&leaf.log_group, "EDGE03", asked, &query_line(asked, &leaf.zone_id, &mixed, "A")).await;
    desired(&world, &leaf, 1).await;
    let written = traffic.stop().await + 1;

    // Every line is read once by the sweep; the head only brought back the leaf's.
    eventually("the sweep to read every line", Duration::from_secs(120), || async {
        (daemon.metric("cm_query_log_lines_total", &["pass=\"sweep\""]).await >= written as f64).then_some(())
    })
    .await;
    let head_lines = daemon.metric("cm_query_log_lines_total", &["pass=\"head\""]).await;
    let calls: Vec<_> = proxied.localstack.calls().into_iter().filter(|c| c.operation == "FilterLogEvents").collect();
    let seconds = common::secs(now_ms() - started);
    let largest_page = calls.iter().map(|c| c.response_bytes).max().unwrap_or(0);
    println!("busy zone: {written} lines, {} FilterLogEvents calls in {seconds:.0} s, head read {head_lines} lines, largest page {largest_page} bytes", calls.len());
    // The head re-reads the leaf's one line each poll while it is in the window; the
    // zone's thousands of other lines never come back to it.
    assert!(head_lines <= 2.0 * seconds, "the filtered head read only the leaf's lines, not the zone's {written}: {head_lines}");
    assert!((calls.len() as f64) <= 2.5 * seconds + 5.0, "{} calls in {seconds:.0} s exceed 2.5/s", calls.len());
    assert!(largest_page <= 1_048_576 + 16_384, "pages are cut at 1 MB as on AWS: {largest_page}");
    assert_eq!(daemon.metric("cm_query_log_found_by_sweep_total", &[]).await, 0.0, "the head missed no query");
    assert_eq!(daemon.metric("cm_query_log_malformed_total", &[]).await, 0.0);
    let status = daemon.status().await;
    assert_eq!(status["query_log"][0]["head"], "filtered", "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_log_backs_off_says_so_and_still_wakes_once_it_answers() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let proxied = Proxied::start().await;
    proxied.set(&Faults { throttle_operations: vec!["FilterLogEvents".into()], ..Faults::default() });
    let daemon = proxied.daemon(&world.config(&[&leaf], ""), &[]);
    world.query_now(&leaf).await;
    let view = eventually("/status to show the back-off", WAIT, || async {
        let status = daemon.status().await;
        let view = status["query_log"][0].clone();
        (view["failures"].as_u64() >= Some(3) && view["last_error"].as_str().is_some_and(|e| e.contains("throttled"))).then_some(view)
    })
    .await;
    println!("while throttled: {view}");
    let polls = daemon.status().await["workers"]["tail"]["iteration"].as_u64().unwrap();
    let reads = daemon.metric("cm_tail_polls_total", &[]).await;
    assert!(reads < polls as f64 * 0.75, "backing off: the group was read in {reads} of {polls} polls");
    assert_eq!(world.desired(&leaf).await, 0);

    proxied.set(&Faults::default());
    desired(&world, &leaf, 1).await;
    eventually("/status to show the recovery", WAIT, || async { (daemon.status().await["query_log"][0]["failures"] == 0).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_leaf_whose_zone_does_not_hold_its_domain_is_not_woken_and_says_why_once() {
    let world = World::new().await;
    let group = world.log_group().await;
    let mut wrong = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "wrongzone", ..LeafOptions::default() }).await;
    let other = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), ..LeafOptions::default() }).await;
    wrong.zone_id = other.zone_id.clone(); // a copy-paste slip: the other leaf's zone
    let daemon = Daemon::start(&world.config(&[&wrong, &other], ""));
    world.query_now(&wrong).await;
    daemon.wait_for_log(&["does not wake the leaf", "hosted zone"], WAIT).await;
    let alerts = world.settled_alerts(&daemon, &wrong, 1).await;
    daemon.passes(2).await;
    assert_eq!(world.desired(&wrong).await, 0, "not woken: nobody could reach it");
    assert_eq!(world.alerts(&wrong).await.len(), 1, "one problem alert: {alerts:?}");
    assert!(alerts[0].message.contains("does not hold") && alerts[0].message.contains(&wrong.domain), "{}", alerts[0].message);
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_reload_that_drops_a_running_leaf_says_so_once_and_stops_nothing() {
    let world = World::new().await;
    let running = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let staying = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let config = world.config(&[&running, &staying], "");
    let daemon = Daemon::start(&config);
    world.query_now(&running).await;
    desired(&world, &running, 1).await;
    assert_eq!(world.settled_alerts(&daemon, &running, 1).await.len(), 1);

    daemon.reload(&std::fs::read_to_string(world.config(&[&staying], "")).unwrap()).await;
    let alerts = world.settled_alerts(&daemon, &running, 2).await;
    daemon.passes(2).await;
    assert_eq!(world.alerts(&running).await.len(), 2, "{alerts:?}");
    assert!(alerts[1].subject.contains("no longer managed") && alerts[1].message.contains("still running") || alerts[1].message.contains("was not stopped"), "{alerts:?}");
    assert_eq!(world.desired(&running).await, 1, "nothing is scaled by surprise");
    assert_eq!(daemon.lines_with(&["a leaf removed from the config is still running", &running.name]).len(), 1, "one warning");
}
