//! The generic driver every background loop runs under.
//!
//! A worker is activated every `period`, or early through its [`Activator`], until the
//! cancellation token fires. Activations take no input, so a restart and a normal tick
//! run the same code. A worker never returns an error: the outcome of each activation
//! becomes its [`WorkerStatus`], logged once when it changes and served by `/status`.
//! None of this file knows about leafs.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Wakes a worker before its next tick (e.g. the tail saw a DNS query for a leaf).
#[derive(Clone, Debug, Default)]
pub struct Activator(Arc<Notify>);

impl Activator {
    /// Asks for one early activation; several requests before it runs make one.
    pub fn activate(&self) {
        self.0.notify_one();
    }
}

/// Why an activation failed: a kind that says what to do about it, and the cause chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{message}")]
pub struct WorkerError {
    /// `aws:transient`, `aws:throttled`, `aws:denied`, `state`, `alerts`, `partial`, ...
    pub kind: String,
    /// What failed, with its causes.
    pub message: String,
}

impl WorkerError {
    /// An error of `kind`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind: kind.into(), message: message.into() }
    }
}

/// A unit of periodic work.
pub trait Task: Send {
    /// Name in logs and `/status`.
    fn name(&self) -> &'static str;
    /// Runs once. The Ok text is a one-line summary.
    fn activate(&mut self) -> impl Future<Output = Result<String, WorkerError>> + Send;
}

/// What the last activation did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkerStatus {
    /// Activations so far.
    pub iteration: u64,
    /// Summary of the last successful activation.
    pub last_ok: Option<String>,
    /// Error of the last activation, if it failed.
    pub last_error: Option<WorkerError>,
    /// How long the last activation took, in milliseconds.
    pub elapsed_ms: u64,
    /// When the last activation ended; `/healthz` checks it for progress.
    #[serde(skip)]
    pub finished_at: Option<Instant>,
    /// When the activation under way started (None between activations): one running
    /// far longer than any pass should is stuck, not merely slow.
    #[serde(skip)]
    pub running_since: Option<Instant>,
}

/// Runs `task` until `cancel` fires; the current activation always finishes first so
/// that in-flight AWS calls and state writes complete.
pub async fn run<T: Task>(mut task: T, period: Duration, activator: Activator, cancel: CancellationToken, status: watch::Sender<WorkerStatus>) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut iteration = 0u64;
    loop {
        let reason = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = activator.0.notified() => "activated",
            _ = ticks.tick() => "tick",
        };
        iteration += 1;
        let started = Instant::now();
        status.send_modify(|s| s.running_since = Some(started));
        let span = tracing::debug_span!("worker", worker = task.name(), iteration, reason);
        let result = task.activate().instrument(span).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        status.send_modify(|s| {
            match &result {
                Ok(summary) => {
                    tracing::debug!(worker = task.name(), iteration, elapsed_ms, "{summary}");
                    if s.last_error.is_some() {
                        tracing::info!(worker = task.name(), "recovered");
                    }
                    s.last_ok = Some(summary.clone());
                    s.last_error = None;
                }
                Err(e) => {
                    if s.last_error.as_ref() != Some(e) {
                        tracing::warn!(worker = task.name(), kind = e.kind, error = %e, "activation failed; retrying next tick");
                    }
                    s.last_error = Some(e.clone());
                }
            }
            s.running_since = None;
            s.iteration = iteration;
            s.elapsed_ms = elapsed_ms;
            s.finished_at = Some(Instant::now());
        });
    }
    tracing::debug!(worker = task.name(), "stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u64);

    impl Task for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        async fn activate(&mut self) -> Result<String, WorkerError> {
            self.0 += 1;
            if self.0 == 2 { Err(WorkerError::new("test", "boom")) } else { Ok(format!("run {}", self.0)) }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_on_its_period_reports_errors_and_stops_on_cancel() {
        let (tx, rx) = watch::channel(WorkerStatus::default());
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run(Counter(0), Duration::from_secs(5), Activator::default(), cancel.clone(), tx));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(rx.borrow().iteration, 1, "the first tick is immediate");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(rx.borrow().last_error.as_ref().map(|e| (e.kind.as_str(), e.message.as_str())), Some(("test", "boom")));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(rx.borrow().last_ok.as_deref(), Some("run 3"));
        assert_eq!(rx.borrow().last_error, None);
        cancel.cancel();
        handle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_activation_runs_before_the_next_tick() {
        let (tx, rx) = watch::channel(WorkerStatus::default());
        let cancel = CancellationToken::new();
        let activator = Activator::default();
        let handle = tokio::spawn(run(Counter(10), Duration::from_secs(60), activator.clone(), cancel.clone(), tx));
        tokio::time::sleep(Duration::from_millis(1)).await;
        activator.activate();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(rx.borrow().iteration, 2);
        cancel.cancel();
        handle.await.unwrap();
    }
}
