//! The query-log tail: turns Route53 query-log lines into wake requests.
//!
//! CloudWatch Logs delivers lines late and out of order across streams, so a cursor on
//! the newest timestamp would lose lines. Each poll instead re-reads a sliding window
//! (`query_log_lookback`) and drops what it has already seen. Lines that woke a leaf are
//! remembered in the state file, so a restart neither loses nor repeats a wake; after
//! downtime the first read reaches back to where the last run stopped (at most
//! [`MAX_CATCH_UP_MS`]). One FilterLogEvents call (plus pages) per log group per poll,
//! whatever the number of leafs.

pub mod parse;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::aws::logs::{LogEvent, LogsApi};
use crate::aws::AwsError;
use crate::clock::{self, Timestamp};
use crate::config::Config;
use crate::events;
use crate::leaf::Announced;
use crate::state::{State, StateStore};
use crate::worker::{Activator, Task};

/// How far back the first read after a restart may reach: queries older than this are
/// from players who gave up long ago.
pub const MAX_CATCH_UP_MS: i64 = 15 * 60 * 1000;

/// `read_until` is persisted at most this often when nothing else changed, to spare
/// the disk a write per poll.
const READ_UNTIL_EVERY_MS: i64 = 30_000;

/// The tail worker: one [`GroupTail`] per log group.
pub struct Tail {
    config: watch::Receiver<Arc<Config>>,
    logs: LogsApi,
    store: Arc<StateStore>,
    reconcile: Activator,
    lookback_ms: i64,
    groups: Vec<GroupTail>,
}

/// What the tail knows of one log group.
#[derive(Debug)]
pub struct GroupTail {
    /// Group name.
    pub group: String,
    /// Leaf domain -> leaf name, for the leafs logging to this group.
    domains: HashMap<String, String>,
    /// Every event seen in the window (relevant or not), so a malformed line is counted
    /// once. In memory only: losing it on restart only recounts.
    seen: HashMap<String, Timestamp>,
    /// False until the first successful read of this run.
    caught_up: bool,
    /// Newest event time seen in this group: "now minus this" is the tail lag.
    pub newest: Option<Timestamp>,
}

/// What one batch of events did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events not seen before.
    pub new: usize,
    /// New events that did not parse.
    pub malformed: usize,
    /// Leafs that got a wake request, with whether they are asleep as far as we know.
    pub woken: Vec<(String, bool)>,
    /// The persisted state changed (and must be written).
    pub changed: bool,
}

impl GroupTail {
    /// A tail for `group` serving `domains` (domain -> leaf name).
    pub fn new(group: String, domains: HashMap<String, String>) -> Self {
        Self { group, domains, seen: HashMap::new(), caught_up: false, newest: None }
    }

    /// Where this poll's read starts.
    pub fn window_start(&self, state: &State, now: Timestamp, lookback_ms: i64) -> Timestamp {
        let sliding = now.minus_ms(lookback_ms);
        if self.caught_up {
            return sliding;
        }
        let resume = state.tail.get(&self.group).and_then(|t| t.read_until).map(|t| t.minus_ms(lookback_ms));
        resume.map_or(sliding, |r| r.min(sliding)).max(now.minus_ms(MAX_CATCH_UP_MS))
    }

