//! The benchmark: wake and DNS latency, AWS calls per minute by operation, cost per
//! leaf-month and footprint, measured against the emulators through a counting proxy.
//!
//! In the test command it runs as a short smoke test (it checks that every figure was
//! produced, never how fast). `tests/bench.sh` runs the full version (`CM_BENCH=full`,
//! the release binary) and writes docs/performance.md's tables and a JSON file.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "benchmark statistics: counts, bytes and milliseconds as f64 and back, all far below 2^52"
)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use common::proxy::Proxied;
use common::shapes::Network;
use common::world::REGION;
use common::busy::{self, Zone};
use common::{eventually, now_ms, query_line, Daemon, World};
use serde_json::json;

/// How much to measure.
struct Plan {
    full: bool,
    wake_runs: Vec<(usize, usize)>,
    call_sizes: Vec<usize>,
    window: Duration,
    /// (unrelated lines per second, wakes) of the busy-zone runs.
    busy_runs: Vec<(usize, usize)>,
    /// (leafs, wakes) of fleets of mixed shapes: a wake run, and in full mode a calls run
    /// with a tenth of them awake.
    mixed_runs: Vec<(usize, usize)>,
    /// Wakes by a Minecraft login at the responder (0: none).
    responder_wakes: usize,
}

impl Plan {
    fn from_env() -> Self {
        let mut plan = Self::preset();
        // Re-measure a part: CM_BENCH_WAKES="1000x10,100x50", CM_BENCH_SIZES="1,1000" (empty: none).
        if let Ok(w) = std::env::var("CM_BENCH_WAKES") {
            plan.wake_runs = w.split(',').filter_map(|r| r.split_once('x')).filter_map(|(n, k)| Some((n.parse().ok()?, k.parse().ok()?))).collect();
        }
        if let Ok(s) = std::env::var("CM_BENCH_SIZES") {
            plan.call_sizes = s.split(',').filter_map(|n| n.parse().ok()).collect();
        }
        // CM_BENCH_MIXED="1000x12" (leafs x wakes of mixed shapes; empty: none).
        if let Ok(m) = std::env::var("CM_BENCH_MIXED") {
            plan.mixed_runs = m.split(',').filter_map(|r| r.split_once('x')).filter_map(|(n, k)| Some((n.parse().ok()?, k.parse().ok()?))).collect();
        }
        // CM_BENCH_RESPONDER="30" (logins at the responder; 0: none).
        if let Ok(r) = std::env::var("CM_BENCH_RESPONDER") {
            plan.responder_wakes = r.parse().unwrap_or(0);
        }
        // CM_BENCH_BUSY="0x20,200x20,1000x20" (lines per second x wakes; empty: none).
        if let Ok(b) = std::env::var("CM_BENCH_BUSY") {
            plan.busy_runs = b.split(',').filter_map(|r| r.split_once('x')).filter_map(|(n, k)| Some((n.parse().ok()?, k.parse().ok()?))).collect();
        }
        plan
    }

    fn preset() -> Self {
        if std::env::var("CM_BENCH").as_deref() == Ok("full") {
            Self {
                full: true,
                wake_runs: vec![(1, 50), (100, 50), (1000, 10)],
                call_sizes: vec![1, 10, 100, 1000],
                window: Duration::from_secs(60),
                busy_runs: vec![(0, 30), (200, 30), (1000, 30)],
                mixed_runs: vec![(1000, 12)],
                responder_wakes: 30,
            }
        } else {
            Self { full: false, wake_runs: vec![(1, 3)], call_sizes: vec![10], window: Duration::from_secs(6), busy_runs: vec![(200, 2)], mixed_runs: vec![(8, 4)], responder_wakes: 2 }
        }
    }
}

/// What a benchmark leaf is, for a fleet of mixed shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// An ASG of one instance (the original).
    Asg,
    /// An ASG and a REPLICA service, every instance in the record (`dns = "all"`).
    AsgService,
    /// A Fargate service and no ASG; the record follows the task.
    Fargate,
    /// A Fargate service with a scalable target (min 1, max 10), `dns = "none"`.
    Scaled,
}

