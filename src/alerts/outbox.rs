//! The outbox worker: publishes queued alerts, off the reconcile path.
//!
//! Each activation takes a batch of deliveries (an alert and one of its topics), at most
//! [`BATCH`], skipping topics that are backing off; marks them in flight with one state
//! write; publishes them one by one, each within [`PUBLISH_TIMEOUT`]; and records the
//! outcomes with one more write. A topic that fails transiently backs off (doubling,
//! jittered) without holding up any other topic. Between deliveries it checks for
//! shutdown, so SIGTERM never waits for a queue: what is left stays queued (and saved)
//! for the next start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::aws::sns::{Message, SnsApi};
use crate::config::Config;
use crate::events;
use crate::state::{Alert, StateStore};
use crate::backoff::{Backoff, Jitter};
use crate::worker::{Task, WorkerError};

/// Deliveries marked in flight per state write.
pub const BATCH: usize = 10;

/// One Publish call may take this long; after it the answer is treated as lost (the
/// alert may have gone out, so it is not repeated).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// One activation publishes for at most this long (what is left goes on at the next
/// tick), so that a slow SNS makes the outbox slow, never stuck.
pub const ACTIVATION_DEADLINE: Duration = Duration::from_secs(30);

/// The outbox worker.
pub struct Outbox {
    store: Arc<StateStore>,
    sns: SnsApi,
    config: watch::Receiver<Arc<Config>>,
    cancel: CancellationToken,
    authority: Arc<crate::ha::Authority>,
    term: u64,
    topics: HashMap<String, Backoff>,
    jitter: Jitter,
}

/// What became of one delivery.
enum Outcome {
    /// Delivered, or sent with its answer lost: not to be repeated.
    Done,
    /// Certainly not delivered: try again when the topic's back-off ends.
    Retry,
}

impl Outbox {
    /// A worker publishing what `store` queues, stopping between deliveries on `cancel`.
    /// `authority` is asked before each batch and each Publish of term `term`: a daemon
    /// that is no longer the holder sends nothing more.
    pub fn new(store: Arc<StateStore>, sns: SnsApi, config: watch::Receiver<Arc<Config>>, cancel: CancellationToken, authority: Arc<crate::ha::Authority>, term: u64) -> Self {
        Self { store, sns, config, cancel, authority, term, topics: HashMap::new(), jitter: Jitter::from_entropy() }
    }


    async fn publish(&self, alert: &Alert, topic: &str, dry_run: bool) -> Outcome {
        if dry_run {
            tracing::info!(alert_id = %alert.id, topic, dry_run, "would publish alert");
            return Outcome::Done;
        }
        // SNS refuses an empty attribute value: a digest has no single leaf.
        let attributes: Vec<(&str, &str)> =
            [("leaf", alert.leaf.as_str()), ("kind", alert.kind.as_str()), ("alert_id", alert.id.as_str())].into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let message = Message { subject: &alert.subject, body: &alert.body, id: &alert.id, attributes: &attributes };
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.sns.publish(topic, &message)).await {
            Ok(Ok(())) => {
                events::alert_published(&alert.id, topic);
                Outcome::Done
            }
            Err(_) => {
                events::alert_uncertain(&alert.id, topic, "no answer within the publish timeout");
                Outcome::Done
            }
            Ok(Err(e)) if e.ambiguous => {
                // Sent, but the answer was lost: it may well have been delivered.
                events::alert_uncertain(&alert.id, topic, &e.to_string());
                Outcome::Done
            }
            Ok(Err(e)) if e.kind.is_transient() => {
                tracing::warn!(alert_id = %alert.id, topic, error = %e, "alert not published yet; this topic backs off, the others go on");
                Outcome::Retry
            }
            Ok(Err(e)) => {
                events::alert_dropped(&alert.id, topic, &e.to_string());
                Outcome::Done
            }
        }
    }

}

/// The next deliveries: oldest alerts first, topics not `waiting` (backing off), at most
/// [`BATCH`], marked in flight in the state (not yet written).
fn take_batch(store: &StateStore, waiting: impl Fn(&str) -> bool) -> Vec<(Alert, String)> {
    // Marks the state changed only when it takes something: an idle outbox must not make
    // every save rewrite the file.
    store.change(|s| {
        let mut batch = Vec::new();
        'entries: for entry in &mut s.outbox {
            let ready: Vec<String> = entry.pending.iter().filter(|t| !entry.in_flight.contains(t) && !waiting(t)).cloned().collect();
            for topic in ready {
                if batch.len() == BATCH {
                    break 'entries;
                }
                entry.in_flight.push(topic.clone());
                batch.push((entry.alert.clone(), topic));
            }
        }
        let taken = !batch.is_empty();
        (batch, taken)
    })
}

