//! Every type the daemon persists, and the version of their format.
//!
//! The state file holds only what AWS cannot tell: pending wakes, what was announced,
//! the query-log lines already acted on, quarantines and failures, open problems and the
//! alert outbox. All of it is defined here, next to [`VERSION`], so a change to the
//! format cannot be made without seeing the version and the migration beside it.
//! Behaviour that is not about the format lives with its judgement (`crashloop`,
//! `problems`, `alerts`); plain helpers that keep the memory consistent live here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// The format written by this version. Bumped on any change a previous version would
/// misread; [`migrate`] reads every older one.
///
/// - 1: the first format.
/// - 2: the query-log tail remembers `swept_until` (read once, closed) instead of
///   `read_until`; an outbox entry may have several deliveries in flight at once.
pub const VERSION: u32 = 3;

/// How the `edge` of a wake request made by the responder starts.
pub const RESPONDER: &str = "responder: ";

/// The `edge` of a wake request made by `containerd wake`.
pub const OPERATOR: &str = "operator (containerd wake)";

/// Everything persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    #[serde(default)]
    pub version: u32,
    /// Per-leaf memory, by leaf name.
    #[serde(default)]
    pub leafs: BTreeMap<String, LeafState>,
    /// Per-log-group tail memory, by group name.
    #[serde(default)]
    pub tail: BTreeMap<String, TailState>,
    /// Alerts decided but not yet published.
    #[serde(default)]
    pub outbox: Vec<OutboxEntry>,
}

/// What the tail of one log group must not forget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailState {
    /// Keys of leaf queries already acted on (or refused), with their event time (for
    /// pruning). Only events that a read can still return are kept.
    #[serde(default)]
    pub acted: BTreeMap<String, Timestamp>,
    /// Every line before this has been read once, unfiltered, after it could no longer
    /// change: after downtime the sweep resumes here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_until: Option<Timestamp>,
    /// Written by versions before the sweep: the end of the last read, which re-read the
    /// whole look-back window. Read once as `read_until - lookback`, then dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_until: Option<Timestamp>,
}

/// A DNS query that asked for the leaf; pending until the ASG wants an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeRequest {
    /// The query's own time (from the log line).
    pub query_at: Timestamp,
    /// Route53 edge location that answered, for the alert ("woken by a query at FRA6").
    pub edge: String,
}

/// The last transition announced by an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Announced {
    /// "Starting" was sent for this instance.
    Up {
        /// The instance that was announced.
        instance: String,
    },
    /// "Stopped" was sent, or the leaf was first seen asleep.
    Down,
}

/// Persistent per-leaf memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafState {
    /// A DNS query waiting to be turned into desired capacity 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<WakeRequest>,
    /// The query that last woke the leaf: the reason given in the "starting" alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub woken_by: Option<WakeRequest>,
    /// Newest query time seen for the leaf's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_query_at: Option<Timestamp>,
    /// What the operator was last told; None until the leaf is first observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<Announced>,
    /// When the daemon last woke the leaf: it is not judged idle for `idle_after` after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub woke_at: Option<Timestamp>,
    /// The daemon's last decision to stop the leaf; queries older than it do not wake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slept: Option<Slept>,
    /// Set by the crash-loop breaker: DNS queries do not wake the leaf until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
    /// Task failures counted towards the crash-loop breaker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Stopped tasks already examined (ARN -> stop time), so each counts once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen_tasks: BTreeMap<String, Timestamp>,
    /// Instance for which the "left up" alert was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_up_alerted: Option<String>,
    /// An operator's `containerd wake` or `containerd sleep`, not yet acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<Manual>,
    /// Open problems already alerted, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub problems: BTreeMap<String, Problem>,
    /// Scaling bounds the daemon parked at 0/0 to put the leaf to sleep, restored on wake.
    #[serde(default, skip_serializing_if = "Parked::is_empty")]
    pub parked: Parked,
    /// Time up this calendar month (UTC), for the status page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<Uptime>,
    /// How long the last start took, from the wake to "starting" (the responder tells
    /// players when to come back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<i64>,
    /// A stop under way: written before its first call, so a restart in the middle
    /// finishes it (and sends its one alert) instead of seeing a stop by someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<Sleep>,
}

