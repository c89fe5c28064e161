//! Observe: read what AWS says about the leafs with as few calls as possible.
//!
//! AutoScaling answers for 100 groups per call, EC2 for many instances per call, but
//! Route53 and ECS answer per zone and per cluster. So each tick:
//! - describes every *active* leaf's ASG (awake, waking, a wake pending, not yet
//!   settled) and fills the rest of the call's 100 names with *settled* sleeping leafs,
//!   oldest-checked first, so settled leafs are re-checked in rotation at no extra calls;
//! - describes, in one call, only instances whose public IP it does not know yet;
//! - reads an A record or an ECS service only when it has never read it, or in a small
//!   per-tick budget of refreshes, and otherwise trusts what it last read or wrote; a
//!   record read lists a page of up to 300 records of the zone, so it learns its
//!   neighbours' records with it.
//!
//! Calls per tick are thus bounded by constants, not by the number of leafs.

mod shapes;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use super::capacity::Step;
use super::decide::{self, Footprint, Seen, ServiceSeen, TaskSeen};
use crate::aws::asg::{Group, Lifecycle, NAMES_PER_CALL};
use crate::aws::ec2::Instance;
use crate::aws::elbv2::Health;
use crate::aws::route53::ARecord;
use crate::aws::{Aws, AwsError};
use crate::clock::Timestamp;
use crate::config::{Config, DnsMode, LeafConfig};
use crate::crashloop::{ContainerExit, StoppedTask};
use crate::leaf::Phase;
use crate::state::{Announced, LeafState, State};
use crate::watchdog::{self, Traffic};

/// A value and when it was read (or written) by us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<T> {
    /// The value.
    pub value: T,
    /// When it was last confirmed.
    pub at: Timestamp,
}

/// Record and service reads per tick: Route53 allows 5 requests/s per account.
pub const READS_PER_TICK: usize = 3;

/// Record sets per ListResourceRecordSets page (Route53's maximum is 300): one read
/// learns the records of every leaf of the zone on the page, so after a start with 1,000
/// leafs all records are known within a few ticks, not after half an hour of single reads.
pub const RECORDS_PER_READ: i32 = 300;

/// A record or service not read for this long is read again, within the budget.
pub const REFRESH_AFTER_MS: i64 = 15 * 60 * 1000;

/// A running leaf's stopped tasks are listed at most this often.
pub const TASKS_EVERY_MS: i64 = 10_000;

/// What the reconciler knows of AWS between ticks. In memory only: a restart rereads.
#[derive(Debug, Default)]
pub struct Cache {
    /// Last answer for each leaf's ASG (None inside: AWS does not know the group).
    pub groups: HashMap<String, Cached<Option<Group>>>,
    /// Instance details by id; an id is immutable, so it is read once with its IP.
    pub instances: HashMap<String, Instance>,
    /// Each leaf's A record as last read or written.
    pub records: HashMap<String, Cached<Option<ARecord>>>,
    /// Each leaf's ECS service as last read or written.
    pub services: HashMap<String, Cached<ServiceSeen>>,
    /// Each running leaf's traffic, read once per period.
    pub traffic: HashMap<String, Cached<Traffic>>,
    /// Each running leaf's stopped tasks (ARNs) as last listed.
    pub stopped: HashMap<String, Cached<Vec<String>>>,
    /// Described stopped tasks by ARN (a stopped task never changes).
    pub tasks: HashMap<String, StoppedTask>,
    /// Essential container names by task definition ARN (immutable).
    pub essential: HashMap<String, Vec<String>>,
    /// This pass's problem evidence per leaf (calls refused or succeeding).
    pub reports: HashMap<String, crate::problems::Report>,
    /// Hosted zone names by zone id (immutable: read once per run).
    pub zones: HashMap<String, String>,
    /// Names of the region's ASGs that have scaling policies.
    pub policies: Option<Cached<BTreeSet<String>>>,
    /// Tasks ECS wants running, by cluster, as last listed (clusters of awake leafs
    /// without an ASG).
    pub running: HashMap<String, Cached<Vec<String>>>,
    /// Those tasks as described (a task is described again until it is RUNNING).
    pub live_tasks: HashMap<String, LiveTask>,
    /// Public IPs of task network interfaces (immutable while the task runs).
    pub eni_ips: HashMap<String, Ipv4Addr>,
    /// Task network interfaces read without a public IP (a private subnet).
    pub eni_private: HashSet<String>,
    /// Each leaf's targets, summed over its target groups, read while its start waits.
    pub targets: HashMap<String, Cached<Health>>,
}

