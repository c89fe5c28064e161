//! `containerd run`: wires the workers, the HTTP endpoint and systemd together and runs
//! them until shutdown; SIGHUP reloads the config.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alerts::{self, outbox::Outbox};
use crate::aws::dynamodb::TableApi;
use crate::aws::Aws;
use crate::ha;
use crate::clock::Timeline;
use crate::config::Config;
use crate::http::{self, Http};
use crate::notify::Notifier;
use crate::reconcile::{Reconciler, Shared};
use crate::state::{StateError, StateStore};
use crate::status::{Status, Workers};
use crate::tail::{self, Tail};
use crate::worker::{self, Activator, WorkerStatus};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state file could not be opened or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// `listen` could not be bound, or the control token written.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl DaemonError {
    /// True when the operator must act before the daemon can start: exit 2.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::State(e) if e.is_refusal())
    }
}

/// Runs the daemon for the config at `path` (already loaded as `config`) until `cancel`
/// fires, then lets every worker finish its current activation and saves the state.
pub async fn run(path: PathBuf, config: Config, cancel: CancellationToken) -> Result<(), DaemonError> {
    let notifier = Notifier::from_env();
    let timeline = Arc::new(Timeline::system());
    let (store, authority, keeper) = open_state(&config).await?;
    let token_path = crate::control::token_path(&config.daemon);
    let token = crate::control::ensure_token(&token_path).map_err(|source| DaemonError::Io { what: format!("control token {}", token_path.display()), source })?;
    let listener = TcpListener::bind(*config.daemon.listen)
        .await
        .map_err(|source| DaemonError::Io { what: format!("cannot listen on {}", config.daemon.listen), source })?;
    let listening = listener.local_addr().map_err(|source| DaemonError::Io { what: "listen address".into(), source })?;
    let aws = Aws::connect(&config.daemon).await;
    let nofile = crate::host::raise_nofile();
    let http_connections = crate::host::http_connections(nofile);
    if nofile < crate::host::RESERVED_FDS * 2 {
        tracing::warn!(nofile, http_connections, "the open-file limit is low; raise it (LimitNOFILE= in the unit)");
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        leafs = config.leafs.len(),
        region = %config.daemon.region,
        query_log_region = %config.daemon.query_log_region,
        dry_run = config.daemon.dry_run,
        state_file = %config.daemon.state_file.display(),
        ha = config.daemon.ha.as_ref().map(|h| h.table.as_str()),
        http = %listening,
        nofile,
        http_connections,
        "container-manager started"
    );

    let intervals = (config.daemon.poll_interval.0, config.daemon.reconcile_interval.0);
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let tracker = TaskTracker::new();
    let (reconcile_now, outbox_now) = (Activator::default(), Activator::default());
    let (tail_status, tail) = watch::channel(WorkerStatus::default());
    let (reconcile_status, reconcile) = watch::channel(WorkerStatus::default());
    let (outbox_status, outbox) = watch::channel(WorkerStatus::default());
    let stall_after = (intervals.0.max(intervals.1) * 3).max(Duration::from_secs(60));
    let status = Arc::new(Status::new(Workers { tail, reconcile, outbox }, stall_after, Arc::clone(&authority)));

    // The responder binds first: a port it cannot have fails the start before any worker runs.
    let responder = crate::responder::Links {
        config: config_rx.clone(),
        store: Arc::clone(&store),
        status: Arc::clone(&status),
        reconcile: reconcile_now.clone(),
        timeline: Arc::clone(&timeline),
    };
    let config_now = Arc::clone(&config_rx.borrow());
    let fds = usize::try_from(nofile.saturating_sub(crate::host::RESERVED_FDS * 2)).unwrap_or(usize::MAX).saturating_sub(http_connections);
    crate::responder::start(&config_now, responder, fds, &tracker, &cancel)
        .await
        .map_err(|source| DaemonError::Io { what: "cannot start the responder".into(), source })?;

    // Each worker starts afresh with each term of office (`[daemon.ha]`; without it, one
    // term for the life of the process) and idles between terms.
    let links = tail::Links {
        config: config_rx.clone(),
        logs: aws.logs.clone(),
        store: Arc::clone(&store),
        reconcile: reconcile_now.clone(),
        outbox: outbox_now.clone(),
        status: Arc::clone(&status),
        timeline: Arc::clone(&timeline),
    };
    let tail = ha::Gated::new("tail", Arc::clone(&authority), move |_| Tail::new(links.clone()));
    tracker.spawn(worker::run(tail, intervals.0, Activator::default(), cancel.clone(), tail_status));
    let (outbox_store, sns, outbox_config, outbox_cancel, outbox_authority) = (Arc::clone(&store), aws.sns.clone(), config_rx.clone(), cancel.clone(), Arc::clone(&authority));
    let outbox = ha::Gated::new("outbox", Arc::clone(&authority), move |term| {
        Outbox::new(Arc::clone(&outbox_store), sns.clone(), outbox_config.clone(), outbox_cancel.clone(), Arc::clone(&outbox_authority), term)
    });
    tracker.spawn(worker::run(outbox, intervals.1, outbox_now.clone(), cancel.clone(), outbox_status));
    let shared = Shared {
        config: config_rx.clone(),
        aws,
        store: Arc::clone(&store),
        status: Arc::clone(&status),
        again: reconcile_now.clone(),
        outbox: outbox_now.clone(),
        timeline: Arc::clone(&timeline),
        cancel: cancel.clone(),
        authority: Arc::clone(&authority),
        term: 0,
    };
    let reconciler = ha::Gated::new("reconcile", Arc::clone(&authority), move |term| Reconciler::new(Shared { term, ..shared.clone() }));
    tracker.spawn(worker::run(reconciler, intervals.1, reconcile_now.clone(), cancel.clone(), reconcile_status));
    let keeper = keeper.map(|k| Running::start(k, vec![reconcile_now.clone(), outbox_now.clone()]));
    let http = Arc::new(Http { status: Arc::clone(&status), store: Arc::clone(&store), reconcile: reconcile_now.clone(), token, config: config_rx, timeline: Arc::clone(&timeline) });
    tracker.spawn(http::serve(listener, http, http_connections, cancel.clone()));
    let reload = Reload { path, tx: config_tx, store: Arc::clone(&store), status: Arc::clone(&status), reconcile: reconcile_now, outbox: outbox_now, timeline };
    tracker.spawn(reload.on_sighup(cancel.clone()));
    tracker.spawn(feed_systemd(notifier, Arc::clone(&status), cancel.clone()));
    tracker.close();

    cancel.cancelled().await;
    let saved = shut_down(&tracker, &store, &authority).await;
    if let Some(k) = keeper {
        k.stop(saved.as_ref().is_ok_and(|abandoned| !abandoned)).await;
    }
    saved.map(|_| ())
}

