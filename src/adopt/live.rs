//! Reads what `check --live` judges: one batched read per kind of resource, never a
//! write. Each read's failure is kept as a fact (a `Denied` becomes a warning, not an
//! abort), so one missing permission does not hide the other findings.

use std::collections::hash_map::Entry;
use std::collections::{btree_map, BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::check::{Credentials, Facts, LeafFacts, Read};
use super::reads::{Launch, Reads};
use crate::aws::{ecs::EcsApi, route53::Route53Api, sdk_config};
use crate::config::{Config, TrafficSource};

/// A zone's name and where its query logging writes, read once per zone.
struct ZoneRead {
    name: Read<String>,
    logging: Read<Vec<String>>,
}

/// One policy statement as the IAM simulator takes it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Simulation {
    /// Its actions.
    pub actions: Vec<String>,
    /// Its resources, the account filled in.
    pub resources: Vec<String>,
    /// Its condition keys and values.
    pub context: Vec<(String, Vec<String>)>,
}

/// Reads everything `check::judge` needs.
pub async fn gather(config: &Config) -> Facts {
    let main = sdk_config(config.daemon.region.as_str()).await;
    let reads = Reads::new(&main);
    let route53 = Route53Api::new(&main);
    let ecs = EcsApi::new(&main);
    let parked = parked_maxima(config);

    let names: Vec<String> = config.leafs.iter().filter_map(|l| l.asg().map(ToString::to_string)).collect::<BTreeSet<_>>().into_iter().collect();
    let groups = if names.is_empty() { Ok(HashMap::new()) } else { reads.groups(&names).await };
    let mut monitoring: HashMap<Launch, Read<Option<bool>>> = HashMap::new();
    let mut services: HashMap<String, Read<crate::aws::ecs::Services>> = HashMap::new();
    let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (cluster, service) in config.leafs.iter().filter_map(|l| l.ecs()) {
        by_cluster.entry(cluster.to_string()).or_default().push(service.to_string());
    }
    for (cluster, names) in &by_cluster {
        services.insert(cluster.clone(), ecs.describe(cluster, names).await);
    }
    let mut zones: HashMap<String, ZoneRead> = HashMap::new();
    let mut leafs = Vec::new();
    for leaf in &config.leafs {
        let mut f = LeafFacts { parked_max: parked.get(leaf.name().as_str()).copied(), ..LeafFacts::default() };
        if let Some(name) = leaf.asg() {
            let read = groups.as_ref().map(|g| g.get(name.as_str()).cloned()).map_err(Clone::clone);
            if let (Ok(Some(group)), TrafficSource::Instances) = (&read, *leaf.watchdog.traffic) {
                if let Entry::Vacant(slot) = monitoring.entry(group.launch.clone()) {
                    slot.insert(reads.detailed_monitoring(&group.launch).await);
                }
                f.monitoring = monitoring.get(&group.launch).cloned();
            }
            f.asg = Some(read);
        }
        if let Some((cluster, name)) = leaf.ecs() {
            f.service = services.get(cluster.as_str()).map(|r| r.clone().map(|s| s.found.iter().find(|s| s.name == name.as_str()).map(|s| s.daemon)));
        }
        let zone = leaf.hosted_zone_id.to_string();
        if let Entry::Vacant(slot) = zones.entry(zone.clone()) {
            let name = route53.zone_name(&zone).await;
            let logging = if name.is_ok() { reads.query_logging(&zone).await } else { Ok(Vec::new()) };
            slot.insert(ZoneRead { name, logging });
        }
        let ZoneRead { name, logging } = &zones[&zone];
        f.zone = Some(name.clone());
        if name.is_ok() {
            f.logging = Some(logging.clone());
            let domain = leaf.domain().to_string();
            f.record = Some(route53.read_a_records(&zone, &domain, 1).await.map(|page| page.get(&domain).cloned()));
        }
        leafs.push(f);
    }

    let logs = sdk_config(config.daemon.query_log_region.as_str()).await;
    let mut log_groups = BTreeMap::new();
    for leaf in &config.leafs {
        let group = leaf.log_group(&config.daemon).to_string();
        if let btree_map::Entry::Vacant(slot) = log_groups.entry(group) {
            let read = super::reads::log_group_exists(&logs, slot.key()).await;
            slot.insert(read);
        }
    }
    let mut topics = BTreeMap::new();
    for topic in config.leafs.iter().flat_map(|l| l.alert_topics(&config.daemon)) {
        if let btree_map::Entry::Vacant(slot) = topics.entry(topic.to_string()) {
            let region = topic.as_str().split(':').nth(3).unwrap_or(config.daemon.region.as_str());
            let read = super::reads::topic_exists(&sdk_config(region).await, topic.as_str()).await;
            slot.insert(read);
        }
    }
    let credentials = credentials(config, &reads).await;
    let ha_table = match &config.daemon.ha {
        Some(ha) => Some(super::reads::table(&main, ha.table.as_str()).await),
        None => None,
    };
    Facts { leafs, log_groups, topics, credentials, ha_table }
}

/// Max sizes the daemon recorded when it parked leafs, from its state file if this
/// user may read it: a parked ASG's max 0 is the daemon's doing, not a fault.
fn parked_maxima(config: &Config) -> HashMap<String, i32> {
    let Ok(bytes) = std::fs::read(&config.daemon.state_file) else { return HashMap::new() };
    let Ok(state) = crate::state::migrate(&bytes) else { return HashMap::new() };
    state.leafs.iter().filter_map(|(name, leaf)| Some((name.clone(), leaf.parked.asg?.max))).collect()
}

/// Simulates every statement of `iam::policy(config)` for whoever the credentials are.
async fn credentials(config: &Config, reads: &Reads) -> Credentials {
    let (arn, account) = match reads.caller().await {
        Ok(c) => c,
        Err(e) => return Credentials::Unavailable(format!("sts GetCallerIdentity: {e}")),
    };
    if arn.ends_with(":root") {
        return Credentials::Root;
    }
    let principal = match arn.split_once(":assumed-role/") {
        Some((_, rest)) => match reads.role_arn(rest.split('/').next().unwrap_or_default()).await {
            Ok(role) => role,
            Err(e) => return Credentials::Unavailable(format!("{arn}: {e}")),
        },
        None => arn,
    };
    let policy = crate::iam::policy(config);
    let mut refused = Vec::new();
    let mut actions = 0;
    for statement in policy["Statement"].as_array().into_iter().flatten() {
        let sim = simulation_of(statement, &account);
        actions += sim.actions.len();
        match reads.simulate(&principal, &sim.actions, &sim.resources, &sim.context).await {
            Ok(r) => refused.extend(r),
            Err(e) => return Credentials::Unavailable(e.to_string()),
        }
    }
    Credentials::Simulated { principal, actions, refused }
}

/// The actions, resources (the account filled in) and condition context of one policy
/// statement, as the IAM simulator takes them.
pub fn simulation_of(statement: &Value, account: &str) -> Simulation {
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let resources = strings(&statement["Resource"])
        .into_iter()
        .map(|arn| {
            let mut parts: Vec<&str> = arn.splitn(6, ':').collect();
            if parts.len() == 6 && parts[4] == "*" {
                parts[4] = account;
            }
            parts.join(":")
        })
        .collect();
    let context = statement["Condition"]
        .as_object()
        .into_iter()
        .flat_map(|operators| operators.values())
        .filter_map(Value::as_object)
        .flat_map(|keys| keys.iter().map(|(k, v)| (k.clone(), strings(v))))
        .collect();
    Simulation { actions: strings(&statement["Action"]), resources, context }
}
