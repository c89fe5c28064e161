//! `containerd check --live`: what AWS said about each leaf, judged. Pure: the reads are
//! done elsewhere (`super::live`), so every verdict and its fix is unit-tested.

use std::collections::BTreeMap;
use std::fmt;

use super::reads::{AsgFacts, Launch, Refusal, TableFacts};
use crate::aws::route53::ARecord;
use crate::aws::{AwsError, ErrorKind};
use crate::config::{Config, DnsMode, LeafConfig, TrafficSource};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// As the daemon needs it.
    Ok,
    /// Could not be told, or works but is not as recommended.
    Warn,
    /// The daemon will not work for this leaf until it is fixed.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The verdict.
    pub level: Level,
    /// The leaf, or `-` for checks of the whole config (log groups, topics, credentials).
    pub leaf: String,
    /// Stable check name, e.g. `asg_max`.
    pub check: &'static str,
    /// What was found and, when it is not OK, what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "{level:<4}  {:<16} {:<19} {}", self.leaf, self.check, self.message)
    }
}

/// A read that may have failed.
pub type Read<T> = Result<T, AwsError>;

/// What was read for one leaf. `None` where the read does not apply (no ASG, `dns =
/// "none"`, ...) or could not be made because an earlier one failed.
#[derive(Debug, Default)]
pub struct LeafFacts {
    /// The ASG, if the leaf has one: `Ok(None)` when it does not exist.
    pub asg: Option<Read<Option<AsgFacts>>>,
    /// Max recorded by the daemon when it parked the leaf (from the state file).
    pub parked_max: Option<i32>,
    /// Whether its launch template (or configuration) turns on detailed monitoring.
    pub monitoring: Option<Read<Option<bool>>>,
    /// The ECS service: `Ok(Some(true))` for DAEMON, `Ok(None)` when missing.
    pub service: Option<Read<Option<bool>>>,
    /// The hosted zone's name.
    pub zone: Option<Read<String>>,
    /// The leaf's A record: `Ok(None)` when the zone holds none.
    pub record: Option<Read<Option<ARecord>>>,
    /// The log group ARNs the zone's query logging writes to.
    pub logging: Option<Read<Vec<String>>>,
}

/// What the credentials may do.
#[derive(Debug)]
pub enum Credentials {
    /// IAM simulated every statement of `iam-policy` for `principal`.
    Simulated {
        /// The role or user simulated.
        principal: String,
        /// How many actions were simulated.
        actions: usize,
        /// What it may not do.
        refused: Vec<Refusal>,
    },
    /// The account's root user: may do anything (and should not run the daemon).
    Root,
    /// The simulation could not be run (not allowed, or the endpoint cannot).
    Unavailable(String),
}

/// Everything read.
#[derive(Debug)]
pub struct Facts {
    /// Per leaf, in config order.
    pub leafs: Vec<LeafFacts>,
    /// Whether each query log group exists (in `query_log_region`).
    pub log_groups: BTreeMap<String, Read<bool>>,
    /// Whether each alert topic exists.
    pub topics: BTreeMap<String, Read<bool>>,
    /// The credentials' permissions.
    pub credentials: Credentials,
    /// The `[daemon.ha]` table, when configured: `Ok(None)` when it does not exist.
    pub ha_table: Option<Read<Option<TableFacts>>>,
}

