//! Alerts: one per transition per leaf, to the daemon topic and the leaf's topic.
//!
//! An alert is first put in the outbox inside the persisted state, then published. Each
//! topic delivery is marked in flight (and saved) before the Publish call, so a crash
//! during the call can never make a restart publish it again: delivery is at most
//! once per topic. A crash in that window (milliseconds) loses that one delivery and
//! says so in the log at the next start.

use serde::{Deserialize, Serialize};

use crate::aws::sns::{Message, SnsApi};
use crate::config::{DaemonConfig, LeafConfig};
use crate::events;
use crate::reconcile::decide::{Sleep, Transition};
use crate::state::StateStore;

/// A decided alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id (leaf, kind, instance): FIFO topics and subscribers deduplicate on it.
    pub id: String,
    /// Leaf name.
    pub leaf: String,
    /// `starting` or `stopped`.
    pub kind: String,
    /// E-mail subject.
    pub subject: String,
    /// Body: leaf, domain and reason.
    pub body: String,
}

/// An alert with the topics it has yet to reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The alert.
    pub alert: Alert,
    /// Topics not yet published to.
    pub pending: Vec<String>,
    /// The topic a Publish call is under way for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<String>,
}

/// The alert text for a transition of `leaf`.
pub fn for_transition(leaf: &LeafConfig, t: &Transition) -> Alert {
    let (name, domain) = (leaf.name().as_str(), leaf.domain().as_str());
    let (kind, instance, subject, body) = match t {
        Transition::Started { instance, ip, woken_by } => {
            let why = match woken_by {
                None => format!("instance {instance} came up (the ASG was scaled outside the daemon)"),
                Some(w) if w.edge == crate::reconcile::decide::OPERATOR => format!("an operator woke it (containerd wake) at {}", w.query_at),
                Some(w) => format!("a DNS query for {domain} at {} (edge {}) woke it", w.query_at, w.edge),
            };
            (
                "starting",
                instance,
                format!("{name} is starting: connect to {domain}"),
                format!("Container for '{name}' is starting up! Connect to it at: '{domain}' ({ip}).\nLeaf: {name}\nDomain: {domain}\nInstance: {instance}\nReason: {why}"),
            )
        }
        Transition::Stopped { instance } => (
            "stopped",
            instance,
            format!("{name} has stopped"),
            format!("Container for '{name}' has stopped.\nLeaf: {name}\nDomain: {domain} now points at {}\nReason: no Pending or InService instance is left in ASG {} (instance {instance} is gone); the daemon did not stop it", leaf.idle_ip, leaf.asg),
        ),
        Transition::LeftUp { instance, up_for_ms } => {
            let hours = *up_for_ms / 3_600_000;
            let minutes = *up_for_ms / 60_000 % 60;
            (
                "left_up",
                instance,
                format!("{name} has been up for {hours}h{minutes:02}m"),
                format!(
                    "Container for '{name}' has been up for {hours}h{minutes:02}m (left_up_after is {}).\nLeaf: {name}\nDomain: {domain}\nInstance: {instance}\nIt keeps running: set left_up_stop = true to stop leafs left up, or check why the watchdog does not find it idle (its threshold and the traffic figures are in the logs and /metrics).",
                    leaf.watchdog.left_up_after
                ),
            )
        }
    };
    Alert { id: format!("{name}:{kind}:{instance}"), leaf: name.to_owned(), kind: kind.to_owned(), subject, body }
}

/// The alert for a stop the daemon decided: it is that stop's only alert.
pub fn for_sleep(leaf: &LeafConfig, sleep: &Sleep, at: crate::clock::Timestamp) -> Alert {
    let (name, domain) = (leaf.name().as_str(), leaf.domain().as_str());
    let kind = sleep.cause.as_str();
    let subject = match sleep.cause {
        crate::leaf::SleepCause::Idle => format!("{name} is idle: stopping it"),
        crate::leaf::SleepCause::LeftUp => format!("{name} was left up: stopping it"),
        crate::leaf::SleepCause::CrashLoop => format!("{name} keeps crashing: stopped and quarantined"),
        crate::leaf::SleepCause::Manual => format!("{name} is being stopped by an operator"),
    };
    let instance = sleep.instance.as_deref().unwrap_or("none");
    let body = format!(
        "Container for '{name}' is being stopped (ASG {} desired capacity 0; {domain} points at {}).\nLeaf: {name}\nDomain: {domain}\nInstance: {instance}\nReason: {}",
        leaf.asg, leaf.idle_ip, sleep.detail
    );
    Alert { id: format!("{name}:{kind}:{instance}:{}", at.0), leaf: name.to_owned(), kind: kind.to_owned(), subject, body }
}