impl Sleep {
    /// A stop for `cause`; what it parks and when it was decided are filled in by the
    /// decision that takes it.
    pub fn new(cause: SleepCause, detail: String, instance: Option<String>, quarantine_until: Option<Timestamp>) -> Self {
        Self { cause, detail, instance, quarantine_until, park: Parked::default(), decided_at: Timestamp::default() }
    }
}

/// Time a leaf was up in one calendar month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uptime {
    /// `2026-11`.
    pub month: String,
    /// Milliseconds up in it.
    pub up_ms: i64,
}

impl Uptime {
    /// Adds `ms` up at `now`, starting a new month when `now` is in one.
    pub fn add(this: &mut Option<Uptime>, now: Timestamp, ms: i64) {
        let month = now.rfc3339().get(..7).unwrap_or_default().to_owned();
        match this {
            Some(u) if u.month == month => u.up_ms += ms,
            _ => *this = Some(Uptime { month, up_ms: ms }),
        }
    }
}

/// Min and max capacity of an ASG or of a service's scalable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// Minimum capacity.
    pub min: i32,
    /// Maximum capacity.
    pub max: i32,
}

impl Bounds {
    /// What a sleeping leaf's bounds are parked at: nothing can scale it out.
    pub const PARKED: Bounds = Bounds { min: 0, max: 0 };

    /// True when nothing can scale it out.
    pub fn parked(self) -> bool {
        self.max <= 0
    }

    /// `n` within the bounds.
    pub fn clamp(self, n: i32) -> i32 {
        n.min(self.max).max(self.min)
    }
}

impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "min {} / max {}", self.min, self.max)
    }
}

/// Bounds as they were before the daemon parked them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    /// The ASG's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg: Option<Bounds>,
    /// The ECS service's scalable target's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Bounds>,
}

impl Parked {
    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.asg.is_none() && self.service.is_none()
    }
}

/// The daemon's decision to stop a running leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sleep {
    /// Why.
    pub cause: SleepCause,
    /// The figures behind it, for the alert.
    pub detail: String,
    /// The running instance or task, if any (names the alert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Set by the crash-loop breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_until: Option<Timestamp>,
    /// Bounds to record before parking them (the stop's first step).
    #[serde(default, skip_serializing_if = "Parked::is_empty")]
    pub park: Parked,
    /// When it was decided: queries before it do not wake the leaf, also when a restart
    /// finishes the stop later.
    #[serde(default)]
    pub decided_at: Timestamp,
}

/// An operator's command, given through the running daemon so that its state, alerts
/// and quarantine stay right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Manual {
    /// Wake the leaf now, quarantine or not.
    Wake {
        /// When it was asked.
        at: Timestamp,
    },
    /// Stop the leaf now.
    Sleep {
        /// When it was asked.
        at: Timestamp,
    },
}

impl Manual {
    /// When it was asked: each command has its own, so a tick that decided on one
    /// clears that one and never a command that arrived during the tick.
    pub fn at(&self) -> Timestamp {
        match self {
            Manual::Wake { at } | Manual::Sleep { at } => *at,
        }
    }
}

/// Why the daemon stopped a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SleepCause {
    /// The traffic watchdog found it idle.
    Idle,
    /// Its instance was up longer than `left_up_after` and `left_up_stop` is set.
    LeftUp,
    /// Its container kept failing.
    CrashLoop,
    /// An operator ran `containerd sleep`.
    Manual,
}

impl SleepCause {
    /// Name used in alerts, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::LeftUp => "left_up",
            Self::CrashLoop => "crash_loop",
            Self::Manual => "manual",
        }
    }
}

