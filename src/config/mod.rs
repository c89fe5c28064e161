//! The `leafs.toml` file: what the operator wants, validated before anything touches AWS.
//!
//! Loading is two steps. Serde (with `deny_unknown_fields` and the checked types of
//! [`values`]) catches every per-value problem with its exact position; then
//! [`Config::validate`] checks what spans several values (duplicate names, a service
//! without its cluster). Either way the operator gets one [`ConfigError`] naming the
//! file, line and key, and `containerd` exits 2 without starting.

mod duration;
mod error;
mod values;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use duration::{parse_duration, DurationError, HumanDuration};
pub use error::ConfigError;
pub use values::{Domain, HostedZoneId, LeafName, LogGroupName, ResourceName, TopicArn};

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
    pub poll_interval: HumanDuration,
    /// How often AWS is read and converged even without a DNS query.
    #[serde(default = "defaults::reconcile_interval")]
    pub reconcile_interval: HumanDuration,
    /// How far back each poll re-reads the query log. CloudWatch Logs delivers lines
    /// late (up to ~30 s is reported) and out of order, so a cursor would lose them.
    #[serde(default = "defaults::query_log_lookback")]
    pub query_log_lookback: HumanDuration,
    /// Survives restarts: seen query-log events, pending wakes, alerts already sent.
    #[serde(default = "defaults::state_file")]
    pub state_file: PathBuf,
    /// HTTP endpoint for status and metrics.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Log every action without changing anything in AWS.
    #[serde(default)]
    pub dry_run: bool,
}

/// `[[leaf]]`: one container that sleeps until its domain is queried.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeafConfig {
    /// Short name used in logs, alerts and commands.
    pub name: Spanned<LeafName>,
    /// The name players connect to; an `A` query for exactly this name wakes the leaf.
    pub domain: Spanned<Domain>,
    /// Zone holding the leaf's A record.
    pub hosted_zone_id: HostedZoneId,
    /// The AutoScalingGroup (min 0, max 1) that runs the leaf's instance.
    pub asg: ResourceName,
    /// ECS cluster of `ecs_service`; both or neither.
    pub ecs_cluster: Option<Spanned<ResourceName>>,
    /// ECS service running the container; a REPLICA service is scaled with the instance.
    pub ecs_service: Option<Spanned<ResourceName>>,
    /// EFS file system whose reads are not player traffic (the watchdog subtracts them).
    pub efs: Option<ResourceName>,
    /// This leaf's alerts also go here.
    pub alert_topic_arn: Option<TopicArn>,
    /// This leaf's query-log group when its hosted zone logs to a group of its own.
    pub query_log_group: Option<LogGroupName>,
    /// TTL of the A record; 1 s so resolvers ask again (and so log a query) soon.
    #[serde(default = "defaults::dns_ttl")]
    pub dns_ttl: Spanned<i64>,
    /// Where the A record points while the leaf sleeps.
    #[serde(default = "defaults::idle_ip")]
    pub idle_ip: Ipv4Addr,
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
    pub threshold: Spanned<f64>,
    /// Length of one metric period.
    #[serde(default = "defaults::period")]
    pub period: HumanDuration,
    /// How long the leaf must be idle before it is scaled to zero.
    #[serde(default = "defaults::idle_after")]
    pub idle_after: Spanned<HumanDuration>,
    /// Alert once the instance has been up this long.
    #[serde(default = "defaults::left_up_after")]
    pub left_up_after: HumanDuration,
    /// Also scale down at `left_up_after`, not only alert.
    #[serde(default)]
    pub left_up_stop: bool,
}

/// `[leaf.crash_loop]`: stop paying for a container that keeps failing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoopConfig {
    /// Failed tasks within `window` that stop the leaf (1, as the original).
    #[serde(default = "defaults::max_failures")]
    pub max_failures: Spanned<i64>,
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
        usize::try_from(*self.max_failures.get_ref()).unwrap_or(1)
    }
}

mod defaults {
    use super::*;

