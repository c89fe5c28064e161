//! The pure decision: what AWS says plus what we remember, in; actions, out.
//!
//! No I/O and no clock: the caller passes `now`. Given the same observation twice,
//! [`decide`] asks for the same actions, and once AWS reflects them it asks for none,
//! which is what makes a restart at any moment converge without repeats.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::aws::asg::{Group, Lifecycle};
use crate::aws::ec2::Instance;
use crate::aws::ecs::Service;
use crate::aws::route53::ARecord;
use crate::clock::Timestamp;
use crate::config::LeafConfig;
use crate::leaf::{Announced, LeafState, Phase, WakeRequest};

/// Something read from AWS, or not (not read yet this run, or the read failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    /// Not known: decisions that depend on it wait.
    Unknown,
    /// What AWS said.
    Known(T),
}

/// The leaf's ECS service as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceSeen {
    /// The leaf has no ECS service configured.
    NotConfigured,
    /// Configured, not read yet or the read failed.
    Unknown,
    /// ECS says the service does not exist.
    Missing,
    /// The service.
    Known(Service),
}

/// Everything AWS told us about one leaf this tick.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The ASG; None when AWS did not return it (deleted or misnamed).
    pub group: Option<&'a Group>,
    /// Known EC2 details of instances, by id.
    pub instances: &'a HashMap<String, Instance>,
    /// The leaf's A record (Known(None): there is none).
    pub record: Seen<Option<ARecord>>,
    /// The leaf's ECS service.
    pub service: ServiceSeen,
}

/// A transition the operator is told about.
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
    /// No instance is left; DNS points at the idle IP.
    Stopped {
        /// The instance that was announced up.
        instance: String,
    },
}

/// One step towards what the leaf should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the ASG's desired capacity to 1 for a DNS query.
    Wake(WakeRequest),
    /// Forget a pending wake that needs no action.
    DropWake {
        /// Why it needs none.
        why: &'static str,
    },
    /// UPSERT the A record.
    PointRecord {
        /// Target address.
        ip: Ipv4Addr,
        /// TTL.
        ttl: i64,
    },
    /// Set a REPLICA service's desired count.
    ScaleService {
        /// The count.
        desired: i32,
    },
    /// Tell the operator (one alert) and remember that we did.
    Announce(Transition),
    /// Remember the current state without an alert (first sight of the leaf).
    Adopt(Announced),
}

impl Action {
    /// What the action does to the leaf's memory once it has succeeded.
    pub fn record(&self, state: &mut LeafState) {
        match self {
            Action::Wake(req) => {
                state.woken_by = Some(req.clone());
                state.wake = None;
            }
            Action::DropWake { .. } => state.wake = None,
            Action::PointRecord { .. } | Action::ScaleService { .. } => {}
            Action::Announce(Transition::Started { instance, .. }) => {
                state.announced = Some(Announced::Up { instance: instance.clone() });
            }
            Action::Announce(Transition::Stopped { .. }) => {
                state.announced = Some(Announced::Down);
                state.woken_by = None;
            }
            Action::Adopt(a) => state.announced = Some(a.clone()),
        }
    }
}

/// The decision for one leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Where the leaf is.
    pub phase: Phase,
    /// What to do, in order; a failed action skips the rest.
    pub actions: Vec<Action>,
    /// Why something that looks due was not done (for `/status` and debug logs).
    pub waiting_for: Option<&'static str>,
}

/// Reads the leaf's phase from its ASG and instance details.
pub fn phase(group: &Group, instances: &HashMap<String, Instance>) -> Phase {
    let serving = group
        .instances
        .iter()
        .filter(|i| i.lifecycle == Lifecycle::InService)
        .filter_map(|i| instances.get(&i.id))
        .filter_map(|i| Some((i, i.public_ip?)))
        .max_by_key(|(i, _)| (i.launched_at, i.id.clone()));
    if let Some((instance, ip)) = serving {
        return Phase::Up { instance: instance.id.clone(), ip };
    }
    let launching = group.instances.iter().any(|i| matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService));
    if launching { Phase::Waking } else { Phase::Asleep }
}

/// Decides what to do for one leaf. `_now` is unused by the wake path but part of the
/// contract: every time-based rule (idle, left-up, quarantine) reads it from here.
pub fn decide(leaf: &LeafConfig, obs: &Observation<'_>, state: &LeafState, _now: Timestamp) -> Plan {
    let Some(group) = obs.group else {
        return Plan { phase: Phase::Asleep, actions: Vec::new(), waiting_for: Some("the ASG to exist") };
    };
    let phase = phase(group, obs.instances);
    let mut actions = Vec::new();
    let mut waiting_for = None;

    if let Some(req) = &state.wake {
        if group.desired >= 1 {
            actions.push(Action::DropWake { why: "the ASG already wants an instance" });
        } else if group.max < 1 {
            actions.push(Action::DropWake { why: "the ASG's max size is 0" });
        } else {
            actions.push(Action::Wake(req.clone()));
        }
    }

    let (target_ip, target_count) = match &phase {
        Phase::Up { ip, .. } => (*ip, 1),
        Phase::Asleep => (leaf.idle_ip, 0),
        Phase::Waking => {
            return Plan { phase, actions, waiting_for: Some("an InService instance with a public IP") };
        }
    };

    let ttl = leaf.dns_ttl();
    match &obs.record {
        Seen::Known(Some(r)) if r.is(target_ip, ttl) => {}
        Seen::Known(_) => actions.push(Action::PointRecord { ip: target_ip, ttl }),
        Seen::Unknown => waiting_for = Some("the A record to be read"),
    }
    match &obs.service {
        ServiceSeen::Known(s) if !s.daemon && s.desired != target_count => actions.push(Action::ScaleService { desired: target_count }),
        ServiceSeen::Unknown => waiting_for = waiting_for.or(Some("the ECS service to be read")),
        ServiceSeen::Known(_) | ServiceSeen::NotConfigured | ServiceSeen::Missing => {}
    }

    let transition = match (&phase, &state.announced) {
        (Phase::Up { instance, .. }, Some(Announced::Up { instance: announced })) if announced == instance => None,
        (Phase::Up { instance, .. }, None) => Some(Action::Adopt(Announced::Up { instance: instance.clone() })),
        (Phase::Up { instance, ip }, Some(_)) => Some(Action::Announce(Transition::Started {
            instance: instance.clone(),
            ip: *ip,
            woken_by: state.woken_by.clone(),
        })),
        (Phase::Asleep, Some(Announced::Up { instance })) => Some(Action::Announce(Transition::Stopped { instance: instance.clone() })),
        (Phase::Asleep, None) => Some(Action::Adopt(Announced::Down)),
        (Phase::Asleep, Some(Announced::Down)) | (Phase::Waking, _) => None,
    };
    // An alert says "connect at X" or "stopped": only true once DNS and ECS agree.
    match transition {
        Some(a @ Action::Announce(_)) if waiting_for.is_some() => drop(a),
        Some(a) => actions.push(a),
        None => {}
    }
    Plan { phase, actions, waiting_for }
}

#[cfg(test)]
mod tests;
