//! The Minecraft exchange for a sleeping leaf: route by the handshake's address, answer
//! a server-list ping with the leaf's state, wake on a login and tell the player when to
//! come back. Every read has a deadline: a client that stalls loses its slot.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, Malformed};
use super::Shared;
use crate::config::{LeafConfig, WakeOn};

/// The whole exchange, handshake to last answer: a real client needs milliseconds.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(5);

/// A start takes this long when the leaf has never been seen starting.
const DEFAULT_START_S: i64 = 60;

/// Reads whole packets from a connection, never more than one packet's cap buffered.
struct Packets {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Packets {
    async fn next(&mut self) -> Result<(i32, Vec<u8>), Malformed> {
        loop {
            if let Some((id, payload, used)) = codec::packet(&self.buf)? {
                let payload = payload.to_vec();
                self.buf.drain(..used);
                return Ok((id, payload));
            }
            if self.buf.len() > codec::MAX_PACKET + 5 {
                return Err(Malformed::Length(i64::try_from(self.buf.len()).unwrap_or(i64::MAX)));
            }
            let mut chunk = [0u8; 512];
            let n = self.stream.read(&mut chunk).await.map_err(|_| Malformed::Truncated)?;
            if n == 0 {
                return Err(Malformed::Truncated);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }
}

/// Serves one connection to a minecraft port whose leafs are `on_port`.
pub async fn exchange(stream: TcpStream, peer: SocketAddr, on_port: &[&LeafConfig], shared: &Shared, slot: &super::limits::Slot) {
    let mut packets = Packets { stream, buf: Vec::with_capacity(256) };
    let outcome = tokio::time::timeout(EXCHANGE_DEADLINE, serve(&mut packets, peer, on_port, shared, slot)).await;
    match outcome {
        Err(_) => crate::events::responder_refused("deadline"),
        // The client hung up: a normal end after a ping.
        Ok(Ok(()) | Err(Malformed::Truncated)) => {}
        Ok(Err(e)) => crate::events::responder_malformed(&e.to_string()),
    }
    let _ = packets.stream.shutdown().await;
}

async fn serve(packets: &mut Packets, peer: SocketAddr, on_port: &[&LeafConfig], shared: &Shared, slot: &super::limits::Slot) -> Result<(), Malformed> {
    let mut first = [0u8; 1];
    if packets.stream.peek(&mut first).await.map_err(|_| Malformed::Truncated)? == 0 {
        return Err(Malformed::Truncated);
    }
    if codec::legacy(first[0]) {
        return Err(Malformed::Legacy);
    }
    let (id, payload) = packets.next().await?;
    let hello = codec::handshake(id, &payload)?;
    slot.progressed();
    // One leaf on the port answers whatever name the client used (a bare IP, say).
    let leaf = match on_port {
        [only] => Some(*only),
        many => many.iter().copied().find(|l| l.domain().as_str() == hello.address),
    };
    let Some(leaf) = leaf else {
        crate::events::responder_refused("unknown_host");
        return Ok(());
    };
    if !super::allowed(leaf, peer.ip()) {
        return Ok(());
    }
    let responder = leaf.responder.as_ref().expect("routed to a responder leaf");
    if hello.next == 1 {
        let (id, _) = packets.next().await?;
        if id != 0 {
            return Err(Malformed::Unexpected(id));
        }
        let (version, motd) = motd(leaf, shared);
        packets.send(&codec::status_response(hello.protocol, version, &motd)).await;
        // The ping (8 bytes) is echoed as the pong; a client may also just hang up.
        let (id, payload) = packets.next().await?;
        if id == 1 && payload.len() == 8 {
            packets.send(&codec::frame(1, &payload)).await;
        }
        return Ok(());
    }
    if responder.wake_on() == WakeOn::Connect {
        super::wake(shared, leaf, peer.ip(), "connection");
    }
    let (id, payload) = packets.next().await?;
    let player = codec::login_name(id, &payload)?;
    if responder.wake_on() == WakeOn::Login {
        super::wake(shared, leaf, peer.ip(), &format!("login of {player}"));
    }
    packets.send(&codec::disconnect(&kick(leaf, shared))).await;
    Ok(())
}

/// What the leaf is doing, for a player: (version label, server-list text).
fn motd(leaf: &LeafConfig, shared: &Shared) -> (&'static str, String) {
    let r = leaf.responder.as_ref().expect("a responder leaf");
    let name = leaf.name().as_str();
    match state(leaf, shared) {
        State::Resting(until) => ("resting", format!("{name} is resting after a crash loop until {until}")),
        State::Asleep => ("sleeping", r.motd_asleep.clone().unwrap_or_else(|| format!("{name} is asleep: join to start it"))),
        State::Starting(s) => ("starting", format!("{} (ready in about {s} s)", r.motd_starting.clone().unwrap_or_else(|| format!("{name} is starting")))),
    }
}

/// The disconnect message a login gets.
fn kick(leaf: &LeafConfig, shared: &Shared) -> String {
    let name = leaf.name().as_str();
    match state(leaf, shared) {
        State::Resting(until) => format!("{name} is resting after a crash loop until {until}: it will not start before then."),
        State::Asleep | State::Starting(_) => {
            let s = estimate(leaf, shared);
            format!("{name} is starting: come back in about {s} seconds.")
        }
    }
}

enum State {
    Resting(crate::clock::Timestamp),
    Asleep,
    Starting(i64),
}

fn state(leaf: &LeafConfig, shared: &Shared) -> State {
    let view = shared.links.status.leaf(leaf.name().as_str());
    if let Some(until) = view.as_ref().and_then(|v| v.quarantined_until) {
        return State::Resting(until);
    }
    let asleep = view.as_ref().is_none_or(|v| v.phase == "asleep" && !v.wake_pending);
    if asleep { State::Asleep } else { State::Starting(estimate(leaf, shared)) }
}

/// A start estimate is never longer than this (a bad measurement must not tell players
/// to come back tomorrow).
const MAX_START_S: i64 = 600;

/// Seconds until the leaf should be up: its last start's duration (or a minute), less
/// what has passed since the wake under way (none when it is still to come); never less
/// than 10.
fn estimate(leaf: &LeafConfig, shared: &Shared) -> i64 {
    let now = shared.links.timeline.now();
    let (took, woke, slept) = shared.links.store.read(|s| {
        s.leafs.get(leaf.name().as_str()).map(|l| (l.start_ms, l.woke_at, l.slept.as_ref().map(|x| x.at))).unwrap_or_default()
    });
    let took_s = took.map_or(DEFAULT_START_S, |ms| ms / 1000).clamp(10, MAX_START_S);
    let under_way = woke.filter(|w| slept.is_none_or(|s| *w > s));
    let passed_s = under_way.map_or(0, |w| now.since(w) / 1000);
    (took_s - passed_s).max(10)
}
