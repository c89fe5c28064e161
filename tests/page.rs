//! What an operator looks at: the status page in a real headless browser (Chromium from
//! the distribution's packages), and the Grafana dashboard's queries against a live
//! `/metrics` with every kind of series it draws produced.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::world::Ecs;
use common::{eventually, feed, free_port, now_ms, Daemon, LeafOptions, World, FAST_WATCHDOG, PERIOD_MS};

const WAIT: Duration = Duration::from_secs(40);

/// The distribution's headless Chromium, if installed (tests/run.sh installs it).
fn chromium() -> Option<String> {
    let candidates = [std::env::var("CM_CHROMIUM").unwrap_or_default(), "chromium-headless-shell".into(), "/usr/lib/chromium/chromium-headless-shell".into(), "chromium".into()];
    candidates.into_iter().filter(|c| !c.is_empty()).find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}



#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_in_a_browser_and_the_dashboards_queries_against_live_metrics() {
    let world = World::new().await;
    let group = world.log_group().await;
    let port = free_port();
    let mut awake = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "awake", log_group: Some(group.clone()), ..LeafOptions::default() }).await;
    awake.keys = format!("env = \"dev\"\n[leaf.responder]\nprotocol = \"minecraft\"\nport = {port}\n");
    let asleep = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "asleep", log_group: Some(group.clone()), ..LeafOptions::default() }).await;
    let mut broken = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "broken", log_group: Some(group), ..LeafOptions::default() }).await;
    broken.zone_id = "ZNOSUCHZONE0".into(); // its record cannot be written: a failed action
    let responder = "[daemon.responder]\nlisten = \"127.0.0.1\"\npublic_ip = \"127.0.0.1\"";
    let daemon = Daemon::start(&world.config_with(&[&awake, &asleep, &broken], responder, FAST_WATCHDOG));
    daemon.wait_for_log(&["responder listening"], WAIT).await;

    // A login at the responder wakes one leaf (an AAAA query is read but wakes nothing);
    // a garbage connection meets the responder; the broken leaf is scaled up by hand and
    // its record write fails.
    world.query(&awake, &awake.domain, "AAAA", now_ms()).await;
    let mut player = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut player, &common::login_bytes(&awake.domain, "Alex")).await.unwrap();
    let mut junk = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut junk, &[0x05, 0x07, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    world.set_desired(&broken, 1).await;
    eventually("the awake leaf up", WAIT, || async { (world.desired(&awake).await == 1).then_some(()) }).await;
    // Traffic until the watchdog has judged: busy first, then quiet (the chart's two levels).
    let busy_until = now_ms().div_euclid(PERIOD_MS) * PERIOD_MS + 10_000;
    let judged = feed(&world, &awake, |p| if p < busy_until { 20_000.0 } else { 500.0 }, Duration::from_secs(60), || async {
        let status = daemon.status().await;
        let view = status["leafs"].as_array()?.iter().find(|l| l["name"] == awake.name.as_str())?.clone();
        (view["periods"].as_array().is_some_and(|p| p.len() >= 3) && view["up_hours_month"].as_f64() > Some(0.0)).then_some(())
    })
    .await;
    assert!(judged.is_some(), "the watchdog judged the awake leaf");

    let (code, html) = daemon.get("/").await;
    assert_eq!(code, 200);
    assert!(html.contains(&awake.name) && html.contains(&asleep.name) && html.contains("class=\"threshold\""), "{html}");

    match chromium() {
        None => common::skipped("page::the_status_page_in_a_browser: no headless Chromium here (tests/run.sh installs chromium-headless-shell)"),
        Some(browser) => {
            let url = format!("http://{}/", daemon.http_addr());
            let shot = world.dir.join("status-page.png");
            let args = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,720"];
            let dom = std::process::Command::new(&browser).args(args).arg("--dump-dom").arg(&url).output().expect("chromium");
            let dom = String::from_utf8_lossy(&dom.stdout);
            // What a person sees: both leafs, their phases, the chart with its threshold line.
            assert!(dom.contains(&awake.name) && dom.contains(&asleep.name), "{dom}");
            assert!(dom.contains("class=\"phase up\"") && dom.contains("class=\"phase asleep\""), "{dom}");
            assert!(dom.contains("<polyline class=\"traffic\"") && dom.contains("idle threshold 1175 B/s"), "{dom}");
            assert!(dom.contains("[dev]"), "the environment is shown: {dom}");
            let out = std::process::Command::new(&browser).args(args).arg(format!("--screenshot={}", shot.display())).arg(&url).output().expect("chromium");
            assert!(shot.exists(), "screenshot: {}", String::from_utf8_lossy(&out.stderr));
            let keep = std::env::temp_dir().join("cm-status-page.png");
            let _ = std::fs::copy(&shot, &keep);
            println!("measured: status page screenshot at {}", keep.display());
        }
    }

    // Every series the dashboard queries is one the daemon exports.
    eventually("a failed action counted", WAIT, || async { (daemon.metric("cm_action_errors_total", &[&format!("leaf=\"{}\"", broken.name)]).await > 0.0).then_some(()) }).await;
    let dashboard: serde_json::Value = serde_json::from_str(include_str!("../deploy/grafana/container-manager.json")).expect("the dashboard is JSON");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            queried.extend(expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("cm_")).map(str::to_owned));
        }
    }
    let (_, metrics) = daemon.get("/metrics").await;
    let exported: BTreeSet<&str> = metrics.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let missing: Vec<&String> = queried.iter().filter(|m| !exported.contains(m.as_str())).collect();
    assert!(queried.len() >= 10, "{queried:?}");
    assert!(missing.is_empty(), "the dashboard queries {missing:?}, which the daemon does not export");
}
