//! The pure decision: what AWS says plus what we remember, in; actions, out.
//!
//! No I/O and no clock: the caller passes `now`. Given the same observation twice,
//! [`decide`] asks for the same actions, and once AWS reflects them it asks for none,
//! which is what makes a restart at any moment converge without repeats.
//!
//! In order, for one leaf:
//! 1. a pending wake request wakes it, unless it is quarantined, the query predates the
//!    daemon's own decision to stop it, or the ASG already wants an instance;
//! 2. a running leaf is stopped by the crash-loop breaker, the left-up guard (with
//!    `left_up_stop`) or the traffic watchdog, in that order of urgency;
//! 3. DNS and ECS follow the instance (or the idle IP and 0);
//! 4. transitions are announced once DNS and ECS agree with them.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::aws::asg::{Group, Lifecycle};
use crate::aws::ec2::Instance;
use crate::aws::ecs::Service;
use crate::aws::route53::ARecord;
use crate::clock::Timestamp;
use crate::config::{HumanDuration, LeafConfig};
use crate::crashloop::{self, StoppedTask};
use crate::leaf::{Phase, Sleep, Transition};
use crate::state::{Announced, Failure, LeafState, Manual, Quarantine, SleepCause, Slept, WakeRequest, OPERATOR};

use crate::watchdog::{self, Evaluation, Traffic, Verdict};

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
    /// Traffic per period for the watchdog; None when not read (asleep, too soon).
    pub traffic: Option<&'a Traffic>,
    /// Stopped tasks of the leaf's service (seen before or not).
    pub stopped_tasks: &'a [StoppedTask],
    /// Whether the leaf's hosted zone holds its domain; None until known.
    pub zone_holds_domain: Option<bool>,
}

/// One step towards what the leaf should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the ASG's desired capacity to 1 for a DNS query.
    Wake(WakeRequest),
    /// Forget a pending wake that must not or need not be acted on.
    DropWake {
        /// The query time of the request decided on.
        query_at: Timestamp,
        /// Why.
        why: String,
        /// Worth an info line (the operator would want to know), not just debug.
        notable: bool,
    },
    /// Set the ASG's desired capacity to 0, with one alert saying why.
    Sleep(Sleep),
    /// Remember stopped tasks (and the failures among them) so each counts once.
    NoteTasks {
        /// ARN and stop time of each newly seen stopped task.
        seen: Vec<(String, Timestamp)>,
        /// The failures among them.
        failures: Vec<Failure>,
    },
    /// The quarantine is over: DNS queries wake the leaf again.
    EndQuarantine,
    /// An operator's command is done (or needs nothing): forget it, unless a newer one
    /// arrived meanwhile.
    ForgetManual {
        /// When the command decided on was asked.
        at: Timestamp,
        /// Why it needed no action; None when it was carried out.
        why: Option<&'static str>,
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

/// Stopped tasks and failures are forgotten after this long (ECS shows stopped tasks
/// for about an hour).
const FORGET_TASKS_MS: i64 = 3 * 3600 * 1000;

impl Action {
    /// What the action does to the leaf's memory once it has succeeded at `now`.
    pub fn record(&self, state: &mut LeafState, now: Timestamp) {
        match self {
            Action::Wake(req) => {
                state.woken_by = Some(req.clone());
                state.woke_at = Some(now);
                state.settle_wake(req.query_at);
            }
            // Only the command decided on: one that arrived during the tick (after the
            // state was read) has a later time and waits for the next tick.
            Action::ForgetManual { at, .. } => {
                if state.manual.as_ref().is_some_and(|m| m.at() == *at) {
                    state.manual = None;
                }
            }
            Action::DropWake { query_at, .. } => state.settle_wake(*query_at),
            Action::Sleep(s) => {
                state.slept = Some(Slept { at: now, cause: s.cause, detail: s.detail.clone(), instance: s.instance.clone() });
                // The sleep alert is the stop's one alert: no "stopped" follows.
                state.announced = Some(Announced::Down);
                state.woken_by = None;
                if let Some(until) = s.quarantine_until {
                    state.quarantine = Some(Quarantine { until, detail: s.detail.clone() });
                    state.failures.clear();
                }
            }
            Action::NoteTasks { seen, failures } => {
                state.seen_tasks.extend(seen.iter().cloned());
                state.failures.extend(failures.iter().cloned());
                state.seen_tasks.retain(|_, at| now.since(*at) < FORGET_TASKS_MS);
                state.failures.retain(|f| now.since(f.at) < FORGET_TASKS_MS);
            }
            Action::EndQuarantine => state.quarantine = None,
            Action::PointRecord { .. } | Action::ScaleService { .. } => {}
            Action::Announce(Transition::Started { instance, .. }) => {
                state.announced = Some(Announced::Up { instance: instance.clone() });
            }
            Action::Announce(Transition::Stopped { .. }) => {
                state.announced = Some(Announced::Down);
                state.woken_by = None;
            }
            Action::Announce(Transition::LeftUp { instance, .. }) => state.left_up_alerted = Some(instance.clone()),
            Action::Adopt(a) => state.announced = Some(a.clone()),
        }
    }
}

/// The decision for one leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where the leaf is.
    pub phase: Phase,
    /// What to do, in order; a failed action skips the rest.
    pub actions: Vec<Action>,
    /// Why something that looks due was not done (for `/status` and debug logs).
    pub waiting_for: Option<&'static str>,
    /// The watchdog's judgement, when it ran.
    pub evaluation: Option<Evaluation>,
}