impl Shape {
    fn of(i: usize, mixed: bool) -> Self {
        if !mixed {
            return Shape::Asg;
        }
        [Shape::Asg, Shape::AsgService, Shape::Fargate, Shape::Scaled][i % 4]
    }

    fn has_record(self) -> bool {
        self != Shape::Scaled
    }
}

/// N lightweight leafs: one launch template, one hosted zone with N records, one
/// query-log group; with `mixed`, a quarter of each shape (the services share one
/// cluster and one network). What the daemon reads and writes is the same as for full
/// leafs.
struct Fleet {
    shapes: Vec<Shape>,
    /// ASG name (empty without one).
    asgs: Vec<String>,
    /// Service name (empty without one), in `cluster`.
    services: Vec<String>,
    cluster: String,
    domains: Vec<String>,
    zone: String,
    group: String,
}

async fn fleet(world: &World, n: usize, mixed: bool) -> Fleet {
    let id = common::unique("bench");
    let template = world.launch_template(&format!("{id}-lt")).await;
    let shapes: Vec<Shape> = (0..n).map(|i| Shape::of(i, mixed)).collect();
    let cluster = format!("{id}-cluster");
    let net = if mixed { Some(world.network(&id).await) } else { None };
    if mixed {
        world.ecs.create_cluster().cluster_name(&cluster).send().await.unwrap();
    }
    let (mut asgs, mut services) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (i, shape) in shapes.iter().enumerate() {
        let name = format!("{id}-{i}");
        let asg = if matches!(shape, Shape::Asg | Shape::AsgService) {
            world.new_asg(&name, &template).availability_zones(format!("{REGION}a")).send().await.unwrap();
            name.clone()
        } else {
            String::new()
        };
        let service = match (shape, &net) {
            (Shape::AsgService, _) => {
                world.ec2_service_in(&cluster, &name, common::world::Ecs::Replica).await;
                name.clone()
            }
            (Shape::Fargate | Shape::Scaled, Some(net)) => fargate_in(world, &cluster, &name, net, *shape == Shape::Scaled).await,
            _ => String::new(),
        };
        asgs.push(asg);
        services.push(service);
    }
    let zone_name = format!("{id}.example.com");
    let zone = world.route53.create_hosted_zone().name(&zone_name).caller_reference(&id).send().await.unwrap();
    let zone = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_owned();
    let domains: Vec<String> = (0..n).map(|i| format!("l{i}.{zone_name}")).collect();
    for chunk in domains.chunks(500) {
        let mut batch = ChangeBatch::builder();
        for d in chunk {
            let rr = ResourceRecordSet::builder().name(d).r#type(RrType::A).ttl(1).resource_records(ResourceRecord::builder().value("0.0.0.0").build().unwrap()).build().unwrap();
            batch = batch.changes(Change::builder().action(ChangeAction::Upsert).resource_record_set(rr).build().unwrap());
        }
        world.route53.change_resource_record_sets().hosted_zone_id(&zone).change_batch(batch.build().unwrap()).send().await.unwrap();
    }
    let group = world.log_group().await;
    Fleet { shapes, asgs, services, cluster, domains, zone, group }
}

async fn fargate_in(world: &World, cluster: &str, name: &str, net: &Network, scaled: bool) -> String {
    world.fargate_service_in(cluster, name, net, None).await;
    if scaled {
        use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
        let target = world.scaling.register_scalable_target().service_namespace(ServiceNamespace::Ecs).scalable_dimension(ScalableDimension::EcsServiceDesiredCount);
        target.resource_id(format!("service/{cluster}/{name}")).min_capacity(1).max_capacity(10).send().await.unwrap();
    }
    name.to_owned()
}

impl Fleet {
    /// The call that wakes leaf `i`, as the counting proxy saw it after `t0`.
    fn wake_call(&self, calls: Vec<common::proxy::Call>, i: usize, t0: i64) -> Option<common::proxy::Call> {
        let asg = &self.asgs[i];
        let service = format!("\"service\":\"{}\"", self.services[i]);
        calls.into_iter().find(|c| {
            c.at_ms >= t0
                && if asg.is_empty() {
                    c.operation == "UpdateService" && c.text.contains(&service) && !c.text.contains("\"desiredCount\":0")
                } else {
                    c.operation == "SetDesiredCapacity" && c.text.contains(&format!("AutoScalingGroupName={asg}&"))
                }
        })
    }