/// A task ECS wants running, as the reconciler remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTask {
    /// The service it belongs to (from its group `service:NAME`).
    pub service: Option<String>,
    /// RUNNING (not PROVISIONING or PENDING).
    pub running: bool,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// Its network interface (awsvpc).
    pub eni: Option<String>,
}

impl Cache {
    /// The record of `leaf` as a decision input.
    pub fn record(&self, leaf: &str) -> Seen<Option<ARecord>> {
        self.records.get(leaf).map_or(Seen::Unknown, |c| Seen::Known(c.value.clone()))
    }

    /// Whether the leaf's hosted zone holds its domain; None until the zone was read.
    pub fn zone_holds_domain(&self, leaf: &LeafConfig) -> Option<bool> {
        let zone = self.zones.get(leaf.hosted_zone_id.as_str())?;
        let domain = leaf.domain().as_str();
        Some(domain == zone || domain.strip_suffix(zone.as_str()).is_some_and(|rest| rest.ends_with('.')))
    }

    /// The service of `leaf` as a decision input.
    pub fn service(&self, leaf: &LeafConfig) -> ServiceSeen {
        if leaf.ecs().is_none() {
            return ServiceSeen::NotConfigured;
        }
        self.services.get(leaf.name().as_str()).map_or(ServiceSeen::Unknown, |c| c.value.clone())
    }

    /// Forgets what was read for one leaf (a reload changed its ASG or service).
    pub fn forget_leaf(&mut self, leaf: &str) {
        self.retain_leafs(|k| k != leaf);
    }

    /// Forgets every leaf not in `keep` (a reload removed it).
    pub fn forget_leafs_except(&mut self, keep: &std::collections::BTreeSet<String>) {
        self.retain_leafs(|k| keep.contains(k));
    }

    /// Keeps, in every per-leaf map, only the leafs `keep` says yes to.
    fn retain_leafs(&mut self, keep: impl Fn(&str) -> bool) {
        self.groups.retain(|k, _| keep(k));
        self.records.retain(|k, _| keep(k));
        self.services.retain(|k, _| keep(k));
        self.traffic.retain(|k, _| keep(k));
        self.stopped.retain(|k, _| keep(k));
        self.reports.retain(|k, _| keep(k));
        self.targets.retain(|k, _| keep(k));
    }

    /// Remembers a capacity step AWS has just taken. Without it the cache would still
    /// say what the group was before the write, and with more leafs than one
    /// DescribeAutoScalingGroups call holds, a just-woken leaf would count as settled
    /// and wait a whole rotation (about a minute at 1,000 leafs) before its instance, and
    /// so its A record, were looked at.
    pub fn learn(&mut self, leaf: &LeafConfig, step: Step) {
        let name = leaf.name().as_str();
        let group = self.groups.get_mut(name).and_then(|c| c.value.as_mut());
        let service = match self.services.get_mut(name) {
            Some(Cached { value: ServiceSeen::Known(s), .. }) => Some(s),
            _ => None,
        };
        match (step, group, service) {
            (Step::AsgDesired(n), Some(g), _) => g.desired = n,
            (Step::AsgBounds { bounds, desired }, Some(g), _) => (g.min, g.max, g.desired) = (bounds.min, bounds.max, desired),
            (Step::ServiceBounds(b), _, Some(s)) => s.scalable = Some(b),
            (Step::ServiceDesired(n), _, Some(s)) => s.desired = n,
            _ => {}
        }
    }

    /// The tasks of a leaf without an ASG as a decision input (Known only once its
    /// cluster's running tasks were listed).
    pub fn tasks(&self, leaf: &LeafConfig) -> Seen<Vec<TaskSeen>> {
        let Some((cluster, service)) = leaf.ecs().filter(|_| leaf.asg().is_none()) else { return Seen::Known(Vec::new()) };
        let Some(listed) = self.running.get(cluster.as_str()) else { return Seen::Unknown };
        Seen::Known(
            listed
                .value
                .iter()
                .filter_map(|arn| Some((arn, self.live_tasks.get(arn)?)))
                .filter(|(_, t)| t.service.as_deref() == Some(service.as_str()))
                .map(|(arn, t)| TaskSeen {
                    unit: crate::leaf::Unit { id: arn.clone(), ip: t.eni.as_ref().and_then(|e| self.eni_ips.get(e)).copied(), launched_at: t.started_at },
                    running: t.running,
                })
                .collect(),
        )
    }

