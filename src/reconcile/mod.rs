//! The reconciler: each tick, read what AWS says and converge every leaf to what it
//! should be. Level-triggered: a DNS query only records a wake request in the state
//! (and activates a tick early); the tick decides from observations alone, so a missed
//! event or a restart is repaired by the next tick.
//!
//! - [`observe`]: batched reads and the cache that keeps calls flat as leafs grow;
//! - [`decide`]: the pure decision, unit-tested with a fake clock;
//! - [`apply`]: the calls, in the order a waiting player cares about.

pub mod apply;
pub mod decide;
pub mod observe;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::aws::Aws;
use crate::clock::Timeline;
use crate::config::Config;
use crate::leaf::Phase;
use crate::state::{LeafState, StateStore};
use crate::status::{LeafView, Status};
use crate::worker::{Activator, Task, WorkerError};

/// A pass stops issuing calls after this long (what is left waits for the next pass), so
/// that a brown-out (connections accepted, answers never coming) makes passes slow, not
/// stuck: the systemd watchdog keeps being fed and `/healthz` says AWS is slow.
pub const PASS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything the reconciler shares with the rest of the daemon.
pub struct Shared {
    /// The current config (replaced on SIGHUP).
    pub config: watch::Receiver<Arc<Config>>,
    /// AWS clients.
    pub aws: Aws,
    /// Persistent state.
    pub store: Arc<StateStore>,
    /// What `/status` shows.
    pub status: Arc<Status>,
    /// The reconciler's own activator: after a wake or a stop the next look is immediate.
    pub again: Activator,
    /// Wakes the outbox worker when alerts were queued.
    pub outbox: Activator,
    /// The daemon's time.
    pub timeline: Arc<Timeline>,
    /// Shutdown: a pass under way starts no further call.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// The reconcile worker.
pub struct Reconciler {
    shared: Shared,
    cache: observe::Cache,
    /// The config the cache was last trimmed for.
    trimmed_for: Option<Arc<Config>>,
}

impl Reconciler {
    /// A reconciler with an empty cache: its first ticks read everything they need.
    pub fn new(shared: Shared) -> Self {
        Self { shared, cache: observe::Cache::default(), trimmed_for: None }
    }

    /// After a reload, forgets what it knew of leafs that left the config: their cache
    /// entries, their state and their metric series.
    fn trim(&mut self, config: &Arc<Config>) {
        if self.trimmed_for.as_ref().is_some_and(|c| Arc::ptr_eq(c, config)) {
            return;
        }
        self.trimmed_for = Some(Arc::clone(config));
        let keep: std::collections::BTreeSet<String> = config.leafs.iter().map(|l| l.name().to_string()).collect();
        self.cache.forget_leafs_except(&keep);
        for gone in self.shared.store.forget_leafs_except(&keep) {
            crate::metrics::forget("leaf", &gone);
            tracing::info!(leaf = gone, "forgot a leaf that left the config");
        }
    }
}

/// Problems the observation itself shows: a missing ASG, an instance without a public IP.
fn conditions(leaf: &crate::config::LeafConfig, cache: &observe::Cache, report: &mut crate::problems::Report) {
    use crate::state::Problem;
    let Some(group) = cache.groups.get(leaf.name().as_str()).and_then(|c| c.value.as_ref()) else {
        report.raised.push(Problem::asg_missing(leaf));
        return;
    };
    report.cleared.push("asg_missing".into());
    match (cache.zone_holds_domain(leaf), cache.zones.get(leaf.hosted_zone_id.as_str())) {
        (Some(false), Some(zone)) => report.raised.push(Problem::zone_mismatch(leaf, zone)),
        (Some(true), _) => report.cleared.push("zone_mismatch".into()),
        _ => {}
    }
    let unreachable = group
        .instances
        .iter()
        .filter(|i| i.lifecycle == crate::aws::asg::Lifecycle::InService)
        .find(|i| cache.instances.get(&i.id).is_some_and(|known| known.public_ip.is_none()));
    match unreachable {
        Some(i) => report.raised.push(Problem::no_public_ip(leaf, &i.id)),
        None => report.cleared.push("no_public_ip".into()),
    }
}

/// The `/status` view of a leaf after a decision.
fn view(leaf: &crate::config::LeafConfig, plan: &decide::Plan, group: Option<&crate::aws::asg::Group>, memory: &LeafState, now: crate::clock::Timestamp) -> LeafView {
    let (instance, ip) = match &plan.phase {
        Phase::Up { instance, ip } => (Some(instance.clone()), Some(ip.to_string())),
        Phase::Stopping { instance } => (Some(instance.clone()), None),
        Phase::Asleep | Phase::Waking => (None, None),
    };
    LeafView {
        name: leaf.name().to_string(),
        domain: leaf.domain().to_string(),
        phase: if group.is_some() { plan.phase.name().to_owned() } else { "asg_missing".to_owned() },
        instance,
        ip,
        desired: group.map(|g| g.desired),
        wake_pending: memory.wake.is_some(),
        quarantined_until: memory.quarantine.as_ref().map(|q| q.until).filter(|u| *u > now),
        verdict: plan.evaluation.as_ref().map(|e| e.verdict.name().to_owned()),
        idle_streak: plan.evaluation.as_ref().map(|e| e.idle_streak),
        activity_bytes_per_s: plan.evaluation.as_ref().and_then(crate::watchdog::Evaluation::latest),
        threshold: *leaf.watchdog.threshold.get(),
        last_decision: None,
        waiting_for: plan.waiting_for.map(str::to_owned),
        observed_at: Some(now),
        problems: memory.problems.values().map(|p| p.text.clone()).collect(),
    }
}

impl Task for Reconciler {
    fn name(&self) -> &'static str {
        "reconcile"
    }

