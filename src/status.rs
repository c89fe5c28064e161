//! What the daemon is doing, for `/status`, `/metrics`, `/healthz` and systemd.
//!
//! The reconciler writes one [`LeafView`] per observed leaf after each tick; the
//! workers publish their [`WorkerStatus`]. Readers take a snapshot; nothing here
//! decides anything.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::clock::Timestamp;
use crate::worker::WorkerStatus;

/// One leaf as the operator sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LeafView {
    /// Leaf name.
    pub name: String,
    /// Its environment (`env`), if set.
    pub env: Option<String>,
    /// Its domain.
    pub domain: String,
    /// `asleep`, `waking`, `up`, `stopping`, `asg_missing`, `service_missing`, or
    /// `unknown` before the first look.
    pub phase: String,
    /// The newest serving (or the stopping) instance or task.
    pub instance: Option<String>,
    /// Its public IP when up.
    pub ip: Option<String>,
    /// Public IPs of every serving instance or task.
    pub ips: Vec<String>,
    /// Desired capacity of what wakes the leaf (its ASG, or its service without one).
    pub desired: Option<i32>,
    /// Scaling policies and bounds, when something besides the daemon scales the leaf.
    pub scaling: Option<ScalingView>,
    /// Healthy targets in its target groups, while its start waits for them.
    pub healthy_targets: Option<usize>,
    /// Since when it has been up (the wake or launch) or asleep (the stop).
    pub since: Option<Timestamp>,
    /// The watchdog's judged periods, oldest first (the status page draws them).
    pub periods: Vec<crate::watchdog::Period>,
    /// When it goes to sleep if its traffic stays under the threshold from now on.
    pub sleeps_at: Option<Timestamp>,
    /// Hours up this calendar month (UTC).
    pub up_hours_month: f64,
    /// A DNS query is waiting to wake it.
    pub wake_pending: bool,
    /// DNS queries do not wake it until then (crash loop).
    pub quarantined_until: Option<Timestamp>,
    /// The watchdog's last verdict (`idle`, `busy`, `too_soon`, ...).
    pub verdict: Option<String>,
    /// Consecutive idle periods at the end of the watchdog window.
    pub idle_streak: Option<usize>,
    /// Player traffic of the newest judged period, bytes/s.
    pub activity_bytes_per_s: Option<f64>,
    /// The idle threshold, bytes/s.
    pub threshold: f64,
    /// The last action taken for the leaf and why.
    pub last_decision: Option<Decision>,
    /// Why something that looks due is not done yet.
    pub waiting_for: Option<String>,
    /// When AWS was last read for this leaf.
    pub observed_at: Option<Timestamp>,
    /// Open problems an operator must fix (each alerted once).
    pub problems: Vec<String>,
}

/// What scales a leaf besides the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalingView {
    /// The ASG has scaling policies.
    pub asg_policies: bool,
    /// The ASG's bounds now, when it is managed (policies or min above 0).
    pub asg_bounds: Option<crate::state::Bounds>,
    /// The service's scalable target's bounds now.
    pub service_bounds: Option<crate::state::Bounds>,
    /// Bounds recorded before the daemon parked them at 0/0, restored on wake.
    pub parked: crate::state::Parked,
}

/// One query-log group as the tail reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueryLogView {
    /// The log group.
    pub group: String,
    /// `filtered` (only lines that may concern a leaf come back) or `unfiltered`.
    pub head: String,
    /// Why the filter was switched off, if it was.
    pub filter_off: Option<String>,
    /// How far back the head reads each poll, ms.
    pub head_window_ms: i64,
    /// The last head read had more pages than a poll reads (the sweep covers the rest).
    pub head_truncated: bool,
    /// Largest delivery delay (ingestion minus event time) of the last minutes, ms.
    pub delivery_delay_ms: Option<i64>,
    /// Every line before this has been read once by the sweep.
    pub swept_until: Timestamp,
    /// How far the sweep trails the closed part of the log, ms (0 when it keeps up).
    pub sweep_behind_ms: i64,
    /// Reads failed in a row.
    pub failures: u32,
    /// Reads of this group wait this long more (back-off after a throttle or failure), ms.
    pub backoff_ms: Option<u64>,
    /// The last read's error, while it fails.
    pub last_error: Option<String>,
    /// Polls that skipped this group because the FilterLogEvents budget was spent.
    pub rate_limited_polls: u64,
}

/// An action and its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// When.
    pub at: Timestamp,
    /// What was done ("set ASG mc-asg desired capacity to 1").
    pub what: String,
    /// Why ("DNS query for mc.example.com at ...").
    pub why: String,
}

/// One activation running longer than this is stuck, not slow: every AWS call has a
/// timeout and each pass a deadline (30 s), so even a brown-out ends a pass well before.
pub const STUCK_AFTER: Duration = Duration::from_secs(120);

/// A pass running longer than this is reported as slow in `/healthz` (AWS answering late).
pub const SLOW_AFTER: Duration = Duration::from_secs(15);

/// The workers' status channels.
#[derive(Debug, Clone)]
pub struct Workers {
    /// The query-log tail.
    pub tail: watch::Receiver<WorkerStatus>,
    /// The reconciler.
    pub reconcile: watch::Receiver<WorkerStatus>,
    /// The alert outbox.
    pub outbox: watch::Receiver<WorkerStatus>,
}