    /// The units behind the leaf, if observed.
    pub fn footprint(&self, leaf: &LeafConfig) -> Option<Footprint> {
        if leaf.asg().is_some() {
            let group = self.groups.get(leaf.name().as_str())?.value.as_ref()?;
            return Some(decide::group_footprint(group, &self.instances));
        }
        let ServiceSeen::Known(service) = self.service(leaf) else { return None };
        let tasks = match self.tasks(leaf) {
            Seen::Known(t) => t,
            Seen::Unknown => Vec::new(),
        };
        Some(Footprint { wanted: service.desired, live: tasks.iter().map(|t| t.unit.id.clone()).collect(), serving: tasks.into_iter().filter(|t| t.running).map(|t| t.unit).collect() })
    }

    /// The leaf's phase from the last observation, if it was observed.
    pub fn phase(&self, leaf: &LeafConfig) -> Option<Phase> {
        Some(decide::phase(&self.footprint(leaf)?, leaf.dns != DnsMode::None))
    }

    /// The stopped tasks listed for `leaf` that have been described.
    pub fn stopped_tasks(&self, leaf: &str) -> Vec<StoppedTask> {
        self.stopped.get(leaf).map(|c| c.value.iter().filter_map(|arn| self.tasks.get(arn).cloned()).collect()).unwrap_or_default()
    }

    /// True when the leaf sleeps and nothing is pending for it: such a leaf only needs
    /// an occasional look. Its record and service need not be known yet: they are read
    /// when the rotation brings it round, within the per-tick budget, so that a restart
    /// with 1,000 leafs does not describe all of them every tick until then.
    fn settled(&self, leaf: &LeafConfig, state: &State) -> bool {
        let name = leaf.name().as_str();
        let asleep = if leaf.asg().is_some() {
            let Some(group) = self.groups.get(name) else { return false };
            // The ASG does not exist: a problem alerted once. Looking for it every pass would
            // cost a call per 100 such leafs per pass; the rotation finds it again.
            let Some(g) = &group.value else { return true };
            g.desired == 0 && g.instances.is_empty() && !(g.policies != Some(false) && g.max > 0)
        } else {
            // Without an ASG the service is the leaf: read it every pass until it sleeps.
            self.footprint(leaf).is_some_and(|f| f.wanted == 0 && f.live.is_empty())
        };
        let memory = state.leafs.get(name);
        let quiet = memory.is_some_and(|m| m.wake.is_none() && m.manual.is_none() && m.stopping.is_none() && m.announced == Some(Announced::Down));
        let record_wrong = leaf.dns != DnsMode::None && matches!(self.record(name), Seen::Known(r) if !r.as_ref().is_some_and(|r| r.is(&[leaf.idle_ip], leaf.dns_ttl())));
        let service_up = matches!(self.service(leaf), ServiceSeen::Known(s) if !s.daemon && (s.desired != 0 || s.scalable.is_some_and(|b| !b.parked())));
        asleep && quiet && !record_wrong && !service_up
    }
}

/// Indexes of the leafs to observe this tick: all active ones, then settled ones
/// (oldest-checked first) up to the end of the last DescribeAutoScalingGroups call.
pub fn select(config: &Config, cache: &Cache, state: &State) -> Vec<usize> {
    let (mut active, settled): (Vec<usize>, Vec<usize>) = (0..config.leafs.len()).partition(|&i| !cache.settled(&config.leafs[i], state));
    // A player waiting on a wake comes first for the per-tick record and service reads.
    let waiting = |i: &usize| state.leafs.get(config.leafs[*i].name().as_str()).is_some_and(|m| m.wake.is_some() || m.manual.is_some());
    active.sort_by_key(|i| !waiting(i));
    let (mut grouped, mut services): (Vec<usize>, Vec<usize>) = settled.into_iter().partition(|&i| config.leafs[i].asg().is_some());
    let name = |i: usize| config.leafs[i].name().as_str();
    grouped.sort_by_key(|&i| cache.groups.get(name(i)).map(|c| c.at));
    let in_calls = active.iter().filter(|&&i| config.leafs[i].asg().is_some()).count();
    let mut room = (in_calls.div_ceil(NAMES_PER_CALL).max(1) * NAMES_PER_CALL) - in_calls;
    if room == 0 {
        room = NAMES_PER_CALL; // the active leafs fill whole calls: one more keeps the rotation going
    }
    active.extend(grouped.into_iter().take(room));
    // A sleeping service without an ASG is looked at again when the services' refresh
    // reaches it (oldest first, within the per-tick read budget): no call describes it
    // with a hundred others.
    services.sort_by_key(|&i| cache.services.get(name(i)).map(|c| c.at));
    active.extend(services.into_iter().take(READS_PER_TICK * crate::aws::ecs::SERVICES_PER_CALL));
    active
}

