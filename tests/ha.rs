//! Two daemons, one actor: two hosts run the same config against one DynamoDB table
//! (`[daemon.ha]`), and whatever happens to the holder (kill -9, cut off from DynamoDB,
//! SIGTERM) the standby takes over without losing a wake, repeating an alert, or
//! acting while the holder still does. Figures are printed as `FIGURE` lines for
//! docs/reliability.md; nothing here is timed against a limit.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::proxy::{Deny, Faults, Proxied};
use common::world::Leaf;
use common::{eventually, now_ms, Daemon, World};

const TAKEOVER: Duration = Duration::from_secs(60);

/// The mutating calls, the ones only a holder may make.
const MUTATING: &[&str] = &["SetDesiredCapacity", "UpdateAutoScalingGroup", "UpdateService", "RegisterScalableTarget", "ChangeResourceRecordSets", "Publish"];

/// The config of host `n`: the same leafs and table, its own state directory and port.
fn host(world: &World, leafs: &[&Leaf], table: &str, ttl: &str, n: usize) -> PathBuf {
    let state = world.dir.join(format!("host-{n}")).join("state.json");
    world.config(leafs, &format!("state_file = \"{}\"\n[daemon.ha]\ntable = \"{table}\"\nttl = \"{ttl}\"\nname = \"{table}\"\n", state.display()))
}

async fn role(daemon: &Daemon) -> (String, serde_json::Value) {
    let status = daemon.status().await;
    (status["role"].as_str().unwrap_or_default().to_owned(), status["ha"].clone())
}

async fn until_role(daemon: &Daemon, wanted: &str, within: Duration) -> serde_json::Value {
    eventually(&format!("the daemon to be {wanted}"), within, || async {
        let (r, ha) = role(daemon).await;
        (r == wanted).then_some(ha)
    })
    .await
}