/// Reads the leaf's phase from its ASG and instance details.
pub fn phase(group: &Group, instances: &HashMap<String, Instance>) -> Phase {
    let live: Vec<&str> = group
        .instances
        .iter()
        .filter(|i| matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService))
        .map(|i| i.id.as_str())
        .collect();
    if group.desired == 0 {
        return match live.first() {
            Some(id) => Phase::Stopping { instance: (*id).to_owned() },
            None => Phase::Asleep,
        };
    }
    let serving = group
        .instances
        .iter()
        .filter(|i| i.lifecycle == Lifecycle::InService)
        .filter_map(|i| instances.get(&i.id))
        .filter_map(|i| Some((i, i.public_ip?)))
        .max_by_key(|(i, _)| (i.launched_at, i.id.clone()));
    match serving {
        Some((instance, ip)) => Phase::Up { instance: instance.id.clone(), ip },
        None if live.is_empty() => Phase::Asleep,
        None => Phase::Waking,
    }
}

/// Decides what to do for one leaf at `now`.
pub fn decide(leaf: &LeafConfig, obs: &Observation<'_>, state: &LeafState, now: Timestamp) -> Plan {
    let Some(group) = obs.group else {
        return Plan { phase: Phase::Asleep, actions: Vec::new(), waiting_for: Some("the ASG to exist"), evaluation: None };
    };
    let mut plan = Plan { phase: phase(group, obs.instances), actions: Vec::new(), waiting_for: None, evaluation: None };
    let quarantine = state.quarantine.as_ref().filter(|q| now < q.until);
    let manual_wake = matches!(state.manual, Some(Manual::Wake { .. }));
    if state.quarantine.is_some() && (quarantine.is_none() || manual_wake) {
        plan.actions.push(Action::EndQuarantine);
    }
    if let Some(manual) = state.manual
        && let Some(sleep) = operator(&mut plan, group, manual)
    {
        plan.actions.push(Action::Sleep(sleep));
        plan.actions.push(Action::ForgetManual { at: manual.at(), why: None });
        return plan;
    }
    let waking = plan.actions.iter().any(|a| matches!(a, Action::Wake(_))) || wake(&mut plan, group, state, quarantine, obs.zone_holds_domain);
    if !waking
        && group.desired >= 1
        && let Some(sleep) = stop(&mut plan, leaf, obs, state, now)
    {
        plan.actions.push(Action::Sleep(sleep));
        return plan; // DNS and ECS follow on the next tick, from the new phase
    }
    converge(&mut plan, leaf, obs);
    announce(&mut plan, state);
    plan
}

/// Step 0: an operator's command wins over everything else (even a quarantine).
fn operator(plan: &mut Plan, group: &Group, manual: Manual) -> Option<Sleep> {
    match manual {
        Manual::Wake { at } if group.desired < 1 && group.max >= 1 => {
            plan.actions.push(Action::Wake(WakeRequest { query_at: at, edge: OPERATOR.to_owned() }));
            plan.actions.push(Action::ForgetManual { at, why: None });
        }
        Manual::Wake { at } => plan.actions.push(Action::ForgetManual { at, why: Some("the ASG already wants an instance (or its max size is 0)") }),
        Manual::Sleep { .. } if group.desired >= 1 => {
            let instance = match &plan.phase {
                Phase::Up { instance, .. } | Phase::Stopping { instance } => Some(instance.clone()),
                Phase::Asleep | Phase::Waking => None,
            };
            return Some(Sleep { cause: SleepCause::Manual, detail: "an operator ran `containerd sleep`".to_owned(), instance, quarantine_until: None });
        }
        Manual::Sleep { at } => plan.actions.push(Action::ForgetManual { at, why: Some("the leaf is already asleep") }),
    }
    None
}