/// Reads AWS for the `selected` leafs into `cache`. Fails only when the ASGs could
/// not be read: without them no decision is safe. Other failures leave the value
/// unknown (decisions that need it wait) and are logged. No read starts after
/// `deadline`: when AWS answers slowly, what is left waits for the next pass.
pub async fn observe(aws: &Aws, config: &Config, cache: &mut Cache, memory: &State, selected: &[usize], now: Timestamp, deadline: tokio::time::Instant) -> Result<(), AwsError> {
    let names: Vec<String> = {
        let set: BTreeSet<&str> = selected.iter().filter_map(|&i| config.leafs[i].asg()).map(crate::config::ResourceName::as_str).collect();
        set.into_iter().map(str::to_owned).collect()
    };
    cache.reports.clear();
    if !names.is_empty() {
        let with_asg: Vec<&LeafConfig> = selected.iter().map(|&i| &config.leafs[i]).filter(|l| l.asg().is_some()).collect();
        shapes::read_policies(aws, cache, &with_asg, now).await;
        let policies = cache.policies.as_ref().map(|c| &c.value);
        let groups: HashMap<String, Group> = aws
            .asg
            .describe(&names)
            .await?
            .into_iter()
            .map(|mut g| {
                g.policies = policies.map(|p| p.contains(&g.name));
                (g.name.clone(), g)
            })
            .collect();
        for &i in selected {
            let leaf = &config.leafs[i];
            if let Some(asg) = leaf.asg() {
                cache.groups.insert(leaf.name().to_string(), Cached { value: groups.get(asg.as_str()).cloned(), at: now });
            }
        }
    }
    let in_time = || tokio::time::Instant::now() < deadline;
    if in_time() {
        read_instances(aws, cache).await;
    }
    if in_time() {
        read_zones(aws, config, cache, selected).await;
    }
    if in_time() {
        read_records(aws, config, cache, selected, now).await;
    }
    if in_time() {
        read_services(aws, config, cache, memory, selected, now).await;
    }
    if in_time() {
        shapes::read_running_tasks(aws, config, cache, selected, now).await;
    }
    let running: Vec<&LeafConfig> = selected
        .iter()
        .map(|&i| &config.leafs[i])
        .filter(|l| matches!(cache.phase(l), Some(Phase::Up { .. } | Phase::Waking)))
        .collect();
    if in_time() {
        shapes::read_targets(aws, cache, &running, memory, now).await;
    }
    let memory_of = |l: &LeafConfig| memory.leafs.get(l.name().as_str()).cloned().unwrap_or_default();
    if in_time() {
        read_traffic(aws, cache, &running, &memory_of, now).await;
    }
    if in_time() {
        read_tasks(aws, cache, &running, &memory_of, now).await;
    }
    Ok(())
}

/// Whether the watchdog of `leaf` needs fresh traffic at `now`: it runs, it has been
/// awake long enough to be judged, and the last read was in an earlier period.
fn traffic_due(cache: &Cache, leaf: &LeafConfig, memory: &LeafState, now: Timestamp) -> bool {
    let Some(phase @ Phase::Up { .. }) = cache.phase(leaf) else { return false };
    let wd = &leaf.watchdog;
    let launched = phase.newest().and_then(|u| u.launched_at);
    let awake_since = memory.woke_at.max(launched);
    if awake_since.is_none_or(|t| now.since(t) < wd.idle_after.get().as_millis()) {
        return false; // not judged yet: asking CloudWatch would cost money for nothing
    }
    let p = wd.period.as_millis().max(1);
    cache.traffic.get(leaf.name().as_str()).is_none_or(|c| c.at.0.div_euclid(p) < now.0.div_euclid(p))
}