    /// Puts leaf `i` back to sleep as an operator would.
    async fn sleep(&self, world: &World, i: usize) {
        if self.asgs[i].is_empty() {
            world.ecs.update_service().cluster(&self.cluster).service(&self.services[i]).desired_count(0).send().await.unwrap();
        } else {
            world.asg.set_desired_capacity().auto_scaling_group_name(&self.asgs[i]).desired_capacity(0).send().await.unwrap();
        }
    }

    /// Wakes leaf `i` behind the daemon's back (a leaf found awake at start).
    async fn wake(&self, world: &World, i: usize) {
        if self.asgs[i].is_empty() {
            world.ecs.update_service().cluster(&self.cluster).service(&self.services[i]).desired_count(1).send().await.unwrap();
        } else {
            world.asg.set_desired_capacity().auto_scaling_group_name(&self.asgs[i]).desired_capacity(1).send().await.unwrap();
        }
    }
}

fn config(world: &World, fleet: &Fleet) -> std::path::PathBuf {
    let mut text = format!(
        "[daemon]\nregion = \"{REGION}\"\nquery_log_group = \"{}\"\nstate_file = \"{}\"\nlisten = \"127.0.0.1:{}\"\n",
        fleet.group,
        world.dir.join(format!("{}.json", common::unique("state"))).display(),
        common::free_port()
    );
    for (i, domain) in fleet.domains.iter().enumerate() {
        let _ = write!(text, "[[leaf]]\nname = \"l{i}\"\ndomain = \"{domain}\"\nhosted_zone_id = \"{}\"\n", fleet.zone);
        let (asg, service) = (&fleet.asgs[i], &fleet.services[i]);
        if !asg.is_empty() {
            let _ = writeln!(text, "asg = \"{asg}\"");
        }
        if !service.is_empty() {
            let _ = writeln!(text, "ecs_cluster = \"{}\"\necs_service = \"{service}\"", fleet.cluster);
        }
        let (keys, traffic) = match fleet.shapes[i] {
            Shape::Asg => ("", "instances"),
            Shape::AsgService => ("dns = \"all\"\n", "instances"),
            Shape::Fargate => ("", "service"),
            Shape::Scaled => ("dns = \"none\"\n", "load_balancer\"\nload_balancer = \"net/bench/0123456789abcdef"),
        };
        // 10-second watchdog periods so that a one-minute window sees metric reads.
        let _ = write!(text, "{keys}[leaf.watchdog]\nthreshold = 1175\nperiod = \"10s\"\nidle_after = \"10s\"\ntraffic = \"{traffic}\"\n");
    }
    let path = world.dir.join(format!("{}.toml", common::unique("bench")));
    std::fs::write(&path, text).unwrap();
    path
}

fn stats(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    json!({"n": v.len(), "min": v[0], "median": pick(0.5), "p99": pick(0.99), "max": v[v.len() - 1]})
}

async fn ready(daemon: &Daemon, started: Instant) -> f64 {
    daemon.wait_for_log(&["ready: config loaded and AWS answering"], Duration::from_secs(300)).await;
    started.elapsed().as_secs_f64() * 1000.0
}