/// Records the outcomes in the state: a delivery done leaves its entry, one to retry or
/// not attempted (`None`) waits again.
fn settle(store: &StateStore, results: &[(String, String, Option<Outcome>)]) {
    store.update(|s| {
        for (id, topic, outcome) in results {
            // By id *and* the topic in flight: an alert id can repeat (an instance
            // announced again), and only the entry that was taken is settled.
            if let Some(e) = s.outbox.iter_mut().find(|e| e.alert.id == *id && e.in_flight.contains(topic)) {
                e.in_flight.retain(|t| t != topic);
                if matches!(outcome, Some(Outcome::Done)) {
                    e.pending.retain(|t| t != topic);
                }
            }
        }
        s.outbox.retain(|e| !e.pending.is_empty());
    });
}

impl Task for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    async fn activate(&mut self) -> Result<String, WorkerError> {
        let dry_run = self.config.borrow().daemon.dry_run;
        let (mut sent, mut retry) = (0usize, 0usize);
        let deadline = Instant::now() + ACTIVATION_DEADLINE;
        loop {
            let now = Instant::now();
            // A batch marked in flight and then cut off by the end of the term would be
            // dropped by the next holder: start one only with time to send it.
            if !self.authority.may_start_batch(self.term) {
                break;
            }
            let batch = take_batch(&self.store, |t| self.topics.get(t).is_some_and(|b| b.waiting(now)));
            if batch.is_empty() {
                break;
            }
            // In flight on disk before any Publish: a crash now never repeats them. If the
            // write fails, nothing was attempted: the batch goes back to waiting.
            if let Err(e) = self.store.save().await {
                let untried: Vec<_> = batch.into_iter().map(|(alert, topic)| (alert.id, topic, None)).collect();
                settle(&self.store, &untried);
                return Err(e.into());
            }
            let mut results = Vec::with_capacity(batch.len());
            for (alert, topic) in batch {
                let now = Instant::now();
                let skip = self.cancel.is_cancelled() || now >= deadline || self.topics.get(&topic).is_some_and(|b| b.waiting(now)) || self.authority.check_term(self.term).is_err();
                // Cut off by the end of the term, it may have been sent: not repeated.
                let outcome = if skip { None } else { Some(self.authority.within(self.term, self.publish(&alert, &topic, dry_run)).await.unwrap_or(Outcome::Done)) };
                match outcome {
                    Some(Outcome::Done) => {
                        sent += 1;
                        self.topics.remove(&topic);
                    }
                    Some(Outcome::Retry) => {
                        retry += 1;
                        let wait = self.topics.entry(topic.clone()).or_default().failed(Instant::now(), &mut self.jitter);
                        tracing::debug!(topic, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "topic backs off");
                    }
                    None => {}
                }
                results.push((alert.id, topic, outcome));
            }
            settle(&self.store, &results);
            self.store.save().await?;
            if self.cancel.is_cancelled() || Instant::now() >= deadline {
                break;
            }
        }
        let queued = self.store.read(|s| s.outbox.len());
        events::outbox_size(queued);
        if retry > 0 {
            return Err(WorkerError::new("alerts", format!("{retry} deliveries failed and wait for their topic's back-off; {sent} published, {queued} queued")));
        }
        Ok(format!("{sent} alerts published, {queued} queued"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::OutboxEntry;

    fn store_with(entries: &[(&str, &[&str])]) -> StateStore {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cm-outbox-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("state.json"));
        let store = StateStore::open(&dir.join("state.json")).unwrap();
        store.update(|s| {
            for (id, topics) in entries {
                let alert = Alert { id: (*id).into(), leaf: "mc".into(), kind: "starting".into(), subject: String::new(), body: String::new() };
                s.outbox.push(OutboxEntry { alert, pending: topics.iter().map(|t| (*t).to_owned()).collect(), in_flight: Vec::new() });
            }
        });
        store
    }

    #[test]
    fn regression_two_alerts_with_one_id_are_both_settled() {
        // The same instance announced twice while SNS was backing off: one id, two entries.
        let store = store_with(&[("mc:starting:i-1", &["T"]), ("mc:starting:i-1", &["T"])]);
        let batch = take_batch(&store, |_| false);
        assert_eq!(batch.len(), 2);
        let done: Vec<_> = batch.into_iter().map(|(a, t)| (a.id, t, Some(Outcome::Done))).collect();
        settle(&store, &done);
        assert!(store.read(|s| s.outbox.is_empty()), "nothing left in flight: {:?}", store.read(|s| s.outbox.clone()));
    }

    #[test]
    fn a_topic_backing_off_is_skipped_and_an_untried_delivery_waits_again() {
        let store = store_with(&[("a", &["slow", "fast"])]);
        let batch = take_batch(&store, |t| t == "slow");
        assert_eq!(batch.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["fast"]);
        // Not attempted (shutdown, or the in-flight write failed): back to waiting.
        settle(&store, &[("a".into(), "fast".into(), None)]);
        assert_eq!(store.read(|s| (s.outbox[0].pending.clone(), s.outbox[0].in_flight.clone())), (vec!["slow".to_owned(), "fast".to_owned()], vec![]));
        assert_eq!(take_batch(&store, |_| false).len(), 2, "both go out once the back-off ends");
    }
}