/// A stop decided by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slept {
    /// When.
    pub at: Timestamp,
    /// Why.
    pub cause: SleepCause,
    /// The figures behind it, as told in the alert.
    pub detail: String,
    /// The instance that was running; the daemon does not decide to stop it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// A crash-loop quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// DNS queries wake the leaf again from this time on.
    pub until: Timestamp,
    /// The failure that caused it.
    pub detail: String,
}

impl LeafState {
    /// Forgets the pending wake if it is the one decided on (or older): the tail may
    /// have recorded a newer query while the reconciler was deciding.
    pub fn settle_wake(&mut self, decided: Timestamp) {
        if self.wake.as_ref().is_some_and(|w| w.query_at <= decided) {
            self.wake = None;
        }
    }

    /// Forgets times from the future (beyond the clock skew), which older versions could
    /// store from a bogus query-log line: a `last_query_at` in 2099 would keep the leaf
    /// "in use" for ever, a future `slept` would refuse every wake. Returns what it cleared.
    pub fn repair_future(&mut self, now: Timestamp) -> Vec<&'static str> {
        let limit = now.plus_ms(crate::clock::CLOCK_SKEW_MS);
        let mut cleared = Vec::new();
        if self.last_query_at.is_some_and(|t| t > limit) {
            self.last_query_at = None;
            cleared.push("last_query_at");
        }
        if self.wake.as_ref().is_some_and(|w| w.query_at > limit) {
            self.wake = None;
            cleared.push("wake");
        }
        if self.woke_at.is_some_and(|t| t > limit) {
            self.woke_at = None;
            cleared.push("woke_at");
        }
        if self.slept.as_ref().is_some_and(|s| s.at > limit) {
            self.slept = None;
            cleared.push("slept");
        }
        cleared
    }

    /// Records a DNS query for the leaf. Several queries before the wake is acted on
    /// make one request: the newest, so that a player coming back right after the
    /// daemon stopped the leaf is not mistaken for a late line from before the stop.
    pub fn request_wake(&mut self, query_at: Timestamp, edge: &str) {
        if self.wake.as_ref().is_none_or(|w| query_at > w.query_at) {
            self.wake = Some(WakeRequest { query_at, edge: edge.to_owned() });
        }
        if self.last_query_at.is_none_or(|t| query_at > t) {
            self.last_query_at = Some(query_at);
        }
    }
}

/// One counted failure, persisted so each task counts once across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Task id (the last part of the ARN).
    pub task: String,
    /// Stop code.
    pub stop_code: String,
    /// The failing essential container's exit code.
    pub exit_code: Option<i32>,
    /// Why, as ECS put it.
    pub reason: String,
    /// When the task stopped.
    pub at: Timestamp,
}

impl Failure {
    /// "task abc stopped (EssentialContainerExited, exit code 1): Essential container exited".
    pub fn describe(&self) -> String {
        let exit = self.exit_code.map_or_else(|| "no exit code".to_owned(), |c| format!("exit code {c}"));
        format!("task {} stopped at {} ({}, {exit}): {}", self.task, self.at, self.stop_code, self.reason)
    }
}

/// One problem of a leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable key: `autoscaling:SetDesiredCapacity`, `asg_missing`, ...
    pub key: String,
    /// What is wrong and what to do.
    pub text: String,
}

/// A decided alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id (leaf, kind, instance): FIFO topics and subscribers deduplicate on it.
    pub id: String,
    /// Leaf name.
    pub leaf: String,
    /// `starting` or `stopped`.
    pub kind: String,
    /// E-mail subject.
    pub subject: String,
    /// Body: leaf, domain and reason.
    pub body: String,
}

/// An alert with the topics it has yet to reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The alert.
    pub alert: Alert,
    /// Topics not yet published to.
    pub pending: Vec<String>,
    /// Topics a Publish call is under way for: marked (and saved) before the calls, so a
    /// restart never repeats them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<String>,
}

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Written by a newer version: reading it could lose what that version keeps.
    #[error("it was written by a newer container-manager (format {found}, this one reads up to {VERSION}); upgrade, or move the file away to start fresh")]
    Newer {
        /// The version in the file.
        found: u32,
    },
    /// Not a state file at all.
    #[error("it is not a state file: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// Reads a state file of any version up to [`VERSION`], migrating older formats.
