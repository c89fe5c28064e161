//! The reconciler: each tick, read what AWS says and converge every leaf to what it
//! should be. Level-triggered: a DNS query only records a wake request in the state
//! (and activates a tick early); the tick decides from observations alone, so a missed
//! event or a restart is repaired by the next tick.
//!
//! - [`observe`]: batched reads and the cache that keeps calls flat as leafs grow;
//! - [`decide`]: the pure decision, unit-tested with a fake clock;
//! - [`apply`]: the calls, in the order a waiting player cares about.

pub mod apply;
pub mod capacity;
pub mod decide;
pub mod observe;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::aws::Aws;
use crate::clock::Timeline;
use crate::config::Config;
use crate::state::{LeafState, StateStore};
use crate::status::{LeafView, Status};
use crate::worker::{Activator, Task, WorkerError};

/// A pass stops issuing calls after this long (what is left waits for the next pass), so
/// that a brown-out (connections accepted, answers never coming) makes passes slow, not
/// stuck: the systemd watchdog keeps being fed and `/healthz` says AWS is slow.
pub const PASS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything the reconciler shares with the rest of the daemon.
#[derive(Clone)]
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
    /// Nor once this daemon is no longer the holder (`[daemon.ha]`).
    pub authority: Arc<crate::ha::Authority>,
    /// The term of office this reconciler acts in.
    pub term: u64,
}

/// The reconcile worker.
pub struct Reconciler {
    shared: Shared,
    cache: observe::Cache,
    /// When each leaf's time up was last counted (in memory: a restart counts afresh).
    counted: std::collections::HashMap<String, crate::clock::Timestamp>,
    /// The config the cache was last trimmed for.
    trimmed_for: Option<Arc<Config>>,
}

impl Reconciler {
    /// A reconciler with an empty cache: its first ticks read everything they need.
    pub fn new(shared: Shared) -> Self {
        Self { shared, cache: observe::Cache::default(), counted: std::collections::HashMap::new(), trimmed_for: None }
    }

    /// After a reload, forgets what it knew of leafs that left the config: their cache
    /// entries, their state and their metric series.
    fn trim(&mut self, config: &Arc<Config>) {
        if self.trimmed_for.as_ref().is_some_and(|c| Arc::ptr_eq(c, config)) {
            return;
        }
        if let Some(old) = &self.trimmed_for {
            // A leaf whose ASG or service changed is a new leaf to the cache: what was
            // read for its old resources must not be taken for the new ones.
            for leaf in &config.leafs {
                let before = old.leafs.iter().find(|l| l.name() == leaf.name());
                if before.is_some_and(|b| b.asg() != leaf.asg() || b.ecs() != leaf.ecs()) {
                    self.cache.forget_leaf(leaf.name().as_str());
                }
            }
        }
        self.trimmed_for = Some(Arc::clone(config));
        let keep: std::collections::BTreeSet<String> = config.leafs.iter().map(|l| l.name().to_string()).collect();
        self.cache.forget_leafs_except(&keep);
        for leaf in &config.leafs {
            crate::events::leaf_info(leaf.name().as_str(), leaf.env(), leaf.domain().as_str());
        }
        for gone in self.shared.store.forget_leafs_except(&keep) {
            crate::metrics::forget("leaf", &gone);
            tracing::info!(leaf = gone, "forgot a leaf that left the config");
        }
    }
}

impl Reconciler {
    /// Adds the time since the last pass to each serving leaf's month (at most two
    /// reconcile intervals: a pass that stalled does not count a gap it did not see).
    fn count_uptime(&mut self, config: &Config, plans: &[(usize, decide::Plan)], now: crate::clock::Timestamp) {
        let most = config.daemon.reconcile_interval.as_millis() * 2;
        for (i, plan) in plans {
            let name = config.leafs[*i].name().as_str();
            if !matches!(plan.phase, crate::leaf::Phase::Up { .. }) {
                self.counted.remove(name);
                continue;
            }
            if let Some(last) = self.counted.insert(name.to_owned(), now) {
                let ms = now.since(last).clamp(0, most);
                self.shared.store.update(|s| crate::state::Uptime::add(&mut s.leafs.entry(name.to_owned()).or_default().uptime, now, ms));
                crate::events::leaf_up(name, ms);
            }
        }
    }
}