/// Wakes leafs one at a time; returns (wake latencies ms, DNS latencies ms, ready ms, peak RSS kB, CPU ms).
async fn wake_run(world: &World, n: usize, wakes: usize, mixed: bool) -> serde_json::Value {
    let fleet = fleet(world, n, mixed).await;
    let counting = Proxied::start().await;
    let started = Instant::now();
    let daemon = counting.daemon(&config(world, &fleet), &[]);
    let ready_ms = ready(&daemon, started).await;
    let (_, cpu_before) = daemon.usage();
    let run_started = Instant::now();
    let (mut wake_ms, mut dns_ms, mut peak_rss) = (Vec::new(), Vec::new(), 0);
    for k in 0..wakes {
        let i = (k * 7) % n;
        let domain = &fleet.domains[i];
        let at = now_ms();
        world.put_line(&fleet.group, "FRA6", at, &query_line(at, &fleet.zone, domain, "A")).await;
        let t0 = now_ms(); // PutLogEvents returned: the line is readable
        let set = eventually("the wake call at the emulator", Duration::from_secs(60), || async { fleet.wake_call(counting.moto.calls(), i, t0) }).await;
        wake_ms.push((set.at_ms - t0) as f64);
        peak_rss = peak_rss.max(daemon.usage().0);
        if !fleet.shapes[i].has_record() {
            fleet.sleep(world, i).await;
            daemon.passes(2).await;
            continue;
        }
        let upsert = eventually("the A record UPSERT at the emulator", Duration::from_secs(60), || async {
            counting.localstack.calls().into_iter().find(|c| c.at_ms >= set.at_ms && c.operation == "ChangeResourceRecordSets" && c.text.contains(domain.as_str()) && !c.text.contains("0.0.0.0"))
        })
        .await;
        dns_ms.push((upsert.at_ms - set.at_ms) as f64);
        // Back to sleep (as an operator would), and let the daemon settle before the next.
        fleet.sleep(world, i).await;
        eventually("the record back at the idle IP", Duration::from_secs(60), || async {
            counting.localstack.calls().into_iter().find(|c| c.at_ms >= upsert.at_ms && c.operation == "ChangeResourceRecordSets" && c.text.contains(domain.as_str()) && c.text.contains("0.0.0.0"))
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500 + (now_ms() % 1000) as u64)).await;
    }
    let (rss, cpu_after) = daemon.usage();
    let cpu_share = (cpu_after - cpu_before) as f64 / run_started.elapsed().as_millis() as f64;
    json!({"leafs": n, "shapes": shapes_label(mixed), "wakes": wakes, "wake_latency_ms": stats(wake_ms), "dns_latency_ms": stats(dns_ms), "ready_ms": ready_ms, "rss_kb_peak": peak_rss.max(rss), "cpu_share_of_one_core": cpu_share})
}

fn shapes_label(mixed: bool) -> &'static str {
    if mixed { "mixed" } else { "asg" }
}

/// Counts calls per minute by operation with `n` leafs, `awake` of them up.
async fn calls_run(world: &World, n: usize, awake: usize, window: Duration, mixed: bool) -> serde_json::Value {
    let fleet = fleet(world, n, mixed).await;
    for i in 0..awake {
        fleet.wake(world, i).await;
    }
    let counting = Proxied::start().await;
    let started = Instant::now();
    let daemon = counting.daemon(&config(world, &fleet), &[]);
    let ready_ms = ready(&daemon, started).await;
    // First reads and adoption done; awake leafs past their first watchdog period.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let from = now_ms();
    let reads_before = metric_sum(&daemon, "cm_traffic_reads_total").await;
    let (_, cpu_before) = daemon.usage();
    tokio::time::sleep(window).await;
    let (rss, cpu_after) = daemon.usage();
    let reads = metric_sum(&daemon, "cm_traffic_reads_total").await - reads_before;
    let minutes = window.as_secs_f64() / 60.0;
    let mut per_op: BTreeMap<String, f64> = BTreeMap::new();
    for c in counting.calls().into_iter().filter(|c| c.at_ms >= from && c.at_ms < from + window.as_millis() as i64) {
        *per_op.entry(c.operation).or_default() += 1.0 / minutes;
    }
    let total: f64 = per_op.values().sum();
    json!({
        "leafs": n, "shapes": shapes_label(mixed), "awake": awake, "calls_per_minute": per_op, "total_per_minute": total,
        "metrics_requested_per_minute": reads / minutes, "ready_ms": ready_ms, "rss_kb": rss,
        "cpu_share_of_one_core": (cpu_after - cpu_before) as f64 / window.as_millis() as f64,
    })
}

