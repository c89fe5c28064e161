//! `containerd config from-stack STACK`: the config entry for a deployed leaf stack, so
//! nobody copies ARNs by hand.
//!
//! Two kinds of stack are understood:
//! - this project's `deploy/cloudformation/leaf.yaml`, whose Outputs name everything;
//! - a leaf stack of the original CDK project (`ContainerManager-<Leaf>`), which has
//!   only a `DomainName` output: its ASG, cluster, service and file system are found
//!   among its (nested) stacks' resources, its topic is the one at its root (the ECS
//!   drain hook in a nested stack has another), and the watchdog's numbers are the
//!   "Container Activity" and "Instance Left Up" alarms of its templates.
//!
//! The hosted zone (when no output names it) is the public zone named like the domain
//! or one of its parents, and the query log group is where that zone's query logging
//! writes: both read from Route53, so the printed config is what AWS really does.

use std::fmt::Write as _;

use serde_json::Value;

use super::reads::{StackHead, StackResource};

/// The watchdog's numbers, as found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watchdog {
    /// Idle threshold in bytes/s.
    pub threshold: Option<f64>,
    /// Minutes without traffic before the leaf sleeps.
    pub idle_minutes: Option<i64>,
    /// Hours up before the "left up" alert.
    pub left_up_hours: Option<i64>,
    /// Whether "left up" also stops the leaf.
    pub left_up_stop: Option<bool>,
}

/// Everything read about a stack.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The stack's name as given.
    pub stack: String,
    /// The region it is in.
    pub region: String,
    /// Its outputs, parameters and tags.
    pub head: StackHead,
    /// Its resources and its nested stacks' (`nested` true for the latter).
    pub resources: Vec<(StackResource, bool)>,
    /// The watchdog's numbers from its alarms (original stacks only).
    pub alarms: Watchdog,
    /// The hosted zone id, when not an output.
    pub zone: Option<String>,
    /// (region, name) of the log group the zone's query logging writes to.
    pub log_group: Option<(String, String)>,
}

/// Why no config could be printed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Neither this project's outputs nor the original's shape.
    #[error("stack {stack} is not a leaf stack this command knows: it has no `Domain`/`AutoScalingGroupName` outputs (deploy/cloudformation/leaf.yaml) and no `DomainName` output (the original CDK project's leaf stack)")]
    Unknown {
        /// The stack.
        stack: String,
    },
    /// Something the daemon needs is nowhere to be found.
    #[error("stack {stack}: {what}")]
    Missing {
        /// The stack.
        stack: String,
        /// What is missing and where it was looked for.
        what: String,
    },
}

/// Whether the stack is this project's leaf template (it names everything in outputs).
pub fn is_ours(head: &StackHead) -> bool {
    head.outputs.contains_key("Domain") && head.outputs.contains_key("LeafName")
}

/// The domain the stack serves, from its outputs.
pub fn domain_of(head: &StackHead) -> Option<&str> {
    head.outputs.get("Domain").or_else(|| head.outputs.get("DomainName")).map(|d| d.trim_end_matches('.'))
}

/// The config text: a whole file, or (`leaf_only`) just the `[[leaf]]` entry.
pub fn render(found: &Found, leaf_only: bool) -> Result<String, StackError> {
    let leaf = Leaf::from_found(found)?;
    let mut out = String::new();
    let kind = if is_ours(&found.head) { "deploy/cloudformation/leaf.yaml" } else { "the original CDK project's leaf stack" };
    let _ = writeln!(out, "# From stack {} in {} ({kind}) by `containerd config from-stack`.", found.stack, found.region);
    let _ = writeln!(out, "# `containerd check --live --config FILE` checks it against AWS.");
    if !leaf_only {
        let _ = writeln!(out, "\n[daemon]\nregion = {}", quote(&found.region));
        match &found.log_group {
            Some((region, group)) => {
                let _ = writeln!(out, "# Where the zone's query logging writes (read from Route53).\nquery_log_group = {}\nquery_log_region = {}", quote(group), quote(region));
            }
            None => {
                let _ = writeln!(out, "# The zone has no query logging config yet: create one (deploy/cloudformation/zone.yaml)\n# and name its log group here.\nquery_log_group = \"/aws/route53/container-manager\"");
            }
        }
    }
    let _ = writeln!(out, "\n[[leaf]]");
    for (key, value) in &leaf.keys {
        let _ = writeln!(out, "{key} = {value}");
    }
    let _ = writeln!(out, "\n[leaf.watchdog]");
    match leaf.watchdog.threshold {
        Some(t) => {
            let _ = writeln!(out, "threshold = {t}");
        }
        None => {
            let _ = writeln!(out, "# Not found in the stack: bytes/s below which the leaf is idle (Minecraft 1175,\n# Valheim 400, Palworld 5750); measure yours (docs/configuration.md).\nthreshold = 1175");
        }
    }
    if let Some(m) = leaf.watchdog.idle_minutes {
        let _ = writeln!(out, "idle_after = \"{m}m\"");
    }
    if let Some(h) = leaf.watchdog.left_up_hours {
        let _ = writeln!(out, "left_up_after = \"{h}h\"");
    }
    if let Some(stop) = leaf.watchdog.left_up_stop {
        let _ = writeln!(out, "left_up_stop = {stop}");
    }
    Ok(out)
}

