//! Apply: turn plans into AWS calls, in the order a waiting player cares about.
//!
//! Wakes go first (the player is waiting on them), then DNS (batched per hosted zone),
//! then ECS, then alerts. A leaf whose action fails skips the rest of its plan this
//! tick; the next tick observes again and retries. State changes are recorded only
//! after their action succeeded.

use std::collections::{BTreeMap, HashSet};

use super::capacity::Step;
use super::decide::{Action, Plan};
use crate::leaf::Transition;
use super::observe::{Cache, Cached};
use crate::alerts;
use crate::aws::route53::{ARecord, Upsert};
use crate::aws::{Aws, AwsError};
use crate::clock::Timestamp;
use crate::config::{Config, LeafConfig};
use crate::events;
use crate::leaf::Phase;
use crate::state::StateStore;
use crate::status::{Decision, Status};

/// Counts of one apply.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Actions that succeeded.
    pub done: usize,
    /// Actions that failed (retried next tick).
    pub failed: usize,
    /// A wake or a stop reached AWS: the phase changes, look again at once.
    pub moved: bool,
    /// Actions not attempted because the pass reached its deadline (next pass).
    pub deferred: usize,
}

/// Everything apply needs besides the plans.
pub struct Apply<'a> {
    /// AWS clients.
    pub aws: &'a Aws,
    /// The config.
    pub config: &'a Config,
    /// The observation cache, updated with what we write.
    pub cache: &'a mut Cache,
    /// The state, updated as actions succeed.
    pub store: &'a StateStore,
    /// `/status`, told every decision.
    pub status: &'a Status,
    /// This tick's time.
    pub now: Timestamp,
    /// No call is started after this (see `reconcile::PASS_DEADLINE`).
    pub deadline: tokio::time::Instant,
    /// Nor after shutdown began: a call that ended after the last state write would
    /// be forgotten (a stop the daemon made would later look like someone else's).
    pub cancel: &'a tokio_util::sync::CancellationToken,
    /// Nor once this daemon is no longer the holder (`[daemon.ha]`), in this term.
    pub authority: &'a crate::ha::Authority,
    /// The term the pass acts in.
    pub term: u64,
}

