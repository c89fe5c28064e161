//! The query-log tail: turns Route53 query-log lines into wake requests.
//!
//! Route53 logs every query that reaches a hosted zone, delivers the lines late (seconds,
//! sometimes tens of seconds) and out of order across its edge streams, and a busy zone
//! logs thousands of lines a second that concern no leaf. So each poll, per log group:
//! a filtered **head** read of the newest part of the log finds wakes within a poll
//! whatever the zone's other traffic, and an unfiltered **sweep** reads every line once
//! after it can no longer change, as the safety net (see [`window`]). All reads share one
//! budget of FilterLogEvents calls and back off with jitter when AWS throttles or fails
//! (see [`budget`]). Lines that woke a leaf are remembered in the state file, so a
//! restart neither loses nor repeats a wake; the sweep resumes where the last run
//! stopped (at most [`window::MAX_CATCH_UP_MS`] back).

pub mod budget;
pub mod filter;
pub mod parse;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::aws::logs::{LogsApi, PageRequest};
use crate::aws::AwsError;
use crate::clock::{Timeline, Timestamp};
use crate::config::Config;
use crate::events;
use crate::state::StateStore;
use crate::status::{QueryLogView, Status};
use crate::backoff::{Backoff, Jitter};
use crate::worker::{Activator, Task, WorkerError};
use budget::Budget;
pub use window::{GroupTail, Pass, MAX_CATCH_UP_MS};

/// Head pages one poll may read per group: a filtered head is one page; an unfiltered
/// one that needs more is reported in `/status` and the sweep covers what it left.
const HEAD_PAGES: usize = 3;

/// The longest back-off of a failing or throttled group before jitter: at most 1.5 times
/// this passes between AWS answering again and the pending wake being read. Throttling
/// is eased as well by a read every 15 s as by one a minute.
const MAX_READ_BACKOFF: std::time::Duration = std::time::Duration::from_secs(15);

/// Sweep pages one poll may read per group, so that a catch-up never delays the next head.
const SWEEP_PAGES: usize = 4;

/// Beyond its first page, the sweep reads on only while the poll has used less than this
/// share of `poll_interval`: a page of 10,000 lines takes a while to come and to parse,
/// and the next head read (a waiting player) must not queue behind a catch-up.
const SWEEP_SHARE_OF_POLL: u32 = 2;

/// After a poll that read this many lines, and on the first quiet poll after such
/// polls, freed memory is handed back to the system (a burst's pages would otherwise
/// stay resident in the allocator's free lists).
const TRIM_AFTER_LINES: usize = 2_000;

/// What the tail works with and whom it tells.
#[derive(Clone)]
pub struct Links {
    /// The current config (replaced on SIGHUP).
    pub config: watch::Receiver<Arc<Config>>,
    /// CloudWatch Logs.
    pub logs: LogsApi,
    /// Persistent state: wake requests and how far the log has been read.
    pub store: Arc<StateStore>,
    /// Activated when a sleeping leaf was asked for.
    pub reconcile: Activator,
    /// Activated when a problem alert was queued.
    pub outbox: Activator,
    /// What `/status` shows.
    pub status: Arc<Status>,
    /// The daemon's time; query-log ingestion times move it forward when ours is behind.
    pub timeline: Arc<Timeline>,
}

/// The tail worker: one [`GroupTail`] per log group.
pub struct Tail {
    links: Links,
    lookback_ms: i64,
    poll_interval: std::time::Duration,
    groups: Vec<Group>,
    budget: Budget,
    jitter: Jitter,
    /// Rotates which group goes first, so that a tight budget is shared fairly.
    turn: usize,
    /// The last poll read at least [`TRIM_AFTER_LINES`] lines.
    busy: bool,
}

/// One group's tail and the I/O-side bookkeeping around it.
struct Group {
    tail: GroupTail,
    backoff: Backoff,
    last_error: Option<String>,
    head_truncated: bool,
    rate_limited: u64,
    outcome: Option<Result<(), AwsError>>,
}

/// What one poll did, for the worker's summary.
struct Poll {
    started: Instant,
    lines: usize,
    wakes: usize,
    activate: bool,
    errors: Vec<String>,
    /// The kind of the first AWS error of the poll.
    kind: Option<crate::aws::ErrorKind>,
}

impl Tail {
    /// A tail following `config` (and its replacements on reload).
    pub fn new(mut links: Links) -> Self {
        let current = Arc::clone(&links.config.borrow_and_update());
        let budget = Budget::new(current.daemon.query_log_calls_per_second(), Instant::now());
        let mut tail = Self { links, lookback_ms: 0, poll_interval: std::time::Duration::ZERO, groups: Vec::new(), budget, jitter: Jitter::from_entropy(), turn: 0, busy: false };
        tail.follow(&current);
        tail
    }

