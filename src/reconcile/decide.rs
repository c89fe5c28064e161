//! The pure decision: what AWS says plus what we remember, in; actions, out.
//!
//! No I/O and no clock: the caller passes `now`. Given the same observation twice,
//! [`decide`] asks for the same actions, and once AWS reflects them it asks for none,
//! which is what makes a restart at any moment converge without repeats.
//!
//! In order, for one leaf:
//! 0. an operator's command, then a stop under way (a restart in its middle) is finished;
//! 1. a pending wake request wakes it, unless it is quarantined, the query predates the
//!    daemon's own decision to stop it, or it already wants capacity;
//! 2. a running leaf is stopped by the crash-loop breaker, the left-up guard (with
//!    `left_up_stop`) or the traffic watchdog, in that order of urgency;
//! 3. DNS follows the serving units (or the idle IP), capacity and scaling bounds stay
//!    what the leaf's phase needs ([`super::capacity`]);
//! 4. transitions are announced once DNS agrees with them and the leaf is ready.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::capacity::{Capacity, Step};
use crate::aws::asg::{Group, Lifecycle};
use crate::aws::ec2::Instance;
use crate::aws::ecs::Service;
use crate::aws::elbv2::Health;
use crate::aws::route53::ARecord;
use crate::clock::Timestamp;
use crate::config::{DnsMode, HumanDuration, LeafConfig};
use crate::crashloop::{self, StoppedTask};
use crate::leaf::{Phase, Sleep, Transition, Unit};
use crate::state::{Announced, Failure, LeafState, Manual, Parked, Quarantine, SleepCause, Slept, WakeRequest, OPERATOR};

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

/// A task of a leaf without an ASG, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSeen {
    /// The task, with its ENI's public IP and start time.
    pub unit: Unit,
    /// RUNNING (not PROVISIONING or PENDING).
    pub running: bool,
}

/// Everything AWS told us about one leaf this tick.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The ASG; None when the leaf has none or AWS did not return it.
    pub group: Option<&'a Group>,
    /// Known EC2 details of instances, by id.
    pub instances: &'a HashMap<String, Instance>,
    /// The leaf's A record (Known(None): there is none).
    pub record: Seen<Option<ARecord>>,
    /// The leaf's ECS service.
    pub service: ServiceSeen,
    /// Tasks ECS wants running, for a leaf without an ASG (its units).
    pub tasks: Seen<Vec<TaskSeen>>,
    /// Targets of the leaf's target groups, summed; None when not read.
    pub targets: Option<Health>,
    /// Traffic per period for the watchdog; None when not read (asleep, too soon).
    pub traffic: Option<&'a Traffic>,
    /// Stopped tasks of the leaf's service (seen before or not).
    pub stopped_tasks: &'a [StoppedTask],
    /// Whether the leaf's hosted zone holds its domain; None until known.
    pub zone_holds_domain: Option<bool>,
}

impl Observation<'_> {
    fn capacity(&self) -> Capacity<'_> {
        let service = match &self.service {
            ServiceSeen::Known(s) => Some(s),
            _ => None,
        };
        Capacity { group: self.group, service }
    }
}

/// One step towards what the leaf should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Give the leaf its awake capacity for a DNS query (or an operator).
    Wake {
        /// The request acted on.
        req: WakeRequest,
        /// The capacity calls, in order.
        steps: Vec<Step>,
    },
    /// Forget a pending wake that must not or need not be acted on.
    DropWake {
        /// The query time of the request decided on.
        query_at: Timestamp,
        /// Why.
        why: String,
        /// Worth an info line (the operator would want to know), not just debug.
        notable: bool,
    },
    /// Take the leaf's capacity to 0, with one alert saying why. Written to the state
    /// (with the bounds it parks) before its first call.
    Sleep {
        /// Why, and what to record first.
        sleep: Sleep,
        /// The capacity calls, in order.
        steps: Vec<Step>,
    },
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
        why: Option<String>,
    },
    /// UPSERT the A record.
    PointRecord {
        /// Target addresses, sorted.
        ips: Vec<Ipv4Addr>,
        /// TTL.
        ttl: i64,
    },
    /// Keep capacity and bounds where the phase needs them (no alert).
    Scale {
        /// The calls, in order.
        steps: Vec<Step>,
        /// Bounds to record before the first call (they are about to be parked).
        park: Parked,
    },
    /// Forget recorded bounds that AWS shows restored.
    ForgetParked(Parked),
    /// Forget a stop under way: an operator asked for a wake.
    AbandonStop,
    /// Tell the operator (one alert) and remember that we did.
    Announce(Transition),
    /// Remember the current state without an alert (first sight of the leaf).
    Adopt(Announced),
}

