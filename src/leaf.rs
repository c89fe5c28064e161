//! A leaf as the daemon sees it from one observation to the next: where it is
//! ([`Phase`]), what serves it ([`Unit`]), and the two kinds of news a decision can
//! carry to the operator ([`Transition`], [`Sleep`]). What it remembers across restarts
//! is in [`crate::state`].

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::state::WakeRequest;

pub use crate::state::Sleep;

/// One instance (of the leaf's ASG) or task (of a service without an ASG) that serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// Instance id or task ARN.
    pub id: String,
    /// Its public IP, where players connect; None behind a load balancer.
    pub ip: Option<Ipv4Addr>,
    /// When it was launched (instance) or started running (task).
    pub launched_at: Option<Timestamp>,
}

/// Where a leaf is, as read from its ASG (or, without one, its service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// Nothing is launching or serving.
    Asleep,
    /// Capacity is wanted and launching, but nothing serves yet.
    Waking,
    /// No capacity is wanted but an instance or task is still there.
    Stopping {
        /// The instance or task on its way out.
        instance: String,
    },
    /// At least one instance is InService (or task RUNNING) with a public IP (or
    /// without one when the leaf's DNS is not the daemon's to write).
    Up {
        /// The serving units, newest first (never empty).
        serving: Vec<Unit>,
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

    /// The newest serving unit, when up.
    pub fn newest(&self) -> Option<&Unit> {
        match self {
            Phase::Up { serving } => serving.first(),
            _ => None,
        }
    }

    /// The instance or task the phase names (the newest serving one, or the one leaving).
    pub fn instance(&self) -> Option<&str> {
        match self {
            Phase::Up { serving } => serving.first().map(|u| u.id.as_str()),
            Phase::Stopping { instance } => Some(instance),
            Phase::Asleep | Phase::Waking => None,
        }
    }

    /// Public IPs of every serving unit, sorted.
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        let mut ips: Vec<Ipv4Addr> = match self {
            Phase::Up { serving } => serving.iter().filter_map(|u| u.ip).collect(),
            _ => Vec::new(),
        };
        ips.sort_unstable();
        ips.dedup();
        ips
    }
}

/// A transition or event the operator is told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The leaf serves (and is ready) and DNS points at it.
    Started {
        /// The newest serving instance or task.
        instance: String,
        /// Where players connect: what the A record holds (empty with `dns = "none"`).
        ips: Vec<Ipv4Addr>,
        /// The DNS query that woke it, when the daemon woke it.
        woken_by: Option<WakeRequest>,
    },
    /// Nothing is left and the daemon did not stop it; DNS points at the idle IP.
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