/// Every finding, leafs first, in config order.
pub fn judge(config: &Config, facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for (leaf, f) in config.leafs.iter().zip(&facts.leafs) {
        let mut say = |level, check, message: String| out.push(Finding { level, leaf: leaf.name().to_string(), check, message });
        asg(leaf, f, &mut say);
        service(leaf, f, &mut say);
        zone(config, leaf, f, &mut say);
    }
    let mut say = |level, check, message: String| out.push(Finding { level, leaf: "-".into(), check, message });
    let region = config.daemon.query_log_region.as_str();
    for (group, read) in &facts.log_groups {
        match read {
            Ok(true) => say(Level::Ok, "log_group", format!("log group {group} exists in {region}")),
            Ok(false) => say(Level::Fail, "log_group", format!("log group {group} does not exist in {region}: Route53 cannot deliver queries to it; fix: create it (deploy/cloudformation/zone.yaml does) or correct query_log_group")),
            Err(e) => say(unreadable(e), "log_group", format!("cannot tell whether log group {group} exists: {e}")),
        }
    }
    for (topic, read) in &facts.topics {
        match read {
            Ok(true) => say(Level::Ok, "topic", format!("topic {topic} exists")),
            Ok(false) => say(Level::Fail, "topic", format!("topic {topic} does not exist: alerts to it would be lost; fix: create it (leaf.yaml makes one per leaf) or correct alert_topic_arn")),
            Err(e) => say(unreadable(e), "topic", format!("cannot tell whether topic {topic} exists: {e}")),
        }
    }
    if let (Some(ha), Some(read)) = (&config.daemon.ha, &facts.ha_table) {
        ha_table(ha.table.as_str(), read, &mut say);
    }
    match &facts.credentials {
        Credentials::Simulated { principal, actions, refused } if refused.is_empty() => {
            say(Level::Ok, "credentials", format!("{principal} may make every call of `containerd iam-policy` ({actions} actions simulated)"));
        }
        Credentials::Simulated { principal, refused, .. } => {
            let shown: Vec<String> = refused.iter().take(5).map(|r| format!("{} on {} ({})", r.action, r.resource, r.decision)).collect();
            let more = refused.len().saturating_sub(shown.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            say(Level::Fail, "credentials", format!("{principal} may not: {}{more}; fix: attach the policy `containerd iam-policy` prints", shown.join(", ")));
        }
        Credentials::Root => say(Level::Warn, "credentials", "these are the account's root credentials: they may do anything; run the daemon with a role that has `containerd iam-policy`'s policy".into()),
        Credentials::Unavailable(why) => say(Level::Warn, "credentials", format!("could not simulate `containerd iam-policy` for these credentials ({why}); the reads above show what they can read, not what they may change")),
    }
    out
}

fn ha_table(name: &str, read: &Read<Option<TableFacts>>, say: &mut impl FnMut(Level, &'static str, String)) {
    let create = format!("aws dynamodb create-table --table-name {name} --attribute-definitions AttributeName=pk,AttributeType=S --key-schema AttributeName=pk,KeyType=HASH --billing-mode PAY_PER_REQUEST (or host.yaml HaTable=true)");
    match read {
        Ok(None) => say(Level::Fail, "ha_table", format!("[daemon.ha] table {name} does not exist: no daemon can take the lease, so none acts; fix: {create}")),
        Ok(Some(t)) if t.key != [("pk".to_owned(), "S".to_owned(), "HASH".to_owned())] => {
            let key: Vec<String> = t.key.iter().map(|(n, ty, k)| format!("{n} ({ty}, {k})")).collect();
            say(Level::Fail, "ha_table", format!("[daemon.ha] table {name} is keyed by {}; the daemon needs a string partition key `pk` and nothing else; fix: a new table: {create}", key.join(", ")));
        }
        Ok(Some(t)) if !t.on_demand => say(Level::Warn, "ha_table", format!("[daemon.ha] table {name} has provisioned capacity: a throttled renewal can cost the lease; on-demand costs about $0.75 a month for a pair (docs/operations.md)")),
        Ok(Some(_)) => say(Level::Ok, "ha_table", format!("[daemon.ha] table {name} exists, keyed by pk, on-demand")),
        Err(e) => say(unreadable(e), "ha_table", format!("cannot read [daemon.ha] table {name}: {e}")),
    }
}

/// A read that failed: not being allowed to look is a warning (the thing may well be
/// fine); anything else is a failure.
fn unreadable(e: &AwsError) -> Level {
    if e.kind == ErrorKind::Denied { Level::Warn } else { Level::Fail }
}

fn asg(leaf: &LeafConfig, f: &LeafFacts, say: &mut impl FnMut(Level, &'static str, String)) {
    let (Some(name), Some(read)) = (leaf.asg(), &f.asg) else { return };
    let awake = leaf.awake_instances();
    match read {
        Ok(None) => say(Level::Fail, "asg", format!("ASG {name} does not exist: nothing can wake the leaf; fix: deploy deploy/cloudformation/leaf.yaml, or correct `asg`")),
        Err(e) => say(unreadable(e), "asg", format!("cannot read ASG {name}: {e}")),
        Ok(Some(group)) => {
            let max = if group.max == 0 { f.parked_max.unwrap_or(0) } else { group.max };
            if max < awake {
                say(
                    Level::Fail,
                    "asg_max",
                    format!("ASG {name} has max {} but awake_instances is {awake}: AWS refuses the wake; fix: aws autoscaling update-auto-scaling-group --auto-scaling-group-name {name} --max-size {awake}", group.max),
                );
            } else if group.max == 0 {
                say(Level::Ok, "asg_max", format!("ASG {name} is parked at 0/0 by the daemon; its recorded max {max} >= awake_instances {awake}"));
            } else {
                say(Level::Ok, "asg_max", format!("ASG {name} exists, max {max} >= awake_instances {awake}"));
            }
            monitoring(leaf, name.as_str(), &group.launch, f, say);
        }
    }
}

fn monitoring(leaf: &LeafConfig, asg: &str, launch: &Launch, f: &LeafFacts, say: &mut impl FnMut(Level, &'static str, String)) {
    if *leaf.watchdog.traffic != TrafficSource::Instances {
        return;
    }
    let from = match launch {
        Launch::Template { id, name, version } => format!("launch template {} version {version}", name.as_deref().or(id.as_deref()).unwrap_or("?")),
        Launch::Configuration(name) => format!("launch configuration {name}"),
        Launch::Unknown => "its launch settings".into(),
    };
    match &f.monitoring {
        Some(Ok(Some(true))) => say(Level::Ok, "detailed_monitoring", format!("{from} turns on detailed monitoring (1-minute NetworkIn)")),
        Some(Ok(Some(false))) => say(
            Level::Fail,
            "detailed_monitoring",
            format!("{from} of ASG {asg} does not turn on detailed monitoring: NetworkIn then comes every 5 minutes and the watchdog sees gaps (a leaf never looks idle); fix: set Monitoring Enabled=true in the launch template and make that version the default"),
        ),
        Some(Ok(None)) => say(Level::Warn, "detailed_monitoring", format!("ASG {asg} names no launch template or configuration the check can read (a mixed-instances override?); make sure its instances have detailed monitoring")),
        Some(Err(e)) => say(unreadable(e), "detailed_monitoring", format!("cannot read {from}: {e}")),
        None => {}
    }
}

fn service(leaf: &LeafConfig, f: &LeafFacts, say: &mut impl FnMut(Level, &'static str, String)) {
    let (Some((cluster, name)), Some(read)) = (leaf.ecs(), &f.service) else { return };
    match read {
        Ok(Some(true)) => say(Level::Ok, "service", format!("ECS service {cluster}/{name} exists, DAEMON: it follows the instances and is never scaled")),
        Ok(Some(false)) => say(Level::Ok, "service", format!("ECS service {cluster}/{name} exists, REPLICA: scaled to {} task(s) while awake", leaf.awake_tasks())),
        Ok(None) => say(Level::Fail, "service", format!("ECS service {name} does not exist in cluster {cluster}; fix: correct ecs_cluster/ecs_service, or deploy leaf.yaml")),
        Err(e) => say(unreadable(e), "service", format!("cannot read ECS service {cluster}/{name}: {e}")),
    }
}

fn zone(config: &Config, leaf: &LeafConfig, f: &LeafFacts, say: &mut impl FnMut(Level, &'static str, String)) {
    let zone = &leaf.hosted_zone_id;
    let domain = leaf.domain();
    match &f.zone {
        Some(Ok(name)) if !(domain.as_str() == name || domain.as_str().ends_with(&format!(".{name}"))) => {
            say(Level::Fail, "zone", format!("hosted zone {zone} is {name}, which does not hold {domain}; fix: correct hosted_zone_id"));
            return;
        }
        Some(Ok(_)) | None => {}
        Some(Err(e)) if e.kind == ErrorKind::NotFound => {
            say(Level::Fail, "zone", format!("hosted zone {zone} does not exist; fix: correct hosted_zone_id (deploy/cloudformation/zone.yaml makes one)"));
            return;
        }
        Some(Err(e)) => {
            say(unreadable(e), "zone", format!("cannot read hosted zone {zone}: {e}"));
            return;
        }
    }
    match &f.record {
        _ if leaf.dns == DnsMode::None => {}
        Some(Ok(Some(r))) if r.ttl != Some(leaf.dns_ttl()) => say(
            Level::Warn,
            "record",
            format!("{domain} A is {} with TTL {:?}; the daemon writes TTL {} (resolvers cache longer TTLs, and cached queries never reach the log)", r.values.join(","), r.ttl, leaf.dns_ttl()),
        ),
        Some(Ok(Some(r))) => say(Level::Ok, "record", format!("zone {zone} holds {domain} A {}", r.values.join(","))),
        Some(Ok(None)) => say(Level::Fail, "record", format!("zone {zone} holds no A record for {domain}: nobody's resolver asks for it; fix: create it at {} with TTL {} (leaf.yaml does)", leaf.idle_ip, leaf.dns_ttl())),
        Some(Err(e)) => say(unreadable(e), "record", format!("cannot read {domain}'s record in zone {zone}: {e}")),
        None => {}
    }
    let group = leaf.log_group(&config.daemon).as_str();
    let region = config.daemon.query_log_region.as_str();
    match &f.logging {
        Some(Ok(arns)) if arns.iter().any(|arn| log_group_of(arn) == Some((region, group))) => {
            say(Level::Ok, "query_logging", format!("zone {zone} logs queries to {group} in {region}"));
        }
        Some(Ok(arns)) if arns.is_empty() => say(
            Level::Fail,
            "query_logging",
            format!("zone {zone} has no query logging config: no query reaches the daemon and nothing wakes {domain}; fix: aws route53 create-query-logging-config --hosted-zone-id {zone} --cloud-watch-logs-log-group-arn arn:aws:logs:{region}:ACCOUNT:log-group:{group} (zone.yaml does it)"),
        ),
        Some(Ok(arns)) => say(Level::Fail, "query_logging", format!("zone {zone} logs queries to {}, but the daemon reads {group} in {region}; fix: set query_log_group (and query_log_region) to where the zone logs", arns.join(", "))),
        Some(Err(e)) => say(unreadable(e), "query_logging", format!("cannot read zone {zone}'s query logging: {e}")),
        None => {}
    }
}

/// (region, group name) of a log group ARN such as
/// `arn:aws:logs:us-east-1:123456789012:log-group:/aws/route53/example.com:*`.
pub fn log_group_of(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(7, ':');
    let (_, _, service, region, _, kind, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (service == "logs" && kind == "log-group").then(|| (region, name.strip_suffix(":*").unwrap_or(name)))
}

#[cfg(test)]
mod tests;