/// One leaf in a hosted zone busy with `rate` unrelated lines per second (20 edge streams,
/// each line delivered up to 20 s late), default settings: wake latency, FilterLogEvents
/// calls and bytes per minute, CPU, and memory before, during and after the burst.
async fn busy_run(world: &World, rate: usize, wakes: usize, full: bool) -> serde_json::Value {
    let fleet = fleet(world, 1, false).await;
    let zone = Zone { apex: fleet.domains[0].split_once('.').unwrap().1.to_owned(), zone_id: fleet.zone.clone(), lines_per_second: rate, streams: 20, max_delay: Duration::from_secs(20) };
    busy::create_streams(world, &fleet.group, &zone).await;
    let counting = Proxied::start().await;
    let daemon = counting.daemon(&config(world, &fleet), &[]);
    ready(&daemon, Instant::now()).await;
    let (rss_quiet, _) = daemon.usage();
    let traffic = (rate > 0).then(|| busy::start(world, &fleet.group, &zone, 11));
    // Let the head window and the sweep's first chunks fill with the zone's traffic.
    tokio::time::sleep(Duration::from_secs(if full { 150 } else { 5 })).await;
    let (from, (_, cpu_before)) = (now_ms(), daemon.usage());
    let mut rng = common::Rng::new(5);
    let (asg, domain) = (&fleet.asgs[0], &fleet.domains[0]);
    let (mut wake_ms, mut rss_peak) = (Vec::new(), 0);
    for _ in 0..wakes {
        // The player's query, delivered like the zone's other lines: up to 20 s late.
        let asked = now_ms() - i64::try_from(rng.below(20_000)).unwrap();
        world.put_line(&fleet.group, "EDGE00", asked, &query_line(asked, &fleet.zone, domain, "A")).await;
        let t0 = now_ms();
        let set = eventually("SetDesiredCapacity at the emulator", Duration::from_secs(120), || async {
            counting.moto.calls().into_iter().find(|c| c.at_ms >= t0 && c.operation == "SetDesiredCapacity" && c.text.contains(&format!("AutoScalingGroupName={asg}&")))
        })
        .await;
        wake_ms.push((set.at_ms - t0) as f64);
        rss_peak = rss_peak.max(daemon.usage().0);
        // Up (the record follows the instance), then back to sleep as an operator would.
        let upsert = eventually("the A record UPSERT at the emulator", Duration::from_secs(120), || async {
            counting.localstack.calls().into_iter().find(|c| c.at_ms >= set.at_ms && c.operation == "ChangeResourceRecordSets" && !c.text.contains("0.0.0.0"))
        })
        .await;
        world.asg.set_desired_capacity().auto_scaling_group_name(asg).desired_capacity(0).send().await.unwrap();
        eventually("the record back at the idle IP", Duration::from_secs(120), || async {
            counting.localstack.calls().into_iter().find(|c| c.at_ms >= upsert.at_ms && c.operation == "ChangeResourceRecordSets" && c.text.contains("0.0.0.0"))
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1000 + rng.below(1000))).await;
    }
    let (to, (_, cpu_after)) = (now_ms(), daemon.usage());
    let written = match traffic {
        Some(t) => t.stop().await,
        None => 0,
    };
    let minutes = (to - from) as f64 / 60_000.0;
    let reads: Vec<_> = counting.localstack.calls().into_iter().filter(|c| c.operation == "FilterLogEvents" && c.at_ms >= from && c.at_ms < to).collect();
    // Nothing lost: every line written is read once by the sweep (full runs wait for it,
    // up to five minutes; the table shows both counts whatever they are).
    let mut swept = 0.0;
    if full {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            swept = daemon.metric("cm_query_log_lines_total", &["pass=\"sweep\""]).await;
            if swept >= (written + wakes) as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        println!("bench: busy {rate}/s swept {swept} of {} lines; status {}", written + wakes, daemon.status().await["query_log"]);
    }
    // Memory after the burst: a minute of quiet, then the resident set.
    tokio::time::sleep(Duration::from_secs(if full { 60 } else { 3 })).await;
    let (rss_after, _) = daemon.usage();
    json!({
        "lines_per_second": rate, "wakes": wakes, "lines_written": written, "lines_swept": swept,
        "wake_latency_ms": stats(wake_ms),
        "filter_log_events_per_minute": reads.len() as f64 / minutes,
        "bytes_read_per_minute": reads.iter().map(|c| c.response_bytes).sum::<usize>() as f64 / minutes,
        "cpu_share_of_one_core": (cpu_after - cpu_before) as f64 / (to - from) as f64,
        "rss_kb_quiet": rss_quiet, "rss_kb_peak": rss_peak, "rss_kb_after": rss_after,
        "found_by_sweep": metric_sum(&daemon, "cm_query_log_found_by_sweep_total").await,
    })
}


