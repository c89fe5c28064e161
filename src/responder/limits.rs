//! How much of the daemon the internet may use: a global cap on connections held, per
//! source address a rate of new connections and a share of the cap, and, when every slot
//! is held, the oldest connection that has not even finished its handshake gives its
//! slot to the newcomer. So neither one address nor a slowloris from many can keep a
//! real player out: a real client's handshake takes milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long a newcomer waits for the slot of the connection it evicted.
const EVICTION_WAIT: Duration = Duration::from_millis(500);

/// A connection past its handshake may still be evicted once it has held its slot this
/// long (a real exchange takes milliseconds; a stall after the handshake holds a slot for
/// the whole exchange deadline otherwise).
const HELD_LONG: Duration = Duration::from_secs(1);

/// Sources remembered at most; past it, idle ones are forgotten first.
const MAX_SOURCES: usize = 65_536;

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is held.
    Busy,
    /// The source opened too many connections this minute.
    Rate,
    /// The source holds its share of the slots.
    Share,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Busy => "busy",
            Refusal::Rate => "rate",
            Refusal::Share => "share",
        }
    }
}

#[derive(Debug)]
struct Source {
    tokens: f64,
    refilled: Instant,
    open: usize,
}

/// A held connection, as eviction sees it.
#[derive(Debug)]
struct Held {
    token: CancellationToken,
    since: Instant,
    handshaking: bool,
}

/// Every held connection, oldest first: the ones a newcomer may evict.
type Handshaking = Arc<Mutex<BTreeMap<u64, Held>>>;

/// The limits, shared by every listener.
#[derive(Debug)]
pub struct Limits {
    slots: Arc<Semaphore>,
    per_minute: f64,
    share: usize,
    sources: Arc<Mutex<HashMap<IpAddr, Source>>>,
    handshaking: Handshaking,
    next_id: AtomicU64,
}

/// A held slot; dropping it frees the slot and the source's share.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    id: u64,
    evicted: CancellationToken,
    sources: Arc<Mutex<HashMap<IpAddr, Source>>>,
    handshaking: Handshaking,
}

impl Slot {
    /// Fires when a newcomer took this connection's slot (it had not finished its
    /// handshake while every slot was held).
    pub fn evicted(&self) -> CancellationToken {
        self.evicted.clone()
    }

    /// The handshake is done: the connection is no longer the first to be evicted.
    pub fn progressed(&self) {
        if let Ok(mut h) = self.handshaking.lock()
            && let Some(held) = h.get_mut(&self.id)
        {
            held.handshaking = false;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut h) = self.handshaking.lock() {
            h.remove(&self.id);
        }
        release(&self.sources, self.ip);
    }
}

/// The address a source is counted by: an IPv6 host owns a whole /64, so that is one
/// source; an IPv4 client on a dual-stack socket is its IPv4 address.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(
            || {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            },
            IpAddr::V4,
        ),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn release(sources: &Mutex<HashMap<IpAddr, Source>>, ip: IpAddr) {
    if let Ok(mut sources) = sources.lock()
        && let Some(s) = sources.get_mut(&ip)
    {
        s.open = s.open.saturating_sub(1);
    }
}