/// Stopped tasks and failures are forgotten after this long (ECS shows stopped tasks
/// for about an hour).
const FORGET_TASKS_MS: i64 = 3 * 3600 * 1000;

/// Records `add`'s bounds (a part already recorded and parked keeps its record).
pub fn remember_parked(parked: &mut Parked, add: Parked) {
    parked.asg = add.asg.or(parked.asg);
    parked.service = add.service.or(parked.service);
}

/// Forgets the records of bounds that `steps` restored.
fn forget_restored(parked: &mut Parked, steps: &[Step]) {
    for step in steps {
        match step {
            Step::AsgBounds { bounds, .. } if !bounds.parked() => parked.asg = None,
            Step::ServiceBounds(b) if !b.parked() => parked.service = None,
            _ => {}
        }
    }
}

impl Action {
    /// What the action does to the leaf's memory once it has succeeded at `now`.
    pub fn record(&self, state: &mut LeafState, now: Timestamp) {
        match self {
            Action::Wake { req, steps } => {
                state.woken_by = Some(req.clone());
                state.woke_at = Some(now);
                state.settle_wake(req.query_at);
                forget_restored(&mut state.parked, steps);
            }
            // Only the command decided on: one that arrived during the tick (after the
            // state was read) has a later time and waits for the next tick.
            Action::ForgetManual { at, .. } => {
                if state.manual.as_ref().is_some_and(|m| m.at() == *at) {
                    state.manual = None;
                }
            }
            Action::DropWake { query_at, .. } => state.settle_wake(*query_at),
            Action::Sleep { sleep: s, .. } => {
                // Decided earlier when a restart finished it: queries in between still wake.
                let at = if s.decided_at.0 > 0 { s.decided_at } else { now };
                state.slept = Some(Slept { at, cause: s.cause, detail: s.detail.clone(), instance: s.instance.clone() });
                state.stopping = None;
                remember_parked(&mut state.parked, s.park);
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
            Action::PointRecord { .. } => {}
            Action::Scale { steps, park } => {
                remember_parked(&mut state.parked, *park);
                forget_restored(&mut state.parked, steps);
            }
            Action::AbandonStop => state.stopping = None,
            Action::ForgetParked(f) => {
                if f.asg.is_some() {
                    state.parked.asg = None;
                }
                if f.service.is_some() {
                    state.parked.service = None;
                }
            }
            Action::Announce(Transition::Started { instance, .. }) => {
                // Only the start that followed a wake of ours measures how long one takes
                // (not a replaced instance, announced again much later).
                let first = !matches!(state.announced, Some(Announced::Up { .. }));
                if first && state.woken_by.is_some() {
                    state.start_ms = state.woke_at.map(|w| now.since(w)).or(state.start_ms);
                }
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
    /// Since when the leaf has served without being ready (its target groups' healthy
    /// targets below `ready_targets`), while its "starting" alert waits for them.
    pub unready_since: Option<Timestamp>,
}

/// The units behind a leaf, whatever its shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Desired capacity of what wakes the leaf (its ASG, or its service without one).
    pub wanted: i32,
    /// Units launching or serving.
    pub live: Vec<String>,
    /// Units serving (InService instances, RUNNING tasks) with what is known of them.
    pub serving: Vec<Unit>,
}

/// The footprint of an ASG: its Pending and InService instances.
pub fn group_footprint(group: &Group, instances: &HashMap<String, Instance>) -> Footprint {
    Footprint {
        wanted: group.desired,
        live: group.instances.iter().filter(|i| matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService)).map(|i| i.id.clone()).collect(),
        serving: group
            .instances
            .iter()
            .filter(|i| i.lifecycle == Lifecycle::InService)
            .filter_map(|i| instances.get(&i.id))
            .map(|i| Unit { id: i.id.clone(), ip: i.public_ip, launched_at: i.launched_at })
            .collect(),
    }
}

/// The leaf's footprint, or what it waits for before anything can be decided.
fn footprint(leaf: &LeafConfig, obs: &Observation<'_>) -> Result<Footprint, &'static str> {
    if leaf.asg().is_some() {
        let group = obs.group.ok_or("the ASG to exist")?;
        return Ok(group_footprint(group, obs.instances));
    }
    let service = match &obs.service {
        ServiceSeen::Known(s) => s,
        ServiceSeen::Unknown | ServiceSeen::NotConfigured => return Err("the ECS service to be read"),
        ServiceSeen::Missing => return Err("the ECS service to exist"),
    };
    let tasks = match &obs.tasks {
        Seen::Known(t) => t.as_slice(),
        // A sleeping service's tasks are read only once it wants some.
        Seen::Unknown if service.desired == 0 => &[],
        Seen::Unknown => return Err("the service's tasks to be read"),
    };
    Ok(Footprint {
        wanted: service.desired,
        live: tasks.iter().map(|t| t.unit.id.clone()).collect(),
        serving: tasks.iter().filter(|t| t.running).map(|t| t.unit.clone()).collect(),
    })
}

/// Reads the leaf's phase from its footprint; `need_ip`: a unit serves only once it has
/// a public IP (the daemon writes the leaf's DNS).
pub fn phase(footprint: &Footprint, need_ip: bool) -> Phase {
    if footprint.wanted == 0 {
        return match footprint.live.first() {
            Some(id) => Phase::Stopping { instance: id.clone() },
            None => Phase::Asleep,
        };
    }
    let mut serving: Vec<Unit> = footprint.serving.iter().filter(|u| !need_ip || u.ip.is_some()).cloned().collect();
    serving.sort_by(|a, b| (b.launched_at, &b.id).cmp(&(a.launched_at, &a.id)));
    if !serving.is_empty() {
        Phase::Up { serving }
    } else if footprint.live.is_empty() {
        Phase::Asleep
    } else {
        Phase::Waking
    }
}

/// Decides what to do for one leaf at `now`.
pub fn decide(leaf: &LeafConfig, obs: &Observation<'_>, state: &LeafState, now: Timestamp) -> Plan {
    let footprint = match footprint(leaf, obs) {
        Ok(f) => f,
        Err(waiting) => return Plan { phase: Phase::Asleep, actions: Vec::new(), waiting_for: Some(waiting), evaluation: None, unready_since: None },
    };
    let mut plan = Plan { phase: phase(&footprint, leaf.dns != DnsMode::None), actions: Vec::new(), waiting_for: None, evaluation: None, unready_since: None };
    let capacity = obs.capacity();
    let quarantine = state.quarantine.as_ref().filter(|q| now < q.until);
    let manual_wake = matches!(state.manual, Some(Manual::Wake { .. }));
    if state.quarantine.is_some() && (quarantine.is_none() || manual_wake) {
        plan.actions.push(Action::EndQuarantine);
    }
    if let Some(sleep) = &state.stopping {
        if manual_wake {
            // The operator wins, even over a stop that keeps failing.
            plan.actions.push(Action::AbandonStop);
        } else {
            // A stop was under way when the daemon last ran (or its calls failed): finish
            // it, with its one alert. Bounds it had not seen then are recorded now.
            let (park, steps) = capacity.sleep(&state.parked);
            let mut sleep = sleep.clone();
            remember_parked(&mut sleep.park, park);
            plan.actions.push(Action::Sleep { sleep, steps });
            return plan;
        }
    }
    if let Some(manual) = state.manual
        && let Some(sleep) = operator(&mut plan, leaf, &capacity, state, manual)
    {
        push_sleep(&mut plan, &capacity, state, sleep, now);
        plan.actions.push(Action::ForgetManual { at: manual.at(), why: None });
        return plan;
    }
    let waking = plan.actions.iter().any(|a| matches!(a, Action::Wake { .. })) || wake(&mut plan, leaf, &capacity, state, quarantine, obs.zone_holds_domain);
    if !waking
        && capacity.awake()
        && capacity.known()
        && let Some(sleep) = stop(&mut plan, leaf, obs, state, now)
    {
        push_sleep(&mut plan, &capacity, state, sleep, now);
        return plan; // DNS follows on the next tick, from the new phase
    }
    converge(&mut plan, leaf, obs, &capacity, state, waking, now);
    announce(&mut plan, leaf, obs, state);
    plan
}

/// A sleep with the bounds it parks, its calls, and when it was decided.
fn push_sleep(plan: &mut Plan, capacity: &Capacity<'_>, state: &LeafState, mut sleep: Sleep, now: Timestamp) {
    let (park, steps) = capacity.sleep(&state.parked);
    sleep.park = park;
    sleep.decided_at = now;
    plan.actions.push(Action::Sleep { sleep, steps });
}

/// Why a leaf that already wants capacity needs no wake.
fn already_awake(leaf: &LeafConfig) -> &'static str {
    if leaf.asg().is_some() { "the ASG already wants an instance" } else { "the service already wants tasks" }
}

/// Step 0: an operator's command wins over everything else (even a quarantine).
fn operator(plan: &mut Plan, leaf: &LeafConfig, capacity: &Capacity<'_>, state: &LeafState, manual: Manual) -> Option<Sleep> {
    match manual {
        Manual::Wake { at } if !capacity.awake() => match capacity.wake(leaf, &state.parked) {
            Ok(steps) => {
                plan.actions.push(Action::Wake { req: WakeRequest { query_at: at, edge: OPERATOR.to_owned() }, steps });
                plan.actions.push(Action::ForgetManual { at, why: None });
            }
            Err(why) => plan.actions.push(Action::ForgetManual { at, why: Some(why) }),
        },
        Manual::Wake { at } => plan.actions.push(Action::ForgetManual { at, why: Some(already_awake(leaf).to_owned()) }),
        Manual::Sleep { .. } if capacity.awake() => {
            return Some(Sleep::new(SleepCause::Manual, "an operator ran `containerd sleep`".to_owned(), plan.phase.instance().map(str::to_owned), None));
        }
        Manual::Sleep { at } => plan.actions.push(Action::ForgetManual { at, why: Some("the leaf is already asleep".to_owned()) }),
    }
    None
}

/// Step 1: acts on a pending wake request; true when it wakes the leaf.
fn wake(plan: &mut Plan, leaf: &LeafConfig, capacity: &Capacity<'_>, state: &LeafState, quarantine: Option<&Quarantine>, zone_holds_domain: Option<bool>) -> bool {
    let Some(req) = &state.wake else { return false };
    let by_dns = !req.edge.starts_with(crate::state::RESPONDER) && req.edge != OPERATOR;
    let (why, notable) = if by_dns && !leaf.wake_on_dns {
        ("wake_on_dns = false: only the responder wakes it".to_owned(), false)
    } else if zone_holds_domain == Some(false) && leaf.dns != DnsMode::None {
        // Players could not reach it: its record cannot be written in that zone.
        ("its hosted zone does not hold its domain (a problem alert says how to fix it)".to_owned(), true)
    } else if let Some(q) = quarantine {
        (format!("quarantined until {} after a crash loop ({})", q.until, q.detail), true)
    } else if state.slept.as_ref().is_some_and(|s| req.query_at <= s.at) {
        ("the query predates the decision to stop the leaf".to_owned(), true)
    } else if capacity.awake() {
        (already_awake(leaf).to_owned(), false)
    } else {
        match capacity.wake(leaf, &state.parked) {
            Ok(steps) => {
                plan.actions.push(Action::Wake { req: req.clone(), steps });
                return true;
            }
            Err(why) => (why, true),
        }
    };
    plan.actions.push(Action::DropWake { query_at: req.query_at, why, notable });
    false
}

/// Step 2: whether a running leaf must be stopped, and why.
fn stop(plan: &mut Plan, leaf: &LeafConfig, obs: &Observation<'_>, state: &LeafState, now: Timestamp) -> Option<Sleep> {
    let (instance, launched) = match &plan.phase {
        Phase::Up { serving } => (serving.first().map(|u| u.id.clone()), serving.first().and_then(|u| u.launched_at)),
        Phase::Waking => (None, None),
        Phase::Asleep | Phase::Stopping { .. } => return None,
    };

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
        let detail = format!("{}; DNS queries will not wake it until {until} (cooldown {})", f.describe(), leaf.crash_loop.cooldown);
        return Some(Sleep::new(SleepCause::CrashLoop, detail, instance, Some(until)));
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
            let detail = format!("instance {instance} has been up for {up_for} (left_up_after {}, left_up_stop = true)", wd.left_up_after);
            return Some(Sleep::new(SleepCause::LeftUp, detail, Some(instance), None));
        }
        if state.left_up_alerted.as_ref() != Some(&instance) {
            plan.actions.push(Action::Announce(Transition::LeftUp { instance: instance.clone(), up_for_ms }));
        }
    }

