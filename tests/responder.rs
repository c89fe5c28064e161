//! A sleeping leaf answers players itself: the real `mcstatus` server-list client sees
//! "asleep" and wakes nothing, the real `minecraft-protocol` client's login wakes the
//! leaf and is told to come back; a tcp leaf wakes on a connection, a udp leaf on a
//! datagram (never answered); a flood of slow connections does not keep a real client
//! out. The clients are pinned and installed by tests/clients/install.sh.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::world::{Ecs, Leaf};
use common::{eventually, free_port, Daemon, LeafOptions, World};

const WAKE: Duration = Duration::from_secs(30);

/// `[daemon.responder]` on loopback; sleeping leafs' records point at it.
const RESPONDER: &str = "[daemon.responder]\nlisten = \"127.0.0.1\"\npublic_ip = \"127.0.0.1\"";

/// A client's JSON answer, or a skip when the clients are not installed here.
fn client(program: &str, args: &[String]) -> serde_json::Value {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e} (run the tests through tests/run.sh: it installs the clients)"));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap_or_else(|e| panic!("{program} {args:?} printed {text:?} ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)))
}

fn clients_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The server list as `mcstatus` sees it for `address` on `port`.
fn status(port: u16, address: &str) -> serde_json::Value {
    let python = std::env::var("CM_MC_PYTHON").expect("CM_MC_PYTHON: run the tests through tests/run.sh");
    client(&python, &[clients_dir().join("mc_status.py").display().to_string(), "127.0.0.1".into(), port.to_string(), address.into()])
}

/// An offline-mode login by `minecraft-protocol`: what the server kicked it with.
fn login(port: u16, address: &str, player: &str) -> serde_json::Value {
    let modules = std::env::var("CM_MC_NODE_MODULES").expect("CM_MC_NODE_MODULES: run the tests through tests/run.sh");
    let args = [clients_dir().join("mc_login.js").display().to_string(), "127.0.0.1".into(), port.to_string(), address.into(), player.into()];
    let node = std::env::var("CM_MC_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(node).env("NODE_PATH", &modules).args(&args).output().expect("node");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap_or_else(|e| panic!("mc_login.js printed {text:?} ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)))
}