/// The `[[leaf]]` entry's keys (values already TOML) and its watchdog.
struct Leaf {
    keys: Vec<(&'static str, String)>,
    watchdog: Watchdog,
}

impl Leaf {
    fn from_found(found: &Found) -> Result<Self, StackError> {
        let head = &found.head;
        let missing = |what: &str| StackError::Missing { stack: found.stack.clone(), what: what.to_owned() };
        let domain = domain_of(head).ok_or_else(|| StackError::Unknown { stack: found.stack.clone() })?;
        let ours = is_ours(head);
        let out = |key: &str| head.outputs.get(key).filter(|v| !v.is_empty()).cloned();
        let of_type = |kind: &str, root_only: bool| found.resources.iter().find(|(r, nested)| r.kind == kind && !(root_only && *nested)).map(|(r, _)| r.physical.clone());
        let name = out("LeafName").or_else(|| head.tags.get("ContainerId").cloned()).unwrap_or_else(|| domain.split('.').next().unwrap_or("leaf").to_owned());
        let zone = out("HostedZoneId").or_else(|| found.zone.clone()).ok_or_else(|| missing(&format!("no public hosted zone is named {domain} or one of its parents")))?;
        let (asg, cluster, service, topic, efs) = if ours {
            (out("AutoScalingGroupName"), out("ClusterName"), out("ServiceName"), out("TopicArn"), out("FileSystemId"))
        } else {
            let service = of_type("AWS::ECS::Service", false).map(|arn| arn.rsplit('/').next().unwrap_or_default().to_owned());
            (of_type("AWS::AutoScaling::AutoScalingGroup", false), of_type("AWS::ECS::Cluster", false), service, of_type("AWS::SNS::Topic", true), of_type("AWS::EFS::FileSystem", false))
        };
        if asg.is_none() && service.is_none() {
            return Err(missing("neither an AutoScalingGroup nor an ECS service: nothing to wake"));
        }
        let mut keys = vec![("name", quote(&leaf_name(&name))), ("domain", quote(domain)), ("hosted_zone_id", quote(zone.trim_start_matches("/hostedzone/")))];
        keys.extend(asg.map(|a| ("asg", quote(&a))));
        if let (Some(c), Some(s)) = (cluster, service) {
            keys.push(("ecs_cluster", quote(&c)));
            keys.push(("ecs_service", quote(&s)));
        }
        keys.extend(efs.map(|e| ("efs", quote(&e))));
        keys.extend(topic.map(|t| ("alert_topic_arn", quote(&t))));
        keys.extend(out("IdleIp").filter(|ip| ip != "0.0.0.0").map(|ip| ("idle_ip", quote(&ip))));
        let mut watchdog = found.alarms.clone();
        if let Some(t) = out("Threshold").and_then(|t| t.parse().ok()) {
            watchdog.threshold = Some(t);
        }
        Ok(Self { keys, watchdog })
    }
}

/// A config-valid leaf name from a stack's name for it (`Minecraft.Java` → `minecraft-java`).
fn leaf_name(raw: &str) -> String {
    let name: String = raw.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect();
    let name = name.trim_matches('-');
    if name.is_empty() { "leaf".into() } else { name.chars().take(32).collect() }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The watchdog's numbers from the original's alarms in one template body (JSON, as CDK
/// writes it): "Container Activity" is `LessThanOrEqualToThreshold` over 1-minute
/// periods, "Instance Left Up" is `GreaterThanThreshold` for hours, stopping the leaf
/// only when it has a second action (the scale-down policy besides the topic).
pub fn alarms_in(template: &str, into: &mut Watchdog) {
    let Ok(doc) = serde_json::from_str::<Value>(template) else { return };
    let resources = doc["Resources"].as_object().cloned().unwrap_or_default();
    for props in resources.values().filter(|r| r["Type"] == "AWS::CloudWatch::Alarm").map(|r| &r["Properties"]) {
        let number = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
        let periods = props["EvaluationPeriods"].as_i64().or_else(|| props["EvaluationPeriods"].as_str().and_then(|s| s.parse().ok()));
        match props["ComparisonOperator"].as_str() {
            Some("LessThanOrEqualToThreshold") => {
                into.threshold = number(&props["Threshold"]).or(into.threshold);
                into.idle_minutes = periods.or(into.idle_minutes);
            }
            Some("GreaterThanThreshold" | "GreaterThanOrEqualToThreshold") => {
                into.left_up_hours = periods.map(|p| (p / 60).max(1)).or(into.left_up_hours);
                into.left_up_stop = Some(props["AlarmActions"].as_array().is_some_and(|a| a.len() > 1));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
