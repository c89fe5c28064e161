//! What each alert says: subject and body for a transition, a stop the daemon decided,
//! a leaf that left the config while running, a problem, and a digest of many problems.

use std::fmt::Write as _;

use crate::clock::Timestamp;
use crate::config::LeafConfig;
use crate::leaf::{Sleep, Transition};
use crate::state::{Alert, Problem, SleepCause, OPERATOR};

/// The alert text for a transition of `leaf`.
pub fn for_transition(leaf: &LeafConfig, t: &Transition) -> Alert {
    let (name, domain) = (leaf.name().as_str(), leaf.domain().as_str());
    let (kind, instance, subject, body) = match t {
        Transition::Started { instance, ip, woken_by } => {
            let why = match woken_by {
                None => format!("instance {instance} came up (the ASG was scaled outside the daemon)"),
                Some(w) if w.edge == OPERATOR => format!("an operator woke it (containerd wake) at {}", w.query_at),
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
pub fn for_sleep(leaf: &LeafConfig, sleep: &Sleep, at: Timestamp) -> Alert {
    let (name, domain) = (leaf.name().as_str(), leaf.domain().as_str());
    let kind = sleep.cause.as_str();
    let subject = match sleep.cause {
        SleepCause::Idle => format!("{name} is idle: stopping it"),
        SleepCause::LeftUp => format!("{name} was left up: stopping it"),
        SleepCause::CrashLoop => format!("{name} keeps crashing: stopped and quarantined"),
        SleepCause::Manual => format!("{name} is being stopped by an operator"),
    };
    let instance = sleep.instance.as_deref().unwrap_or("none");
    let body = format!(
        "Container for '{name}' is being stopped (ASG {} desired capacity 0; {domain} points at {}).\nLeaf: {name}\nDomain: {domain}\nInstance: {instance}\nReason: {}",
        leaf.asg, leaf.idle_ip, sleep.detail
    );
    Alert { id: format!("{name}:{kind}:{instance}:{}", at.0), leaf: name.to_owned(), kind: kind.to_owned(), subject, body }
}

/// The alert for a leaf removed from the config while it still runs.
pub fn unmanaged(leaf: &LeafConfig, at: Timestamp) -> Alert {
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

/// The alert for one problem of one leaf.
pub fn problem(leaf: &LeafConfig, p: &Problem, at: Timestamp) -> Alert {
    let name = leaf.name().as_str();
    Alert {
        id: format!("{name}:problem:{}:{}", p.key, at.0),
        leaf: name.to_owned(),
        kind: "problem".into(),
        subject: format!("{name} needs attention: {}", p.key),
        body: format!("Leaf: {name}\nDomain: {}\nProblem: {}\n\nThe daemon keeps retrying; this alert is sent once until the problem is fixed.", leaf.domain(), p.text),
    }
}

/// Leaf names a digest lists before it says "and N more".
pub const DIGEST_NAMES: usize = 50;

/// One alert for the same problem of many leafs at once (a deleted group of ASGs, a
/// permission missing for all): one message instead of thousands.
pub fn digest(key: &str, problems: &[(&LeafConfig, &Problem)], at: Timestamp) -> Alert {
    let names: Vec<&str> = problems.iter().map(|(l, _)| l.name().as_str()).collect();
    let mut listed = names.iter().take(DIGEST_NAMES).copied().collect::<Vec<_>>().join(", ");
    if names.len() > DIGEST_NAMES {
        let _ = write!(listed, " and {} more", names.len() - DIGEST_NAMES);
    }
    let example = problems.first().map(|(_, p)| p.text.as_str()).unwrap_or_default();
    Alert {
        id: format!("digest:{key}:{}:{}", names.len(), at.0),
        leaf: String::new(),
        kind: "problem".into(),
        subject: format!("{} leafs need attention: {key}", names.len()),
        body: format!(
            "{} leafs have the same problem ({key}): {listed}.\n\nThe first of them: {example}\n\nThe daemon keeps retrying; each leaf's problem is alerted once until fixed (`containerd status` lists them).",
            names.len()
        ),
    }
}