/// Step 1: acts on a pending wake request; true when it wakes the leaf.
fn wake(plan: &mut Plan, group: &Group, state: &LeafState, quarantine: Option<&Quarantine>, zone_holds_domain: Option<bool>) -> bool {
    let Some(req) = &state.wake else { return false };
    let (why, notable) = if zone_holds_domain == Some(false) {
        // Players could not reach it: its record cannot be written in that zone.
        ("its hosted zone does not hold its domain (a problem alert says how to fix it)".to_owned(), true)
    } else if let Some(q) = quarantine {
        (format!("quarantined until {} after a crash loop ({})", q.until, q.detail), true)
    } else if state.slept.as_ref().is_some_and(|s| req.query_at <= s.at) {
        ("the query predates the decision to stop the leaf".to_owned(), true)
    } else if group.desired >= 1 {
        ("the ASG already wants an instance".to_owned(), false)
    } else if group.max < 1 {
        ("the ASG's max size is 0".to_owned(), true)
    } else {
        plan.actions.push(Action::Wake(req.clone()));
        return true;
    };
    plan.actions.push(Action::DropWake { query_at: req.query_at, why, notable });
    false
}

/// Step 2: whether a running leaf must be stopped, and why.
fn stop(plan: &mut Plan, leaf: &LeafConfig, obs: &Observation<'_>, state: &LeafState, now: Timestamp) -> Option<Sleep> {
    let instance = match &plan.phase {
        Phase::Up { instance, .. } => Some(instance.clone()),
        Phase::Waking => None,
        Phase::Asleep | Phase::Stopping { .. } => return None,
    };

    let launched = instance.as_ref().and_then(|i| obs.instances.get(i)).and_then(|i| i.launched_at);
    let awake_since = state.woke_at.max(launched);
    let new: Vec<&StoppedTask> = obs.stopped_tasks.iter().filter(|t| !state.seen_tasks.contains_key(&t.arn)).collect();
    // A task that stopped before this wake (say, killed with the last instance) is
    // remembered as seen but is no failure of the container now starting.
    let new_failures: Vec<Failure> = new
        .iter()
        .filter(|t| t.stopped_at.is_none_or(|at| awake_since.is_none_or(|since| at >= since)))
        .filter_map(|t| crashloop::failure(t, now))
        .collect();
    if !new.is_empty() {
        let seen = new.iter().map(|t| (t.arn.clone(), t.stopped_at.unwrap_or(now))).collect();
        plan.actions.push(Action::NoteTasks { seen, failures: new_failures.clone() });
    }
    let failures: Vec<Failure> = state.failures.iter().cloned().chain(new_failures).collect();
    if let Some(f) = crashloop::tripped(&failures, &leaf.crash_loop, now) {
        let until = now.plus_ms(leaf.crash_loop.cooldown.as_millis());
        return Some(Sleep {
            cause: SleepCause::CrashLoop,
            detail: format!("{}; DNS queries will not wake it until {until} (cooldown {})", f.describe(), leaf.crash_loop.cooldown),
            instance,
            quarantine_until: Some(until),
        });
    }

    let instance = instance?;
    if state.slept.as_ref().is_some_and(|s| s.instance.as_ref() == Some(&instance)) {
        // Already decided for this instance (in dry run, or an operator scaled it back
        // up): deciding again every tick would repeat the action and its alert.
        return None;
    }
    let wd = &leaf.watchdog;
    if let Some(up_for_ms) = launched.map(|l| now.since(l)).filter(|&ms| ms >= wd.left_up_after.as_millis()) {
        let up_for = HumanDuration(std::time::Duration::from_millis(u64::try_from(up_for_ms / 60_000 * 60_000).unwrap_or(0)));
        if wd.left_up_stop {
            return Some(Sleep {
                cause: SleepCause::LeftUp,
                detail: format!("instance {instance} has been up for {up_for} (left_up_after {}, left_up_stop = true)", wd.left_up_after),
                instance: Some(instance),
                quarantine_until: None,
            });
        }
        if state.left_up_alerted.as_ref() != Some(&instance) {
            plan.actions.push(Action::Announce(Transition::LeftUp { instance: instance.clone(), up_for_ms }));
        }
    }

    let traffic = obs.traffic?;
    let evaluation = watchdog::evaluate(wd, traffic, state.last_query_at, awake_since, now);
    let sleep = match evaluation.verdict {
        Verdict::Idle { idle_for_ms } => Some(Sleep {
            cause: SleepCause::Idle,
            detail: format!(
                "idle for {}: player traffic at or below {} B/s in every period (last periods: {})",
                HumanDuration(std::time::Duration::from_millis(u64::try_from(idle_for_ms).unwrap_or(0))),
                wd.threshold.get(),
                evaluation.figures()
            ),
            instance: Some(instance),
            quarantine_until: None,
        }),
        _ => None,
    };
    plan.evaluation = Some(evaluation);
    sleep
}

