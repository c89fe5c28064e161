//! `[daemon.ha]`: two daemons with one config, one of them acting.
//!
//! The lease lives in DynamoDB (`aws::dynamodb`), its rules in [`lease`]. [`Authority`]
//! is what every part of the daemon asks before it acts: the workers run a fresh task
//! for each term of office and idle between terms ([`Gated`]), and each mutating AWS
//! call and state write checks it again, because a term can end in the middle of a pass.
//! Without `[daemon.ha]` the daemon always acts: one term that never ends.

pub mod lease;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::aws::dynamodb::{Lease, TableApi};
use crate::state::StateStore;
use crate::worker::{Activator, Task, WorkerError};
use lease::{HolderStep, Timing};

/// This daemon's part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// It acts (and, with `[daemon.ha]`, holds the lease).
    Holder,
    /// It waits for the lease.
    Standby,
}

/// What the daemon knows about the lease, for `/status`, `/metrics` and the STATUS line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct View {
    /// This daemon's part.
    pub role: Role,
    /// This daemon's name in the lease (`host:pid`); None without `[daemon.ha]`.
    pub me: Option<String>,
    /// Who holds the lease, as last read.
    pub holder: Option<String>,
    /// Until when, as last read or renewed (ms since the epoch).
    pub lease_expires_ms: Option<i64>,
    /// The fencing counter of the holder's term.
    pub fence: Option<u64>,
    /// Until when this daemon may act (holder only).
    #[serde(skip)]
    pub act_until_ms: Option<i64>,
    /// Terms of office so far; the workers start afresh with each.
    #[serde(skip)]
    pub term: u64,
}

/// Who may act, shared by everything that acts.
#[derive(Debug)]
pub struct Authority {
    view: Mutex<View>,
}

impl Authority {
    /// Without `[daemon.ha]`: always the holder.
    pub fn sole() -> Arc<Self> {
        Arc::new(Self { view: Mutex::new(View { role: Role::Holder, me: None, holder: None, lease_expires_ms: None, fence: None, act_until_ms: None, term: 1 }) })
    }