    /// Folds a batch of events read from `from` into `state`: new `A` queries for a
    /// leaf's exact domain become wake requests; the rest is skipped.
    pub fn ingest(&mut self, events: &[LogEvent], from: Timestamp, now: Timestamp, state: &mut State) -> Ingested {
        let mut out = Ingested::default();
        let tail = state.tail.entry(self.group.clone()).or_default();
        for e in events {
            self.newest = self.newest.max(Some(e.timestamp));
            let key = event_key(e);
            if self.seen.insert(key.clone(), e.timestamp).is_some() {
                continue;
            }
            out.new += 1;
            let q = match parse::parse(&e.message) {
                Ok(q) => q,
                Err(why) => {
                    out.malformed += 1;
                    events::malformed_line(&self.group, &e.stream, &e.message, &why);
                    continue;
                }
            };
            if q.qtype != "A" {
                continue;
            }
            let Some(leaf) = self.domains.get(&q.name()) else { continue };
            if tail.acted.insert(key, e.timestamp).is_some() {
                continue; // acted on before a restart
            }
            let leaf_state = state.leafs.entry(leaf.clone()).or_default();
            let asleep = !matches!(leaf_state.announced, Some(Announced::Up { .. }));
            leaf_state.request_wake(q.at, q.edge);
            events::query_seen(leaf, q.at, q.edge, now.since(q.at), asleep);
            out.woken.push((leaf.clone(), asleep));
        }
        // Nothing older than the window start can come back; keep a minute of margin.
        let horizon = from.minus_ms(60_000);
        self.seen.retain(|_, t| *t >= horizon);
        let tail = state.tail.entry(self.group.clone()).or_default();
        let before = tail.acted.len();
        tail.acted.retain(|_, t| *t >= horizon);
        out.changed = !out.woken.is_empty() || tail.acted.len() != before;
        if tail.read_until.is_none_or(|t| now.since(t) >= READ_UNTIL_EVERY_MS) || !out.woken.is_empty() {
            tail.read_until = Some(now);
            out.changed = true;
        }
        self.caught_up = true;
        out
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

impl Tail {
    /// A tail following `config` (and its replacements on reload).
    pub fn new(mut config: watch::Receiver<Arc<Config>>, logs: LogsApi, store: Arc<StateStore>, reconcile: Activator) -> Self {
        let current = Arc::clone(&config.borrow_and_update());
        let mut tail = Self { config, logs, store, reconcile, lookback_ms: 0, groups: Vec::new() };
        tail.follow(&current);
        tail
    }

    /// One group tail per distinct log group of `config`; groups that stay keep what
    /// they have seen, so a reload neither loses nor repeats events.
    fn follow(&mut self, config: &Config) {
        let mut by_group: HashMap<String, HashMap<String, String>> = HashMap::new();
        for leaf in &config.leafs {
            by_group
                .entry(leaf.log_group(&config.daemon).to_string())
                .or_default()
                .insert(leaf.domain().to_string(), leaf.name().to_string());
        }
        let mut old: HashMap<String, GroupTail> = self.groups.drain(..).map(|g| (g.group.clone(), g)).collect();
        self.groups = by_group
            .into_iter()
            .map(|(group, domains)| match old.remove(&group) {
                Some(mut g) => {
                    g.domains = domains;
                    g
                }
                None => GroupTail::new(group, domains),
            })
            .collect();
        self.groups.sort_by(|a, b| a.group.cmp(&b.group));
        self.lookback_ms = config.daemon.query_log_lookback.as_millis();
    }
}

impl Tail {
    /// A log group that does not exist (yet) or cannot be read is a problem of every
    /// leaf logging to it: no DNS query will wake them. `outcomes` is keyed by log group,
    /// so each leaf finds its group's outcome by lookup (one group may serve every leaf).
    fn report(&self, outcomes: &HashMap<String, Result<(), AwsError>>, now: Timestamp) {
        let config = Arc::clone(&self.config.borrow());
        if config.daemon.dry_run {
            return;
        }
        for leaf in &config.leafs {
            let Some(result) = outcomes.get(leaf.log_group(&config.daemon).as_str()) else { continue };
            let mut report = crate::problems::Report::default();
            report.call(leaf, result.as_ref().copied(), "logs", "FilterLogEvents");
            crate::problems::update(&self.store, &config.daemon, leaf, report, now);
        }
    }
}

impl Task for Tail {
    fn name(&self) -> &'static str {
        "tail"
    }

    async fn activate(&mut self) -> Result<String, String> {
        if self.config.has_changed().unwrap_or(false) {
            let config = Arc::clone(&self.config.borrow_and_update());
            self.follow(&config);
        }
        let now = clock::now();
        let (mut new, mut wakes, mut errors) = (0, 0, Vec::new());
        let mut activate = false;
        let mut outcomes: HashMap<String, Result<(), AwsError>> = HashMap::new();
        for g in &mut self.groups {
            let from = self.store.read(|s| g.window_start(s, now, self.lookback_ms));
            let result = self.logs.events_since(&g.group, from).await;
            outcomes.insert(g.group.clone(), result.as_ref().map(drop).map_err(Clone::clone));
            match result {
                Ok(read) => {
                    if read.truncated {
                        errors.push(format!("{}: more than one poll can read in the look-back window; lines may be missed (shorten query_log_lookback)", g.group));
                    }
                    let done = self.store.change(|s| {
                        let done = g.ingest(&read.events, from, now, s);
                        let changed = done.changed;
                        (done, changed)
                    });
                    events::tail_polled(&g.group, g.newest, now);
                    new += done.new;
                    wakes += done.woken.len();
                    activate |= done.woken.iter().any(|(_, asleep)| *asleep);
                }
                Err(e) => errors.push(format!("{}: {e}", g.group)),
            }
        }
        self.report(&outcomes, now);
        // Persist before anyone acts on the wake, so a crash cannot lose it.
        self.store.save().await.map_err(|e| e.to_string())?;
        if activate {
            self.reconcile.activate();
        }
        if errors.is_empty() { Ok(format!("{new} new lines, {wakes} wake requests")) } else { Err(errors.join("; ")) }
    }
}

#[cfg(test)]
mod tests;