/// The alert for a leaf removed from the config while it still runs.
pub fn unmanaged(leaf: &LeafConfig, at: crate::clock::Timestamp) -> Alert {
    let (name, domain) = (leaf.name().as_str(), leaf.domain().as_str());
    Alert {
        id: format!("{name}:unmanaged:{}", at.0),
        leaf: name.to_owned(),
        kind: "unmanaged".to_owned(),
        subject: format!("{name} is no longer managed and still running"),
        body: format!(
            "Leaf '{name}' was removed from the config while it was running.\nLeaf: {name}\nDomain: {domain}\nASG: {}\nThe daemon no longer watches it: nothing will stop it when it is idle, and its record stays where it points. It was not stopped either. Stop it yourself (set ASG {} desired capacity to 0), or put the leaf back in the config and reload.",
            leaf.asg, leaf.asg
        ),
    }
}

/// Queues `alert` for every topic of `leaf`.
pub fn enqueue(store: &StateStore, daemon: &DaemonConfig, leaf: &LeafConfig, alert: Alert) {
    events::alert_queued(&alert.leaf, &alert.kind, &alert.subject);
    let pending: Vec<String> = leaf.alert_topics(daemon).iter().map(|t| t.to_string()).collect();
    if pending.is_empty() {
        return;
    }
    store.update(|s| s.outbox.push(OutboxEntry { alert, pending, in_flight: None }));
}

/// At start: a delivery that was in flight when the process died may or may not have
/// happened; it is not repeated.
pub fn recover(store: &StateStore) {
    store.update(|s| {
        for entry in &mut s.outbox {
            if let Some(topic) = entry.in_flight.take() {
                entry.pending.retain(|t| *t != topic);
                tracing::warn!(alert_id = %entry.alert.id, topic, "the daemon stopped while publishing this alert; it may not have been delivered and is not repeated");
            }
        }
        s.outbox.retain(|e| !e.pending.is_empty());
    });
}

/// Publishes everything in the outbox. Transient failures stay queued for the next
/// flush; a topic that refuses (deleted, access denied) is given up with an error log.
pub async fn flush(store: &StateStore, sns: &SnsApi, dry_run: bool) -> Result<(), crate::state::StateError> {
    loop {
        let next = store.read(|s| {
            s.outbox.iter().find_map(|e| e.pending.first().map(|t| (e.alert.clone(), t.clone())))
        });
        let Some((alert, topic)) = next else { return Ok(()) };
        mark(store, &alert.id, &topic, Mark::InFlight);
        store.save().await?;
        let result = if dry_run {
            tracing::info!(alert_id = %alert.id, topic, dry_run, "would publish alert");
            Ok(())
        } else {
            let attributes = [("leaf", alert.leaf.as_str()), ("kind", alert.kind.as_str()), ("alert_id", alert.id.as_str())];
            sns.publish(&topic, &Message { subject: &alert.subject, body: &alert.body, id: &alert.id, attributes: &attributes }).await
        };
        match result {
            Ok(()) => mark(store, &alert.id, &topic, Mark::Done),
            Err(e) if e.ambiguous => {
                // Sent, but the answer was lost: it may well have been delivered.
                mark(store, &alert.id, &topic, Mark::Done);
                events::alert_uncertain(&alert.id, &topic, &e.to_string());
            }
            Err(e) if e.kind.is_transient() => {
                mark(store, &alert.id, &topic, Mark::Retry);
                tracing::warn!(alert_id = %alert.id, topic, error = %e, "alert not published yet; retrying next tick");
                return store.save().await;
            }
            Err(e) => {
                mark(store, &alert.id, &topic, Mark::Done);
                events::alert_dropped(&alert.id, &topic, &e.to_string());
            }
        }
        store.save().await?;
    }
}

enum Mark {
    InFlight,
    Retry,
    Done,
}

fn mark(store: &StateStore, id: &str, topic: &str, mark: Mark) {
    store.update(|s| {
        if let Some(e) = s.outbox.iter_mut().find(|e| e.alert.id == id) {
            match mark {
                Mark::InFlight => e.in_flight = Some(topic.to_owned()),
                Mark::Retry => e.in_flight = None,
                Mark::Done => {
                    e.in_flight = None;
                    e.pending.retain(|t| t != topic);
                }
            }
        }
        s.outbox.retain(|e| !e.pending.is_empty());
    });
}