    pub fn query_log_region() -> ResourceName {
        ResourceName::parse("us-east-1").expect("valid constant")
    }
    pub fn poll_interval() -> HumanDuration {
        HumanDuration::secs(1)
    }
    pub fn reconcile_interval() -> HumanDuration {
        HumanDuration::secs(5)
    }
    pub fn query_log_lookback() -> HumanDuration {
        HumanDuration::secs(120)
    }
    pub fn state_file() -> PathBuf {
        PathBuf::from("/var/lib/container-manager/state.json")
    }
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9477))
    }
    pub fn dns_ttl() -> Spanned<i64> {
        Spanned::new(0..0, 1)
    }
    pub fn idle_ip() -> Ipv4Addr {
        Ipv4Addr::UNSPECIFIED
    }
    pub fn period() -> HumanDuration {
        HumanDuration::secs(60)
    }
    pub fn idle_after() -> Spanned<HumanDuration> {
        Spanned::new(0..0, HumanDuration::secs(7 * 60))
    }
    pub fn left_up_after() -> HumanDuration {
        HumanDuration::secs(8 * 3600)
    }
    pub fn max_failures() -> Spanned<i64> {
        Spanned::new(0..0, 1)
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
    leafs: Vec<Spanned<LeafConfig>>,
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
        let config = Config {
            daemon: raw.daemon,
            leafs: raw.leafs.into_iter().map(Spanned::into_inner).collect(),
        };
        config.validate().map_err(|(span, key, msg)| ConfigError::at(path, text, span, key, msg))?;
        Ok(config)
    }

    /// Cross-field rules. Returns the offending span, key and message.
    fn validate(&self) -> Result<(), (std::ops::Range<usize>, String, String)> {
        let mut names: HashMap<&LeafName, usize> = HashMap::new();
        let mut domains: HashMap<&Domain, usize> = HashMap::new();
        for (i, leaf) in self.leafs.iter().enumerate() {
            let key = |k: &str| format!("leaf[{i}].{k}");
            if let Some(first) = names.insert(leaf.name.get_ref(), i) {
                return Err((leaf.name.span(), key("name"), format!("duplicate leaf name {:?} (also leaf[{first}])", leaf.name.get_ref().as_str())));
            }
            if let Some(first) = domains.insert(leaf.domain.get_ref(), i) {
                return Err((leaf.domain.span(), key("domain"), format!("duplicate domain {:?} (also leaf[{first}])", leaf.domain.get_ref().as_str())));
            }
            match (&leaf.ecs_cluster, &leaf.ecs_service) {
                (Some(c), None) => return Err((c.span(), key("ecs_cluster"), "ecs_cluster is set but ecs_service is missing: set both or neither".into())),
                (None, Some(s)) => return Err((s.span(), key("ecs_service"), "ecs_service is set but ecs_cluster is missing: set both or neither".into())),
                _ => {}
            }
            if leaf.query_log_group.is_none() && self.daemon.query_log_group.is_none() {
                return Err((leaf.name.span(), key("query_log_group"), "no query log group: set [daemon] query_log_group or this leaf's query_log_group".into()));
            }
            let ttl = *leaf.dns_ttl.get_ref();
            if !(1..=86_400).contains(&ttl) {
                return Err((leaf.dns_ttl.span(), key("dns_ttl"), format!("dns_ttl {ttl} must be between 1 and 86400 seconds (1 is best: resolvers ask again at once)")));
            }
            let wd = &leaf.watchdog;
            let threshold = *wd.threshold.get_ref();
            if !threshold.is_finite() || threshold < 0.0 {
                return Err((wd.threshold.span(), key("watchdog.threshold"), format!("threshold {threshold} must be a number of bytes per second >= 0")));
            }
            let p = wd.period.as_millis();
            if !(p % 60_000 == 0 || [1000, 5000, 10_000, 30_000].contains(&p)) || p == 0 {
                return Err((leaf.watchdog.threshold.span(), key("watchdog.period"), format!("period {} is not one CloudWatch offers: use 1s, 5s, 10s, 30s or a multiple of 1m (EC2 detailed monitoring: 1m)", wd.period)));
            }
            let failures = *leaf.crash_loop.max_failures.get_ref();
            if !(1..=1000).contains(&failures) {
                return Err((leaf.crash_loop.max_failures.span(), key("crash_loop.max_failures"), format!("max_failures {failures} must be between 1 and 1000")));
            }
            if wd.idle_after.get_ref().0 < wd.period.0 {
                return Err((wd.idle_after.span(), key("watchdog.idle_after"), format!("idle_after {} is shorter than one period ({})", wd.idle_after.get_ref(), wd.period)));
            }
        }
        for (key, d) in [("daemon.poll_interval", self.daemon.poll_interval), ("daemon.reconcile_interval", self.daemon.reconcile_interval)] {
            if d.0.as_millis() < 100 {
                return Err((0..0, key.into(), format!("{d} is too short: use at least 100ms")));
            }
        }
        if self.daemon.query_log_lookback.0 < self.daemon.poll_interval.0 {
            return Err((0..0, "daemon.query_log_lookback".into(), "query_log_lookback must be at least poll_interval".into()));
        }
        Ok(())
    }
}

impl LeafConfig {
    /// The leaf's name.
    pub fn name(&self) -> &LeafName {
        self.name.get_ref()
    }

    /// The leaf's domain.
    pub fn domain(&self) -> &Domain {
        self.domain.get_ref()
    }

    /// The ECS (cluster, service) pair when configured.
    pub fn ecs(&self) -> Option<(&ResourceName, &ResourceName)> {
        Some((self.ecs_cluster.as_ref()?.get_ref(), self.ecs_service.as_ref()?.get_ref()))
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
        *self.dns_ttl.get_ref()
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