impl Apply<'_> {
    /// Applies `plans` (leaf index, plan).
    pub async fn run(mut self, plans: &[(usize, Plan)]) -> Applied {
        let mut applied = Applied::default();
        let mut failed: HashSet<usize> = HashSet::new();
        for &(i, ref plan) in plans {
            let first = |a: &&Action| {
                matches!(a, Action::AbandonStop | Action::Wake { .. } | Action::DropWake { .. } | Action::Sleep { .. } | Action::NoteTasks { .. } | Action::EndQuarantine | Action::ForgetManual { .. })
            };
            for action in plan.actions.iter().filter(first) {
                self.one(i, plan, action, &mut applied, &mut failed).await;
            }
        }
        self.records(plans, &mut applied, &mut failed).await;
        for &(i, ref plan) in plans {
            for action in plan.actions.iter().filter(|a| matches!(a, Action::Scale { .. } | Action::ForgetParked(_) | Action::Announce(_) | Action::Adopt(_))) {
                self.one(i, plan, action, &mut applied, &mut failed).await;
            }
        }
        applied
    }

    fn dry_run(&self) -> bool {
        self.config.daemon.dry_run
    }

    fn past_deadline(&self) -> bool {
        tokio::time::Instant::now() >= self.deadline || self.cancel.is_cancelled() || self.authority.check_term(self.term).is_err()
    }

    /// Logs and counts an action and shows it as the leaf's last decision.
    fn act(&self, leaf: &str, kind: &'static str, what: &str, why: &str) {
        // Logged only when set: most leafs have none.
        let env = self.config.leafs.iter().find(|l| l.name().as_str() == leaf).and_then(|l| l.env.as_ref()).map(crate::config::LeafName::as_str);
        events::action(leaf, env, kind, what, why, self.dry_run());
        self.status.decided(leaf, Decision { at: self.now, what: what.to_owned(), why: why.to_owned() });
    }

    /// Runs capacity steps of leaf `i` in order, stopping at the first failure; the
    /// cache learns each step AWS took (with more leafs than one call describes, it
    /// would otherwise still say what the group was before the write).
    async fn steps(&mut self, i: usize, steps: &[Step]) -> Result<(), AwsError> {
        let leaf = &self.config.leafs[i];
        for step in steps {
            if self.dry_run() {
                continue;
            }
            let (service, operation) = step.call();
            let not_holder = || AwsError::answer(service, operation, crate::aws::ErrorKind::Transient, "not made: this daemon no longer holds the lease (the holder finishes it)");
            let result = self.authority.within(self.term, self.step(leaf, *step)).await.unwrap_or_else(|_| Err(not_holder()));
            self.cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, result.as_ref().copied(), service, operation);
            result?;
            self.cache.learn(leaf, *step);
        }
        Ok(())
    }

    async fn step(&self, leaf: &LeafConfig, step: Step) -> Result<(), AwsError> {
        let (cluster, service) = leaf.ecs().map(|(c, s)| (c.as_str(), s.as_str())).unwrap_or_default();
        let asg = || leaf.asg().map(crate::config::ResourceName::as_str).ok_or_else(|| AwsError::answer("autoscaling", "UpdateAutoScalingGroup", crate::aws::ErrorKind::Invalid, "the leaf has no ASG (the config changed)"));
        match step {
            Step::AsgDesired(n) => self.aws.asg.set_desired(asg()?, n).await,
            Step::AsgBounds { bounds, desired } => self.aws.asg.set_bounds(asg()?, bounds, desired).await,
            Step::ServiceBounds(b) => self.aws.scaling.set_service_bounds(&crate::aws::scaling::service_resource_id(cluster, service), b).await,
            Step::ServiceDesired(n) => self.aws.ecs.set_desired(cluster, service, n).await,
        }
    }

    /// A stop: written to the state (with the bounds it parks) before its first call,
    /// its calls, then its one alert.
    async fn sleep(&mut self, i: usize, sleep: &crate::leaf::Sleep, steps: &[Step]) -> Result<(), AwsError> {
        let leaf = &self.config.leafs[i];
        self.act(leaf.name().as_str(), sleep.cause.as_str(), &describe(leaf, steps), &sleep.detail);
        self.parking(i, sleep.park, Some(sleep), steps).await?;
        let leaf = &self.config.leafs[i];
        alerts::enqueue(self.store, &self.config.daemon, leaf, alerts::texts::for_sleep(leaf, sleep, self.now));
        Ok(())
    }

    /// Records `park` and the stop under way, if any, durably before running `steps`.
    async fn parking(&mut self, i: usize, park: crate::state::Parked, stopping: Option<&crate::leaf::Sleep>, steps: &[Step]) -> Result<(), AwsError> {
        if !park.is_empty() || stopping.is_some() {
            let name = self.config.leafs[i].name().to_string();
            self.before(&name, |m| {
                if let Some(s) = stopping {
                    m.stopping = Some(s.clone());
                }
                super::decide::remember_parked(&mut m.parked, park);
            })
            .await?;
        }
        self.steps(i, steps).await
    }

    /// Writes `change` to the state and makes it durable before the calls it announces:
    /// bounds about to be parked, a stop about to begin. When the save fails, the calls
    /// wait (the next pass tries again): parked bounds nobody recorded could never be
    /// restored.
    async fn before(&self, name: &str, change: impl FnOnce(&mut crate::state::LeafState)) -> Result<(), AwsError> {
        if self.dry_run() {
            return Ok(());
        }
        self.store.update(|s| change(s.leafs.entry(name.to_owned()).or_default()));
        self.store.save().await.map_err(|e| {
            tracing::error!(leaf = name, error = %e, "could not save the state before a capacity change; not changing anything");
            AwsError::answer("state", "save", crate::aws::ErrorKind::Transient, e.to_string())
        })
    }

    /// Applies one non-DNS action of leaf `i`, unless an earlier one of its failed.
    async fn one(&mut self, i: usize, plan: &Plan, action: &Action, applied: &mut Applied, failed: &mut HashSet<usize>) {
        if failed.contains(&i) {
            return;
        }
        if self.past_deadline() && calls(action) {
            applied.deferred += 1;
            failed.insert(i); // the rest of this leaf's plan waits too, in order
            return;
        }
        let leaf = &self.config.leafs[i];
        let name = leaf.name().as_str();
        let dry = self.dry_run();
        let result = match action {
            Action::Wake { req, steps } => {
                let why = if req.edge == crate::state::OPERATOR {
                    format!("an operator asked at {}", req.query_at)
                } else if let Some(what) = req.edge.strip_prefix(crate::state::RESPONDER) {
                    format!("a {what} at the responder at {}", req.query_at)
                } else {
                    format!("DNS query for {} at {} (edge {})", leaf.domain(), req.query_at, req.edge)
                };
                self.act(name, "wake", &describe(leaf, steps), &why);
                self.steps(i, steps).await
            }
            Action::DropWake { why, notable, .. } => {
                if *notable {
                    tracing::info!(leaf = name, why, "the wake request does not wake the leaf");
                } else {
                    tracing::debug!(leaf = name, why, "wake request needs no action");
                }
                Ok(())
            }
            Action::Sleep { sleep, steps } => self.sleep(i, sleep, steps).await,
            Action::NoteTasks { failures, .. } => {
                for f in failures {
                    events::task_failed(name, &f.describe());
                }
                Ok(())
            }
            Action::EndQuarantine => {
                tracing::info!(leaf = name, "crash-loop quarantine over: DNS queries wake the leaf again");
                Ok(())
            }
            Action::ForgetManual { why, .. } => {
                if let Some(why) = why {
                    tracing::info!(leaf = name, why, "operator command needs no action");
                }
                Ok(())
            }
            Action::Scale { steps, park } => {
                self.act(name, "scale", &describe(leaf, steps), &phase_why(leaf, &plan.phase));
                self.parking(i, *park, None, steps).await
            }
            Action::ForgetParked(f) => {
                tracing::info!(leaf = name, forgotten = ?f, "scaling bounds restored: their record is forgotten");
                Ok(())
            }
            Action::AbandonStop => {
                tracing::warn!(leaf = name, "an operator's wake abandons the stop under way");
                Ok(())
            }
            Action::Announce(t) => {
                alerts::enqueue(self.store, &self.config.daemon, leaf, alerts::texts::for_transition(leaf, t));
                Ok(())
            }
            Action::Adopt(a) => {
                tracing::info!(leaf = name, phase = ?plan.phase, announced = ?a, "first sight of leaf; adopting its current state without an alert");
                Ok(())
            }
            Action::PointRecord { .. } => unreachable!("records are applied per zone"),
        };
        match result {
            Ok(()) => {
                self.store.update(|s| action.record(s.leafs.entry(name.to_owned()).or_default(), self.now));
                applied.done += 1;
                if matches!(action, Action::Wake { .. } | Action::Sleep { .. }) && !dry {
                    applied.moved = true;
                    // AWS has changed: make the memory of it durable before anything else,
                    // so a crash now cannot repeat the wake or lose the stop's alert.
                    if let Err(e) = self.store.save().await {
                        tracing::error!(error = %e, "could not save the state after a wake or stop");
                    }
                }
            }
            Err(e) => {
                events::action_failed(name, kind(action), &e);
                failed.insert(i);
                applied.failed += 1;
            }
        }
    }

    /// All record changes of a hosted zone in one ChangeResourceRecordSets call.
    async fn records(&mut self, plans: &[(usize, Plan)], applied: &mut Applied, failed: &mut HashSet<usize>) {
        let mut by_zone: BTreeMap<&str, Vec<(usize, Upsert, String)>> = BTreeMap::new();
        for &(i, ref plan) in plans {
            if failed.contains(&i) {
                continue;
            }
            for action in &plan.actions {
                if let Action::PointRecord { ips, ttl } = action {
                    let leaf = &self.config.leafs[i];
                    let upsert = Upsert { domain: leaf.domain().to_string(), ips: ips.clone(), ttl: *ttl };
                    by_zone.entry(leaf.hosted_zone_id.as_str()).or_default().push((i, upsert, phase_why(leaf, &plan.phase)));
                }
            }
        }
        for (zone, changes) in by_zone {
            if self.past_deadline() {
                applied.deferred += changes.len();
                failed.extend(changes.iter().map(|(i, _, _)| *i));
                continue;
            }
            let dry = self.dry_run();
            for (i, u, why) in &changes {
                let ips: Vec<String> = u.ips.iter().map(ToString::to_string).collect();
                let what = format!("point {} A at {} (TTL {})", u.domain, ips.join(", "), u.ttl);
                self.act(self.config.leafs[*i].name().as_str(), "point_record", &what, why);
            }
            let upserts: Vec<Upsert> = changes.iter().map(|(_, u, _)| u.clone()).collect();
            let cut = |_| Err(crate::aws::AwsError::answer("route53", "ChangeResourceRecordSets", crate::aws::ErrorKind::Transient, "not made: this daemon no longer holds the lease"));
            let batch = if dry { Ok(()) } else { self.authority.within(self.term, self.aws.route53.upsert_a(zone, &upserts, "container-manager")).await.unwrap_or_else(cut) };
            // One invalid change fails the whole atomic batch: retry one by one so that a
            // leaf with a bad record cannot hold back every other leaf of its zone.
            let results: Vec<Result<(), crate::aws::AwsError>> = match batch {
                Err(e) if upserts.len() > 1 && !e.kind.is_transient() => {
                    tracing::warn!(zone, error = %e, "record batch refused; retrying each record on its own");
                    let mut each = Vec::with_capacity(upserts.len());
                    for u in &upserts {
                        each.push(self.authority.within(self.term, self.aws.route53.upsert_a(zone, std::slice::from_ref(u), "container-manager")).await.unwrap_or_else(cut));
                    }
                    each
                }
                other => vec![other; upserts.len()],
            };
            for ((i, u, _), result) in changes.into_iter().zip(results) {
                let name = self.config.leafs[i].name().to_string();
                if !dry {
                    self.cache.reports.entry(name.clone()).or_default().call(&self.config.leafs[i], result.as_ref().copied(), "route53", "ChangeResourceRecordSets");
                }
                match &result {
                    Ok(()) => {
                        let record = ARecord { values: u.ips.iter().map(ToString::to_string).collect(), ttl: Some(u.ttl) };
                        self.cache.records.insert(name, Cached { value: Some(record), at: self.now });
                        applied.done += 1;
                    }
                    Err(e) => {
                        events::action_failed(&name, "point_record", e);
                        // What the record holds now is unknown: read it again.
                        self.cache.records.remove(&name);
                        failed.insert(i);
                        applied.failed += 1;
                    }
                }
            }
        }
    }
}