/// One leaf answered by the responder: from a client's login (connect, handshake, login
/// start) to SetDesiredCapacity at the emulator, the path that skips the query log.
async fn responder_run(world: &World, wakes: usize) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fleet = fleet(world, 1, false).await;
    let port = common::free_port();
    let path = config(world, &fleet);
    let mut text = std::fs::read_to_string(&path).unwrap();
    let _ = write!(text, "[leaf.responder]\nprotocol = \"minecraft\"\nport = {port}\n[daemon.responder]\nlisten = \"127.0.0.1\"\npublic_ip = \"127.0.0.1\"\n");
    std::fs::write(&path, text).unwrap();
    let counting = Proxied::start().await;
    let daemon = counting.daemon(&path, &[]);
    ready(&daemon, Instant::now()).await;
    let (asg, domain) = (&fleet.asgs[0], &fleet.domains[0]);
    let mut wake_ms = Vec::new();
    for _ in 0..wakes {
        let t0 = now_ms();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(&common::login_bytes(domain, "Bench")).await.unwrap();
        let mut kick = Vec::new();
        let _ = stream.read_to_end(&mut kick).await;
        let set = eventually("SetDesiredCapacity at the emulator", Duration::from_secs(60), || async { fleet.wake_call(counting.moto.calls(), 0, t0) }).await;
        wake_ms.push((set.at_ms - t0) as f64);
        world.asg.set_desired_capacity().auto_scaling_group_name(asg).desired_capacity(0).send().await.unwrap();
        eventually("the leaf asleep again", Duration::from_secs(60), || async {
            let status = daemon.status().await;
            (status["leafs"][0]["phase"] == "asleep" && status["leafs"][0]["wake_pending"] == false).then_some(())
        })
        .await;
        daemon.passes(1).await;
    }
    json!({"wakes": wakes, "wake_latency_ms": stats(wake_ms)})
}

async fn metric_sum(daemon: &Daemon, name: &str) -> f64 {
    let (_, text) = daemon.get("/metrics").await;
    text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).fold(0.0, |a, b| a + b)
}

#[tokio::test(flavor = "multi_thread")]
async fn benchmark() {
    let plan = Plan::from_env();
    let world = World::new().await;
    let mut wakes = Vec::new();
    for &(n, count) in &plan.wake_runs {
        let r = wake_run(&world, n, count, false).await;
        println!("bench: wake {r}");
        wakes.push(r);
    }
    let mut calls = Vec::new();
    for &n in &plan.call_sizes {
        let awakes = match (plan.full, n >= 10) {
            (true, true) => vec![0, n / 10],
            (true, false) => vec![0],
            (false, _) => vec![n / 10], // smoke: one run that exercises every kind of read
        };
        for awake in awakes {
            let r = calls_run(&world, n, awake, plan.window, false).await;
            println!("bench: calls {r}");
            calls.push(r);
        }
    }
    for &(n, count) in &plan.mixed_runs {
        let r = wake_run(&world, n, count, true).await;
        println!("bench: wake {r}");
        wakes.push(r);
        if plan.full {
            let r = calls_run(&world, n, n / 10, plan.window, true).await;
            println!("bench: calls {r}");
            calls.push(r);
        }
    }
    let mut busy = Vec::new();
    for &(rate, count) in &plan.busy_runs {
        let r = busy_run(&world, rate, count, plan.full).await;
        println!("bench: busy {r}");
        busy.push(r);
    }
    let responder = if plan.responder_wakes > 0 { Some(responder_run(&world, plan.responder_wakes).await) } else { None };
    if let Some(r) = &responder {
        println!("bench: responder {r}");
        assert!(r["wake_latency_ms"]["n"].as_u64() > Some(0), "{r}");
    }
    let mut results = json!({"full": plan.full, "machine": machine(), "wakes": wakes, "calls": calls, "busy": busy, "responder": responder});
    if let Some(previous) = std::env::var("CM_BENCH_MERGE").ok().and_then(|p| std::fs::read_to_string(p).ok()).and_then(|t| serde_json::from_str(&t).ok()) {
        merge(&mut results, &previous);
    }
    let out = std::path::PathBuf::from(std::env::var("CM_BENCH_OUT").unwrap_or_else(|_| std::env::temp_dir().join("cm-bench").display().to_string()));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("bench.json"), serde_json::to_string_pretty(&results).unwrap()).unwrap();
    std::fs::write(out.join("bench.md"), markdown(&results)).unwrap();
    println!("bench: wrote {}", out.display());
    // A smoke run checks that every figure exists, never how fast it was.
    for w in &wakes {
        assert!(w["wake_latency_ms"]["n"].as_u64() > Some(0) && w["dns_latency_ms"]["median"].is_number() && w["rss_kb_peak"].as_u64() > Some(0));
    }
    for b in &busy {
        assert!(b["wake_latency_ms"]["n"].as_u64() > Some(0) && b["bytes_read_per_minute"].as_f64() > Some(0.0) && b["rss_kb_after"].as_u64() > Some(0), "{b}");
    }
    for c in &calls {
        assert!(c["calls_per_minute"]["FilterLogEvents"].as_f64() > Some(0.0), "the tail read the log: {c}");
        assert!(c["calls_per_minute"]["DescribeAutoScalingGroups"].as_f64() > Some(0.0), "the reconciler read the ASGs: {c}");
    }
}

