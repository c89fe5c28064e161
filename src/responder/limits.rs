//! How much of the daemon the internet may use: a global cap on connections held, and
//! per source address a rate of new connections and a share of the cap, so that one
//! address (or a slowloris from a few) cannot take every slot from real players.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The limits, shared by every listener.
#[derive(Debug)]
pub struct Limits {
    slots: Arc<Semaphore>,
    per_minute: f64,
    share: usize,
    sources: Arc<Mutex<HashMap<IpAddr, Source>>>,
}

/// A held slot; dropping it frees the slot and the source's share.
#[derive(Debug)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    ip: IpAddr,
    sources: Arc<Mutex<HashMap<IpAddr, Source>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut sources) = self.sources.lock()
            && let Some(s) = sources.get_mut(&self.ip)
        {
            s.open = s.open.saturating_sub(1);
        }
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
        }
    }

    /// Admits a new connection from `ip` (holding a slot while it lives), or says why not.
    pub fn connection(&self, ip: IpAddr, now: Instant) -> Result<Slot, Refusal> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| Refusal::Busy)?;
        self.take(ip, now, true)?;
        Ok(Slot { _permit: Some(permit), ip, sources: Arc::clone(&self.sources) })
    }

    /// Admits one datagram from `ip` (no slot is held: nothing waits on it).
    pub fn datagram(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.take(ip, now, false)
    }

    fn take(&self, ip: IpAddr, now: Instant, holds: bool) -> Result<(), Refusal> {
        let mut sources = self.sources.lock().map_err(|_| Refusal::Busy)?;
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            let per_minute = self.per_minute;
            sources.retain(|_, s| s.open > 0 || refill(s, now, per_minute) < per_minute);
            if sources.len() >= MAX_SOURCES {
                return Err(Refusal::Busy);
            }
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

    #[test]
    fn one_source_gets_its_rate_and_its_share_and_no_more() {
        let limits = Limits::new(64, 20);
        let (a, b): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "198.51.100.7".parse().unwrap());
        let t = Instant::now();
        let held: Vec<Slot> = (0..8).map(|_| limits.connection(a, t).unwrap()).collect();
        assert_eq!(limits.connection(a, t).unwrap_err(), Refusal::Share, "an eighth of the slots at most");
        assert!(limits.connection(b, t).is_ok(), "another source is still answered");
        drop(held);
        for _ in 0..12 {
            drop(limits.connection(a, t).unwrap());
        }
        assert_eq!(limits.connection(a, t).unwrap_err(), Refusal::Rate, "20 a minute");
        assert!(limits.connection(a, t + Duration::from_secs(3)).is_ok(), "one more every 3 s");
    }

    #[test]
    fn the_cap_holds_and_frees() {
        let limits = Limits::new(4, 100);
        let ips: Vec<IpAddr> = (1..=5).map(|i| format!("192.0.2.{i}").parse().unwrap()).collect();
        let t = Instant::now();
        let held: Vec<Slot> = ips[..4].iter().map(|ip| limits.connection(*ip, t).unwrap()).collect();
        assert_eq!(limits.connection(ips[4], t).unwrap_err(), Refusal::Busy);
        drop(held);
        assert!(limits.connection(ips[4], t).is_ok());
    }
}
