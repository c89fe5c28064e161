//! A leaf as the daemon sees it from one observation to the next: where it is
//! ([`Phase`]), and the two kinds of news a decision can carry to the operator
//! ([`Transition`], [`Sleep`]). What it remembers across restarts is in
//! [`crate::state`].

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::state::{SleepCause, WakeRequest};

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


/// A transition or event the operator is told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// An instance serves and DNS points at it.
    Started {
        /// The instance.
        instance: String,
        /// Where players connect.
        ip: Ipv4Addr,
        /// The DNS query that woke it, when the daemon woke it.
        woken_by: Option<WakeRequest>,
    },
    /// No instance is left and the daemon did not stop it; DNS points at the idle IP.
    Stopped {
        /// The instance that was announced up.
        instance: String,
    },
    /// The instance has been up for `left_up_after` (alert only).
    LeftUp {
        /// The instance.
        instance: String,
        /// For how long, in milliseconds.
        up_for_ms: i64,
    },
}

/// The daemon's decision to stop a running leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sleep {
    /// Why.
    pub cause: SleepCause,
    /// The figures behind it, for the alert.
    pub detail: String,
    /// The running instance, if any (names the alert).
    pub instance: Option<String>,
    /// Set by the crash-loop breaker.
    pub quarantine_until: Option<Timestamp>,
}