/// One GetMetricData call (per distinct window) for every running leaf that is due:
/// its traffic source's metric and, with `efs`, DataReadIOBytes of its file system.
async fn read_traffic(aws: &Aws, cache: &mut Cache, running: &[&LeafConfig], memory_of: &impl Fn(&LeafConfig) -> LeafState, now: Timestamp) {
    type Window = (Timestamp, Timestamp);
    let mut by_window: BTreeMap<Window, Vec<(&LeafConfig, Vec<crate::aws::cloudwatch::SumQuery>)>> = BTreeMap::new();
    for leaf in running.iter().copied().filter(|l| traffic_due(cache, l, &memory_of(l), now)) {
        by_window.entry(watchdog::fetch_range(&leaf.watchdog, now)).or_default().push((leaf, watchdog::queries(leaf)));
    }
    for ((start, end), leafs) in by_window {
        let queries: Vec<crate::aws::cloudwatch::SumQuery> = leafs.iter().flat_map(|(_, q)| q.iter().cloned()).collect();
        match aws.cloudwatch.sums(&queries, start, end).await {
            Ok(sums) => {
                let mut sums = sums.into_iter();
                for (leaf, q) in leafs {
                    let network_in = watchdog::as_period_bytes(&q[0], sums.next().unwrap_or_default());
                    let efs_read = if q.len() > 1 { sums.next().unwrap_or_default() } else { BTreeMap::new() };
                    crate::events::traffic_read(leaf.name().as_str(), network_in.len());
                    cache.traffic.insert(leaf.name().to_string(), Cached { value: Traffic { network_in, efs_read }, at: now });
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read traffic metrics; retrying next tick"),
        }
    }
}

/// Lists and describes the stopped tasks of running leafs with an ECS service, a few
/// leafs per tick, each at most every [`TASKS_EVERY_MS`]. A task is described once.
async fn read_tasks(aws: &Aws, cache: &mut Cache, running: &[&LeafConfig], memory_of: &impl Fn(&LeafConfig) -> LeafState, now: Timestamp) {
    let due = running.iter().filter(|l| l.ecs().is_some()).copied();
    let due: Vec<&LeafConfig> = due
        .filter(|l| cache.stopped.get(l.name().as_str()).is_none_or(|c| now.since(c.at) >= TASKS_EVERY_MS))
        .take(READS_PER_TICK)
        .collect();
    for leaf in due {
        let (cluster, service) = leaf.ecs().expect("filtered");
        let listed = aws.ecs.stopped_tasks(cluster.as_str(), service.as_str()).await;
        cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, listed.as_ref().map(drop), "ecs", "ListTasks");
        let arns = match listed {
            Ok(arns) => arns,
            Err(e) => {
                tracing::warn!(leaf = %leaf.name(), error = %e, "could not list stopped tasks; retrying");
                continue;
            }
        };
        let memory = memory_of(leaf);
        let unknown: Vec<String> = arns.iter().filter(|a| !cache.tasks.contains_key(*a) && !memory.seen_tasks.contains_key(*a)).cloned().collect();
        if !unknown.is_empty() {
            match describe_stopped(aws, cache, cluster.as_str(), &unknown).await {
                Ok(tasks) => cache.tasks.extend(tasks.into_iter().map(|t| (t.arn.clone(), t))),
                Err(e) => {
                    tracing::warn!(leaf = %leaf.name(), error = %e, "could not describe stopped tasks; retrying");
                    continue;
                }
            }
        }
        cache.stopped.insert(leaf.name().to_string(), Cached { value: arns, at: now });
    }
    let listed: HashSet<&String> = cache.stopped.values().flat_map(|c| &c.value).collect();
    cache.tasks.retain(|arn, _| listed.contains(arn));
}

async fn describe_stopped(aws: &Aws, cache: &mut Cache, cluster: &str, arns: &[String]) -> Result<Vec<StoppedTask>, AwsError> {
    let tasks = aws.ecs.describe_tasks(cluster, arns).await?;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if !cache.essential.contains_key(&t.task_definition) {
            let names = aws.ecs.essential_containers(&t.task_definition).await?;
            cache.essential.insert(t.task_definition.clone(), names);
        }
        let essential = &cache.essential[&t.task_definition];
        out.push(StoppedTask {
            arn: t.arn,
            stop_code: t.stop_code,
            stopped_reason: t.stopped_reason,
            stopped_at: t.stopped_at,
            containers: t
                .containers
                .into_iter()
                .map(|(name, exit_code, reason)| ContainerExit { essential: essential.contains(&name), name, exit_code, reason })
                .collect(),
        });
    }
    Ok(out)
}

