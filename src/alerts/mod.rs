//! Alerts: one per transition per leaf, to the daemon topic and the leaf's topic.
//!
//! An alert is decided inside a reconcile pass or a tail poll and only *queued* there,
//! in the outbox inside the persisted state; the [`outbox`] worker publishes it. So a
//! slow or failing SNS never holds up a wake, and one failing topic never holds up
//! another. The outbox is bounded ([`MAX_OUTBOX`]): what it drops is logged and counted.
//! Many problems of one kind found in one pass become one digest alert per topic
//! ([`problems`]), not thousands.
//!
//! Delivery is at most once per topic: each delivery is marked in flight (and saved)
//! before its Publish call, so a crash during the call never makes a restart publish it
//! again ([`recover`] says which deliveries that was).

pub mod outbox;
pub mod texts;

use std::collections::BTreeMap;

use crate::clock::Timestamp;
use crate::config::{Config, DaemonConfig, LeafConfig};
use crate::events;
use crate::state::{Alert, OutboxEntry, Problem, StateStore};

/// Alerts waiting at most; beyond it the oldest is dropped (logged and counted).
pub const MAX_OUTBOX: usize = 1_000;

/// This many leafs with one problem in one pass make a digest for a topic.
pub const DIGEST_AT: usize = 3;

/// Queues `alert` for every topic of `leaf`.
pub fn enqueue(store: &StateStore, daemon: &DaemonConfig, leaf: &LeafConfig, alert: Alert) {
    let topics: Vec<String> = leaf.alert_topics(daemon).iter().map(ToString::to_string).collect();
    enqueue_to(store, alert, topics);
}

/// Queues `alert` for `topics`, dropping the oldest queued alert when the outbox is full.
pub fn enqueue_to(store: &StateStore, alert: Alert, topics: Vec<String>) {
    events::alert_queued(&alert.leaf, &alert.kind, &alert.subject);
    if topics.is_empty() {
        return;
    }
    let dropped = store.update(|s| {
        let mut dropped = Vec::new();
        while s.outbox.len() >= MAX_OUTBOX {
            // The oldest problem alert first (it comes back if the problem does), then the
            // oldest of any kind; never one whose delivery is under way.
            let idle = |e: &OutboxEntry| e.in_flight.is_empty();
            let victim = s.outbox.iter().position(|e| idle(e) && e.alert.kind == "problem").or_else(|| s.outbox.iter().position(idle));
            let Some(i) = victim else { break };
            dropped.push(s.outbox.remove(i).alert.id);
        }
        s.outbox.push(OutboxEntry { alert, pending: topics, in_flight: Vec::new() });
        dropped
    });
    for id in dropped {
        events::alert_dropped(&id, "outbox", "the outbox is full (SNS has been failing for long); dropped the oldest alert");
    }
}

/// At start: a delivery that was in flight when the process died may or may not have
/// happened; it is not repeated.
pub fn recover(store: &StateStore) {
    store.change(|s| {
        let mut changed = false;
        for entry in &mut s.outbox {
            for topic in std::mem::take(&mut entry.in_flight) {
                changed = true;
                entry.pending.retain(|t| *t != topic);
                tracing::warn!(alert_id = %entry.alert.id, topic, "the daemon stopped while publishing this alert; it may not have been delivered and is not repeated");
            }
        }
        s.outbox.retain(|e| !e.pending.is_empty());
        ((), changed)
    });
}