/// Starts host `n` and waits until it says which role it has.
async fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
    let daemon = Daemon::start_with(config, &[], env);
    daemon.wait_for_log(&["standing by until this daemon holds the lease"], TAKEOVER).await;
    daemon
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn mutating(calls: &[common::proxy::Call]) -> Vec<i64> {
    calls.iter().filter(|c| MUTATING.contains(&c.operation.as_str())).map(|c| c.at_ms).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_holder_with_a_wake_pending_the_standby_wakes_the_leaf_once() {
    let world = World::new().await;
    let leaf = world.leaf(common::world::LeafOptions::default()).await;
    let table = world.lease_table().await;
    // The holder cannot scale (throttled, not refused: no problem alert), so the wake
    // stays pending in the shared state when it dies.
    let stuck = Proxied::start().await;
    stuck.set(&Faults { throttle_matching: vec![Deny { service: "autoscaling".into(), contains: vec!["Action=SetDesiredCapacity".into()] }], ..Faults::default() });
    let env = stuck.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut holder = start(&host(&world, &[&leaf], &table, "4s", 1), &env).await;
    let first = until_role(&holder, "holder", TAKEOVER).await;
    let standby = start(&host(&world, &[&leaf], &table, "4s", 2), &[]).await;
    eventually("the standby to name the holder", TAKEOVER, || async {
        let (r, seen) = role(&standby).await;
        (r == "standby" && seen["holder"] == first["me"] && seen["lease_expires_ms"].as_i64() > Some(0)).then_some(())
    })
    .await;
    let (code, out, _) = standby.cli(&["status"]);
    assert!(code == 0 && out.contains(&format!("standby (holder {}", first["me"].as_str().unwrap())), "containerd status shows the role: {out}");
    assert!((standby.metric("cm_ha_holder", &[]).await).abs() < f64::EPSILON && (holder.metric("cm_ha_holder", &[]).await - 1.0).abs() < f64::EPSILON);

    world.query_now(&leaf).await;
    eventually("the holder's wake to be throttled", TAKEOVER, || async { (stuck.moto.stats.throttled.load(std::sync::atomic::Ordering::Relaxed) > 0).then_some(()) }).await;
    assert_eq!(world.desired(&leaf).await, 0, "the wake is pending");
    holder.kill9();
    let killed = Instant::now();

    let taken = until_role(&standby, "holder", TAKEOVER).await;
    let took = killed.elapsed();
    assert!(taken["fence"].as_u64() > first["fence"].as_u64(), "a new term: {taken} after {first}");
    eventually("the standby wakes the leaf", TAKEOVER, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let woke = killed.elapsed();
    standby.quiet().await;
    let alerts = world.settled_alerts(&standby, &leaf, 1).await;
    assert_eq!(alerts.len(), 1, "exactly one alert: {alerts:?}");
    assert!(alerts[0].subject.contains("starting"), "{alerts:?}");
    println!("FIGURE ha kill9 pending wake: ttl 4s, lease taken {} ms after kill -9, leaf woken {} ms after", took.as_millis(), woke.as_millis());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_cut_off_from_dynamodb_stops_acting_before_its_lease_ends_and_never_overlaps_the_standby() {
    let world = World::new().await;
    let (first_leaf, second_leaf) = (world.leaf(common::world::LeafOptions::default()).await, world.leaf(common::world::LeafOptions::default()).await);
    let leafs = [&first_leaf, &second_leaf];
    let table = world.lease_table().await;
    let (pa, pb) = (Proxied::start().await, Proxied::start().await);
    let with_table = |p: &Proxied| {
        let mut env = p.env();
        env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), p.moto.url.clone()));
        env
    };
    let (env_a, env_b) = (with_table(&pa), with_table(&pb));
    let a = start(&host(&world, &leafs, &table, "6s", 1), &refs(&env_a)).await;
    until_role(&a, "holder", TAKEOVER).await;
    let b = start(&host(&world, &leafs, &table, "6s", 2), &refs(&env_b)).await;
    until_role(&b, "standby", TAKEOVER).await;
    // The holder acts: it wakes the first leaf.
    world.query_now(&first_leaf).await;
    eventually("the holder wakes the first leaf", TAKEOVER, || async { (world.desired(&first_leaf).await == 1).then_some(()) }).await;

    pa.moto.set(Faults { deny: vec![Deny { service: "dynamodb".into(), contains: vec![] }], ..Faults::default() });
    let cut = now_ms();
    // Something to do at once: whoever may act then wakes the second leaf.
    world.query_now(&second_leaf).await;
    // Until it steps down, follow the end of the lease it last renewed.
    let last_renewed_end = std::sync::atomic::AtomicI64::new(0);
    let stepped_down = eventually("the cut-off holder to step down", TAKEOVER, || async {
        let (r, ha) = role(&a).await;
        if r == "holder" {
            last_renewed_end.store(ha["lease_expires_ms"].as_i64().unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
            return None;
        }
        Some(now_ms())
    })
    .await;
    let lease_end = last_renewed_end.load(std::sync::atomic::Ordering::Relaxed);
    assert!(stepped_down < lease_end, "stopped acting at {stepped_down}, before its lease ended at {lease_end}");
    until_role(&b, "holder", TAKEOVER).await;
    let took = now_ms() - cut;
    eventually("the second leaf awake", TAKEOVER, || async { (world.desired(&second_leaf).await == 1).then_some(()) }).await;
    let (code, _, err) = b.cli(&["sleep", &first_leaf.name]);
    assert_eq!(code, 0, "{err}");
    eventually("the new holder stops the first leaf", TAKEOVER, || async { (world.desired(&first_leaf).await == 0).then_some(()) }).await;
    let (code, _, err) = a.cli(&["wake", &first_leaf.name]);
    assert!(code != 0 && err.contains("standby"), "the old holder refuses commands: {err}");
    b.quiet().await;

    let (by_a, by_b) = (mutating(&pa.calls()), mutating(&pb.calls()));
    assert!(!by_a.is_empty() && !by_b.is_empty(), "both acted in their turn: {} and {} calls", by_a.len(), by_b.len());
    let (last_a, first_b) = (by_a.iter().max().unwrap(), by_b.iter().min().unwrap());
    assert!(last_a < first_b, "no moment where both act: the old holder's last call at {last_a}, the new holder's first at {first_b}");
    assert!(*last_a <= stepped_down, "nothing after stepping down");
    let after_cut = by_a.iter().filter(|at| **at >= cut).count();
    println!(
        "FIGURE ha cut off: ttl 6s, stepped down {} ms after the cut and {} ms before its lease ended; {after_cut} mutating calls by the old holder after the cut; standby holder {took} ms after the cut; gap between the two holders' calls {} ms",
        stepped_down - cut,
        lease_end - stepped_down,
        first_b - last_a
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_sigterm_of_the_holder_hands_over_without_waiting_for_the_lease() {
    let world = World::new().await;
    let leaf = world.leaf(common::world::LeafOptions::default()).await;
    let table = world.lease_table().await;
    let mut a = start(&host(&world, &[&leaf], &table, "20s", 1), &[]).await;
    let held = until_role(&a, "holder", TAKEOVER).await;
    let b = start(&host(&world, &[&leaf], &table, "20s", 2), &[]).await;
    until_role(&b, "standby", TAKEOVER).await;
    a.signal(15);
    let sent = Instant::now();
    let taken = until_role(&b, "holder", TAKEOVER).await;
    let handover = sent.elapsed();
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0), "a clean stop");
    assert!(taken["fence"].as_u64() > held["fence"].as_u64());
    assert!(!a.lines_with(&["lease released"]).is_empty(), "the holder gave its lease back");
    assert!(handover < Duration::from_secs(20), "released, not waited out: a standby takes an unreleased lease only after seeing it unrenewed for the whole 20 s; it took {handover:?}");
    println!("FIGURE ha sigterm handover: ttl 20s, standby holder {} ms after SIGTERM", handover.as_millis());
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_alternating_kill_9_trials_lose_no_wake_and_repeat_no_alert() {
    let world = World::new().await;
    let leaf = world.leaf(common::world::LeafOptions::default()).await;
    let table = world.lease_table().await;
    let configs = [host(&world, &[&leaf], &table, "3s", 1), host(&world, &[&leaf], &table, "3s", 2)];
    let mut daemons = [Some(start(&configs[0], &[]).await), None];
    until_role(daemons[0].as_ref().unwrap(), "holder", TAKEOVER).await;
    daemons[1] = Some(start(&configs[1], &[]).await);
    let mut holder = 0;
    let mut took = Vec::new();
    for trial in 0..20 {
        let standby = 1 - holder;
        until_role(daemons[standby].as_ref().unwrap(), "standby", TAKEOVER).await;
        world.query_now(&leaf).await;
        daemons[holder].as_mut().unwrap().kill9();
        let killed = Instant::now();
        until_role(daemons[standby].as_ref().unwrap(), "holder", TAKEOVER).await;
        eventually(&format!("trial {trial}: the leaf woken"), TAKEOVER, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
        took.push(killed.elapsed().as_millis());
        daemons[holder] = Some(start(&configs[holder], &[]).await);
        let next = daemons[standby].as_ref().unwrap();
        let (code, _, err) = next.cli(&["sleep", &leaf.name]);
        assert_eq!(code, 0, "{err}");
        eventually(&format!("trial {trial}: the leaf stopped"), TAKEOVER, || async { (world.desired(&leaf).await == 0).then_some(()) }).await;
        next.quiet().await;
        let alerts = eventually(&format!("trial {trial}: its two alerts"), TAKEOVER, || async { Some(world.alerts(&leaf).await).filter(|a| a.len() >= 2 * (trial + 1)) }).await;
        assert_eq!(alerts.len(), 2 * (trial + 1), "one starting and one stopped alert per trial, no more: {alerts:#?}");
        holder = standby;
    }
    let alerts = world.alerts(&leaf).await;
    let ids: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), alerts.len(), "no alert delivered twice");
    assert_eq!(alerts.iter().filter(|a| a.subject.contains("starting")).count(), 20, "every wake announced once: {alerts:#?}");
    took.sort_unstable();
    println!("FIGURE ha 20 kill -9 trials: ttl 3s, wake after kill -9 median {} ms, max {} ms; 20/20 woken, 40 alerts, 0 repeated", took[took.len() / 2], took[took.len() - 1]);
}
