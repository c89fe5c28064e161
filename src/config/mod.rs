//! The `leafs.toml` file: what the operator wants, validated before anything touches AWS.
//!
//! Loading is two steps. Serde (with `deny_unknown_fields` and the checked types of
//! [`values`]) catches every per-value problem with its exact position; then
//! [`Config::validate`] checks what spans several values (duplicate names, a service
//! without its cluster). Either way the operator gets one [`ConfigError`] naming the
//! file, line and key, and `containerd` exits 2 without starting.

mod at;
mod duration;
mod error;
mod ha;
mod responder;
mod shape;
mod values;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use at::At;
pub use duration::{parse_duration, DurationError, HumanDuration};
pub use error::ConfigError;
pub use ha::HaConfig;
pub use responder::{Cidr, LeafResponder, Protocol, ResponderConfig, WakeOn};
pub use shape::{DnsMode, TrafficSource};
pub use values::{Domain, HostedZoneId, LeafName, LoadBalancerId, LogGroupName, ResourceName, TargetGroupArn, TopicArn};

/// The whole validated file.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Settings of the process itself.
    pub daemon: DaemonConfig,
    /// The leafs, in file order (alerts and `/status` keep that order).
    pub leafs: Vec<LeafConfig>,
}

/// `[daemon]`: one process manages the leafs of one region.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Region of the leafs' ASG, ECS, EFS, EC2 and CloudWatch metrics.
    pub region: ResourceName,
    /// Default query-log group for leafs that do not name their own.
    pub query_log_group: Option<LogGroupName>,
    /// Route53 only writes query logs to us-east-1, hence the separate region.
    #[serde(default = "defaults::query_log_region")]
    pub query_log_region: ResourceName,
    /// Every alert of every leaf goes here.
    pub alert_topic_arn: Option<TopicArn>,
    /// How often the query log is read; the main term of wake latency.
    #[serde(default = "defaults::poll_interval")]
    pub poll_interval: At<HumanDuration>,
    /// How often AWS is read and converged even without a DNS query.
    #[serde(default = "defaults::reconcile_interval")]
    pub reconcile_interval: At<HumanDuration>,
    /// The longest delivery delay tolerated: CloudWatch Logs delivers lines late (up to
    /// ~30 s is reported) and out of order, so the filtered head read covers this much of
    /// the log every poll, and the sweep reads a line only once it is this old.
    #[serde(default = "defaults::query_log_lookback")]
    pub query_log_lookback: At<HumanDuration>,
    /// FilterLogEvents calls per second at most, all log groups together: the account
    /// has 25 in us-east-1, shared with every other tool.
    #[serde(default = "defaults::query_log_calls_per_second")]
    pub query_log_calls_per_second: At<f64>,
    /// Survives restarts: seen query-log events, pending wakes, alerts already sent.
    #[serde(default = "defaults::state_file")]
    pub state_file: PathBuf,
    /// HTTP endpoint for status and metrics.
    #[serde(default = "defaults::listen")]
    pub listen: At<SocketAddr>,
    /// Log every action without changing anything in AWS.
    #[serde(default)]
    pub dry_run: bool,
    /// Where sleeping leafs are answered for (`[daemon.responder]`).
    pub responder: Option<ResponderConfig>,
    /// Two daemons sharing the job through a DynamoDB lease (`[daemon.ha]`).
    pub ha: Option<HaConfig>,
}