/// A partial re-run keeps the rows of the last full run that it did not measure again
/// (rows are keyed by their size: leafs, leafs and awake, unrelated lines per second).
fn merge(results: &mut serde_json::Value, previous: &serde_json::Value) {
    for (section, keys) in [("wakes", &["leafs", "shapes"][..]), ("calls", &["leafs", "awake", "shapes"][..]), ("busy", &["lines_per_second"][..])] {
        let key = |row: &serde_json::Value| keys.iter().map(|k| row[*k].to_string()).collect::<Vec<_>>().join("/");
        let fresh: Vec<serde_json::Value> = results[section].as_array().cloned().unwrap_or_default();
        let mut rows: Vec<serde_json::Value> = previous[section].as_array().cloned().unwrap_or_default();
        for row in &mut rows {
            if section != "busy" && row["shapes"].is_null() {
                row["shapes"] = json!("asg"); // rows measured before fleets had shapes
            }
        }
        for row in fresh {
            match rows.iter_mut().find(|r| key(r) == key(&row)) {
                Some(old) => *old = row,
                None => rows.push(row),
            }
        }
        rows.sort_by_key(|r| keys.iter().map(|k| r[*k].as_u64().map_or_else(|| r[*k].as_str().unwrap_or("asg").to_owned(), |n| format!("{n:012}"))).collect::<Vec<_>>());
        results[section] = serde_json::Value::Array(rows);
    }
    if results["responder"].is_null() {
        results["responder"] = previous["responder"].clone();
    }
    results["full"] = previous["full"].clone();
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned()).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{cores} cores, {cpu}")
}