impl Workers {
    fn all(&self) -> [(&'static str, &watch::Receiver<WorkerStatus>); 3] {
        [("tail", &self.tail), ("reconcile", &self.reconcile), ("outbox", &self.outbox)]
    }
}

/// Shared status.
#[derive(Debug)]
pub struct Status {
    leafs: RwLock<BTreeMap<String, LeafView>>,
    query_log: RwLock<Vec<QueryLogView>>,
    /// The workers' status.
    pub workers: Workers,
    /// Longest time between two activations that still counts as progress.
    pub stall_after: Duration,
    /// Who acts (`[daemon.ha]`).
    pub authority: Arc<crate::ha::Authority>,
    started: Instant,
}

impl Status {
    /// Status over the workers' status channels.
    pub fn new(workers: Workers, stall_after: Duration, authority: Arc<crate::ha::Authority>) -> Self {
        Self { leafs: RwLock::default(), query_log: RwLock::default(), workers, stall_after, authority, started: Instant::now() }
    }

    /// Replaces the views of the given leafs, keeping others; drops leafs not in `names`.
    pub fn update(&self, views: Vec<LeafView>, names: &[String]) {
        let mut leafs = self.leafs.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        leafs.retain(|k, _| names.contains(k));
        for mut v in views {
            for phase in ["asleep", "waking", "up", "stopping", "asg_missing"] {
                let on = if v.phase == phase { 1.0 } else { 0.0 };
                crate::metrics::gauge("cm_leaf_phase", "1 for the phase each leaf is in", &[("leaf", &v.name), ("phase", phase)], on);
            }
            if v.last_decision.is_none() {
                v.last_decision = leafs.get(&v.name).and_then(|old| old.last_decision.clone());
            }
            leafs.insert(v.name.clone(), v);
        }
    }

    /// One leaf's view (the responder asks per connection: no copy of every leaf).
    pub fn leaf(&self, name: &str) -> Option<LeafView> {
        self.leafs.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned()
    }

    /// Every leaf's view, by name.
    pub fn leafs(&self) -> BTreeMap<String, LeafView> {
        self.leafs.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces what the tail says of its log groups.
    pub fn set_query_log(&self, views: Vec<QueryLogView>) {
        *self.query_log.write().unwrap_or_else(std::sync::PoisonError::into_inner) = views;
    }

    /// What the tail says of its log groups.
    pub fn query_log(&self) -> Vec<QueryLogView> {
        self.query_log.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Records the last decision for a leaf.
    pub fn decided(&self, leaf: &str, decision: Decision) {
        let mut leafs = self.leafs.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        leafs.entry(leaf.to_owned()).or_insert_with(|| LeafView { name: leaf.to_owned(), ..LeafView::default() }).last_decision = Some(decision);
    }

    /// None while every loop makes progress, however slowly; otherwise which is stuck.
    /// systemd's watchdog is fed only while this is None.
    ///
    /// A loop is stuck when one activation has run for [`STUCK_AFTER`] (every call has a
    /// timeout, so that is a bug or a hung disk, and a restart is the cure), or when no
    /// activation has started for `stall_after` (the loop itself is gone). A pass that is
    /// slow because AWS answers late is progress: killing the daemon would not help.
    pub fn stalled(&self) -> Option<String> {
        let stuck: Vec<String> = self
            .workers
            .all()
            .into_iter()
            .filter_map(|(name, rx)| {
                let s = rx.borrow();
                if let Some(since) = s.running_since {
                    let running = since.elapsed();
                    return (running > STUCK_AFTER).then(|| format!("{name}: one pass has been running for {}s (stuck)", running.as_secs()));
                }
                let idle = s.finished_at.map_or_else(|| self.started.elapsed(), |t| t.elapsed());
                (idle > self.stall_after).then(|| format!("{name} loop has not run a pass for {}s (stuck)", idle.as_secs()))
            })
            .collect();
        (!stuck.is_empty()).then(|| stuck.join("; "))
    }

    /// None while every loop makes progress and AWS answers; otherwise why not: stuck,
    /// slow (a pass running long: AWS answering late) or failing (the last error).
    pub fn unhealthy(&self) -> Option<String> {
        if let Some(stuck) = self.stalled() {
            return Some(stuck);
        }
        let why: Vec<String> = self
            .workers
            .all()
            .into_iter()
            .filter_map(|(name, rx)| {
                let s = rx.borrow();
                if let Some(running) = s.running_since.map(|t| t.elapsed()).filter(|r| *r > SLOW_AFTER) {
                    return Some(format!("{name}: slow, not stuck: a pass has run for {}s (AWS answering late)", running.as_secs()));
                }
                s.last_error.as_ref().map(|e| format!("{name}: not stuck, failing ({}; the last pass took {:.1}s): {e}", e.kind, Duration::from_millis(s.elapsed_ms).as_secs_f64()))
            })
            .collect();
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// True once the reconciler has completed a pass with AWS answering.
    pub fn aws_reachable(&self) -> bool {
        self.workers.reconcile.borrow().last_ok.is_some()
    }

    /// One line for systemd's STATUS=.
    pub fn summary(&self) -> String {
        let leafs = self.leafs();
        let mut by_phase: BTreeMap<&str, usize> = BTreeMap::new();
        for v in leafs.values() {
            *by_phase.entry(v.phase.as_str()).or_default() += 1;
        }
        let phases: Vec<String> = by_phase.iter().map(|(p, n)| format!("{n} {p}")).collect();
        let mut line = format!("{} leafs: {}", leafs.len(), if phases.is_empty() { "not observed yet".into() } else { phases.join(", ") });
        if let Some(role) = self.authority.summary() {
            line = format!("{role}; {line}");
        }
        if let Some(problem) = self.unhealthy() {
            line.push_str("; last error: ");
            line.push_str(&problem.chars().take(200).collect::<String>());
        }
        line
    }
}
