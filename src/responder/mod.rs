//! The responder: while a leaf sleeps, its A record points at the daemon host, which
//! answers for it. A Minecraft server-list ping sees "asleep, join to start" (and never
//! wakes anything), a login wakes the leaf and is told when to come back; a tcp or udp
//! leaf wakes on its first connection or datagram. Once the leaf is up, its record points
//! at the leaf and the daemon is out of the data path.
//!
//! The internet is hostile: connections are capped, each source has a rate and a share
//! of the cap ([`limits`]), reads have deadlines and a size cap, packets are decoded by
//! pure, fuzzed functions ([`codec`]), and a udp datagram is never answered (no
//! reflection). A wake is only a request in the state, decided like a DNS wake
//! (quarantine, dry run, a manual sleep all apply).

pub mod codec;
pub mod limits;
mod minecraft;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Timeline;
use crate::config::{Config, LeafConfig, Protocol};
use crate::state::StateStore;
use crate::status::Status;
use crate::worker::Activator;
use limits::Limits;

/// What the responder shares with the rest of the daemon.
pub struct Links {
    /// The current config (leafs are looked up per connection, so a reload applies).
    pub config: watch::Receiver<Arc<Config>>,
    /// Wake requests go here.
    pub store: Arc<StateStore>,
    /// Each leaf's phase, for the server-list text.
    pub status: Arc<Status>,
    /// A wake is looked at at once.
    pub reconcile: Activator,
    /// The daemon's time.
    pub timeline: Arc<Timeline>,
}

struct Shared {
    links: Links,
    /// Connections' limits.
    limits: Limits,
    /// Datagrams' limits, apart: a spoofed source must cost connections nothing.
    datagrams: Limits,
    /// When each leaf was last asked to wake by the responder.
    asked: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

/// A leaf is asked to wake by the responder at most this often: each request makes a
/// reconcile pass (AWS calls, a state save), and the internet must not drive those.
const ASK_EVERY: Duration = Duration::from_secs(5);

/// Binds a listener for every port the leafs' responders name and serves them until
/// `cancel`. A port that cannot be bound fails the start (the operator must know).
/// Ports added by a reload need a restart; leafs moved between existing ports follow.
pub async fn start(config: &Config, links: Links, fds: usize, tracker: &TaskTracker, cancel: &CancellationToken) -> std::io::Result<usize> {
    let Some(rc) = &config.daemon.responder else { return Ok(0) };
    let max = rc.max_connections().min(fds.max(16));
    if max < rc.max_connections() {
        tracing::warn!(max_connections = rc.max_connections(), used = max, "the open-file limit holds fewer responder connections than max_connections: raise LimitNOFILE");
    }
    let limits = Limits::new(max, rc.per_source_per_minute());
    let datagrams = Limits::new(1, rc.per_source_per_minute());
    let shared = Arc::new(Shared { links, limits, datagrams, asked: std::sync::Mutex::default() });
    let ports = ports(config);
    for &(udp, port) in &ports {
        let at = SocketAddr::new(*rc.listen, port);
        if udp {
            let socket = UdpSocket::bind(at).await.map_err(|e| std::io::Error::new(e.kind(), format!("responder udp {at}: {e}")))?;
            tracker.spawn(serve_udp(socket, port, Arc::clone(&shared), cancel.clone()));
        } else {
            let listener = TcpListener::bind(at).await.map_err(|e| std::io::Error::new(e.kind(), format!("responder tcp {at}: {e}")))?;
            tracker.spawn(serve_tcp(listener, port, Arc::clone(&shared), cancel.clone()));
        }
        tracing::info!(%at, protocol = if udp { "udp" } else { "tcp" }, "responder listening");
    }
    Ok(ports.len())
}

/// The (udp, port) pairs the leafs' responders use.
pub fn ports(config: &Config) -> BTreeSet<(bool, u16)> {
    config.leafs.iter().filter_map(|l| l.responder.as_ref()).map(|r| (*r.protocol == Protocol::Udp, r.port())).collect()
}

/// Accepts connections on one TCP port; each is handled on its own task, holding a slot.
async fn serve_tcp(listener: TcpListener, port: u16, shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, most likely: wait a little rather than spin.
                crate::events::responder_refused("accept_error");
                tracing::warn!(port, error = %e, "responder accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match shared.limits.connection(peer.ip(), Instant::now()).await {
            Ok(slot) => slot,
            Err(why) => {
                crate::events::responder_refused(why.as_str());
                continue; // dropped: closed at once
            }
        };
        let shared = Arc::clone(&shared);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let evicted = slot.evicted();
            tokio::select! {
                () = cancel.cancelled() => {}
                () = evicted.cancelled() => crate::events::responder_refused("evicted"),
                () = connection(stream, peer, port, &shared, &slot) => {}
            }
        });
    }
}