    let traffic = obs.traffic?;
    let evaluation = watchdog::evaluate(wd, traffic, state.last_query_at, awake_since, now);
    let sleep = match evaluation.verdict {
        Verdict::Idle { idle_for_ms } => {
            let detail = format!(
                "idle for {}: player traffic at or below {} B/s in every period (last periods: {})",
                HumanDuration(std::time::Duration::from_millis(u64::try_from(idle_for_ms).unwrap_or(0))),
                wd.threshold.get(),
                evaluation.figures()
            );
            Some(Sleep::new(SleepCause::Idle, detail, Some(instance), None))
        }
        _ => None,
    };
    plan.evaluation = Some(evaluation);
    sleep
}

/// Step 3: DNS follows the phase; capacity and bounds stay what the phase needs.
fn converge(plan: &mut Plan, leaf: &LeafConfig, obs: &Observation<'_>, capacity: &Capacity<'_>, state: &LeafState, waking: bool, now: Timestamp) {
    let target = match &plan.phase {
        Phase::Up { .. } => Some(record_ips(leaf, &plan.phase)),
        Phase::Asleep | Phase::Stopping { .. } => Some(vec![leaf.idle_ip]),
        Phase::Waking => {
            plan.waiting_for = Some(if leaf.asg().is_some() { "an InService instance with a public IP" } else { "a RUNNING task with a public IP" });
            None
        }
    };
    if leaf.dns == DnsMode::None {
        // An alias to a load balancer, or someone else's record: never written.
    } else if obs.zone_holds_domain == Some(false) {
        // The record cannot be written in that zone; a problem alert says so.
        plan.waiting_for = Some("a hosted zone that holds the domain");
    } else if let Some(ips) = target {
        point(plan, &obs.record, ips, leaf.dns_ttl());
    }
    if obs.service == ServiceSeen::Unknown {
        plan.waiting_for = plan.waiting_for.or(Some("the ECS service to be read"));
    }
    if waking {
        return; // the wake's own steps set the capacity this tick
    }
    if !capacity.known() {
        plan.waiting_for = plan.waiting_for.or(Some("the ASG's scaling policies to be read"));
        return;
    }
    if capacity.awake() {
        let (steps, forget) = capacity.keep_awake(leaf, &state.parked, restore_allowed(state, now));
        if !steps.is_empty() {
            plan.actions.push(Action::Scale { steps, park: Parked::default() });
        }
        if !forget.is_empty() {
            plan.actions.push(Action::ForgetParked(forget));
        }
    } else {
        let (park, steps) = capacity.keep_asleep(&state.parked);
        if !steps.is_empty() {
            plan.actions.push(Action::Scale { steps, park });
        }
    }
}