/// The lease keeper, running beside the workers and outliving them: the lease is
/// renewed until the state is saved.
struct Running {
    keeper: Arc<ha::Keeper>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(mut keeper: ha::Keeper, wake: Vec<Activator>) -> Self {
        keeper.wake = wake;
        let keeper = Arc::new(keeper);
        let stop = CancellationToken::new();
        let (k, s) = (Arc::clone(&keeper), stop.clone());
        Self { keeper, stop, task: tokio::spawn(async move { k.run(s).await }) }
    }

    /// Stops renewing; gives the lease back if `release`. Workers abandoned mid-call
    /// keep it until it expires instead, so nothing they still send can meet the next
    /// holder's calls.
    async fn stop(self, release: bool) {
        self.stop.cancel();
        let _ = self.task.await;
        if release {
            self.keeper.release().await;
        }
    }
}

/// Every worker finishes the call it is in (each has a timeout) and stops; the outbox
/// stops between deliveries. Past the deadline whatever still runs is abandoned: the
/// state is saved anyway, and what was queued goes out after the next start. Says
/// whether workers were abandoned. (A holder then gives its lease back, so the standby
/// takes over at its next look.)
async fn shut_down(tracker: &TaskTracker, store: &StateStore, authority: &ha::Authority) -> Result<bool, DaemonError> {
    let abandoned = tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait()).await.is_err();
    if abandoned {
        tracing::warn!(deadline_s = SHUTDOWN_DEADLINE.as_secs(), "workers did not stop in time; saving the state without them");
    }
    if authority.check().is_ok() {
        store.save().await?;
    }
    tracing::info!(queued_alerts = store.read(|s| s.outbox.len()), "stopped; state saved");
    Ok(abandoned)
}

