//! `containerd run`: wires the workers together and runs them until shutdown.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::aws::Aws;
use crate::config::Config;
use crate::reconcile::Reconciler;
use crate::state::{StateError, StateStore};
use crate::tail::Tail;
use crate::worker::{self, Activator, WorkerStatus};
use crate::alerts;

/// Runs the daemon until `cancel` fires, then lets every worker finish its current
/// activation and saves the state.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), StateError> {
    let config = Arc::new(config);
    let store = Arc::new(StateStore::open(&config.daemon.state_file)?);
    alerts::recover(&store);
    let aws = Aws::connect(&config.daemon).await;
    tracing::info!(
        leafs = config.leafs.len(),
        region = %config.daemon.region,
        query_log_region = %config.daemon.query_log_region,
        dry_run = config.daemon.dry_run,
        state_file = %config.daemon.state_file.display(),
        "container-manager started"
    );

    let tracker = TaskTracker::new();
    let reconcile_now = Activator::default();
    let (tail_status, _) = watch::channel(WorkerStatus::default());
    let (reconcile_status, _) = watch::channel(WorkerStatus::default());
    let tail = Tail::new(&config, aws.logs.clone(), Arc::clone(&store), reconcile_now.clone());
    tracker.spawn(worker::run(tail, config.daemon.poll_interval.0, Activator::default(), cancel.clone(), tail_status));
    let reconciler = Reconciler::new(Arc::clone(&config), aws, Arc::clone(&store), reconcile_now.clone());
    tracker.spawn(worker::run(reconciler, config.daemon.reconcile_interval.0, reconcile_now, cancel.clone(), reconcile_status));
    tracker.close();

    cancel.cancelled().await;
    tracker.wait().await;
    store.save().await?;
    tracing::info!("stopped; state saved");
    Ok(())
}