/// Describes, in one call, every launching or serving instance whose IP is unknown.
async fn read_instances(aws: &Aws, cache: &mut Cache) {
    let live: HashSet<&str> = cache
        .groups
        .values()
        .filter_map(|c| c.value.as_ref())
        .flat_map(|g| &g.instances)
        .filter(|i| matches!(i.lifecycle, Lifecycle::Pending | Lifecycle::InService))
        .map(|i| i.id.as_str())
        .collect();
    let wanted: Vec<String> = live
        .iter()
        .filter(|id| cache.instances.get(**id).is_none_or(|i| i.public_ip.is_none()))
        .map(|id| (*id).to_owned())
        .collect();
    let live: HashSet<String> = live.into_iter().map(str::to_owned).collect();
    cache.instances.retain(|id, _| live.contains(id));
    if wanted.is_empty() {
        return;
    }
    match aws.ec2.describe(&wanted).await {
        Ok(found) => cache.instances.extend(found.into_iter().map(|i| (i.id.clone(), i))),
        Err(e) => tracing::warn!(error = %e, "could not read instance IPs; retrying next tick"),
    }
}

/// Reads the names of hosted zones not known yet, a few per tick (with the record reads'
/// budget: Route53 allows 5 requests per second per account).
async fn read_zones(aws: &Aws, config: &Config, cache: &mut Cache, selected: &[usize]) {
    let unknown: std::collections::BTreeSet<&str> = selected.iter().map(|&i| config.leafs[i].hosted_zone_id.as_str()).filter(|z| !cache.zones.contains_key(*z)).collect();
    for zone in unknown.into_iter().take(READS_PER_TICK) {
        let result = aws.route53.zone_name(zone).await;
        for leaf in config.leafs.iter().filter(|l| l.hosted_zone_id.as_str() == zone) {
            cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, result.as_ref().map(drop), "route53", "GetHostedZone");
        }
        match result {
            Ok(name) => {
                cache.zones.insert(zone.to_owned(), name);
            }
            Err(e) => tracing::warn!(zone, error = %e, "could not read the hosted zone's name; retrying next tick"),
        }
    }
}

/// Leafs whose cached value is missing (first) or oldest past refresh, within the budget.
fn due<'a, T>(candidates: impl Iterator<Item = &'a LeafConfig>, cached: &HashMap<String, Cached<T>>, now: Timestamp) -> Vec<&'a LeafConfig> {
    let mut due: Vec<(Option<Timestamp>, &LeafConfig)> = candidates
        .filter_map(|l| match cached.get(l.name().as_str()) {
            None => Some((None, l)),
            Some(c) if now.since(c.at) >= REFRESH_AFTER_MS => Some((Some(c.at), l)),
            Some(_) => None,
        })
        .collect();
    due.sort_by_key(|(at, _)| *at);
    due.into_iter().map(|(_, l)| l).collect()
}

/// Reads the records due, within the budget. Each read lists a page of the leaf's zone,
/// which also teaches the records of the zone's other leafs on that page.
async fn read_records(aws: &Aws, config: &Config, cache: &mut Cache, selected: &[usize], now: Timestamp) {
    let candidates = selected.iter().map(|&i| &config.leafs[i]).filter(|l| l.dns != DnsMode::None && cache.footprint(l).is_some());
    let mut reads = 0;
    for leaf in due(candidates, &cache.records, now) {
        if reads == READS_PER_TICK {
            break;
        }
        if cache.records.get(leaf.name().as_str()).is_some_and(|c| c.at == now) {
            continue; // learned from an earlier page this tick
        }
        reads += 1;
        let result = aws.route53.read_a_records(leaf.hosted_zone_id.as_str(), leaf.domain().as_str(), RECORDS_PER_READ).await;
        cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, result.as_ref().map(drop), "route53", "ListResourceRecordSets");
        match result {
            Ok(page) => {
                // The page starts at this leaf's name, so its absence there means no record;
                // a neighbour absent from the page is merely not on it.
                for l in config.leafs.iter().filter(|o| o.hosted_zone_id == leaf.hosted_zone_id) {
                    let record = page.get(l.domain().as_str()).cloned();
                    if record.is_some() || l.name() == leaf.name() {
                        cache.records.insert(l.name().to_string(), Cached { value: record, at: now });
                    }
                }
            }
            Err(e) => tracing::warn!(leaf = %leaf.name(), error = %e, "could not read the A record; retrying next tick"),
        }
    }
}