/// `[[leaf]]`: one container that sleeps until its domain is queried.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeafConfig {
    /// Short name used in logs, alerts and commands.
    pub name: At<LeafName>,
    /// The name players connect to; an `A` query for exactly this name wakes the leaf.
    pub domain: At<Domain>,
    /// Zone holding the leaf's A record.
    pub hosted_zone_id: HostedZoneId,
    /// The AutoScalingGroup that runs the leaf's instances; none for a service on
    /// Fargate (or on capacity providers), which is then woken by its desired count.
    pub asg: Option<At<ResourceName>>,
    /// ECS cluster of `ecs_service`; both or neither.
    pub ecs_cluster: Option<At<ResourceName>>,
    /// ECS service running the container; a REPLICA service is scaled with the instance.
    pub ecs_service: Option<At<ResourceName>>,
    /// The ASG's desired capacity while awake (default 1).
    pub awake_instances: Option<At<i64>>,
    /// A REPLICA service's desired count while awake (default 1).
    pub awake_tasks: Option<At<i64>>,
    /// What the daemon writes to the leaf's A record.
    #[serde(default)]
    pub dns: DnsMode,
    /// Target groups whose healthy targets make the leaf "ready".
    #[serde(default)]
    pub target_group_arns: Vec<TargetGroupArn>,
    /// Healthy targets (over all `target_group_arns`) that make the leaf ready.
    #[serde(default = "defaults::ready_targets")]
    pub ready_targets: At<i64>,
    /// A leaf awake this long without its ready targets gets one problem alert.
    #[serde(default = "defaults::ready_timeout")]
    pub ready_timeout: At<HumanDuration>,
    /// The environment (`dev`, `stage`, ...) shown in alerts, `/status`, metrics, logs.
    pub env: Option<LeafName>,
    /// EFS file system whose reads are not player traffic (the watchdog subtracts them).
    pub efs: Option<ResourceName>,
    /// This leaf's alerts also go here.
    pub alert_topic_arn: Option<TopicArn>,
    /// This leaf's query-log group when its hosted zone logs to a group of its own.
    pub query_log_group: Option<LogGroupName>,
    /// TTL of the A record; 1 s so resolvers ask again (and so log a query) soon.
    #[serde(default = "defaults::dns_ttl")]
    pub dns_ttl: At<i64>,
    /// Where the A record points while the leaf sleeps: `idle_ip` as written, else the
    /// responder's `public_ip` for a leaf with a responder, else 0.0.0.0.
    #[serde(skip_deserializing, default = "defaults::idle_ip")]
    pub idle_ip: Ipv4Addr,
    /// `idle_ip` as written in the file.
    #[serde(default, rename = "idle_ip", skip_serializing)]
    idle_ip_written: Option<Ipv4Addr>,
    /// How the daemon answers for the leaf while it sleeps (`[leaf.responder]`).
    pub responder: Option<LeafResponder>,
    /// DNS queries wake the leaf (set false to let only the responder's logins wake it).
    #[serde(default = "defaults::yes")]
    pub wake_on_dns: bool,
    /// When the leaf counts as idle; required because the right threshold depends on the game.
    pub watchdog: WatchdogConfig,
    /// When a crashing container stops the leaf and keeps it asleep.
    #[serde(default)]
    pub crash_loop: CrashLoopConfig,
}

/// `[leaf.watchdog]`: the traffic watchdog that puts an unused leaf back to sleep.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Bytes per second at or below which a period is idle (Minecraft 1175, Valheim 400).
    pub threshold: At<f64>,
    /// Length of one metric period.
    #[serde(default = "defaults::period")]
    pub period: At<HumanDuration>,
    /// How long the leaf must be idle before it is scaled to zero.
    #[serde(default = "defaults::idle_after")]
    pub idle_after: At<HumanDuration>,
    /// Alert once the instance has been up this long.
    #[serde(default = "defaults::left_up_after")]
    pub left_up_after: At<HumanDuration>,
    /// Also scale down at `left_up_after`, not only alert.
    #[serde(default)]
    pub left_up_stop: bool,
    /// Where player traffic is read.
    #[serde(default)]
    pub traffic: At<TrafficSource>,
    /// The load balancer for `traffic = "load_balancer"`.
    pub load_balancer: Option<LoadBalancerId>,
}

/// `[leaf.crash_loop]`: stop paying for a container that keeps failing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoopConfig {
    /// Failed tasks within `window` that stop the leaf (1, as the original).
    #[serde(default = "defaults::max_failures")]
    pub max_failures: At<i64>,
    /// How far back failures count.
    #[serde(default = "defaults::crash_window")]
    pub window: HumanDuration,
    /// How long DNS queries do not wake the leaf after a crash loop stopped it.
    #[serde(default = "defaults::cooldown")]
    pub cooldown: HumanDuration,
}

impl Default for CrashLoopConfig {
    fn default() -> Self {
        Self { max_failures: defaults::max_failures(), window: defaults::crash_window(), cooldown: defaults::cooldown() }
    }
}

impl CrashLoopConfig {
    /// Failures that trip the breaker (validated >= 1).
    pub fn max_failures(&self) -> usize {
        usize::try_from(*self.max_failures).unwrap_or(1)
    }
}

mod defaults {
    use super::{At, HumanDuration, Ipv4Addr, PathBuf, ResourceName, SocketAddr};