    /// One group tail per distinct log group of `config`; groups that stay keep what
    /// they have seen, so a reload neither loses nor repeats events.
    fn follow(&mut self, config: &Config) {
        let mut by_group: HashMap<String, HashMap<String, String>> = HashMap::new();
        // A leaf with `wake_on_dns = false` is not looked for at all: its queries neither
        // wake it nor count as activity (scanners resolving the name must not keep it up).
        for leaf in config.leafs.iter().filter(|l| l.wake_on_dns) {
            by_group.entry(leaf.log_group(&config.daemon).to_string()).or_default().insert(leaf.domain().to_string(), leaf.name().to_string());
        }
        let mut old: HashMap<String, Group> = self.groups.drain(..).map(|g| (g.tail.group.clone(), g)).collect();
        self.groups = by_group
            .into_iter()
            .map(|(group, domains)| match old.remove(&group) {
                Some(mut g) => {
                    g.tail.set_domains(domains);
                    g
                }
                None => Group { tail: GroupTail::new(group, domains), backoff: Backoff::up_to(MAX_READ_BACKOFF), last_error: None, head_truncated: false, rate_limited: 0, outcome: None },
            })
            .collect();
        self.groups.sort_by(|a, b| a.tail.group.cmp(&b.tail.group));
        self.lookback_ms = config.daemon.query_log_lookback.as_millis();
        self.poll_interval = config.daemon.poll_interval.0;
    }

    /// Reads the newest part of one group's log; false when the group must wait.
    async fn head(&mut self, i: usize, now: Timestamp, poll: &mut Poll) -> bool {
        let lookback = self.lookback_ms;
        let g = &mut self.groups[i];
        let from = now.minus_ms(g.tail.head_window_ms(lookback, now));
        let mut token = None;
        for page_no in 0..HEAD_PAGES {
            if !self.budget.take(Instant::now()) {
                g.rate_limited += 1;
                events::tail_rate_limited(&g.tail.group, Pass::Head.name());
                return page_no > 0;
            }
            let req = PageRequest { group: &g.tail.group, from, until: None, pattern: g.tail.pattern(), token };
            let page = match self.links.logs.page(req).await {
                Ok(page) => page,
                Err(e) => {
                    fail(g, e, &mut self.jitter, poll);
                    return false;
                }
            };
            fold(&self.links, g, Pass::Head, &page.events, from, now, poll);
            token = page.next_token;
            if token.is_none() {
                g.tail.head_complete(from, now);
                g.head_truncated = false;
                return true;
            }
        }
        g.head_truncated = true;
        true
    }

    /// Continues one group's sweep within what the budget leaves after the heads.
    async fn sweep(&mut self, i: usize, now: Timestamp, poll: &mut Poll) {
        let until = poll.started + self.poll_interval / SWEEP_SHARE_OF_POLL;
        let lookback = self.lookback_ms;
        #[allow(clippy::cast_precision_loss, reason = "a handful of groups")]
        let reserve = self.groups.len() as f64;
        for page_no in 0..SWEEP_PAGES {
            if page_no > 0 && Instant::now() >= until {
                return;
            }
            let g = &mut self.groups[i];
            let chunk = self.links.store.read(|s| g.tail.sweep_chunk(s, now, lookback).cloned());
            let Some(chunk) = chunk else { return };
            if !self.budget.take_leaving(Instant::now(), reserve) {
                return;
            }
            let req = PageRequest { group: &g.tail.group, from: chunk.from, until: Some(chunk.until), pattern: None, token: chunk.token };
            let page = match self.links.logs.page(req).await {
                Ok(page) => page,
                Err(e) => {
                    g.tail.sweep_failed();
                    fail(g, e, &mut self.jitter, poll);
                    return;
                }
            };
            fold(&self.links, g, Pass::Sweep, &page.events, chunk.from, now, poll);
            self.links.store.change(|s| {
                let persist = g.tail.sweep_page_done(page.next_token, s, now);
                ((), persist)
            });
        }
    }

    /// A log group that does not exist (yet) or cannot be read is a problem of every
    /// leaf logging to it: no DNS query will wake them.
    fn report(&mut self, now: Timestamp) {
        let config = Arc::clone(&self.links.config.borrow());
        if config.daemon.dry_run {
            return;
        }
        let outcomes: HashMap<&str, &Result<(), AwsError>> = self.groups.iter().filter_map(|g| Some((g.tail.group.as_str(), g.outcome.as_ref()?))).collect();
        let mut raised = Vec::new();
        for (i, leaf) in config.leafs.iter().enumerate() {
            let Some(result) = outcomes.get(leaf.log_group(&config.daemon).as_str()) else { continue };
            let mut report = crate::problems::Report::default();
            report.call(leaf, result.as_ref().copied(), "logs", "FilterLogEvents");
            raised.extend(crate::problems::update(&self.links.store, leaf, report).into_iter().map(|p| (i, p)));
        }
        if !raised.is_empty() {
            crate::alerts::problems(&self.links.store, &config, &raised, now);
            self.links.outbox.activate();
        }
    }