/// How long after its own stop the daemon distrusts a leaf that reads awake with parked
/// bounds (the reads may lag the stop's writes); later, or with a wake pending, such a
/// leaf is an interrupted wake (or an operator's) and its bounds are restored.
const RESTORE_AFTER_STOP_MS: i64 = 60_000;

fn restore_allowed(state: &LeafState, now: Timestamp) -> bool {
    let Some(slept) = &state.slept else { return true };
    state.wake.as_ref().is_some_and(|w| w.query_at > slept.at)
        || matches!(state.manual, Some(Manual::Wake { .. }))
        || state.woke_at.is_some_and(|w| w > slept.at)
        || now.since(slept.at) >= RESTORE_AFTER_STOP_MS
}

/// What the A record of a serving leaf holds: the newest unit's IP, or every one's.
fn record_ips(leaf: &LeafConfig, phase: &Phase) -> Vec<Ipv4Addr> {
    match leaf.dns {
        DnsMode::Instance => phase.newest().and_then(|u| u.ip).into_iter().collect(),
        DnsMode::All => phase.ips(),
        DnsMode::None => Vec::new(),
    }
}

/// The A record follows the phase.
fn point(plan: &mut Plan, record: &Seen<Option<ARecord>>, ips: Vec<Ipv4Addr>, ttl: i64) {
    match record {
        Seen::Known(Some(r)) if r.is(&ips, ttl) => {}
        Seen::Known(_) => plan.actions.push(Action::PointRecord { ips, ttl }),
        // A running or stopping leaf's record must follow now: an UPSERT is idempotent, so
        // write it rather than wait for the read budget (1,000 leafs just after a restart
        // would otherwise keep a player waiting for minutes). An asleep leaf can wait.
        Seen::Unknown if !matches!(plan.phase, Phase::Asleep) => plan.actions.push(Action::PointRecord { ips, ttl }),
        Seen::Unknown => plan.waiting_for = Some("the A record to be read"),
    }
}