/// Problems the observation itself shows: a missing ASG or service, a serving unit
/// without a public IP, targets that stay unhealthy.
fn conditions(leaf: &crate::config::LeafConfig, cache: &observe::Cache, plan: &decide::Plan, memory: &LeafState, now: crate::clock::Timestamp, report: &mut crate::problems::Report) {
    use crate::state::Problem;
    if leaf.asg().is_some() {
        let Some(group) = cache.groups.get(leaf.name().as_str()).and_then(|c| c.value.as_ref()) else {
            report.raised.push(Problem::asg_missing(leaf));
            return;
        };
        report.cleared.push("asg_missing".into());
        // Parked at 0/0 for a sleep, the max that counts is the one a wake restores.
        let max = if group.max == 0 { memory.parked.asg.map_or(group.max, |b| b.max) } else { group.max };
        if leaf.awake_instances() > max && max > 0 {
            report.raised.push(Problem::awake_above_max(leaf, max));
        } else {
            report.cleared.push("awake_above_max".into());
        }
    } else {
        match cache.service(leaf) {
            decide::ServiceSeen::Missing => {
                report.raised.push(Problem::service_missing(leaf));
                return;
            }
            decide::ServiceSeen::Known(_) => report.cleared.push("service_missing".into()),
            _ => {}
        }
    }
    match (cache.zone_holds_domain(leaf), cache.zones.get(leaf.hosted_zone_id.as_str())) {
        (Some(false), Some(zone)) if leaf.dns != crate::config::DnsMode::None => report.raised.push(Problem::zone_mismatch(leaf, zone)),
        (Some(_), _) => report.cleared.push("zone_mismatch".into()),
        _ => {}
    }
    // An instance is only serving once described; a task's ENI may not be read yet: only
    // one read without a public IP counts.
    let private = |u: &crate::leaf::Unit| leaf.asg().is_some() || cache.live_tasks.get(&u.id).and_then(|t| t.eni.as_ref()).is_some_and(|e| cache.eni_private.contains(e));
    let unreachable = cache.footprint(leaf).and_then(|f| f.serving.into_iter().find(|u| u.ip.is_none() && private(u)));
    match unreachable {
        Some(u) if leaf.dns != crate::config::DnsMode::None => report.raised.push(Problem::no_public_ip(leaf, &u.id)),
        _ => report.cleared.push("no_public_ip".into()),
    }
    match plan.unready_since {
        Some(since) if now.since(since) >= leaf.ready_timeout.as_millis() => {
            let healthy = cache.targets.get(leaf.name().as_str()).map(|c| c.value.healthy);
            report.raised.push(Problem::not_ready(leaf, healthy, since));
        }
        Some(_) => {}
        None => report.cleared.push("not_ready".into()),
    }
}