/// Reads the services due (a leaf without an ASG: every pass until it settles asleep)
/// and, in one more call for all of them, their scalable targets.
async fn read_services(aws: &Aws, config: &Config, cache: &mut Cache, memory: &State, selected: &[usize], now: Timestamp) {
    let candidates = selected.iter().map(|&i| &config.leafs[i]).filter(|l| l.ecs().is_some());
    // Leafs without an ASG that are not settled are read every pass, players waiting
    // first, then longest unread, within the budget of the per-tick reads.
    let mut primary: Vec<&LeafConfig> = candidates.clone().filter(|l| l.asg().is_none() && !cache.settled(l, memory)).collect();
    let waiting = |l: &LeafConfig| memory.leafs.get(l.name().as_str()).is_some_and(|m| m.wake.is_some() || m.manual.is_some());
    primary.sort_by_key(|l| (!waiting(l), cache.services.get(l.name().as_str()).map(|c| c.at)));
    primary.truncate(READS_PER_TICK * crate::aws::ecs::SERVICES_PER_CALL);
    let mut wanted = due(candidates, &cache.services, now);
    wanted.retain(|l| !primary.iter().any(|p| p.name() == l.name()));
    let mut by_cluster: BTreeMap<&str, Vec<&LeafConfig>> = BTreeMap::new();
    for leaf in primary.iter().copied().chain(wanted) {
        let (cluster, _) = leaf.ecs().expect("filtered");
        if by_cluster.len() < READS_PER_TICK || by_cluster.contains_key(cluster.as_str()) {
            by_cluster.entry(cluster.as_str()).or_default().push(leaf);
        }
    }
    let mut read: Vec<&LeafConfig> = Vec::new();
    for (cluster, leafs) in by_cluster {
        let names: Vec<String> = leafs.iter().filter_map(|l| l.ecs()).map(|(_, s)| s.to_string()).collect();
        let result = aws.ecs.describe(cluster, &names).await;
        for leaf in &leafs {
            cache.reports.entry(leaf.name().to_string()).or_default().call(leaf, result.as_ref().map(drop), "ecs", "DescribeServices");
        }
        match result {
            Ok(services) => {
                for leaf in leafs {
                    let (_, service) = leaf.ecs().expect("filtered");
                    let seen = services
                        .found
                        .iter()
                        .find(|s| s.name == service.as_str())
                        .map_or(ServiceSeen::Missing, |s| ServiceSeen::Known(s.clone()));
                    if seen == ServiceSeen::Missing {
                        tracing::warn!(leaf = %leaf.name(), cluster, service = %service, "ECS service not found; the leaf runs without it");
                    }
                    cache.services.insert(leaf.name().to_string(), Cached { value: seen, at: now });
                    read.push(leaf);
                }
            }
            Err(e) => tracing::warn!(cluster, error = %e, "could not read ECS services; retrying next tick"),
        }
    }
    shapes::read_scalable(aws, cache, &read).await;
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::path::Path;

    use super::*;

    fn config(n: usize) -> Config {
        let mut text = String::from("[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n");
        for i in 0..n {
            let _ = write!(text, "[[leaf]]\nname = \"l{i}\"\ndomain = \"l{i}.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"a{i}\"\n[leaf.watchdog]\nthreshold = 1\n");
        }
        Config::parse(Path::new("t.toml"), &text).unwrap()
    }

    fn settle(cache: &mut Cache, state: &mut State, leaf: &LeafConfig, at: i64) {
        let name = leaf.name().to_string();
        cache.groups.insert(name.clone(), Cached { value: Some(Group { name: leaf.asg().unwrap().to_string(), desired: 0, min: 0, max: 1, policies: Some(false), instances: vec![] }), at: Timestamp(at) });
        cache.records.insert(name.clone(), Cached { value: Some(ARecord { values: vec!["0.0.0.0".into()], ttl: Some(1) }), at: Timestamp(at) });
        state.leafs.entry(name).or_default().announced = Some(Announced::Down);
    }

    #[test]
    fn a_sleeping_leaf_whose_record_is_not_read_yet_still_rotates() {
        let c = config(250);
        let (mut cache, mut state) = (Cache::default(), State::default());
        for (i, leaf) in c.leafs.iter().enumerate() {
            settle(&mut cache, &mut state, leaf, i64::try_from(i).unwrap());
            cache.records.clear();
        }
        assert_eq!(select(&c, &cache, &state).len(), NAMES_PER_CALL, "one call, not three, while records are unknown");
    }

    #[test]
    fn sleeping_services_without_an_asg_do_not_take_the_asg_rotations_slots() {
        let mut text = String::from("[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n");
        for i in 0..500 {
            let what = if i % 2 == 0 { format!("asg = \"a{i}\"") } else { format!("ecs_cluster = \"c\"\necs_service = \"s{i}\"") };
            let traffic = if i % 2 == 0 { "instances" } else { "service" };
            let _ = write!(text, "[[leaf]]\nname = \"l{i}\"\ndomain = \"l{i}.example.com\"\nhosted_zone_id = \"Z1\"\n{what}\n[leaf.watchdog]\nthreshold = 1\ntraffic = \"{traffic}\"\n");
        }
        let c = Config::parse(Path::new("t.toml"), &text).unwrap();
        let (mut cache, mut state) = (Cache::default(), State::default());
        for (i, leaf) in c.leafs.iter().enumerate() {
            if leaf.asg().is_some() {
                settle(&mut cache, &mut state, leaf, 0);
            } else {
                let service = crate::aws::ecs::Service { name: format!("s{i}"), daemon: false, desired: 0, scalable: None };
                cache.services.insert(leaf.name().to_string(), Cached { value: ServiceSeen::Known(service), at: Timestamp(0) });
                cache.records.insert(leaf.name().to_string(), Cached { value: Some(ARecord { values: vec!["0.0.0.0".into()], ttl: Some(1) }), at: Timestamp(0) });
                state.leafs.entry(leaf.name().to_string()).or_default().announced = Some(Announced::Down);
            }
        }
        let picked = select(&c, &cache, &state);
        let with_asg = picked.iter().filter(|&&i| c.leafs[i].asg().is_some()).count();
        assert_eq!(with_asg, NAMES_PER_CALL, "one full DescribeAutoScalingGroups call rotates the ASGs");
        assert_eq!(picked.len() - with_asg, READS_PER_TICK * crate::aws::ecs::SERVICES_PER_CALL, "a bounded share of the services is looked at");
    }

    #[test]
    fn never_seen_leafs_are_all_observed() {
        let c = config(3);
        assert_eq!(select(&c, &Cache::default(), &State::default()), vec![0, 1, 2]);
    }

    #[test]
    fn settled_leafs_rotate_oldest_first_within_one_call() {
        let c = config(250);
        let (mut cache, mut state) = (Cache::default(), State::default());
        for (i, leaf) in c.leafs.iter().enumerate() {
            settle(&mut cache, &mut state, leaf, 1000 - i64::try_from(i).unwrap());
        }
        let picked = select(&c, &cache, &state);
        assert_eq!(picked.len(), NAMES_PER_CALL, "one full call, not three");
        assert_eq!(picked[0], 249, "the longest unchecked first");
    }

    #[test]
    fn an_active_leaf_is_always_observed_and_the_call_is_filled() {
        let c = config(250);
        let (mut cache, mut state) = (Cache::default(), State::default());
        for leaf in &c.leafs {
            settle(&mut cache, &mut state, leaf, 5);
        }
        state.leafs.get_mut("l200").unwrap().request_wake(Timestamp(1), "FRA6");
        let picked = select(&c, &cache, &state);
        assert!(picked.contains(&200));
        assert_eq!(picked.len(), NAMES_PER_CALL);
    }

    #[test]
    fn a_leaf_just_woken_is_observed_next_pass_even_when_its_turn_is_far_off() {
        let c = config(1000);
        let (mut cache, mut state) = (Cache::default(), State::default());
        for (i, leaf) in c.leafs.iter().enumerate() {
            settle(&mut cache, &mut state, leaf, if i == 0 { 9_999 } else { i64::try_from(i).unwrap() });
        }
        assert!(!select(&c, &cache, &state).contains(&0), "l0 was checked last: its turn is ten calls away");
        // The wake was applied: AWS now wants one instance, and the memory holds no pending wake.
        cache.learn(&c.leafs[0], Step::AsgDesired(1));
        assert!(select(&c, &cache, &state).contains(&0), "the woken leaf is read on the next pass, not a rotation later");
    }
}