/// Step 4: one alert per transition, once DNS agrees with it and the leaf is ready.
fn announce(plan: &mut Plan, leaf: &LeafConfig, obs: &Observation<'_>, state: &LeafState) {
    let action = match (&plan.phase, &state.announced) {
        (Phase::Up { serving }, Some(Announced::Up { instance: announced })) if serving.iter().any(|u| &u.id == announced) => None,
        // Another unit serves and the leaf never stopped: news only when players connect to
        // the one IP that changed (`dns = "instance"`); a balancer or a record of every IP
        // hides a replaced or scaled-in unit.
        (Phase::Up { serving }, Some(Announced::Up { .. })) if serving.len() > 1 || leaf.dns != DnsMode::Instance => {
            Some(Action::Adopt(Announced::Up { instance: serving[0].id.clone() }))
        }
        (Phase::Up { serving }, None) => Some(Action::Adopt(Announced::Up { instance: serving[0].id.clone() })),
        (Phase::Up { serving }, Some(_)) => {
            let ready = leaf.target_group_arns.is_empty() || obs.targets.is_some_and(|h| h.healthy >= leaf.ready_targets());
            if ready {
                Some(Action::Announce(Transition::Started { instance: serving[0].id.clone(), ips: record_ips(leaf, &plan.phase), woken_by: state.woken_by.clone() }))
            } else {
                plan.waiting_for = plan.waiting_for.or(Some("ready_targets healthy targets in target_group_arns"));
                if obs.targets.is_some() {
                    plan.unready_since = state.woke_at.max(serving.iter().filter_map(|u| u.launched_at).min());
                }
                None
            }
        }
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
mod shape_tests;
#[cfg(test)]
mod tests;