/// One TCP connection: a Minecraft exchange, or a tcp leaf's wake-and-close.
async fn connection(stream: TcpStream, peer: SocketAddr, port: u16, shared: &Shared, slot: &limits::Slot) {
    let config = Arc::clone(&shared.links.config.borrow());
    let on_port: Vec<&LeafConfig> = config.leafs.iter().filter(|l| l.responder.as_ref().is_some_and(|r| *r.protocol != Protocol::Udp && r.port() == port)).collect();
    crate::events::responder_connection(if on_port.iter().any(|l| is(l, Protocol::Tcp)) { "tcp" } else { "minecraft" });
    match on_port.as_slice() {
        [leaf] if is(leaf, Protocol::Tcp) => {
            slot.progressed();
            if allowed(leaf, peer.ip()) {
                wake(shared, leaf, peer.ip(), "connection");
            }
            // Closed politely: what the client sent is read (briefly) so that the close
            // is a FIN, not a reset.
            let mut stream = stream;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            let mut sink = [0u8; 512];
            let drain = async { while matches!(tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await, Ok(n) if n > 0) {} };
            let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
        }
        _ => minecraft::exchange(stream, peer, &on_port, shared, slot).await,
    }
}

/// Receives datagrams on one UDP port: the first wakes the leaf; none is ever answered.
async fn serve_udp(socket: UdpSocket, port: u16, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut buf = vec![0u8; 2048];
    loop {
        let received = tokio::select! {
            () = cancel.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let Ok((_, peer)) = received else { continue };
        crate::events::responder_connection("udp");
        if let Err(why) = shared.datagrams.datagram(peer.ip(), Instant::now()) {
            crate::events::responder_refused(why.as_str());
            continue;
        }
        let config = Arc::clone(&shared.links.config.borrow());
        let leaf = config.leafs.iter().find(|l| l.responder.as_ref().is_some_and(|r| *r.protocol == Protocol::Udp && r.port() == port));
        if let Some(leaf) = leaf
            && allowed(leaf, peer.ip())
        {
            wake(&shared, leaf, peer.ip(), "datagram");
        }
    }
}

fn is(leaf: &LeafConfig, protocol: Protocol) -> bool {
    leaf.responder.as_ref().is_some_and(|r| *r.protocol == protocol)
}

/// Whether `ip` may use the leaf's responder (its `allow` list); counted when not.
fn allowed(leaf: &LeafConfig, ip: IpAddr) -> bool {
    let ok = leaf.responder.as_ref().is_some_and(|r| r.allows(ip));
    if !ok {
        crate::events::responder_refused("allow");
    }
    ok
}

/// Records a wake request for `leaf` (a login, a connection, a datagram from `from`) and
/// has the reconciler look at once. Only asleep leafs are asked for: a running leaf's
/// players reach the leaf itself.
fn wake(shared: &Shared, leaf: &LeafConfig, from: IpAddr, what: &str) {
    let name = leaf.name().as_str();
    if shared.links.status.authority.check().is_err() {
        // A standby's request could never be saved, and the holder would not see it.
        tracing::info!(leaf = name, what, %from, "wake asked at the standby: not recorded (point the responder's public_ip at the holder)");
        return;
    }
    let view = shared.links.status.leaf(name);
    if view.as_ref().is_some_and(|v| matches!(v.phase.as_str(), "up" | "waking") || v.wake_pending || v.quarantined_until.is_some()) {
        return; // nothing to ask for: it runs, a wake is pending, or it rests
    }
    {
        let Ok(mut asked) = shared.asked.lock() else { return };
        let now = Instant::now();
        if asked.get(name).is_some_and(|at| now.saturating_duration_since(*at) < ASK_EVERY) {
            return;
        }
        asked.insert(name.to_owned(), now);
    }
    let now = shared.links.timeline.now();
    let edge = format!("{}{what} from {from}", crate::state::RESPONDER);
    shared.links.store.update(|s| s.leafs.entry(name.to_owned()).or_default().request_wake(now, &edge));
    crate::events::responder_wake(name, what, &from.to_string());
    shared.links.reconcile.activate();
}