    /// With `[daemon.ha]`: a standby until it takes the lease.
    pub fn standby(me: String) -> Arc<Self> {
        Arc::new(Self { view: Mutex::new(View { role: Role::Standby, me: Some(me), holder: None, lease_expires_ms: None, fence: None, act_until_ms: None, term: 0 }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the view and shows it in `/metrics`.
    fn change(&self, f: impl FnOnce(&mut View)) {
        let mut v = self.lock();
        f(&mut v);
        let holder = if v.role == Role::Holder { 1.0 } else { 0.0 };
        crate::metrics::gauge("cm_ha_holder", "1 while this daemon holds the lease and acts, 0 while it stands by", &[], holder);
        #[allow(clippy::cast_precision_loss)] // ms since 1970 and small counters: exact in an f64
        {
            crate::metrics::gauge("cm_ha_lease_expires_seconds", "When the lease ends unless renewed (Unix time), as last read or renewed", &[], v.lease_expires_ms.unwrap_or(0) as f64 / 1000.0);
            crate::metrics::gauge("cm_ha_fence", "The fencing counter of the lease's current term", &[], v.fence.unwrap_or(0) as f64);
        }
    }

    /// One line for systemd's STATUS= and `containerd status`: who acts, until when.
    pub fn summary(&self) -> Option<String> {
        let v = self.view();
        v.me.as_ref()?;
        let until = v.lease_expires_ms.filter(|ms| *ms > 0).map_or_else(|| "-".to_owned(), |ms| crate::clock::Timestamp(ms).to_string());
        Some(match v.role {
            Role::Holder => format!("holder (fence {}, lease until {until})", v.fence.unwrap_or(0)),
            Role::Standby => format!("standby (holder {}, lease until {until})", v.holder.as_deref().unwrap_or("none")),
        })
    }

    /// A copy of what is known.
    pub fn view(&self) -> View {
        self.lock().clone()
    }

    /// The term this daemon acts in now, if it may act now.
    pub fn acting_term(&self) -> Option<u64> {
        let v = self.lock();
        let in_time = v.act_until_ms.is_none_or(|until| crate::clock::now().0 < until);
        (v.role == Role::Holder && in_time).then_some(v.term)
    }

    /// Ok when this daemon may act now; a mutating call checks it right before it is made.
    pub fn check(&self) -> Result<(), NotHolder> {
        self.acting_term().map(drop).ok_or(NotHolder)
    }

    fn take(&self, lease: &Lease, renewed_ms: i64, timing: Timing) {
        self.change(|v| {
            v.role = Role::Holder;
            v.holder = Some(lease.holder.clone());
            v.fence = Some(lease.fence);
            v.lease_expires_ms = Some(lease.expires_ms);
            v.act_until_ms = Some(timing.act_until(renewed_ms));
            v.term += 1;
        });
    }

    fn renewed(&self, renewed_ms: i64, timing: Timing) {
        self.change(|v| {
            v.lease_expires_ms = Some(renewed_ms + timing.ttl_ms);
            v.act_until_ms = Some(timing.act_until(renewed_ms));
        });
    }

    fn step_down(&self) {
        self.change(|v| {
            v.role = Role::Standby;
            v.act_until_ms = None;
        });
    }

    fn seen(&self, lease: Option<&Lease>) {
        self.change(|v| {
            v.holder = lease.map(|l| l.holder.clone());
            v.lease_expires_ms = lease.map(|l| l.expires_ms);
            v.fence = lease.map(|l| l.fence);
        });
    }
}

/// A mutating call refused because this daemon is not (or no longer) the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not the holder of the lease: the other daemon acts")]
pub struct NotHolder;

/// Runs a fresh task for each term of office, and nothing between terms: a takeover
/// starts from the shared state exactly as a restart does.
pub struct Gated<T, F> {
    name: &'static str,
    make: F,
    authority: Arc<Authority>,
    current: Option<(u64, T)>,
}

impl<T: Task, F: Fn() -> T + Send> Gated<T, F> {
    /// `make` builds the task at the start of each term.
    pub fn new(name: &'static str, authority: Arc<Authority>, make: F) -> Self {
        Self { name, make, authority, current: None }
    }
}

impl<T: Task, F: Fn() -> T + Send> Task for Gated<T, F> {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn activate(&mut self) -> Result<String, WorkerError> {
        let Some(term) = self.authority.acting_term() else {
            self.current = None;
            return Ok("standby: the holder acts".into());
        };
        if self.current.as_ref().is_none_or(|(t, _)| *t != term) {
            self.current = Some((term, (self.make)()));
        }
        match &mut self.current {
            Some((_, task)) => task.activate().await,
            None => Ok(String::new()),
        }
    }
}

/// The lease worker's parts.
pub struct Keeper {
    /// The table.
    pub table: TableApi,
    /// The lease's key.
    pub name: String,
    /// This daemon's name in it.
    pub me: String,
    /// Its timing.
    pub timing: Timing,
    /// How often a standby looks (ms).
    pub look_every_ms: i64,
    /// Shared with everything that acts.
    pub authority: Arc<Authority>,
    /// Loaded from the table on each takeover.
    pub store: Arc<StateStore>,
    /// Kicked on takeover so the new term starts at once.
    pub wake: Vec<Activator>,
}

impl Keeper {
    /// Holds, renews or waits for the lease until `cancel`; then, if it holds it,
    /// returns (the daemon saves the state and calls [`Keeper::release`]).
    pub async fn run(&self, cancel: CancellationToken) {
        let mut renewed_ms = 0;
        loop {
            let every = if self.authority.view().role == Role::Holder { self.timing.renew_every_ms() / 2 } else { self.look_every_ms };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(u64::try_from(every.max(50)).unwrap_or(50))) => {}
            }
            if self.authority.view().role == Role::Holder {
                renewed_ms = self.hold(renewed_ms).await;
            } else if let Some(at) = self.look().await {
                renewed_ms = at;
            }
        }
    }

    /// One step of a holder; returns when its last successful renewal was sent.
    async fn hold(&self, renewed_ms: i64) -> i64 {
        let fence = self.authority.view().fence.unwrap_or(0);
        match lease::holder_step(self.timing, crate::clock::now().0, renewed_ms) {
            HolderStep::Keep => renewed_ms,
            HolderStep::StepDown => {
                self.step_down("could not renew the lease in time: stopped acting before it can expire");
                renewed_ms
            }
            HolderStep::Renew => {
                let sent = crate::clock::now().0;
                match self.table.renew(&self.name, &self.me, fence, sent + self.timing.ttl_ms).await {
                    Ok(true) => {
                        self.authority.renewed(sent, self.timing);
                        crate::metrics::count("cm_ha_renewals_total", "Lease renewals by outcome", &[("outcome", "ok")], 1);
                        sent
                    }
                    Ok(false) => {
                        self.step_down("another daemon holds the lease");
                        renewed_ms
                    }
                    Err(e) => {
                        crate::metrics::count("cm_ha_renewals_total", "Lease renewals by outcome", &[("outcome", "failed")], 1);
                        tracing::warn!(error = %e, act_until_ms = self.authority.view().act_until_ms, "lease renewal failed; acting until the margin runs out");
                        renewed_ms
                    }
                }
            }
        }
    }

    /// One look of a standby: takes the lease if it may. Returns when the taking was sent.
    async fn look(&self) -> Option<i64> {
        let now = crate::clock::now().0;
        let lease = match self.table.lease(&self.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the lease");
                return None;
            }
        };
        self.authority.seen(lease.as_ref());
        if !lease::may_take(lease.as_ref(), &self.me, now) {
            return None;
        }
        let sent = crate::clock::now().0;
        let taken = match self.table.acquire(&self.name, &self.me, sent, sent + self.timing.ttl_ms).await {
            Ok(Some(l)) if l.holder == self.me => l,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the lease");
                return None;
            }
        };
        // Acting starts only once the state is ours: a term without it could repeat
        // alerts or lose wakes.
        if let Err(e) = self.store.take_over(taken.fence).await {
            tracing::error!(error = %e, "took the lease but cannot read the shared state; giving the lease back");
            let _ = self.table.release(&self.name, &self.me, taken.fence).await;
            return None;
        }
        // Deliveries the last holder had in flight may have gone out: never repeated.
        crate::alerts::recover(&self.store);
        let before = lease.map(|l| l.holder).filter(|h| !h.is_empty() && *h != self.me);
        self.authority.take(&taken, sent, self.timing);
        crate::metrics::count("cm_ha_takeovers_total", "Times this daemon took the lease", &[], 1);
        tracing::warn!(fence = taken.fence, previous = before.as_deref().unwrap_or("none"), "took the lease: this daemon acts now");
        for a in &self.wake {
            a.activate();
        }
        Some(sent)
    }

    fn step_down(&self, why: &str) {
        self.authority.step_down();
        self.store.step_down();
        crate::metrics::count("cm_ha_step_downs_total", "Times this daemon stopped acting", &[], 1);
        tracing::error!(why, "stepped down: this daemon no longer acts");
    }

    /// Gives the lease back after a clean stop, so the standby takes over at its next look.
    pub async fn release(&self) {
        let view = self.authority.view();
        if view.role != Role::Holder {
            return;
        }
        self.authority.step_down();
        match self.table.release(&self.name, &self.me, view.fence.unwrap_or(0)).await {
            Ok(true) => tracing::info!("lease released: the standby takes over"),
            Ok(false) => tracing::warn!("the lease was no longer ours to release"),
            Err(e) => tracing::warn!(error = %e, "cannot release the lease; the standby takes over when it expires"),
        }
    }
}

/// This process's name in the lease: host and pid, so a restarted daemon is a new
/// holder and never mistakes its predecessor's term for its own.
pub fn me() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "host".into(), |h| h.trim().to_owned());
    format!("{host}:{}", std::process::id())
}