/// Queues the alerts for the problems raised in one pass: for each topic, a problem key
/// that `DIGEST_AT` or more leafs raised at once becomes one digest naming them; the
/// others are alerted leaf by leaf.
pub fn problems(store: &StateStore, config: &Config, raised: &[(usize, Problem)], now: Timestamp) {
    if raised.is_empty() {
        return;
    }
    // (key, topic) -> the problems that would go there.
    let mut by_key_topic: BTreeMap<(&str, String), Vec<usize>> = BTreeMap::new();
    for (n, (i, p)) in raised.iter().enumerate() {
        for topic in config.leafs[*i].alert_topics(&config.daemon) {
            by_key_topic.entry((p.key.as_str(), topic.to_string())).or_default().push(n);
        }
    }
    // Per raised problem, the topics it still goes to one by one.
    let mut single: Vec<Vec<String>> = vec![Vec::new(); raised.len()];
    let mut digests = Vec::new();
    for ((key, topic), members) in by_key_topic {
        if members.len() >= DIGEST_AT {
            let list: Vec<(&LeafConfig, &Problem)> = members.iter().map(|&n| (&config.leafs[raised[n].0], &raised[n].1)).collect();
            digests.push((texts::digest(key, &list, now), topic));
        } else {
            for n in members {
                single[n].push(topic.clone());
            }
        }
    }
    for ((i, p), topics) in raised.iter().zip(single) {
        if !topics.is_empty() {
            enqueue_to(store, texts::problem(&config.leafs[*i], p, now), topics);
        }
    }
    // Last, so that a full outbox drops single alerts before the digest that covers them.
    for (alert, topic) in digests {
        enqueue_to(store, alert, vec![topic]);
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::path::Path;

    use super::*;

    fn setup(n: usize) -> (Config, StateStore) {
        let mut text = String::from("[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\nalert_topic_arn = \"arn:aws:sns:us-west-2:123456789012:all\"\n");
        for i in 0..n {
            let _ = write!(text, "[[leaf]]\nname = \"l{i}\"\ndomain = \"l{i}.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"a{i}\"\nalert_topic_arn = \"arn:aws:sns:us-west-2:123456789012:l{i}\"\n[leaf.watchdog]\nthreshold = 1\n");
        }
        let config = Config::parse(Path::new("t.toml"), &text).unwrap();
        let dir = std::env::temp_dir().join(format!("cm-alerts-{}-{}-{n}", std::process::id(), crate::clock::now().0));
        std::fs::create_dir_all(&dir).unwrap();
        (config, StateStore::open(&dir.join("state.json")).unwrap())
    }

    fn missing(i: usize) -> (usize, Problem) {
        (i, Problem { key: "asg_missing".into(), text: format!("a{i} does not exist") })
    }

    #[test]
    fn regression_five_thousand_missing_asgs_make_one_digest_on_the_shared_topic() {
        let (config, store) = setup(5_000);
        let raised: Vec<(usize, Problem)> = (0..5_000).map(missing).collect();
        problems(&store, &config, &raised, Timestamp(1));
        let outbox = store.read(|s| s.outbox.clone());
        let on_shared: Vec<&OutboxEntry> = outbox.iter().filter(|e| e.pending.contains(&"arn:aws:sns:us-west-2:123456789012:all".to_owned())).collect();
        assert_eq!(on_shared.len(), 1, "one digest for the shared topic");
        assert!(on_shared[0].alert.subject.starts_with("5000 leafs need attention: asg_missing"), "{}", on_shared[0].alert.subject);
        assert!(on_shared[0].alert.body.contains("l0, l1") && on_shared[0].alert.body.contains("and 4950 more"));
        // Each leaf's own topic has one problem: those stay single alerts, but the
        // outbox keeps at most MAX_OUTBOX of them.
        assert_eq!(outbox.len(), MAX_OUTBOX);
    }

    #[test]
    fn a_few_problems_stay_single_alerts() {
        let (config, store) = setup(2);
        problems(&store, &config, &[missing(0), missing(1)], Timestamp(1));
        let outbox = store.read(|s| s.outbox.clone());
        assert_eq!(outbox.len(), 2);
        assert!(outbox.iter().all(|e| e.pending.len() == 2 && e.alert.kind == "problem"));
    }

    #[test]
    fn an_interrupted_delivery_is_not_repeated() {
        let (config, store) = setup(1);
        enqueue(&store, &config.daemon, &config.leafs[0], texts::problem(&config.leafs[0], &missing(0).1, Timestamp(1)));
        store.update(|s| {
            let topic = s.outbox[0].pending[0].clone();
            s.outbox[0].in_flight.push(topic);
        });
        recover(&store);
        assert_eq!(store.read(|s| s.outbox[0].pending.len()), 1, "the other topic still gets it");
    }
}