    pub fn query_log_region() -> ResourceName {
        ResourceName::parse("us-east-1").expect("valid constant")
    }
    pub fn poll_interval() -> At<HumanDuration> {
        At::new(HumanDuration::secs(1))
    }
    pub fn reconcile_interval() -> At<HumanDuration> {
        At::new(HumanDuration::secs(5))
    }
    pub fn query_log_lookback() -> At<HumanDuration> {
        At::new(HumanDuration::secs(120))
    }
    pub fn query_log_calls_per_second() -> At<f64> {
        At::new(2.5)
    }
    pub fn state_file() -> PathBuf {
        PathBuf::from("/var/lib/container-manager/state.json")
    }
    pub fn listen() -> At<SocketAddr> {
        At::new(SocketAddr::from(([127, 0, 0, 1], 9477)))
    }
    pub fn ready_targets() -> At<i64> {
        At::new(1)
    }
    pub fn ready_timeout() -> At<HumanDuration> {
        At::new(HumanDuration::secs(10 * 60))
    }
    pub fn dns_ttl() -> At<i64> {
        At::new(1)
    }
    pub fn idle_ip() -> Ipv4Addr {
        Ipv4Addr::UNSPECIFIED
    }
    pub fn yes() -> bool {
        true
    }
    pub fn period() -> At<HumanDuration> {
        At::new(HumanDuration::secs(60))
    }
    pub fn idle_after() -> At<HumanDuration> {
        At::new(HumanDuration::secs(7 * 60))
    }
    pub fn left_up_after() -> At<HumanDuration> {
        At::new(HumanDuration::secs(8 * 3600))
    }
    pub fn max_failures() -> At<i64> {
        At::new(1)
    }
    pub fn crash_window() -> HumanDuration {
        HumanDuration::secs(15 * 60)
    }
    pub fn cooldown() -> HumanDuration {
        HumanDuration::secs(30 * 60)
    }
}

/// The file as serde sees it, before cross-field checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    daemon: DaemonConfig,
    #[serde(default, rename = "leaf")]
    leafs: Vec<At<LeafConfig>>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        Self::parse(path, &text)
    }

    /// Validates `text`; `path` only labels the messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        let mut config = Config {
            daemon: raw.daemon,
            leafs: raw.leafs.into_iter().map(At::into_inner).collect(),
        };
        let public_ip = config.daemon.responder.as_ref().and_then(|r| r.public_ip);
        for leaf in &mut config.leafs {
            leaf.idle_ip = leaf.idle_ip_written.or(public_ip.filter(|_| leaf.responder.is_some())).unwrap_or(Ipv4Addr::UNSPECIFIED);
        }
        config.validate().map_err(|(span, key, msg)| ConfigError::at(path, text, span, key, msg))?;
        Ok(config)
    }

    /// Cross-field rules. Returns the offending span, key and message.
    fn validate(&self) -> Result<(), Refusal> {
        self.daemon.validate()?;
        for (i, leaf) in self.leafs.iter().enumerate() {
            leaf.validate(i, &self.daemon)?;
        }
        self.unique()?;
        self.responder_ports()
    }

    /// Two leafs may not share a name, a domain, an ASG or an ECS service: the daemon
    /// would wake and stop one group for two leafs that disagree about it.
    fn unique(&self) -> Result<(), Refusal> {
        let mut names: HashMap<&LeafName, usize> = HashMap::new();
        let mut domains: HashMap<&Domain, usize> = HashMap::new();
        let mut asgs: HashMap<&ResourceName, usize> = HashMap::new();
        let mut services: HashMap<(&ResourceName, &ResourceName), usize> = HashMap::new();
        for (i, leaf) in self.leafs.iter().enumerate() {
            let key = |k: &str| format!("leaf[{i}].{k}");
            if let Some(first) = names.insert(leaf.name.get(), i) {
                return Err((leaf.name.span(), key("name"), format!("duplicate leaf name {:?} (also leaf[{first}])", leaf.name.as_str())));
            }
            if let Some(first) = domains.insert(leaf.domain.get(), i) {
                return Err((leaf.domain.span(), key("domain"), format!("duplicate domain {:?} (also leaf[{first}])", leaf.domain.as_str())));
            }
            if let Some(asg) = &leaf.asg
                && let Some(first) = asgs.insert(asg.get(), i)
            {
                return Err((asg.span(), key("asg"), format!("ASG {:?} is also leaf[{first}]'s: each leaf needs its own group", asg.as_str())));
            }
            if let (Some(pair), Some(service)) = (leaf.ecs(), &leaf.ecs_service)
                && let Some(first) = services.insert(pair, i)
            {
                return Err((service.span(), key("ecs_service"), format!("ECS service {}/{} is also leaf[{first}]'s: each leaf needs its own service", pair.0, pair.1)));
            }
        }
        Ok(())
    }

    /// Ports of the responder: many minecraft leafs may share one (the handshake names
    /// the leaf), but a tcp or udp port belongs to one leaf, and minecraft and tcp cannot
    /// share a TCP port.
    fn responder_ports(&self) -> Result<(), Refusal> {
        let mut taken: HashMap<(bool, u16), (usize, Protocol)> = HashMap::new();
        for (i, leaf) in self.leafs.iter().enumerate() {
            let Some(r) = &leaf.responder else { continue };
            let udp = *r.protocol == Protocol::Udp;
            if let Some((first, proto)) = taken.insert((udp, r.port()), (i, *r.protocol))
                && !(proto == Protocol::Minecraft && *r.protocol == Protocol::Minecraft)
            {
                let span = r.port.as_ref().map_or(r.protocol.span(), At::span);
                return Err((span, format!("leaf[{i}].responder.port"), format!("port {} is also leaf[{first}]'s: only minecraft leafs can share a port (the handshake names the leaf)", r.port())));
            }
        }
        Ok(())
    }

    /// What an operator should hear about a valid file: settings that work but are
    /// probably not meant (`containerd check` prints them, the daemon logs them).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, leaf) in self.leafs.iter().enumerate() {
            if leaf.responder.is_some() && leaf.idle_ip.is_unspecified() {
                out.push(format!("leaf[{i}].responder: the leaf's record points at 0.0.0.0 while it sleeps, so nobody reaches the responder: set [daemon.responder] public_ip (or the leaf's idle_ip)"));
            }
            if !leaf.wake_on_dns && leaf.responder.is_none() {
                out.push(format!("leaf[{i}].wake_on_dns: false without a [leaf.responder]: only `containerd wake` can wake this leaf"));
            }
        }
        if !self.daemon.listen.ip().is_loopback() {
            out.push(format!(
                "daemon.listen: {} is reachable from other hosts: /status, /metrics and the wake/sleep commands (token-protected) are exposed; use 127.0.0.1 unless a firewall guards it",
                *self.daemon.listen
            ));
        }
        out
    }
}