    async fn activate(&mut self) -> Result<String, WorkerError> {
        let now = self.shared.timeline.now();
        let deadline = tokio::time::Instant::now() + PASS_DEADLINE;
        let config = Arc::clone(&self.shared.config.borrow());
        self.trim(&config);
        let memory = self.shared.store.read(Clone::clone);
        let selected = observe::select(&config, &self.cache, &memory);
        observe::observe(&self.shared.aws, &config, &mut self.cache, &memory, &selected, now, deadline).await?;

        let plans: Vec<(usize, decide::Plan)> = selected
            .iter()
            .map(|&i| {
                let leaf = &config.leafs[i];
                let name = leaf.name().as_str();
                let stopped_tasks = self.cache.stopped_tasks(name);
                let obs = decide::Observation {
                    group: self.cache.groups.get(name).and_then(|c| c.value.as_ref()),
                    instances: &self.cache.instances,
                    record: self.cache.record(name),
                    service: self.cache.service(leaf),
                    traffic: self.cache.traffic.get(name).map(|c| &c.value),
                    stopped_tasks: &stopped_tasks,
                    zone_holds_domain: self.cache.zone_holds_domain(leaf),
                };
                let plan = decide::decide(leaf, &obs, memory.leafs.get(name).unwrap_or(&LeafState::default()), now);
                if let Some(waiting) = plan.waiting_for {
                    tracing::debug!(leaf = name, phase = ?plan.phase, waiting_for = waiting, "waiting");
                }
                if let Some(e) = &plan.evaluation {
                    crate::events::watchdog_evaluated(name, *leaf.watchdog.threshold.get(), e);
                }
                (i, plan)
            })
            .collect();
        let mut phases: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (_, p) in &plans {
            *phases.entry(p.phase.name()).or_default() += 1;
        }
        let views: Vec<LeafView> = plans
            .iter()
            .map(|(i, plan)| {
                let leaf = &config.leafs[*i];
                let name = leaf.name().as_str();
                let group = self.cache.groups.get(name).and_then(|c| c.value.as_ref());
                view(leaf, plan, group, memory.leafs.get(name).unwrap_or(&LeafState::default()), now)
            })
            .collect();
        let names: Vec<String> = config.leafs.iter().map(|l| l.name().to_string()).collect();
        self.shared.status.update(views, &names);
        let shared = &self.shared;
        let applied = apply::Apply { aws: &shared.aws, config: &config, cache: &mut self.cache, store: &shared.store, status: &shared.status, now, deadline, cancel: &shared.cancel }.run(&plans).await;
        if applied.moved {
            // A wake or a stop reached AWS: look again without waiting a tick.
            shared.again.activate();
        }
        let mut raised = Vec::new();
        for (i, _) in &plans {
            let leaf = &config.leafs[*i];
            let mut report = self.cache.reports.remove(leaf.name().as_str()).unwrap_or_default();
            conditions(leaf, &self.cache, &mut report);
            if !config.daemon.dry_run {
                raised.extend(crate::problems::update(&shared.store, leaf, report).into_iter().map(|p| (*i, p)));
            }
        }
        crate::alerts::problems(&shared.store, &config, &raised, now);
        shared.store.save().await?;
        if shared.store.read(|s| !s.outbox.is_empty()) {
            shared.outbox.activate();
        }
        let summary = format!("observed {} leafs {phases:?}; {} actions done, {} failed, {} deferred", selected.len(), applied.done, applied.failed, applied.deferred);
        if applied.deferred > 0 {
            return Err(WorkerError::new("slow", format!("{summary}: the pass reached its {}s deadline (AWS answers slowly)", PASS_DEADLINE.as_secs())));
        }
        if applied.failed > 0 { Err(WorkerError::new("partial", summary)) } else { Ok(summary) }
    }
}
