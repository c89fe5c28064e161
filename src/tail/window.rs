//! What the tail knows of one log group, and the pure rules of its two reads.
//!
//! Each poll makes a **head** read and, within the FilterLogEvents budget, continues a
//! **sweep**:
//! - the head reads the newest part of the log, `[now - head window, now)`, with the
//!   leafs' filter pattern (see [`super::filter`]) so that a busy zone's other names do
//!   not come back at all. With the filter the window is the whole `query_log_lookback`
//!   (late lines still wake within a poll); without one (too many names for a pattern,
//!   or the filter switched off) it is the measured delivery delay plus a margin, so the
//!   zone's traffic is re-read over seconds, not minutes;
//! - the sweep reads every line exactly once, unfiltered, in chunks of event time that
//!   have *closed* (older than `query_log_lookback`, so no line can still arrive in
//!   them). It counts malformed lines, finds any query the head missed (and then
//!   switches the filter off: CloudWatch matched less than intended), and after a
//!   restart catches up from where the last run stopped.
//!
//! Delivery delay is measured, not assumed: every event carries its `ingestionTime`.
//! No decision here reads the clock: `now` is an argument.

use std::collections::{HashMap, VecDeque};

use super::parse;
use crate::aws::logs::LogEvent;
use crate::clock::{Timestamp, CLOCK_SKEW_MS};
use crate::events;
use crate::state::Announced;
use crate::state::{State, TailState};

/// How far back the sweep reaches after a restart: queries older than this are from
/// players who gave up long ago.
pub const MAX_CATCH_UP_MS: i64 = 15 * 60 * 1000;

/// The unfiltered head window never shrinks below this.
pub const MIN_HEAD_WINDOW_MS: i64 = 5_000;

/// The sweep starts a chunk once this much closed log has accumulated: one call a minute
/// on a quiet log with the default look-back (half a shorter look-back, so a test with a
/// 30-second look-back sees its sweep within seconds). A chunk spans at most
/// [`MAX_CHUNK_MS`] (catch-up).
pub fn sweep_every_ms(lookback_ms: i64) -> i64 {
    (lookback_ms / 2).clamp(1_000, 60_000)
}

/// Longest chunk of event time one sweep read covers.
pub const MAX_CHUNK_MS: i64 = 5 * 60_000;

/// Delivery delays are remembered per minute for this many minutes.
const DELAY_MINUTES: i64 = 10;

/// `swept_until` is persisted at most this often when nothing else changed.
const PERSIST_EVERY_MS: i64 = 30_000;

/// Which read a batch of events came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The newest part of the log, filtered when possible.
    Head,
    /// A closed chunk, unfiltered, read once.
    Sweep,
}

impl Pass {
    /// Label for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Head => "head",
            Pass::Sweep => "sweep",
        }
    }
}

/// The largest delivery delay seen in each of the last minutes.
#[derive(Debug, Default, Clone)]
pub struct Delays {
    /// (minute number, max delay ms in it), oldest first.
    minutes: VecDeque<(i64, i64)>,
}

impl Delays {
    /// Records one event's delay.
    pub fn record(&mut self, delay_ms: i64, now: Timestamp) {
        let minute = now.0.div_euclid(60_000);
        let delay = delay_ms.max(0);
        match self.minutes.back_mut() {
            Some((m, max)) if *m == minute => *max = (*max).max(delay),
            _ => self.minutes.push_back((minute, delay)),
        }
        while self.minutes.front().is_some_and(|(m, _)| minute - m >= DELAY_MINUTES) {
            self.minutes.pop_front();
        }
    }

    /// The largest delay of the last minutes, if any event was seen.
    pub fn max(&self, now: Timestamp) -> Option<i64> {
        let minute = now.0.div_euclid(60_000);
        self.minutes.iter().filter(|(m, _)| minute - m < DELAY_MINUTES).map(|(_, d)| *d).max()
    }
}

/// A sweep chunk being read: `[from, until)`, and the token of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Start of the chunk (inclusive).
    pub from: Timestamp,
    /// End of the chunk (exclusive).
    pub until: Timestamp,
    /// The next page's token; None before the first page.
    pub token: Option<String>,
}

/// The last complete head read: `from` and when it started (our clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadRead {
    from: Timestamp,
    started: Timestamp,
}

