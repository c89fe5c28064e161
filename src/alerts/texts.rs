//! What each alert says: subject and body for a transition, a stop the daemon decided,
//! a leaf that left the config while running, a problem, and a digest of many problems.

use std::fmt::Write as _;

use crate::clock::Timestamp;
use crate::config::LeafConfig;
use crate::leaf::{Sleep, Transition};
use crate::state::{Alert, Problem, SleepCause, OPERATOR};

/// What scales the leaf, for sentences: "ASG mc-asg", "ECS service c/web", or both.
fn capacity(leaf: &LeafConfig) -> String {
    match (leaf.asg(), leaf.ecs()) {
        (Some(asg), Some((c, s))) => format!("ASG {asg} and ECS service {c}/{s}"),
        (Some(asg), None) => format!("ASG {asg}"),
        (None, Some((c, s))) => format!("ECS service {c}/{s}"),
        (None, None) => String::new(),
    }
}

/// Subjects start with the leaf's environment, so dev and prod mails sort apart.
fn subject(leaf: &LeafConfig, text: String) -> String {
    if leaf.env().is_empty() { text } else { format!("[{}] {text}", leaf.env()) }
}

/// The body's header lines: leaf, environment, domain.
fn header(leaf: &LeafConfig) -> String {
    let env = if leaf.env().is_empty() { String::new() } else { format!("\nEnvironment: {}", leaf.env()) };
    format!("Leaf: {}{env}\nDomain: {}", leaf.name(), leaf.domain())
}

/// The alert text for a transition of `leaf`.
pub fn for_transition(leaf: &LeafConfig, t: &Transition) -> Alert {
    let (name, domain) = (leaf.name().as_str(), leaf.domain().as_str());
    let (kind, instance, subject, body) = match t {
        Transition::Started { instance, ips, woken_by } => {
            let why = match woken_by {
                None => format!("{instance} came up ({} was scaled outside the daemon)", capacity(leaf)),
                Some(w) if w.edge == OPERATOR => format!("an operator woke it (containerd wake) at {}", w.query_at),
                Some(w) if w.edge.starts_with(crate::state::RESPONDER) => format!("a {} woke it at {} (the responder)", &w.edge[crate::state::RESPONDER.len()..], w.query_at),
                Some(w) => format!("a DNS query for {domain} at {} (edge {}) woke it", w.query_at, w.edge),
            };
            (
                "starting",
                instance,
                format!("{name} is starting: connect to {domain}"),
                format!(
                    "Container for '{name}' is starting up! Connect to it at: '{domain}' ({}).{}\n{}\nInstance: {instance}\nReason: {why}",
                    if ips.is_empty() { "through its load balancer".to_owned() } else { ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") },
                    if leaf.target_group_arns.is_empty() { String::new() } else { format!(" It is ready: at least {} healthy targets.", leaf.ready_targets()) },
                    header(leaf)
                ),
            )
        }
        Transition::Stopped { instance } => (
            "stopped",
            instance,
            format!("{name} has stopped"),
            format!("Container for '{name}' has stopped.\n{} (now pointing at {})\nReason: nothing is launching or serving in {} ({instance} is gone); the daemon did not stop it", header(leaf), leaf.idle_ip, capacity(leaf)),
        ),
        Transition::LeftUp { instance, up_for_ms } => {
            let hours = *up_for_ms / 3_600_000;
            let minutes = *up_for_ms / 60_000 % 60;
            (
                "left_up",
                instance,
                format!("{name} has been up for {hours}h{minutes:02}m"),
                format!(
                    "Container for '{name}' has been up for {hours}h{minutes:02}m (left_up_after is {}).\n{}\nInstance: {instance}\nIt keeps running: set left_up_stop = true to stop leafs left up, or check why the watchdog does not find it idle (its threshold and the traffic figures are in the logs and /metrics).",
                    leaf.watchdog.left_up_after,
                    header(leaf)
                ),
            )
        }
    };
    Alert { id: format!("{name}:{kind}:{instance}"), leaf: name.to_owned(), kind: kind.to_owned(), subject: self::subject(leaf, subject), body }
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
    let dns = if leaf.dns == crate::config::DnsMode::None { String::new() } else { format!("; {domain} points at {}", leaf.idle_ip) };
    let body = format!("Container for '{name}' is being stopped ({} to 0{dns}).\n{}\nInstance: {instance}\nReason: {}", capacity(leaf), header(leaf), sleep.detail);
    Alert { id: format!("{name}:{kind}:{instance}:{}", at.0), leaf: name.to_owned(), kind: kind.to_owned(), subject: self::subject(leaf, subject), body }
}

/// The alert for a leaf removed from the config while it still runs.
pub fn unmanaged(leaf: &LeafConfig, at: Timestamp) -> Alert {
    let name = leaf.name().as_str();
    Alert {
        id: format!("{name}:unmanaged:{}", at.0),
        leaf: name.to_owned(),
        kind: "unmanaged".to_owned(),
        subject: subject(leaf, format!("{name} is no longer managed and still running")),
        body: format!(
            "Leaf '{name}' was removed from the config while it was running.\n{}\nThe daemon no longer watches it: nothing will stop it when it is idle, and its record stays where it points. It was not stopped either. Stop it yourself (set {} to 0), or put the leaf back in the config and reload.",
            header(leaf),
            capacity(leaf)
        ),
    }
}

/// The alert for a leaf removed from the config while its scaling bounds were parked.
pub fn left_parked(leaf: &LeafConfig, parked: &crate::state::Parked, at: Timestamp) -> Alert {
    let name = leaf.name().as_str();
    let mut restore = Vec::new();
    if let (Some(b), Some(asg)) = (parked.asg, leaf.asg()) {
        restore.push(format!("ASG {asg}: {b}"));
    }
    if let (Some(b), Some((c, s))) = (parked.service, leaf.ecs()) {
        restore.push(format!("the scalable target of ECS service {c}/{s}: {b}"));
    }
    Alert {
        id: format!("{name}:left_parked:{}", at.0),
        leaf: name.to_owned(),
        kind: "unmanaged".to_owned(),
        subject: subject(leaf, format!("{name} left the config with its scaling parked at 0/0")),
        body: format!(
            "Leaf '{name}' was removed from the config while asleep, with its scaling bounds parked at 0/0 by the daemon.\n{}\nNothing can scale it out now, and the daemon no longer remembers the bounds. Restore them by hand: {}.",
            header(leaf),
            restore.join("; ")
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
        subject: subject(leaf, format!("{name} needs attention: {}", p.key)),
        body: format!("{}\nProblem: {}\n\nThe daemon keeps retrying; this alert is sent once until the problem is fixed.", header(leaf), p.text),
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
