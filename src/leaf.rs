//! What the daemon remembers about a leaf between ticks and across restarts.
//!
//! Only what AWS cannot tell us lives here: a DNS query that asked for a wake, and
//! which transition was already announced (so a restart never alerts twice). Whether
//! the leaf is up, its IP and its record are read from AWS every time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crashloop::Failure;

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
    pub problems: BTreeMap<String, crate::problems::Problem>,
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

/// Where a leaf is, as read from its ASG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// No Pending or InService instance.
    Asleep,
    /// An instance is wanted or launching but none serves yet.
    Waking,
    /// The ASG wants no instance but one is still Pending or InService.
    Stopping {
        /// The instance on its way out.
        instance: String,
    },
    /// An instance is InService with a public IP.
    Up {
        /// The serving instance.
        instance: String,
        /// Its public IP, where the A record must point.
        ip: std::net::Ipv4Addr,
    },
}

impl Phase {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Asleep => "asleep",
            Phase::Waking => "waking",
            Phase::Stopping { .. } => "stopping",
            Phase::Up { .. } => "up",
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
}