/// What one batch of events did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Events in the batch.
    pub events: usize,
    /// Malformed lines (counted by the sweep only: it reads each line once).
    pub malformed: usize,
    /// Leaf queries whose own time was not believable (future or before the window).
    pub bad_time: usize,
    /// Leafs that got a wake request, with whether they are asleep as far as we know.
    pub woken: Vec<(String, bool)>,
    /// Leaf queries the sweep found that no head read had (late lines, or a filter miss).
    pub found_by_sweep: usize,
    /// The persisted state changed (and must be written).
    pub changed: bool,
}

/// What the tail knows of one log group.
#[derive(Debug)]
pub struct GroupTail {
    /// Group name.
    pub group: String,
    /// Leaf domain -> leaf name, for the leafs logging to this group.
    domains: HashMap<String, String>,
    /// The head's filter pattern, when the domains fit in one.
    pattern: Option<String>,
    /// Why the filter was switched off for this run (a query it should have returned).
    pub filter_off: Option<String>,
    /// Measured delivery delays.
    pub delays: Delays,
    /// The sweep chunk in progress.
    pub chunk: Option<Chunk>,
    last_head: Option<HeadRead>,
    /// Newest event time seen in this group: "now minus this" is the tail lag.
    pub newest: Option<Timestamp>,
    /// When `swept_until` was last persisted.
    persisted_at: Option<Timestamp>,
    /// Where the sweep starts when the state holds nothing: the closed edge at first look.
    fresh_start: Option<Timestamp>,
}

impl GroupTail {
    /// A tail for `group` serving `domains` (domain -> leaf name).
    pub fn new(group: String, domains: HashMap<String, String>) -> Self {
        let mut g = Self { group, domains: HashMap::new(), pattern: None, filter_off: None, delays: Delays::default(), chunk: None, last_head: None, newest: None, persisted_at: None, fresh_start: None };
        g.set_domains(domains);
        g
    }

    /// Follows a reload: new domains, a new pattern; what was seen is kept.
    pub fn set_domains(&mut self, domains: HashMap<String, String>) {
        self.pattern = super::filter::pattern(domains.keys().map(String::as_str));
        self.domains = domains;
    }