/// A refused value: its span, its dotted key and the message.
type Refusal = (std::ops::Range<usize>, String, String);

impl DaemonConfig {
    fn validate(&self) -> Result<(), Refusal> {
        for (key, d) in [("daemon.poll_interval", &self.poll_interval), ("daemon.reconcile_interval", &self.reconcile_interval)] {
            if d.0.as_millis() < 100 {
                return Err((d.span(), key.into(), format!("{} is too short: use at least 100ms", **d)));
            }
        }
        if self.query_log_lookback.0 < self.poll_interval.0 {
            return Err((self.query_log_lookback.span(), "daemon.query_log_lookback".into(), "query_log_lookback must be at least poll_interval".into()));
        }
        if let Some(r) = &self.responder {
            if !(1..=65_536).contains(&*r.max_connections) {
                return Err((r.max_connections.span(), "daemon.responder.max_connections".into(), format!("max_connections {} must be between 1 and 65536", *r.max_connections)));
            }
            if !(1..=100_000).contains(&*r.per_source_per_minute) {
                return Err((r.per_source_per_minute.span(), "daemon.responder.per_source_per_minute".into(), format!("per_source_per_minute {} must be between 1 and 100000", *r.per_source_per_minute)));
            }
        }
        if let Some(ha) = &self.ha {
            ha.validate()?;
        }
        let calls = *self.query_log_calls_per_second;
        if !(0.1..=25.0).contains(&calls) {
            return Err((
                self.query_log_calls_per_second.span(),
                "daemon.query_log_calls_per_second".into(),
                format!("{calls} must be between 0.1 and 25 (the account's FilterLogEvents limit in us-east-1, shared with every other tool)"),
            ));
        }
        Ok(())
    }

    /// FilterLogEvents calls per second the tail may make (validated 0.1..=25).
    pub fn query_log_calls_per_second(&self) -> f64 {
        *self.query_log_calls_per_second
    }
}

