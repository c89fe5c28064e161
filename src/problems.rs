//! Problems an operator must fix: alerted once when they appear, logged when they clear.
//!
//! A problem is keyed per leaf: `service:Operation` for an AWS call refused for good
//! (access denied, resource not found, invalid request), or a condition the daemon sees
//! (`asg_missing`, `no_public_ip`). It is raised when seen and cleared only by evidence
//! that it is fixed (the same call succeeding, the condition gone), so a problem seen
//! on some ticks only does not alert again and again. Raised problems are persisted, so
//! a restart does not repeat their alerts either.

use std::collections::BTreeMap;

use crate::aws::{AwsError, ErrorKind};
use crate::config::LeafConfig;
use crate::state::{Problem, StateStore};

impl Problem {
    /// The problem an AWS error is, if it needs an operator (not transient).
    pub fn from_aws(leaf: &LeafConfig, e: &AwsError) -> Option<Self> {
        // A missing resource is one problem however many calls stumble on it (a deleted
        // hosted zone fails both the read and the write of the record).
        let key = if e.kind == ErrorKind::NotFound { format!("{}:not_found", e.service) } else { format!("{}:{}", e.service, e.operation) };
        let action = crate::iam::action_for(e.service, e.operation).unwrap_or("?");
        let text = match e.kind {
            ErrorKind::Transient | ErrorKind::Throttled => return None,
            ErrorKind::Denied => format!(
                "AWS denied {action} for leaf {} ({}). Grant it to the daemon's role: `containerd iam-policy` prints the policy.",
                leaf.name(),
                e.message
            ),
            ErrorKind::NotFound => format!("{} {} found nothing for leaf {}: {}. Check the config or recreate the resource.", e.service, e.operation, leaf.name(), e.message),
            ErrorKind::Invalid => format!("AWS refused {} {} for leaf {} as invalid: {}", e.service, e.operation, leaf.name(), e.message),
        };
        Some(Self { key, text })
    }

    /// The leaf's ASG is not there.
    pub fn asg_missing(leaf: &LeafConfig) -> Self {
        Self {
            key: "asg_missing".into(),
            text: format!(
                "AutoScaling group {} of leaf {} does not exist (deleted or misnamed): the leaf cannot wake. Fix `asg` in the config or recreate the group.",
                leaf.asg().map(ToString::to_string).unwrap_or_default(),
                leaf.name()
            ),
        }
    }

    /// The leaf wants more instances awake than its ASG may have.
    pub fn awake_above_max(leaf: &LeafConfig, max: i32) -> Self {
        Self {
            key: "awake_above_max".into(),
            text: format!(
                "leaf {} has awake_instances = {} but its ASG's max size is {max}: a wake starts only {max}. Raise the ASG's max size or lower awake_instances.",
                leaf.name(),
                leaf.awake_instances()
            ),
        }
    }

    /// The ECS service of a leaf without an ASG is not there.
    pub fn service_missing(leaf: &LeafConfig) -> Self {
        let (cluster, service) = leaf.ecs().map(|(c, s)| (c.to_string(), s.to_string())).unwrap_or_default();
        Self {
            key: "service_missing".into(),
            text: format!("ECS service {cluster}/{service} of leaf {} does not exist (deleted or misnamed): the leaf cannot wake. Fix `ecs_cluster` / `ecs_service` in the config or recreate the service.", leaf.name()),
        }
    }

    /// A serving leaf's target groups have had fewer healthy targets than
    /// `ready_targets` for `ready_timeout`: players cannot connect through the balancer.
    pub fn not_ready(leaf: &LeafConfig, healthy: Option<usize>, since: crate::clock::Timestamp) -> Self {
        let healthy = healthy.map_or_else(|| "an unknown number of".to_owned(), |n| n.to_string());
        Self {
            key: "not_ready".into(),
            text: format!(
                "leaf {} has served since {since} but only {healthy} of the {} healthy targets it needs are healthy in {} after ready_timeout {}: check the target groups' health checks (port, path) and the security groups. It keeps running, and the watchdog still puts it to sleep when idle.",
                leaf.name(),
                leaf.ready_targets(),
                leaf.target_group_arns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                *leaf.ready_timeout
            ),
        }
    }

    /// The hosted zone does not hold the leaf's domain: its record cannot be written there,
    /// so players could never reach it. The leaf is not woken until this is fixed.
    pub fn zone_mismatch(leaf: &LeafConfig, zone_name: &str) -> Self {
        Self {
            key: "zone_mismatch".into(),
            text: format!(
                "hosted zone {} is {zone_name}, which does not hold {}: the leaf's A record cannot be written there, so DNS queries do not wake leaf {} (it would run and bill with nobody able to reach it). Fix `hosted_zone_id` or `domain` in the config.",
                leaf.hosted_zone_id,
                leaf.domain(),
                leaf.name()
            ),
        }
    }