    /// The head's filter pattern, unless there is none or it was switched off.
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref().filter(|_| self.filter_off.is_none())
    }

    /// How far back the head reads: everything the look-back allows when filtered,
    /// else the measured delivery delay with a margin (the whole look-back until a delay
    /// has been measured).
    pub fn head_window_ms(&self, lookback_ms: i64, now: Timestamp) -> i64 {
        if self.pattern().is_some() {
            return lookback_ms;
        }
        match self.delays.max(now) {
            Some(d) => (d + d / 4 + 2_000).clamp(MIN_HEAD_WINDOW_MS.min(lookback_ms), lookback_ms),
            None => lookback_ms,
        }
    }

    /// A head read from `from` that started at `started` returned every page.
    pub fn head_complete(&mut self, from: Timestamp, started: Timestamp) {
        self.last_head = Some(HeadRead { from, started });
    }

    /// Where the sweep stands: everything before it has been read once, closed.
    pub fn swept_until(&self, state: &State, now: Timestamp, lookback_ms: i64) -> Timestamp {
        let tail = state.tail.get(&self.group);
        let persisted = tail.and_then(|t| t.swept_until.or_else(|| t.read_until.map(|r| r.minus_ms(lookback_ms))));
        persisted.or(self.fresh_start).unwrap_or_else(|| now.minus_ms(lookback_ms)).max(now.minus_ms(MAX_CATCH_UP_MS))
    }

    /// The chunk the sweep should read next, if one is due.
    pub fn sweep_chunk(&mut self, state: &State, now: Timestamp, lookback_ms: i64) -> Option<&Chunk> {
        if self.chunk.is_none() {
            let from = self.swept_until(state, now, lookback_ms);
            self.fresh_start.get_or_insert(from);
            let closed = now.minus_ms(lookback_ms);
            if closed.since(from) < sweep_every_ms(lookback_ms) {
                return None;
            }
            self.chunk = Some(Chunk { from, until: closed.min(from.plus_ms(MAX_CHUNK_MS)), token: None });
        }
        self.chunk.as_ref()
    }

    /// A sweep page was read: continue with `next_token`, or close the chunk.
    pub fn sweep_page_done(&mut self, next_token: Option<String>, state: &mut State, now: Timestamp) -> bool {
        let Some(chunk) = self.chunk.as_mut() else { return false };
        if next_token.is_some() {
            chunk.token = next_token;
            return false;
        }
        let until = chunk.until;
        self.chunk = None;
        let tail = state.tail.entry(self.group.clone()).or_default();
        tail.swept_until = Some(until);
        tail.read_until = None;
        // Persist the progress now and then; losing it only means re-reading a chunk.
        let due = self.persisted_at.is_none_or(|t| now.since(t) >= PERSIST_EVERY_MS);
        if due {
            self.persisted_at = Some(now);
        }
        due
    }

    /// Forgets a failed sweep chunk's token: the chunk is read again from its start.
    pub fn sweep_failed(&mut self) {
        if let Some(c) = self.chunk.as_mut() {
            c.token = None;
        }
    }

    /// Folds a batch read by `pass` from `from` into `state`: new `A` queries for a leaf's
    /// exact domain, with a believable time, become wake requests; the rest is skipped.
    pub fn fold(&mut self, pass: Pass, events: &[LogEvent], from: Timestamp, now: Timestamp, state: &mut State) -> Folded {
        let mut out = Folded { events: events.len(), ..Folded::default() };
        for e in events {
            self.newest = self.newest.max(Some(e.timestamp));
            if let Some(ingested) = e.ingestion {
                self.delays.record(ingested.since(e.timestamp), now);
            }
            let q = match parse::parse(&e.message) {
                Ok(q) => q,
                Err(why) => {
                    if pass == Pass::Sweep {
                        out.malformed += 1;
                        events::malformed_line(&self.group, &e.stream, &e.message, &why);
                    }
                    continue;
                }
            };
            if q.qtype != "A" {
                continue;
            }
            let Some(leaf) = self.domains.get(&q.name()).cloned() else { continue };
            let tail = state.tail.entry(self.group.clone()).or_default();
            if tail.acted.insert(event_key(e), e.timestamp).is_some() {
                continue; // acted on before (another read, or before a restart)
            }
            out.changed = true;
            let latest_believable = now.max(e.ingestion.unwrap_or(now)).plus_ms(CLOCK_SKEW_MS);
            if q.at > latest_believable || q.at < from.minus_ms(CLOCK_SKEW_MS) {
                // Stored as a query time, a line from 2099 would keep the leaf "in use" for
                // ever; one from long before the window would wake it for a player long gone.
                out.bad_time += 1;
                events::query_time_refused(&self.group, &leaf, q.at, if q.at > latest_believable { "future" } else { "before_window" });
                continue;
            }
            if pass == Pass::Sweep {
                out.found_by_sweep += 1;
                self.check_filter(e, &leaf);
            }
            let leaf_state = state.leafs.entry(leaf.clone()).or_default();
            let asleep = !matches!(leaf_state.announced, Some(Announced::Up { .. }));
            leaf_state.request_wake(q.at, q.edge);
            events::query_seen(&leaf, q.at, q.edge, now.since(q.at), asleep, pass.name());
            out.woken.push((leaf, asleep));
        }
        out
    }

    /// A query the sweep found that a complete filtered head read should have returned
    /// means CloudWatch's matching differs from what the pattern intends: stop relying on
    /// it for this run (the head reads unfiltered, over the measured delay).
    fn check_filter(&mut self, e: &LogEvent, leaf: &str) {
        let (Some(pattern), Some(head), Some(ingested)) = (self.pattern(), self.last_head, e.ingestion) else { return };
        if ingested.plus_ms(2_000) < head.started && e.timestamp >= head.from {
            let why = format!("a query for leaf {leaf} (event {}) was not returned by the filter {pattern}", e.id);
            events::filter_switched_off(&self.group, &why);
            self.filter_off = Some(why);
        }
    }

    /// Forgets acted-on events no read can return again; true when that changed the state.
    pub fn prune(&self, state: &mut State, now: Timestamp, lookback_ms: i64) -> bool {
        let swept = self.swept_until(state, now, lookback_ms);
        let head_from = now.minus_ms(self.head_window_ms(lookback_ms, now));
        let horizon = swept.min(head_from).minus_ms(60_000);
        let tail: &mut TailState = state.tail.entry(self.group.clone()).or_default();
        let before = tail.acted.len();
        tail.acted.retain(|_, t| *t >= horizon);
        tail.acted.len() != before
    }
}

/// Identity of an event. Emulators number events per stream from 0, so the id alone
/// is not unique; stream, id, time and a hash of the text together are.
pub fn event_key(e: &LogEvent) -> String {
    format!("{}/{}/{}/{:016x}", e.stream, e.id, e.timestamp.0, fnv1a(e.message.as_bytes()))
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`, so persisted keys stay valid.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