fn minecraft(leaf: &mut Leaf, port: u16, motd: &str) {
    leaf.keys = format!("[leaf.responder]\nprotocol = \"minecraft\"\nport = {port}\nmotd_asleep = \"{motd}\"\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_list_sees_a_sleeping_leaf_and_only_a_login_wakes_it_two_leafs_on_one_port_apart() {
    let world = World::new().await;
    let group = world.log_group().await;
    let port = free_port();
    let mut survival = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "survival", log_group: Some(group.clone()), ..LeafOptions::default() }).await;
    let mut creative = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "creative", log_group: Some(group), ..LeafOptions::default() }).await;
    minecraft(&mut survival, port, "Survival sleeps: join to start");
    minecraft(&mut creative, port, "Creative sleeps: join to start");
    let daemon = Daemon::start(&world.config(&[&survival, &creative], RESPONDER));
    daemon.wait_for_log(&["responder listening"], WAKE).await;
    eventually("the sleeping leafs' records at the responder", WAKE, || async {
        (world.record(&survival).await == Some(("127.0.0.1".into(), 1)) && world.record(&creative).await == Some(("127.0.0.1".into(), 1))).then_some(())
    })
    .await;

    let asleep = status(port, &survival.domain);
    assert!(asleep["motd"].as_str().unwrap_or_default().contains("Survival sleeps"), "{asleep}");
    assert!(status(port, &creative.domain)["motd"].as_str().unwrap_or_default().contains("Creative sleeps"), "told apart by hostname");
    daemon.quiet().await;
    assert_eq!((world.desired(&survival).await, world.desired(&creative).await), (0, 0), "a server-list ping never wakes");

    let started = Instant::now();
    let kicked = login(port, &creative.domain, "Alex");
    assert!(kicked["kicked"].as_str().unwrap_or_default().contains("starting"), "the player is told it is starting: {kicked}");
    eventually("the creative leaf woken by the login", WAKE, || async { (world.desired(&creative).await == 1).then_some(()) }).await;
    println!("measured: login -> ASG desired 1 in {} ms (as the test saw it)", started.elapsed().as_millis());
    daemon.quiet().await;
    assert_eq!(world.desired(&survival).await, 0, "only the leaf the login named");
    let alerts = world.settled_alerts(&daemon, &creative, 1).await;
    assert!(alerts[0].message.contains("login of Alex from 127.0.0.1"), "the alert says who woke it: {alerts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_status_ping_while_starting_says_starting() {
    let world = World::new().await;
    let port = free_port();
    let mut leaf = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "starting", ..LeafOptions::default() }).await;
    leaf.keys = format!("[leaf.responder]\nprotocol = \"minecraft\"\nport = {port}\nmotd_starting = \"Warming up\"\n");
    let daemon = Daemon::start(&world.config(&[&leaf], RESPONDER));
    daemon.wait_for_log(&["responder listening"], WAKE).await;
    daemon.cli(&["wake", &leaf.name]);
    eventually("the wake applied", WAKE, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
    daemon.passes(1).await;
    let starting = status(port, &leaf.domain);
    let motd = starting["motd"].as_str().unwrap_or_default();
    assert!(motd.contains("Warming up") || motd.contains("starting"), "{starting}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tcp_leaf_wakes_on_a_connection_and_a_udp_leaf_on_a_datagram_that_is_never_answered() {
    let world = World::new().await;
    let group = world.log_group().await;
    let (tcp_port, udp_port) = (free_port(), free_port());
    let mut tcp = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "tcp", log_group: Some(group.clone()), ..LeafOptions::default() }).await;
    let mut udp = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "udp", log_group: Some(group), ..LeafOptions::default() }).await;
    tcp.keys = format!("[leaf.responder]\nprotocol = \"tcp\"\nport = {tcp_port}\n");
    udp.keys = format!("[leaf.responder]\nprotocol = \"udp\"\nport = {udp_port}\n");
    let daemon = Daemon::start(&world.config(&[&tcp, &udp], RESPONDER));
    daemon.wait_for_log(&["responder listening"], WAKE).await;

    let mut stream = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], tcp_port))).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAKE, tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed politely, nothing sent: {read:?}");
    eventually("the tcp leaf woken", WAKE, || async { (world.desired(&tcp).await == 1).then_some(()) }).await;

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(b"\xff\xff\xff\xffgetstatus", ("127.0.0.1", udp_port)).await.unwrap();
    eventually("the udp leaf woken", WAKE, || async { (world.desired(&udp).await == 1).then_some(()) }).await;
    daemon.quiet().await;
    let mut buf = [0u8; 64];
    assert!(socket.try_recv_from(&mut buf).is_err(), "a datagram is never answered (no reflection)");
    let wakes = daemon.metric("cm_responder_wakes_total", &[&format!("leaf=\"{}\"", udp.name)]).await;
    assert!((wakes - 1.0).abs() < f64::EPSILON, "one wake request for one datagram: {wakes}");
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundred_slow_connections_do_not_keep_a_real_client_out_or_grow_memory() {
    let world = World::new().await;
    let port = free_port();
    let mut leaf = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "flooded", ..LeafOptions::default() }).await;
    minecraft(&mut leaf, port, "Still answering");
    let daemon = Daemon::start(&world.config(&[&leaf], RESPONDER));
    daemon.wait_for_log(&["responder listening"], WAKE).await;
    let (rss_before, _) = daemon.usage();

    // 500 connections from 25 addresses, each sending one byte of a handshake and then
    // nothing: a slowloris.
    let mut slow = Vec::new();
    for i in 0..500u16 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 1, u8::try_from(1 + i % 25).unwrap()], 0))).unwrap();
        if let Ok(mut s) = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut s, &[0x10]).await;
            slow.push(s);
        }
    }
    let answered = status(port, &leaf.domain);
    assert!(answered["motd"].as_str().unwrap_or_default().contains("Still answering"), "a real client is answered during the flood: {answered}");
    let (rss_during, _) = daemon.usage();
    println!("measured: RSS {rss_before} kB before, {rss_during} kB with 500 slow connections open");
    assert!(rss_during < rss_before + 16 * 1024, "memory stays bounded: {rss_before} -> {rss_during} kB");
    let mut turned_away = 0.0;
    for reason in ["evicted", "share", "rate", "busy"] {
        let n = daemon.metric("cm_responder_refused_total", &[&format!("reason=\"{reason}\"")]).await;
        println!("measured: {n} connections turned away ({reason})");
        turned_away += n;
    }
    assert!(turned_away >= 500.0 - 256.0, "500 stalled connections do not fit in 256 slots: the oldest gave way");
    drop(slow);
    daemon.quiet().await;
    assert_eq!(world.desired(&leaf).await, 0, "nothing in the flood was a login");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_wake_on_dns_off_a_resolver_wakes_nothing_and_a_login_still_does() {
    let world = World::new().await;
    let port = free_port();
    let mut leaf = world.leaf(LeafOptions { ecs: Ecs::None, prefix: "nodns", ..LeafOptions::default() }).await;
    leaf.keys = format!("wake_on_dns = false\n[leaf.responder]\nprotocol = \"minecraft\"\nport = {port}\n");
    let daemon = Daemon::start(&world.config(&[&leaf], RESPONDER));
    daemon.wait_for_log(&["responder listening"], WAKE).await;

    world.query_now(&leaf).await; // a scanner resolving the name
    daemon.quiet().await;
    daemon.passes(2).await; // the tail has read past the query
    assert_eq!(world.desired(&leaf).await, 0, "a DNS query does not wake it");
    assert!(status(port, &leaf.domain)["motd"].as_str().unwrap_or_default().contains("asleep"), "and the server list still says asleep");

    let kicked = login(port, &leaf.domain, "Steve");
    assert!(kicked["kicked"].as_str().unwrap_or_default().contains("starting"), "{kicked}");
    eventually("woken by the login", WAKE, || async { (world.desired(&leaf).await == 1).then_some(()) }).await;
}
