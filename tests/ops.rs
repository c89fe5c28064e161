//! Running it like a service: status, metrics, health, operator commands, reload and
//! shutdown, against the emulators.

#![allow(clippy::float_cmp, clippy::cast_precision_loss, reason = "metrics and /status figures are floats holding small whole numbers")]

mod common;

use std::time::Duration;

use common::world::Ecs;
use common::{eventually, Daemon, LeafOptions, World};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn status_metrics_and_healthz_show_what_the_daemon_does() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let daemon = Daemon::start(&world.config(&[&leaf], ""));
    world.query_now(&leaf).await;
    let ip = eventually("an InService instance", WAIT, || async { world.instance_ip(&leaf).await }).await;
    eventually("the A record", WAIT, || async { (world.record(&leaf).await == Some((ip.clone(), 1))).then_some(()) }).await;

    let status = eventually("/status to show the leaf up", WAIT, || async {
        let (code, body) = daemon.get("/status").await;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        (code == 200 && json["leafs"][0]["phase"] == "up").then_some(json)
    })
    .await;
    let view = &status["leafs"][0];
    assert_eq!(view["name"], leaf.name.as_str());
    assert_eq!(view["ip"], ip.as_str());
    assert_eq!(view["desired"], 1);
    assert_eq!(view["threshold"], 1175.0);
    assert!(view["last_decision"]["what"].as_str().is_some_and(|w| !w.is_empty()), "{view}");
    assert_eq!(status["healthy"], true, "{status}");
    assert!(status["workers"]["reconcile"]["iteration"].as_u64() > Some(0));

    let (code, metrics) = daemon.get("/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "cm_aws_calls_total{service=\"autoscaling\",operation=\"DescribeAutoScalingGroups\",outcome=\"ok\"}".to_owned(),
        "cm_aws_calls_total{service=\"autoscaling\",operation=\"SetDesiredCapacity\",outcome=\"ok\"} 1".to_owned(),
        format!("cm_actions_total{{leaf=\"{}\",kind=\"wake\"}} 1", leaf.name),
        format!("cm_leaf_phase{{leaf=\"{}\",phase=\"up\"}} 1", leaf.name),
        format!("cm_dns_queries_total{{leaf=\"{}\"}} 1", leaf.name),
        "cm_tail_lag_seconds{group=".to_owned(),
        "# TYPE cm_aws_calls_total counter".to_owned(),
    ] {
        assert!(metrics.contains(&needle), "/metrics lacks {needle}:\n{metrics}");
    }
    assert_eq!(daemon.get("/healthz").await, (200, "ok\n".to_owned()));

    let (code, out, err) = daemon.cli(&["status"]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.starts_with(&leaf.name)).unwrap_or_else(|| panic!("no row for the leaf:\n{out}"));
    assert!(row.contains(" up ") && row.contains(&ip), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_says_503_and_why_when_aws_does_not_answer() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    // AutoScaling points at a port where nothing listens.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let daemon = Daemon::start_with(&world.config(&[&leaf], ""), &[], &[("AWS_ENDPOINT_URL_AUTO_SCALING", &dead)]);
    let (code, body) = eventually("/healthz to report the failure", WAIT, || async {
        let (code, body) = daemon.get("/healthz").await;
        (code == 503).then_some((code, body))
    })
    .await;
    assert_eq!(code, 503);
    assert!(body.contains("reconcile") && body.contains("DescribeAutoScalingGroups"), "names the failing call: {body}");
    let (_, status) = daemon.get("/status").await;
    assert!(status.contains("\"healthy\":false"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_wake_and_sleep_go_through_the_daemon_and_need_the_token() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let daemon = Daemon::start(&world.config(&[&leaf], ""));
    daemon.wait_for_log(&["adopting"], WAIT).await;

    let addr = daemon.http_addr();
    let (code, _) = container_manager::control::request(addr, "POST", &format!("/leafs/{}/wake", leaf.name), None).await.unwrap();
    assert_eq!(code, 401, "no token, no wake");
    let (code, _) = container_manager::control::request(addr, "POST", &format!("/leafs/{}/wake", leaf.name), Some(&"0".repeat(64))).await.unwrap();
    assert_eq!(code, 401, "a wrong token, no wake");
    assert_eq!(world.desired(&leaf).await, 0);

    let (code, out, err) = daemon.cli(&["wake", &leaf.name]);
    assert_eq!(code, 0, "{out}{err}");
    eventually("ASG desired 1", WAIT, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 1).await;
    assert!(alerts[0].message.contains("an operator woke it"), "{alerts:?}");

    let (code, out, err) = daemon.cli(&["sleep", &leaf.name]);
    assert_eq!(code, 0, "{out}{err}");
    eventually("ASG desired 0", WAIT, || async { (world.desired(&leaf).await == 0).then_some(()) }).await;
    let alerts = world.settled_alerts(&daemon, &leaf, 2).await;
    assert_eq!(alerts.len(), 2, "one alert for the operator's stop: {alerts:?}");
    assert!(alerts[1].subject.contains("operator"), "{alerts:?}");

    let (code, _, err) = daemon.cli(&["wake", "no-such-leaf"]);
    assert_ne!(code, 0);
    assert!(err.contains("no leaf named"), "{err}");

    // Without the token file (another user, say), the CLI says what is missing.
    let token = world.state_file().with_file_name("control.token");
    std::fs::rename(&token, token.with_extension("moved")).unwrap();
    let (code, _, err) = daemon.cli(&["wake", &leaf.name]);
    assert_ne!(code, 0);
    assert!(err.contains("control token"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_good_config_and_ignores_a_bad_one() {
    let world = World::new().await;
    let first = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let second = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let config = world.config(&[&first], "");
    let daemon = Daemon::start(&config);
    daemon.wait_for_log(&["adopting"], WAIT).await;

    // Add a leaf and change the first one's threshold.
    let bigger = std::fs::read_to_string(world.config(&[&first, &second], "")).unwrap();
    daemon.reload(&bigger.replacen("threshold = 1175", "threshold = 400", 1)).await;
    world.query_now(&second).await;
    eventually("the added leaf to wake", WAIT, || async { (world.desired(&second).await == 1).then_some(()) }).await;
    let threshold = eventually("the new threshold in /status", WAIT, || async {
        let (_, body) = daemon.get("/status").await;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json["leafs"].as_array()?.iter().find(|l| l["name"] == first.name.as_str()).and_then(|l| l["threshold"].as_f64()).filter(|t| *t == 400.0)
    })
    .await;
    assert_eq!(threshold, 400.0);

    // A broken file is refused; the daemon keeps running the last good config.
    std::fs::write(&config, "[daemon]\nregion = \"us-west-2\"\nthis is not toml").unwrap();
    daemon.signal(1);
    daemon.wait_for_log(&["config reload refused"], WAIT).await;
    world.query_now(&first).await;
    eventually("the first leaf still wakes", WAIT, || async { (world.desired(&first).await == 1).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_a_reload_that_removes_a_leaf_forgets_its_state_and_metric_series() {
    let world = World::new().await;
    let group = world.log_group().await;
    let gone = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "gone", ..LeafOptions::default() }).await;
    let kept = world.leaf(LeafOptions { ecs: Ecs::None, log_group: Some(group.clone()), prefix: "kept", ..LeafOptions::default() }).await;
    let config = world.config(&[&gone, &kept], "");
    let daemon = Daemon::start(&config);
    let series = format!("leaf=\"{}\"", gone.name);
    eventually("the leaf's metric series", WAIT, || async { daemon.get("/metrics").await.1.contains(&series).then_some(()) }).await;
    world.query_now(&gone).await; // leaves a memory of it in the state file
    eventually("the leaf in the state file", WAIT, || async {
        std::fs::read_to_string(world.state_file()).ok().filter(|t| t.contains(&format!("\"{}\"", gone.name))).map(|_| ())
    })
    .await;

    daemon.reload(&std::fs::read_to_string(world.config(&[&kept], "")).unwrap()).await;
    daemon.passes(2).await;
    let (_, metrics) = daemon.get("/metrics").await;
    assert!(!metrics.contains(&series), "no series of the removed leaf: {}", metrics.lines().filter(|l| l.contains(&series)).collect::<Vec<_>>().join("\n"));
    assert!(metrics.contains(&format!("leaf=\"{}\"", kept.name)), "the kept leaf's series stay");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(world.state_file()).unwrap()).unwrap();
    assert!(state["leafs"].get(&gone.name).is_none(), "the removed leaf's state is gone: {}", state["leafs"]);
    assert!(daemon.status().await["leafs"].as_array().unwrap().iter().all(|l| l["name"] != gone.name.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_wake_exits_cleanly_and_the_wake_is_not_lost() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions::default()).await;
    let config = world.config(&[&leaf], "");
    let mut daemon = Daemon::start(&config);
    daemon.wait_for_log(&["adopting"], WAIT).await;
    world.query_now(&leaf).await;
    daemon.wait_for_log(&["wake requested"], WAIT).await;
    daemon.signal(15);
    let started = std::time::Instant::now();
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0), "exit 0 after SIGTERM");
    assert!(started.elapsed() < Duration::from_secs(5), "within a few seconds: {:?}", started.elapsed());
    assert!(!daemon.lines_with(&["stopped; state saved"]).is_empty());

    let _again = Daemon::start(&config);
    eventually("ASG desired 1", WAIT, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    assert_eq!(world.settled_alerts(&daemon, &leaf, 1).await.len(), 1, "one starting alert across the restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let world = World::new().await;
    let leaf = world.leaf(LeafOptions { ecs: Ecs::None, ..LeafOptions::default() }).await;
    let daemon = Daemon::start_with(&world.config(&[&leaf], ""), &["--log-format", "json"], &[]);
    let line = daemon.wait_for_log(&["container-manager started"], WAIT).await;
    let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(json["fields"]["message"], "container-manager started");
    assert!(!line.contains('\u{1b}'), "no colour codes off a terminal");
}