pub fn migrate(bytes: &[u8]) -> Result<State, SchemaError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    let found = value.get("version").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let found = u32::try_from(found).unwrap_or(u32::MAX);
    if found > VERSION {
        return Err(SchemaError::Newer { found });
    }
    if found < 2 {
        v1_to_v2(&mut value);
    }
    // Version 3 added parked bounds and a stop under way; a version 2 file has neither,
    // and the new fields default to empty. The number still moves so that an older
    // daemon refuses a file whose parked bounds it would silently drop.
    let mut state: State = serde_json::from_value(value)?;
    state.version = VERSION;
    Ok(state)
}

/// Version 1 kept at most one delivery in flight per outbox entry (a string). The tail's
/// `read_until` is kept as is: the tail reads it once as `read_until - lookback`.
fn v1_to_v2(value: &mut serde_json::Value) {
    for entry in value.get_mut("outbox").and_then(serde_json::Value::as_array_mut).into_iter().flatten() {
        if let Some(topic) = entry.get("in_flight").and_then(serde_json::Value::as_str).map(str::to_owned) {
            entry["in_flight"] = serde_json::json!([topic]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_queries_make_one_request_for_the_newest() {
        let mut s = LeafState::default();
        s.request_wake(Timestamp(2000), "FRA6");
        s.request_wake(Timestamp(1000), "IAD1");
        s.request_wake(Timestamp(3000), "LHR2");
        assert_eq!(s.wake.as_ref().map(|w| (w.query_at, w.edge.as_str())), Some((Timestamp(3000), "LHR2")));
        assert_eq!(s.last_query_at, Some(Timestamp(3000)));
    }

    #[test]
    fn regression_times_from_2099_are_repaired_and_todays_are_kept() {
        let now = Timestamp(1_795_428_000_000);
        let mut s = LeafState::default();
        s.request_wake(Timestamp(4_102_444_800_000), "FRA6");
        s.woke_at = Some(now);
        assert_eq!(s.repair_future(now), vec!["last_query_at", "wake"]);
        assert_eq!((s.last_query_at, s.wake.as_ref(), s.woke_at), (None, None, Some(now)));
        assert!(s.repair_future(now).is_empty());
    }

    #[test]
    fn a_query_recorded_while_deciding_is_not_forgotten() {
        let mut s = LeafState::default();
        s.request_wake(Timestamp(1000), "FRA6");
        s.request_wake(Timestamp(5000), "FRA6"); // arrived during the tick
        s.settle_wake(Timestamp(1000));
        assert_eq!(s.wake.as_ref().map(|w| w.query_at), Some(Timestamp(5000)));
        s.settle_wake(Timestamp(5000));
        assert!(s.wake.is_none());
    }

    #[test]
    fn regression_a_state_file_from_a_newer_version_is_refused() {
        let text = br#"{"version": 999, "leafs": {}, "something_new": [1, 2, 3]}"#;
        assert!(matches!(migrate(text), Err(SchemaError::Newer { found: 999 })));
    }

    #[test]
    fn a_version_1_file_is_migrated() {
        let v1 = br#"{"version": 1, "leafs": {"mc": {"announced": {"state": "down"}}},
            "tail": {"g": {"acted": {}, "read_until": 1000}},
            "outbox": [{"alert": {"id": "a", "leaf": "mc", "kind": "starting", "subject": "s", "body": "b"}, "pending": ["t1", "t2"], "in_flight": "t1"}]}"#;
        let s = migrate(v1).unwrap();
        assert_eq!(s.version, VERSION);
        assert_eq!(s.outbox[0].in_flight, vec!["t1".to_owned()]);
        assert_eq!(s.tail["g"].read_until, Some(Timestamp(1000)));
        assert_eq!(s.leafs["mc"].announced, Some(Announced::Down));
    }
}