/// The `/status` view of a leaf after a decision.
fn view(leaf: &crate::config::LeafConfig, plan: &decide::Plan, cache: &observe::Cache, memory: &LeafState, now: crate::clock::Timestamp) -> LeafView {
    let ips = plan.phase.ips();
    let name = leaf.name().as_str();
    let footprint = cache.footprint(leaf);
    let missing = if leaf.asg().is_some() { "asg_missing" } else { "service_missing" };
    LeafView {
        name: name.to_owned(),
        env: leaf.env.as_ref().map(ToString::to_string),
        domain: leaf.domain().to_string(),
        phase: if footprint.is_some() { plan.phase.name().to_owned() } else { missing.to_owned() },
        instance: plan.phase.instance().map(str::to_owned),
        ip: plan.phase.newest().and_then(|u| u.ip).map(|ip| ip.to_string()),
        ips: ips.iter().map(ToString::to_string).collect(),
        desired: footprint.map(|f| f.wanted),
        scaling: view_scaling(leaf, cache, memory),
        healthy_targets: cache.targets.get(name).map(|c| c.value.healthy),
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
        since: match &plan.phase {
            crate::leaf::Phase::Up { serving } => memory.woke_at.max(serving.iter().filter_map(|u| u.launched_at).min()),
            crate::leaf::Phase::Asleep => memory.slept.as_ref().map(|s| s.at),
            _ => None,
        },
        periods: plan.evaluation.as_ref().map(|e| e.periods.clone()).unwrap_or_default(),
        sleeps_at: plan.evaluation.as_ref().and_then(|e| crate::watchdog::sleeps_at(&leaf.watchdog, e, now)),
        up_hours_month: memory.uptime.as_ref().filter(|u| u.month == now.rfc3339().get(..7).unwrap_or_default()).map_or(0.0, |u| hours(u.up_ms)),
    }
}

/// Milliseconds as hours, for the page.
#[allow(clippy::cast_precision_loss, reason = "a month of milliseconds is far below 2^52")]
fn hours(ms: i64) -> f64 {
    ms as f64 / 3_600_000.0
}

/// What scales the leaf besides the daemon, for `/status`: policies found, bounds
/// now, and bounds parked while it sleeps.
fn view_scaling(leaf: &crate::config::LeafConfig, cache: &observe::Cache, memory: &LeafState) -> Option<crate::status::ScalingView> {
    let group = cache.groups.get(leaf.name().as_str()).and_then(|c| c.value.as_ref());
    let service = match cache.service(leaf) {
        decide::ServiceSeen::Known(s) => s.scalable,
        _ => None,
    };
    let asg_managed = group.is_some_and(|g| g.policies == Some(true) || g.min > 0) || memory.parked.asg.is_some();
    if !asg_managed && service.is_none() && memory.parked.is_empty() {
        return None;
    }
    Some(crate::status::ScalingView {
        asg_policies: group.is_some_and(|g| g.policies == Some(true)),
        asg_bounds: group.filter(|_| asg_managed).map(|g| crate::state::Bounds { min: g.min, max: g.max }),
        service_bounds: service,
        parked: memory.parked,
    })
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
                    group: leaf.asg().and(self.cache.groups.get(name)).and_then(|c| c.value.as_ref()),
                    instances: &self.cache.instances,
                    record: self.cache.record(name),
                    service: self.cache.service(leaf),
                    tasks: self.cache.tasks(leaf),
                    targets: self.cache.targets.get(name).map(|c| c.value),
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
        self.count_uptime(&config, &plans, now);
        let mut phases: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (_, p) in &plans {
            *phases.entry(p.phase.name()).or_default() += 1;
        }
        let views: Vec<LeafView> = plans
            .iter()
            .map(|(i, plan)| {
                let leaf = &config.leafs[*i];
                view(leaf, plan, &self.cache, memory.leafs.get(leaf.name().as_str()).unwrap_or(&LeafState::default()), now)
            })
            .collect();
        let names: Vec<String> = config.leafs.iter().map(|l| l.name().to_string()).collect();
        self.shared.status.update(views, &names);
        let shared = &self.shared;
        let applied = apply::Apply { aws: &shared.aws, config: &config, cache: &mut self.cache, store: &shared.store, status: &shared.status, now, deadline, cancel: &shared.cancel, authority: &shared.authority, term: shared.term }.run(&plans).await;
        if applied.moved {
            // A wake or a stop reached AWS: look again without waiting a tick.
            shared.again.activate();
        }
        let mut raised = Vec::new();
        for (i, plan) in &plans {
            let leaf = &config.leafs[*i];
            let mut report = self.cache.reports.remove(leaf.name().as_str()).unwrap_or_default();
            let leaf_memory = memory.leafs.get(leaf.name().as_str()).cloned().unwrap_or_default();
            conditions(leaf, &self.cache, plan, &leaf_memory, now, &mut report);
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