/// Step 3: DNS and ECS follow the phase.
fn converge(plan: &mut Plan, leaf: &LeafConfig, obs: &Observation<'_>) {
    let (target_ip, target_count) = match &plan.phase {
        Phase::Up { ip, .. } => (*ip, 1),
        Phase::Asleep | Phase::Stopping { .. } => (leaf.idle_ip, 0),
        Phase::Waking => {
            plan.waiting_for = Some("an InService instance with a public IP");
            return;
        }
    };
    if obs.zone_holds_domain == Some(false) {
        // The record cannot be written in that zone; a problem alert says so.
        plan.waiting_for = Some("a hosted zone that holds the domain");
    } else {
        point(plan, &obs.record, target_ip, leaf.dns_ttl());
    }
    match &obs.service {
        ServiceSeen::Known(s) if !s.daemon && s.desired != target_count => plan.actions.push(Action::ScaleService { desired: target_count }),
        ServiceSeen::Unknown => plan.waiting_for = plan.waiting_for.or(Some("the ECS service to be read")),
        ServiceSeen::Known(_) | ServiceSeen::NotConfigured | ServiceSeen::Missing => {}
    }
}

/// The A record follows the phase.
fn point(plan: &mut Plan, record: &Seen<Option<ARecord>>, target_ip: Ipv4Addr, ttl: i64) {
    match record {
        Seen::Known(Some(r)) if r.is(target_ip, ttl) => {}
        Seen::Known(_) => plan.actions.push(Action::PointRecord { ip: target_ip, ttl }),
        // A running or stopping leaf's record must follow now: an UPSERT is idempotent, so
        // write it rather than wait for the read budget (1,000 leafs just after a restart
        // would otherwise keep a player waiting for minutes). An asleep leaf can wait.
        Seen::Unknown if !matches!(plan.phase, Phase::Asleep) => plan.actions.push(Action::PointRecord { ip: target_ip, ttl }),
        Seen::Unknown => plan.waiting_for = Some("the A record to be read"),
    }
}

/// Step 4: one alert per transition, once DNS and ECS agree with it.
fn announce(plan: &mut Plan, state: &LeafState) {
    let action = match (&plan.phase, &state.announced) {
        (Phase::Up { instance, .. }, Some(Announced::Up { instance: announced })) if announced == instance => None,
        (Phase::Up { instance, .. }, None) => Some(Action::Adopt(Announced::Up { instance: instance.clone() })),
        (Phase::Up { instance, ip }, Some(_)) => Some(Action::Announce(Transition::Started {
            instance: instance.clone(),
            ip: *ip,
            woken_by: state.woken_by.clone(),
        })),
        (Phase::Asleep, Some(Announced::Up { instance })) => Some(Action::Announce(Transition::Stopped { instance: instance.clone() })),
        (Phase::Asleep, None) => Some(Action::Adopt(Announced::Down)),
        (Phase::Asleep, Some(Announced::Down)) | (Phase::Waking | Phase::Stopping { .. }, _) => None,
    };
    match action {
        Some(Action::Announce(_)) if plan.waiting_for.is_some() => {}
        Some(a) => plan.actions.push(a),
        None => {}
    }
}

#[cfg(test)]
mod tests;