    /// An InService instance without a public IP.
    pub fn no_public_ip(leaf: &LeafConfig, instance: &str) -> Self {
        Self {
            key: "no_public_ip".into(),
            text: format!(
                "{} {instance} of leaf {} serves but has no public IP: players cannot reach it and {} stays at {}. {}",
                if leaf.asg().is_some() { "instance" } else { "task" },
                leaf.name(),
                leaf.domain(),
                leaf.idle_ip,
                if leaf.asg().is_some() {
                    "Enable public IPs for the ASG's subnets or launch template."
                } else {
                    "Set assignPublicIp = ENABLED in the service's network configuration (and a public subnet), or put it behind a load balancer with dns = \"none\"."
                }
            ),
        }
    }
}

/// What one pass learnt about one leaf's problems.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Problems seen now.
    pub raised: Vec<Problem>,
    /// Keys shown fixed now.
    pub cleared: Vec<String>,
}

impl Report {
    /// Records the outcome of one AWS call made for the leaf.
    pub fn call(&mut self, leaf: &LeafConfig, result: Result<(), &AwsError>, service: &str, operation: &str) {
        match result {
            Ok(()) => {
                self.cleared.push(format!("{service}:{operation}"));
                self.cleared.push(format!("{service}:not_found"));
            }
            Err(e) => self.raised.extend(Problem::from_aws(leaf, e)),
        }
    }
}

impl Report {
    /// A region-wide read made for this leaf among others: its success says nothing about
    /// the leaf's own resources, so it clears only its own refusal.
    pub fn shared_read(&mut self, leaf: &LeafConfig, result: Result<(), &AwsError>, service: &str, operation: &str) {
        match result {
            Ok(()) => self.cleared.push(format!("{service}:{operation}")),
            Err(e) => self.raised.extend(Problem::from_aws(leaf, e)),
        }
    }
}

/// Applies a report: remembers new problems and returns them (the caller alerts them,
/// once, together with the rest of its pass: see `alerts::problems`), logs cleared ones.
pub fn update(store: &StateStore, leaf: &LeafConfig, report: Report) -> Vec<Problem> {
    let name = leaf.name().as_str();
    // The common case, for every leaf on every poll: nothing wrong before or now.
    if report.raised.is_empty() && store.read(|s| s.leafs.get(name).is_none_or(|l| l.problems.is_empty())) {
        return Vec::new();
    }
    let (new, fixed) = store.change(|s| {
        let open: &mut BTreeMap<String, Problem> = &mut s.leafs.entry(name.to_owned()).or_default().problems;
        let mut fixed = Vec::new();
        for key in &report.cleared {
            if let Some(p) = open.remove(key) {
                fixed.push(p);
            }
        }
        let mut new = Vec::new();
        for p in report.raised {
            if !open.contains_key(&p.key) {
                open.insert(p.key.clone(), p.clone());
                new.push(p);
            }
        }
        let changed = !new.is_empty() || !fixed.is_empty();
        ((new, fixed), changed)
    });
    for p in fixed {
        crate::events::problem_cleared(name, &p.key);
    }
    for p in &new {
        crate::events::problem_raised(name, &p.key, &p.text);
    }
    new
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn setup() -> (Config, StateStore) {
        let text = "[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\nalert_topic_arn = \"arn:aws:sns:us-west-2:123456789012:all\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"mc-asg\"\n[leaf.watchdog]\nthreshold = 1\n";
        let config = Config::parse(Path::new("t.toml"), text).unwrap();
        let dir = std::env::temp_dir().join(format!("cm-problems-{}-{}", std::process::id(), crate::clock::now().0));
        std::fs::create_dir_all(&dir).unwrap();
        let store = StateStore::open(&dir.join("state.json")).unwrap();
        (config, store)
    }

    fn denied() -> AwsError {
        AwsError { service: "autoscaling", operation: "SetDesiredCapacity", kind: ErrorKind::Denied, code: Some("AccessDenied".into()), message: "no".into(), ambiguous: false }
    }

    #[test]
    fn a_problem_alerts_once_until_fixed_then_again_if_it_returns() {
        let (config, store) = setup();
        let leaf = &config.leafs[0];
        let raise = || {
            let mut r = Report::default();
            r.call(leaf, Err(&denied()), "autoscaling", "SetDesiredCapacity");
            update(&store, leaf, r)
        };
        let first = raise();
        assert_eq!(first.len(), 1);
        assert!(first[0].text.contains("autoscaling:SetDesiredCapacity"));
        assert!(raise().is_empty(), "one alert for a problem seen twice");
        let mut fixed = Report::default();
        fixed.call(leaf, Ok(()), "autoscaling", "SetDesiredCapacity");
        assert!(update(&store, leaf, fixed).is_empty());
        assert!(store.read(|s| s.leafs["mc"].problems.is_empty()));
        assert_eq!(raise().len(), 1, "it came back: alert again");
    }

    #[test]
    fn transient_failures_are_no_problem() {
        let (config, store) = setup();
        let leaf = &config.leafs[0];
        let mut r = Report::default();
        r.call(leaf, Err(&AwsError { kind: ErrorKind::Throttled, ..denied() }), "autoscaling", "SetDesiredCapacity");
        assert!(update(&store, leaf, r).is_empty());
    }
}