/// How long a SIGTERM waits for the workers, well inside the unit's `TimeoutStopSec`
/// (30 s) so that the state is always saved before systemd would kill the process.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// The state store and who may act: the state file, always acting; or with
/// `[daemon.ha]` the shared table, acting only while holding its lease.
async fn open_state(config: &Config) -> Result<(Arc<StateStore>, Arc<ha::Authority>, Option<ha::Keeper>), DaemonError> {
    let Some(ha_config) = &config.daemon.ha else {
        let store = Arc::new(StateStore::open(&config.daemon.state_file)?);
        alerts::recover(&store);
        return Ok((store, ha::Authority::sole(), None));
    };
    let me = ha::me();
    let name = ha_config.lease_name(config.daemon.region.as_str()).to_owned();
    let table = TableApi::new(&crate::aws::sdk_config(config.daemon.region.as_str()).await, ha_config.table.as_str());
    let store = Arc::new(StateStore::open_shared(&config.daemon.state_file, Box::new(table.clone()), &name, &me)?);
    let timing = ha::lease::Timing::new(ha_config.ttl.0);
    let authority = ha::Authority::standby(me.clone(), timing);
    let poll_ms = i64::try_from(config.daemon.poll_interval.0.as_millis()).unwrap_or(1_000);
    tracing::info!(table = ha_config.table.as_str(), lease = %name, me, ttl_ms = timing.ttl_ms, "standing by until this daemon holds the lease");
    let mut keeper = ha::Keeper::new(table, name, me, timing, timing.look_every_ms(poll_ms), Arc::clone(&authority), Arc::clone(&store));
    // Deliveries the last holder had in flight may have gone out: never repeated.
    keeper.on_take = alerts::recover;
    Ok((store, authority, Some(keeper)))
}


/// What a SIGHUP needs: the file, the channel that hands the new config to the workers,
/// and the state and status to tell which removed leafs are still running.
struct Reload {
    path: PathBuf,
    tx: watch::Sender<Arc<Config>>,
    store: Arc<StateStore>,
    status: Arc<Status>,
    reconcile: Activator,
    outbox: Activator,
    timeline: Arc<Timeline>,
}

