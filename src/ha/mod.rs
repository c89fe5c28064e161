//! `[daemon.ha]`: two daemons with one config, one of them acting.
//!
//! The lease lives in DynamoDB (`aws::dynamodb`), its rules in [`lease`]. [`Authority`]
//! is what every part of the daemon asks before it acts: the workers run a fresh task
//! for each term of office and idle between terms ([`Gated`]), and each mutating AWS
//! call and state write checks it again, because a term can end in the middle of a pass.
//! Without `[daemon.ha]` the daemon always acts: one term that never ends.

pub mod lease;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Until when this daemon may act (holder only; its own monotonic clock).
    #[serde(skip)]
    pub act_until: Option<std::time::Instant>,
    /// With `[daemon.ha]`: an alert batch is started only with this much time left.
    #[serde(skip)]
    pub margin: Option<Duration>,
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
        Arc::new(Self { view: Mutex::new(View { role: Role::Holder, me: None, holder: None, lease_expires_ms: None, fence: None, act_until: None, margin: None, term: 1 }) })
    }

    /// With `[daemon.ha]`: a standby until it takes the lease.
    pub fn standby(me: String, timing: Timing) -> Arc<Self> {
        Arc::new(Self { view: Mutex::new(View { role: Role::Standby, me: Some(me), holder: None, lease_expires_ms: None, fence: None, act_until: None, margin: Some(timing.margin()), term: 0 }) })
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
        let in_time = v.act_until.is_none_or(|until| std::time::Instant::now() < until);
        (v.role == Role::Holder && in_time).then_some(v.term)
    }

    /// Ok when this daemon may act now, in any term (the HTTP commands, the responder).
    pub fn check(&self) -> Result<(), NotHolder> {
        self.acting_term().map(drop).ok_or(NotHolder)
    }

    /// Ok when this daemon may act now in `term`: a pass begun in an earlier term never
    /// acts in a later one (its plan was made before another holder's term).
    pub fn check_term(&self, term: u64) -> Result<(), NotHolder> {
        (self.acting_term() == Some(term)).then_some(()).ok_or(NotHolder)
    }

    /// How long this daemon may still act in `term` (None: without end).
    fn left(&self, term: u64) -> Result<Option<Duration>, NotHolder> {
        self.check_term(term)?;
        Ok(self.lock().act_until.map(|until| until.saturating_duration_since(std::time::Instant::now())))
    }

    /// Runs one mutating call, if this daemon may act in `term`, cut off when its term
    /// ends: a call never outlives the holder's right to make it. A call cut off may
    /// still have reached AWS, like any call whose answer was lost.
    pub async fn within<T>(&self, term: u64, call: impl std::future::Future<Output = T>) -> Result<T, NotHolder> {
        match self.left(term)? {
            None => Ok(call.await),
            Some(left) => tokio::time::timeout(left, call).await.map_err(|_| NotHolder),
        }
    }

    /// Whether a batch of deliveries may start in `term`: only with at least the
    /// lease's margin left, so a batch marked in flight is not cut off halfway.
    pub fn may_start_batch(&self, term: u64) -> bool {
        let margin = self.lock().margin;
        match self.left(term) {
            Ok(None) => true,
            Ok(Some(left)) => margin.is_none_or(|m| left >= m),
            Err(NotHolder) => false,
        }
    }

    fn take(&self, lease: &Lease, renewed: std::time::Instant, timing: Timing) {
        self.change(|v| {
            v.role = Role::Holder;
            v.holder = Some(lease.holder.clone());
            v.fence = Some(lease.fence);
            v.lease_expires_ms = Some(lease.expires_ms);
            v.act_until = Some(timing.act_until(renewed));
            v.term += 1;
        });
    }

    fn renewed(&self, renewed: std::time::Instant, expires_ms: i64, timing: Timing) {
        self.change(|v| {
            v.lease_expires_ms = Some(expires_ms);
            v.act_until = Some(timing.act_until(renewed));
        });
    }

    fn step_down(&self) {
        self.change(|v| {
            v.role = Role::Standby;
            v.act_until = None;
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

impl<T: Task, F: Fn(u64) -> T + Send> Gated<T, F> {
    /// `make` builds the task at the start of each term, given the term.
    pub fn new(name: &'static str, authority: Arc<Authority>, make: F) -> Self {
        Self { name, make, authority, current: None }
    }
}

impl<T: Task, F: Fn(u64) -> T + Send> Task for Gated<T, F> {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn activate(&mut self) -> Result<String, WorkerError> {
        let Some(term) = self.authority.acting_term() else {
            self.current = None;
            return Ok("standby: the holder acts".into());
        };
        if self.current.as_ref().is_none_or(|(t, _)| *t != term) {
            self.current = Some((term, (self.make)(term)));
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
    /// The lease as last seen, and since when (monotonic) it has been exactly that.
    pub seen: Mutex<Option<(Lease, Instant)>>,
    /// After a takeover whose state could not be read: no new try before this.
    pub calm_until: Mutex<Option<Instant>>,
    /// Run on the state just taken over, before acting (the daemon settles the alert
    /// deliveries the last holder had in flight).
    pub on_take: fn(&StateStore),
}

impl Keeper {
    /// The keeper for `table`'s lease `name`, this daemon being `me`.
    pub fn new(table: TableApi, name: String, me: String, timing: Timing, look_every_ms: i64, authority: Arc<Authority>, store: Arc<StateStore>) -> Self {
        Self { table, name, me, timing, look_every_ms, authority, store, wake: Vec::new(), seen: Mutex::new(None), calm_until: Mutex::new(None), on_take: |_| {} }
    }

    /// Holds, renews or waits for the lease until `cancel`. The daemon cancels it only
    /// after the workers stopped and the state was saved, then calls [`Keeper::release`].
    pub async fn run(&self, cancel: CancellationToken) {
        let mut renewed = Instant::now();
        loop {
            let every = if self.authority.view().role == Role::Holder { self.timing.renew_every_ms() / 2 } else { self.look_every_ms };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(u64::try_from(every.max(50)).unwrap_or(50))) => {}
            }
            if self.authority.view().role == Role::Holder {
                renewed = self.hold(renewed).await;
            } else if let Some(at) = self.look().await {
                renewed = at;
            }
        }
    }

    /// One step of a holder; returns when its last successful renewal was sent.
    async fn hold(&self, renewed: Instant) -> Instant {
        let fence = self.authority.view().fence.unwrap_or(0);
        match lease::holder_step(self.timing, Instant::now(), renewed) {
            HolderStep::Keep => renewed,
            HolderStep::StepDown => {
                self.step_down("could not renew the lease in time: stopped acting before it can expire");
                renewed
            }
            HolderStep::Renew => {
                let sent = Instant::now();
                let expires_ms = crate::clock::now().0 + self.timing.ttl_ms;
                // A renewal that hangs must not outlast the right to act it would extend.
                let left = self.timing.act_until(renewed).saturating_duration_since(sent).min(self.timing.ttl() / 4);
                let answer = tokio::time::timeout(left, self.table.renew(&self.name, &self.me, fence, expires_ms)).await;
                match answer {
                    Ok(Ok(true)) => {
                        self.authority.renewed(sent, expires_ms, self.timing);
                        crate::metrics::count("cm_ha_renewals_total", "Lease renewals by outcome", &[("outcome", "ok")], 1);
                        sent
                    }
                    Ok(Ok(false)) => {
                        self.step_down("another daemon holds the lease");
                        renewed
                    }
                    Ok(Err(e)) => {
                        crate::metrics::count("cm_ha_renewals_total", "Lease renewals by outcome", &[("outcome", "failed")], 1);
                        tracing::warn!(error = %e, "lease renewal failed; acting until the margin runs out");
                        renewed
                    }
                    Err(_) => {
                        crate::metrics::count("cm_ha_renewals_total", "Lease renewals by outcome", &[("outcome", "timed_out")], 1);
                        tracing::warn!(waited_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX), "lease renewal got no answer in time");
                        renewed
                    }
                }
            }
        }
    }

    /// How long the lease has been exactly `lease`, as this daemon watched it.
    fn unchanged_for(&self, lease: Option<&Lease>) -> Duration {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match (lease, seen.as_ref()) {
            (Some(l), Some((before, since))) if before == l => now.duration_since(*since),
            (Some(l), _) => {
                *seen = Some((l.clone(), now));
                Duration::ZERO
            }
            (None, _) => {
                *seen = None;
                Duration::ZERO
            }
        }
    }

    /// One look of a standby: takes the lease if it may. Returns when the taking was sent.
    async fn look(&self) -> Option<Instant> {
        if self.calm_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let lease = match self.table.lease(&self.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the lease");
                return None;
            }
        };
        self.authority.seen(lease.as_ref());
        let unchanged = self.unchanged_for(lease.as_ref());
        if !lease::may_take(self.timing, lease.as_ref(), &self.me, unchanged) {
            return None;
        }
        let sent = Instant::now();
        let taken = match self.table.acquire(&self.name, &self.me, lease.as_ref(), crate::clock::now().0 + self.timing.ttl_ms).await {
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
            tracing::error!(error = %e, "took the lease but cannot read the shared state; giving the lease back and waiting a lease before trying again");
            *self.calm_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now() + self.timing.ttl());
            let _ = self.table.release(&self.name, &self.me, taken.fence).await;
            return None;
        }
        (self.on_take)(&self.store);
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

/// This process's name in the lease: host, pid and a random part, so a restarted daemon
/// (or a cloned host with the same name and pid) is a new holder and never mistakes
/// another's term for its own.
pub fn me() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "host".into(), |h| h.trim().to_owned());
    let mut random = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random));
    format!("{host}:{}:{:08x}", std::process::id(), u32::from_be_bytes(random))
}