impl LeafConfig {
    fn validate(&self, i: usize, daemon: &DaemonConfig) -> Result<(), Refusal> {
        let key = |k: &str| format!("leaf[{i}].{k}");
        match (&self.ecs_cluster, &self.ecs_service) {
            (Some(c), None) => return Err((c.span(), key("ecs_cluster"), "ecs_cluster is set but ecs_service is missing: set both or neither".into())),
            (None, Some(s)) => return Err((s.span(), key("ecs_service"), "ecs_service is set but ecs_cluster is missing: set both or neither".into())),
            (None, None) if self.asg.is_none() => {
                return Err((self.name.span(), key("asg"), "the leaf has nothing to wake: set `asg`, or `ecs_cluster` and `ecs_service` (a Fargate service), or both".into()));
            }
            _ => {}
        }
        self.validate_shape(&key)?;
        self.validate_responder(&key, daemon)?;
        if self.query_log_group.is_none() && daemon.query_log_group.is_none() {
            return Err((self.name.span(), key("query_log_group"), "no query log group: set [daemon] query_log_group or this leaf's query_log_group".into()));
        }
        let ttl = *self.dns_ttl;
        if !(1..=86_400).contains(&ttl) {
            return Err((self.dns_ttl.span(), key("dns_ttl"), format!("dns_ttl {ttl} must be between 1 and 86400 seconds (1 is best: resolvers ask again at once)")));
        }
        let failures = *self.crash_loop.max_failures;
        if !(1..=1000).contains(&failures) {
            return Err((self.crash_loop.max_failures.span(), key("crash_loop.max_failures"), format!("max_failures {failures} must be between 1 and 1000")));
        }
        self.watchdog.validate(&|k| key(&format!("watchdog.{k}")))
    }
}

impl LeafConfig {
    /// The keys of issue 14's shapes: capacities, readiness, traffic source.
    fn validate_shape(&self, key: &dyn Fn(&str) -> String) -> Result<(), Refusal> {
        if let Some(n) = &self.awake_instances {
            if self.asg.is_none() {
                return Err((n.span(), key("awake_instances"), "awake_instances needs an `asg`".into()));
            }
            if !(1..=1000).contains(&**n) {
                return Err((n.span(), key("awake_instances"), format!("awake_instances {} must be between 1 and 1000", **n)));
            }
        }
        if let Some(n) = &self.awake_tasks {
            if self.ecs_service.is_none() {
                return Err((n.span(), key("awake_tasks"), "awake_tasks needs `ecs_cluster` and `ecs_service`".into()));
            }
            if !(1..=1000).contains(&**n) {
                return Err((n.span(), key("awake_tasks"), format!("awake_tasks {} must be between 1 and 1000", **n)));
            }
        }
        if !(1..=1000).contains(&*self.ready_targets) {
            return Err((self.ready_targets.span(), key("ready_targets"), format!("ready_targets {} must be between 1 and 1000", *self.ready_targets)));
        }
        if self.ready_timeout.0.is_zero() {
            return Err((self.ready_timeout.span(), key("ready_timeout"), "ready_timeout 0s would alert on every wake: give how long targets may take to pass their health checks".into()));
        }
        let wd = &self.watchdog;
        let needs = match *wd.traffic {
            TrafficSource::Instances if self.asg.is_none() => Some("`asg` (it reads the instances' NetworkIn): use traffic = \"service\" or \"load_balancer\" for a service without an ASG"),
            TrafficSource::LoadBalancer if wd.load_balancer.is_none() => Some("`load_balancer = \"net/NAME/ID\"` (or app/NAME/ID)"),
            TrafficSource::Service if self.ecs_service.is_none() => Some("`ecs_cluster` and `ecs_service`"),
            _ => None,
        };
        if let Some(needs) = needs {
            return Err((wd.traffic.span(), key("watchdog.traffic"), format!("traffic = {:?} needs {needs}", wd.traffic.as_str())));
        }
        Ok(())
    }
}