impl Reload {
    /// SIGHUP re-reads the config. A bad file is reported and ignored: the old config
    /// keeps running. Leafs added, removed or changed take effect on the next tick.
    async fn on_sighup(self, cancel: CancellationToken) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; config reload disabled");
                return;
            }
        };
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = hup.recv() => {}
            }
            self.reload();
            self.reconcile.activate();
        }
    }

    fn reload(&self) {
        let new = match Config::load(&self.path) {
            Ok(new) => new,
            Err(e) => return crate::events::config_reloaded(&self.path, 0, &[], &[], Some(&e.to_string())),
        };
        let old = Arc::clone(&self.tx.borrow());
        for (key, changed) in [
            ("region", old.daemon.region != new.daemon.region),
            ("query_log_region", old.daemon.query_log_region != new.daemon.query_log_region),
            ("state_file", old.daemon.state_file != new.daemon.state_file),
            ("listen", old.daemon.listen != new.daemon.listen),
            ("poll_interval", old.daemon.poll_interval != new.daemon.poll_interval),
            ("reconcile_interval", old.daemon.reconcile_interval != new.daemon.reconcile_interval),
            ("query_log_calls_per_second", old.daemon.query_log_calls_per_second != new.daemon.query_log_calls_per_second),
        ] {
            if changed {
                tracing::warn!(key, "[daemon] {key} changed: it takes effect at the next restart");
            }
        }
        let names = |c: &Config| c.leafs.iter().map(|l| l.name().to_string()).collect::<std::collections::BTreeSet<_>>();
        let (before, after) = (names(&old), names(&new));
        let added: Vec<&String> = after.difference(&before).collect();
        let removed: Vec<&String> = before.difference(&after).collect();
        if !removed.is_empty() {
            let views = self.status.leafs();
            for leaf in old.leafs.iter().filter(|l| !after.contains(l.name().as_str())) {
                self.left_running(&old, leaf, views.get(leaf.name().as_str()));
            }
        }
        if crate::responder::ports(&old) != crate::responder::ports(&new) || old.daemon.responder.as_ref().map(|r| *r.listen) != new.daemon.responder.as_ref().map(|r| *r.listen) {
            tracing::warn!("the responder's listeners changed: restart the daemon to bind them (a reload moves leafs between the ports already bound)");
        }
        crate::events::config_reloaded(&self.path, new.leafs.len(), &added, &removed, None);
        self.tx.send_replace(Arc::new(new));
    }

    /// A leaf removed from the config while it runs is nobody's any more: nothing will
    /// stop it. The daemon does not stop it by surprise either; it says so, once.
    fn left_running(&self, old: &Config, leaf: &crate::config::LeafConfig, view: Option<&crate::status::LeafView>) {
        let name = leaf.name().as_str();
        let phase = view.map(|v| v.phase.clone());
        let announced_up = self.store.read(|s| s.leafs.get(name).is_some_and(|l| matches!(l.announced, Some(crate::state::Announced::Up { .. }))));
        let running = announced_up || phase.as_deref().is_some_and(|p| matches!(p, "up" | "waking" | "stopping"));
        let parked = self.store.read(|s| s.leafs.get(name).map(|l| l.parked).unwrap_or_default());
        if !parked.is_empty() {
            // Its bounds are at 0/0 and only the state knew what they were: say it before
            // the state forgets the leaf.
            tracing::warn!(leaf = name, ?parked, "a leaf removed from the config sleeps with its scaling bounds parked at 0/0: restore them by hand");
            crate::alerts::enqueue(&self.store, &old.daemon, leaf, crate::alerts::texts::left_parked(leaf, &parked, self.timeline.now()));
            self.outbox.activate();
        }
        if !running {
            return;
        }
        tracing::warn!(leaf = name, phase = phase.as_deref().unwrap_or("unknown"), "a leaf removed from the config is still running: the daemon no longer watches or stops it");
        crate::alerts::enqueue(&self.store, &old.daemon, leaf, crate::alerts::texts::unmanaged(leaf, self.timeline.now()));
        self.outbox.activate();
    }
}

/// READY=1 once AWS has answered, WATCHDOG=1 while the loops make progress, STATUS=
/// with a one-line summary, STOPPING=1 on shutdown.
async fn feed_systemd(notifier: Notifier, status: Arc<Status>, cancel: CancellationToken) {
    let every = Notifier::watchdog_usec().map_or(Duration::from_secs(5), |us| Duration::from_micros(us / 2).max(Duration::from_millis(100)));
    let mut ticks = tokio::time::interval(every.min(Duration::from_secs(5)));
    // After a pause (SIGSTOP, a suspended VM) one tick, not a burst of them.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut passes = status.workers.reconcile.clone();
    let mut ready = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticks.tick() => {}
            // Until READY, every reconcile pass is a chance to say so at once.
            Ok(()) = passes.changed(), if !ready => {}
        }
        let mut message = format!("STATUS={}", status.summary());
        if !ready && status.aws_reachable() {
            ready = true;
            message.push_str("\nREADY=1");
            tracing::info!("ready: config loaded and AWS answering");
        }
        match status.stalled() {
            None => message.push_str("\nWATCHDOG=1"),
            Some(why) => crate::events::loop_stuck(&why),
        }
        notifier.send(&message);
    }
    notifier.send("STOPPING=1\nSTATUS=stopping");
}