    /// What `/status` shows of each group.
    fn publish(&self, now: Timestamp) {
        let views = self
            .groups
            .iter()
            .map(|g| {
                let swept = self.links.store.read(|s| g.tail.swept_until(s, now, self.lookback_ms));
                let backoff_ms = g.backoff.until.map(|u| u.saturating_duration_since(Instant::now()).as_millis()).filter(|ms| *ms > 0);
                QueryLogView {
                    group: g.tail.group.clone(),
                    head: if g.tail.pattern().is_some() { "filtered" } else { "unfiltered" }.to_owned(),
                    filter_off: g.tail.filter_off.clone(),
                    head_window_ms: g.tail.head_window_ms(self.lookback_ms, now),
                    head_truncated: g.head_truncated,
                    delivery_delay_ms: g.tail.delays.max(now),
                    swept_until: swept,
                    sweep_behind_ms: now.minus_ms(self.lookback_ms).since(swept).max(0),
                    failures: g.backoff.failures,
                    backoff_ms: backoff_ms.and_then(|ms| u64::try_from(ms).ok()),
                    last_error: g.last_error.clone(),
                    rate_limited_polls: g.rate_limited,
                }
            })
            .collect();
        self.links.status.set_query_log(views);
    }
}

/// Folds a page into the state and the poll's tally.
fn fold(links: &Links, g: &mut Group, pass: Pass, events: &[crate::aws::logs::LogEvent], from: Timestamp, now: Timestamp, poll: &mut Poll) {
    if let Some(newest) = events.iter().filter_map(|e| e.ingestion).max() {
        links.timeline.observe_aws(newest);
    }
    let done = links.store.change(|s| {
        let done = g.tail.fold(pass, events, from, now, s);
        let changed = done.changed;
        (done, changed)
    });
    events::query_log_read(&g.tail.group, pass.name(), done.events, g.tail.delays.max(now));
    if done.found_by_sweep > 0 {
        events::found_by_sweep(&g.tail.group, done.found_by_sweep);
    }
    g.backoff.succeeded();
    g.last_error = None;
    g.outcome = Some(Ok(()));
    poll.lines += done.events;
    poll.wakes += done.woken.len();
    poll.activate |= done.woken.iter().any(|(_, asleep)| *asleep);
}

/// A read failed: back off (with jitter) and remember why.
fn fail(g: &mut Group, e: AwsError, jitter: &mut Jitter, poll: &mut Poll) {
    let wait = g.backoff.failed(Instant::now(), jitter);
    events::tail_backoff(&g.tail.group, &e, wait, g.backoff.failures);
    poll.errors.push(format!("{}: {e} (backing off)", g.tail.group));
    poll.kind.get_or_insert(e.kind);
    g.last_error = Some(e.to_string());
    g.outcome = Some(Err(e));
}

impl Task for Tail {
    fn name(&self) -> &'static str {
        "tail"
    }

    async fn activate(&mut self) -> Result<String, WorkerError> {
        if self.links.config.has_changed().unwrap_or(false) {
            let config = Arc::clone(&self.links.config.borrow_and_update());
            self.follow(&config);
        }
        let now = self.links.timeline.now();
        let mut poll = Poll { started: Instant::now(), lines: 0, wakes: 0, activate: false, errors: Vec::new(), kind: None };
        let n = self.groups.len();
        self.turn = self.turn.wrapping_add(1);
        for k in 0..n {
            let i = (self.turn + k) % n.max(1);
            self.groups[i].outcome = None;
            if self.groups[i].backoff.waiting(Instant::now()) {
                let g = &self.groups[i];
                poll.errors.push(format!("{}: {} (backing off)", g.tail.group, g.last_error.as_deref().unwrap_or("failed")));
                continue;
            }
            if self.head(i, now, &mut poll).await {
                self.sweep(i, now, &mut poll).await;
            }
            let g = &self.groups[i];
            events::tail_polled(&g.tail.group, g.tail.newest, now);
            self.links.store.change(|s| ((), g.tail.prune(s, now, self.lookback_ms)));
        }
        let busy = poll.lines >= TRIM_AFTER_LINES;
        let was_busy = std::mem::replace(&mut self.busy, busy);
        if busy || was_busy {
            crate::host::release_freed_memory();
        }
        self.report(now);
        self.publish(now);
        // Persist before anyone acts on the wake, so a crash cannot lose it.
        self.links.store.save().await?;
        if poll.activate {
            self.links.reconcile.activate();
        }
        if poll.errors.is_empty() {
            return Ok(format!("{} lines read, {} wake requests", poll.lines, poll.wakes));
        }
        let message = poll.errors.join("; ");
        Err(match poll.kind {
            Some(kind) => kind.worker_error(message),
            None => WorkerError::new("aws:backing_off", message),
        })
    }
}

#[cfg(test)]
mod tests;