/// Whether an action calls AWS (and so waits when the pass is past its deadline).
fn calls(action: &Action) -> bool {
    match action {
        Action::Wake { steps, .. } | Action::Sleep { steps, .. } | Action::Scale { steps, .. } => !steps.is_empty(),
        _ => false,
    }
}

/// What capacity steps do, for the log line and `/status`.
fn describe(leaf: &LeafConfig, steps: &[Step]) -> String {
    let asg = leaf.asg().map(ToString::to_string).unwrap_or_default();
    let service = leaf.ecs().map(|(c, s)| format!("{c}/{s}")).unwrap_or_default();
    let each: Vec<String> = steps
        .iter()
        .map(|step| match step {
            Step::AsgDesired(n) => format!("set ASG {asg} desired capacity to {n}"),
            Step::AsgBounds { bounds, desired } => format!("set ASG {asg} to {bounds}, desired {desired}"),
            Step::ServiceBounds(b) => format!("set the scalable target of ECS service {service} to {b}"),
            Step::ServiceDesired(n) => format!("set ECS service {service} desired count to {n}"),
        })
        .collect();
    if each.is_empty() { "nothing to change in AWS".to_owned() } else { each.join("; ") }
}

fn kind(action: &Action) -> &'static str {
    match action {
        Action::Wake { .. } => "wake",
        Action::DropWake { .. } => "drop_wake",
        Action::Sleep { sleep, .. } => sleep.cause.as_str(),
        Action::NoteTasks { .. } => "note_tasks",
        Action::EndQuarantine => "end_quarantine",
        Action::ForgetManual { .. } => "forget_manual",
        Action::PointRecord { .. } => "point_record",
        Action::Scale { .. } => "scale",
        Action::ForgetParked(_) => "forget_parked",
        Action::AbandonStop => "abandon_stop",
        Action::Announce(Transition::Started { .. }) => "announce_started",
        Action::Announce(Transition::Stopped { .. }) => "announce_stopped",
        Action::Announce(Transition::LeftUp { .. }) => "announce_left_up",
        Action::Adopt(_) => "adopt",
    }
}

fn phase_why(leaf: &LeafConfig, phase: &Phase) -> String {
    let what = if leaf.asg().is_some() { "instance" } else { "task" };
    match phase {
        Phase::Up { serving } => {
            let ips: Vec<String> = phase.ips().iter().map(ToString::to_string).collect();
            match serving.len() {
                1 => format!("{what} {} serves at {}", serving[0].id, if ips.is_empty() { "its load balancer".to_owned() } else { ips.join(", ") }),
                n => format!("{n} {what}s serve (newest {})", serving[0].id),
            }
        }
        Phase::Asleep => format!("no {what} is launching or serving"),
        Phase::Stopping { instance } => format!("no capacity is wanted; {what} {instance} is on its way out"),
        Phase::Waking => format!("{} is launching", if leaf.asg().is_some() { "an instance" } else { "a task" }),
    }
}