impl Limits {
    /// `max_connections` slots; each source `per_minute` new connections a minute and at
    /// most an eighth of the slots (at least 4).
    pub fn new(max_connections: usize, per_minute: u32) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections)),
            per_minute: f64::from(per_minute),
            share: (max_connections / 8).max(4),
            sources: Arc::new(Mutex::new(HashMap::new())),
            handshaking: Arc::new(Mutex::new(BTreeMap::new())),
            next_id: AtomicU64::new(0),
        }
    }

    /// Admits a new connection from `ip` (holding a slot while it lives), or says why not.
    /// With every slot held, the oldest connection still in its handshake is evicted and
    /// its slot awaited briefly.
    pub async fn connection(&self, ip: IpAddr, now: Instant) -> Result<Slot, Refusal> {
        let ip = source_key(ip);
        self.take(ip, now, true)?;
        let permit = if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() { Ok(p) } else { self.evict_for_one().await };
        let permit = permit.inspect_err(|_| release(&self.sources, ip))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        if let Ok(mut h) = self.handshaking.lock() {
            h.insert(id, Held { token: evicted.clone(), since: now, handshaking: true });
        }
        Ok(Slot { _permit: permit, ip, id, evicted, sources: Arc::clone(&self.sources), handshaking: Arc::clone(&self.handshaking) })
    }

    /// Every slot is held: evicts the oldest connection still in its handshake and waits
    /// briefly for its slot.
    async fn evict_for_one(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        let victim = self.handshaking.lock().ok().and_then(|mut h| {
            let now = Instant::now();
            let id = h.iter().find(|(_, c)| c.handshaking).or_else(|| h.iter().find(|(_, c)| now.saturating_duration_since(c.since) >= HELD_LONG)).map(|(id, _)| *id)?;
            h.remove(&id)
        });
        victim.ok_or(Refusal::Busy)?.token.cancel();
        match tokio::time::timeout(EVICTION_WAIT, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Refusal::Busy),
        }
    }

    /// Admits one datagram from `ip` (no slot is held: nothing waits on it). Datagrams
    /// have limits of their own: a spoofed source must not cost a real player anything.
    pub fn datagram(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.take(source_key(ip), now, false)
    }

    fn take(&self, ip: IpAddr, now: Instant, holds: bool) -> Result<(), Refusal> {
        let mut sources = self.sources.lock().map_err(|_| Refusal::Busy)?;
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            // Full (many sources, spoofed perhaps): forget every source that holds
            // nothing. Their rates start afresh; a newcomer is never refused for it.
            sources.retain(|_, s| s.open > 0);
        }
        let source = sources.entry(ip).or_insert(Source { tokens: self.per_minute, refilled: now, open: 0 });
        refill(source, now, self.per_minute);
        if holds && source.open >= self.share {
            return Err(Refusal::Share);
        }
        if source.tokens < 1.0 {
            return Err(Refusal::Rate);
        }
        source.tokens -= 1.0;
        if holds {
            source.open += 1;
        }
        Ok(())
    }
}

/// Adds the tokens earned since the last refill; returns the new level.
fn refill(s: &mut Source, now: Instant, per_minute: f64) -> f64 {
    let earned = now.saturating_duration_since(s.refilled).as_secs_f64() * per_minute / 60.0;
    s.tokens = (s.tokens + earned).min(per_minute);
    s.refilled = now;
    s.tokens
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_source_gets_its_rate_and_its_share_and_no_more() {
        let limits = Limits::new(64, 20);
        let (a, b): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "198.51.100.7".parse().unwrap());
        let t = Instant::now();
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(limits.connection(a, t).await.unwrap());
        }
        assert_eq!(limits.connection(a, t).await.unwrap_err(), Refusal::Share, "an eighth of the slots at most");
        assert!(limits.connection(b, t).await.is_ok(), "another source is still answered");
        drop(held);
        for _ in 0..12 {
            drop(limits.connection(a, t).await.unwrap());
        }
        assert_eq!(limits.connection(a, t).await.unwrap_err(), Refusal::Rate, "20 a minute");
        assert!(limits.connection(a, t + Duration::from_secs(3)).await.is_ok(), "one more every 3 s");
    }

    #[tokio::test]
    async fn an_ipv6_host_is_one_source_per_64() {
        let limits = Limits::new(64, 20);
        let t = Instant::now();
        let mut held = Vec::new();
        for i in 1..=8u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i));
            held.push(limits.connection(ip, t).await.unwrap());
        }
        let ninth: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(limits.connection(ninth, t).await.unwrap_err(), Refusal::Share, "a /64 is one source");
    }

    #[tokio::test]
    async fn a_newcomer_takes_the_slot_of_the_oldest_stalled_handshake() {
        let limits = Arc::new(Limits::new(4, 100));
        let ips: Vec<IpAddr> = (1..=6).map(|i| format!("192.0.2.{i}").parse().unwrap()).collect();
        let t = Instant::now();
        let mut held = Vec::new();
        for ip in &ips[..4] {
            held.push(limits.connection(*ip, t).await.unwrap());
        }
        held[1].progressed(); // a real client past its handshake is never the one evicted
        let stalled = held.remove(0);
        let evicted = stalled.evicted();
        // Its task sees the eviction and ends, freeing the slot.
        tokio::spawn(async move {
            evicted.cancelled().await;
            drop(stalled);
        });
        let newcomer = limits.connection(ips[4], t).await;
        assert!(newcomer.is_ok(), "the oldest stalled handshake gave way");
        assert!(!held[0].evicted().is_cancelled(), "a connection past its handshake keeps its slot");
    }
}