impl LeafConfig {
    fn validate_responder(&self, key: &dyn Fn(&str) -> String, daemon: &DaemonConfig) -> Result<(), Refusal> {
        let Some(r) = &self.responder else { return Ok(()) };
        if daemon.responder.is_none() {
            return Err((r.protocol.span(), key("responder"), "[leaf.responder] needs [daemon.responder] (where to listen)".into()));
        }
        match &r.port {
            Some(p) if !(1..=65_535).contains(&**p) => return Err((p.span(), key("responder.port"), format!("port {} must be between 1 and 65535", **p))),
            None if *r.protocol != Protocol::Minecraft => return Err((r.protocol.span(), key("responder.port"), "a tcp or udp responder needs its `port`".into())),
            _ => {}
        }
        if let Some(w) = &r.wake_on
            && **w == WakeOn::Login
            && *r.protocol != Protocol::Minecraft
        {
            return Err((w.span(), key("responder.wake_on"), "wake_on = \"login\" is for minecraft: a tcp or udp leaf wakes on \"connect\"".into()));
        }
        for (name, motd) in [("motd_asleep", &r.motd_asleep), ("motd_starting", &r.motd_starting)] {
            if motd.as_ref().is_some_and(|m| m.chars().count() > 256) {
                return Err((r.protocol.span(), key(&format!("responder.{name}")), format!("{name} is longer than 256 characters")));
            }
        }
        Ok(())
    }
}

impl WatchdogConfig {
    fn validate(&self, key: &dyn Fn(&str) -> String) -> Result<(), Refusal> {
        let threshold = *self.threshold;
        if !threshold.is_finite() || threshold < 0.0 {
            return Err((self.threshold.span(), key("threshold"), format!("threshold {threshold} must be a number of bytes per second >= 0")));
        }
        let p = self.period.as_millis();
        if !(p % 60_000 == 0 || [1000, 5000, 10_000, 30_000].contains(&p)) || p == 0 {
            return Err((self.period.span(), key("period"), format!("period {} is not one CloudWatch offers: use 1s, 5s, 10s, 30s or a multiple of 1m (EC2 detailed monitoring: 1m)", *self.period)));
        }
        if self.idle_after.0 < self.period.0 {
            return Err((self.idle_after.span(), key("idle_after"), format!("idle_after {} is shorter than one period ({})", *self.idle_after, *self.period)));
        }
        if self.left_up_after.0.is_zero() {
            let what = if self.left_up_stop { "stop every leaf the moment it wakes" } else { "alert on every wake" };
            return Err((self.left_up_after.span(), key("left_up_after"), format!("left_up_after 0s would {what}: give the longest a leaf may run (the default is 8h)")));
        }
        Ok(())
    }
}

impl LeafConfig {
    /// The leaf's name.
    pub fn name(&self) -> &LeafName {
        &self.name
    }

    /// The leaf's domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The ASG's name when the leaf has one.
    pub fn asg(&self) -> Option<&ResourceName> {
        self.asg.as_deref()
    }

    /// The ASG's desired capacity while awake.
    pub fn awake_instances(&self) -> i32 {
        self.awake_instances.as_ref().map_or(1, |n| i32::try_from(**n).unwrap_or(1))
    }

    /// A REPLICA service's desired count while awake.
    pub fn awake_tasks(&self) -> i32 {
        self.awake_tasks.as_ref().map_or(1, |n| i32::try_from(**n).unwrap_or(1))
    }

    /// Healthy targets that make the leaf ready (validated 1..=1000).
    pub fn ready_targets(&self) -> usize {
        usize::try_from(*self.ready_targets).unwrap_or(1)
    }

    /// The environment label, empty when none.
    pub fn env(&self) -> &str {
        self.env.as_ref().map_or("", LeafName::as_str)
    }

    /// The ECS (cluster, service) pair when configured.
    pub fn ecs(&self) -> Option<(&ResourceName, &ResourceName)> {
        Some((self.ecs_cluster.as_ref()?.get(), self.ecs_service.as_ref()?.get()))
    }

    /// The log group this leaf's queries are written to.
    pub fn log_group<'a>(&'a self, daemon: &'a DaemonConfig) -> &'a LogGroupName {
        self.query_log_group
            .as_ref()
            .or(daemon.query_log_group.as_ref())
            .expect("validated: every leaf has a query log group")
    }

    /// Record TTL in seconds (validated 1..=86400).
    pub fn dns_ttl(&self) -> i64 {
        *self.dns_ttl
    }

    /// The topics this leaf's alerts go to: the daemon's, then the leaf's own.
    pub fn alert_topics<'a>(&'a self, daemon: &'a DaemonConfig) -> Vec<&'a TopicArn> {
        let mut topics: Vec<&TopicArn> = daemon.alert_topic_arn.iter().collect();
        topics.extend(self.alert_topic_arn.iter().filter(|t| daemon.alert_topic_arn.as_ref() != Some(*t)));
        topics
    }
}

#[cfg(test)]
mod tests;