/// The markdown tables for docs/performance.md.
pub fn markdown(r: &serde_json::Value) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {}. Mode: {}.\n", r["machine"].as_str().unwrap_or(""), if r["full"] == true { "full" } else { "smoke" });
    let _ = writeln!(md, "### Latency (ms): query-log line readable → the wake call at the emulator (SetDesiredCapacity; UpdateService for a leaf without an ASG); wake call (instance or task up at once in moto) → A-record UPSERT at the emulator\n");
    let _ = writeln!(md, "Shapes `asg`: every leaf an ASG of one instance. `mixed`: a quarter each of an ASG, an ASG with a service and `dns = \"all\"`, a Fargate service, a Fargate service with a scalable target and `dns = \"none\"` (no DNS latency: its record is never written).\n");
    let _ = writeln!(md, "| leafs | shapes | wakes | wake min | wake median | wake p99 | DNS min | DNS median | DNS p99 | start → READY | peak RSS | CPU (of one core) |\n|---|---|---|---|---|---|---|---|---|---|---|---|");
    for w in r["wakes"].as_array().into_iter().flatten() {
        let (l, d) = (&w["wake_latency_ms"], &w["dns_latency_ms"]);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} ms | {:.1} MB | {:.2}% |",
            w["leafs"], w["shapes"].as_str().unwrap_or("asg"), w["wakes"], l["min"], l["median"], l["p99"], d["min"], d["median"], d["p99"],
            w["ready_ms"].as_f64().unwrap_or(0.0), w["rss_kb_peak"].as_f64().unwrap_or(0.0) / 1024.0, w["cpu_share_of_one_core"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    if let Some(l) = r["responder"]["wake_latency_ms"].as_object() {
        let _ = writeln!(md, "\n### Latency (ms): a Minecraft login at the responder (connect, handshake, login start) → SetDesiredCapacity at the emulator, beside the DNS path above\n");
        let _ = writeln!(md, "| path | wakes | min | median | p99 |\n|---|---|---|---|---|");
        let _ = writeln!(md, "| responder login | {} | {} | {} | {} |", r["responder"]["wakes"], l["min"], l["median"], l["p99"]);
        if let Some(dns) = r["wakes"].as_array().and_then(|w| w.first()) {
            let d = &dns["wake_latency_ms"];
            let _ = writeln!(md, "| DNS query (1 leaf, above) | {} | {} | {} | {} |", dns["wakes"], d["min"], d["median"], d["p99"]);
        }
    }
    let _ = writeln!(md, "\n### A busy hosted zone: one leaf, unrelated query-log lines from 20 edge streams delivered up to 20 s late; default settings (poll 1 s, FilterLogEvents budget 2.5/s = 150/min)\n");
    let _ = writeln!(md, "| unrelated lines/s | wakes | wake median | wake p99 | FilterLogEvents/min | bytes read/min | CPU (of one core) | RSS quiet | RSS peak | RSS a minute after | lines written | lines swept | found by sweep |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for b in r["busy"].as_array().into_iter().flatten() {
        let mb = |k: &str| b[k].as_f64().unwrap_or(0.0) / 1024.0;
        let _ = writeln!(
            md,
            "| {} | {} | {} ms | {} ms | {:.1} | {:.1} MB | {:.2}% | {:.1} MB | {:.1} MB | {:.1} MB | {} | {} | {} |",
            b["lines_per_second"], b["wakes"], b["wake_latency_ms"]["median"], b["wake_latency_ms"]["p99"], b["filter_log_events_per_minute"].as_f64().unwrap_or(0.0),
            b["bytes_read_per_minute"].as_f64().unwrap_or(0.0) / 1_048_576.0, b["cpu_share_of_one_core"].as_f64().unwrap_or(0.0) * 100.0,
            mb("rss_kb_quiet"), mb("rss_kb_peak"), mb("rss_kb_after"), b["lines_written"], b["lines_swept"], b["found_by_sweep"]
        );
    }
    let _ = writeln!(md, "\n### AWS calls per minute by operation (steady state, after start-up reads)\n");
    let ops = ["FilterLogEvents", "DescribeAutoScalingGroups", "DescribeInstances", "ListResourceRecordSets", "ChangeResourceRecordSets", "GetMetricData", "DescribeServices", "ListTasks", "DescribeScalableTargets"];
    let _ = writeln!(md, "| leafs | shapes | awake | {} | other | total | metrics requested/min | RSS | CPU (of one core) | start → READY |\n|---|---|---|{}---|---|---|---|---|---|", ops.join(" | "), "---|".repeat(ops.len()));
    for c in r["calls"].as_array().into_iter().flatten() {
        let cells: Vec<String> = ops.iter().map(|op| format!("{:.1}", c["calls_per_minute"][*op].as_f64().unwrap_or(0.0))).collect();
        let listed: f64 = ops.iter().map(|op| c["calls_per_minute"][*op].as_f64().unwrap_or(0.0)).sum();
        let total = c["total_per_minute"].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} MB | {:.2}% | {:.0} ms |",
            c["leafs"], c["shapes"].as_str().unwrap_or("asg"), c["awake"], cells.join(" | "), total - listed, total, c["metrics_requested_per_minute"].as_f64().unwrap_or(0.0),
            c["rss_kb"].as_f64().unwrap_or(0.0) / 1024.0, c["cpu_share_of_one_core"].as_f64().unwrap_or(0.0) * 100.0, c["ready_ms"].as_f64().unwrap_or(0.0)
        );
    }
    md
}
