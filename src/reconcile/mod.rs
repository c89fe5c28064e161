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

use crate::aws::Aws;
use crate::clock;
use crate::config::Config;
use crate::state::StateStore;
use crate::worker::{Activator, Task};

/// The reconcile worker.
pub struct Reconciler {
    config: Arc<Config>,
    aws: Aws,
    store: Arc<StateStore>,
    cache: observe::Cache,
    /// Its own activator: after a wake or a stop the next look is immediate.
    again: Activator,
}

impl Reconciler {
    /// A reconciler with an empty cache: its first ticks read everything they need.
    pub fn new(config: Arc<Config>, aws: Aws, store: Arc<StateStore>, again: Activator) -> Self {
        Self { config, aws, store, cache: observe::Cache::default(), again }
    }
}

impl Task for Reconciler {
    fn name(&self) -> &'static str {
        "reconcile"
    }

    async fn activate(&mut self) -> Result<String, String> {
        let now = clock::now();
        let config = Arc::clone(&self.config);
        let memory = self.store.read(Clone::clone);
        let selected = observe::select(&config, &self.cache, &memory);
        observe::observe(&self.aws, &config, &mut self.cache, &memory, &selected, now).await.map_err(|e| e.to_string())?;

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
                };
                let plan = decide::decide(leaf, &obs, &memory.leafs.get(name).cloned().unwrap_or_default(), now);
                if let Some(waiting) = plan.waiting_for {
                    tracing::debug!(leaf = name, phase = ?plan.phase, waiting_for = waiting, "waiting");
                }
                if let Some(e) = &plan.evaluation {
                    crate::events::watchdog_evaluated(name, *leaf.watchdog.threshold.get_ref(), e);
                }
                (i, plan)
            })
            .collect();
        let mut phases: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (_, p) in &plans {
            *phases.entry(p.phase.name()).or_default() += 1;
        }
        // A wake or a stop changes the phase at once: look again without waiting a tick.
        if plans.iter().any(|(_, p)| p.actions.iter().any(|a| matches!(a, decide::Action::Wake(_) | decide::Action::Sleep(_)))) {
            self.again.activate();
        }
        let applied = apply::Apply { aws: &self.aws, config: &config, cache: &mut self.cache, store: &self.store, now }.run(&plans).await;
        self.store.save().await.map_err(|e| e.to_string())?;
        crate::alerts::flush(&self.store, &self.aws.sns, config.daemon.dry_run).await.map_err(|e| e.to_string())?;
        let summary = format!("observed {} leafs {phases:?}; {} actions done, {} failed", selected.len(), applied.done, applied.failed);
        if applied.failed > 0 { Err(summary) } else { Ok(summary) }
    }
}
