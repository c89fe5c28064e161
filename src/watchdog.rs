//! The traffic watchdog's pure judgement: is a running leaf idle?
//!
//! Activity of one period = max(0, NetworkIn - EFS DataReadIOBytes) / period seconds,
//! as the original's metric math; a period in which a DNS query for the leaf was logged
//! is active whatever the bytes. The leaf is idle when the last `idle_after / period`
//! complete periods are all at or below the threshold. A complete period without a
//! NetworkIn datapoint is never idle (as the original treats missing data), except
//! that the newest [`GRACE_PERIODS`] periods may still be waiting for CloudWatch to
//! deliver their datapoint: those are skipped, not judged. The period still being
//! filled is never judged.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::cloudwatch::SumQuery;
use crate::clock::Timestamp;
use crate::config::{LeafConfig, TrafficSource, WatchdogConfig};

/// EC2 detailed-monitoring datapoints arrive a minute or two after their period ends;
/// this many trailing periods without a datapoint are treated as "not delivered yet".
pub const GRACE_PERIODS: i64 = 2;

/// The metrics of a leaf's traffic source, first, then its EFS reads (with `efs`, for
/// sources that see them: a load balancer does not carry NFS reads).
///
/// - `instances`: AWS/EC2 NetworkIn of the ASG (EC2 detailed monitoring for 1-minute
///   periods);
/// - `load_balancer`: AWS/NetworkELB or AWS/ApplicationELB ProcessedBytes (free, 1-minute);
/// - `service`: ECS/ContainerInsights NetworkRxBytes of the service (Container Insights
///   must be on for the cluster; it is a rate, so its average is read and turned into
///   bytes per period by [`as_period_bytes`]).
pub fn queries(leaf: &LeafConfig) -> Vec<SumQuery> {
    let wd = &leaf.watchdog;
    let period_secs = i32::try_from(wd.period.as_millis() / 1000).unwrap_or(60).max(1);
    let source = match *wd.traffic {
        TrafficSource::Instances => {
            let asg = leaf.asg().map(ToString::to_string).unwrap_or_default();
            SumQuery { namespace: "AWS/EC2", metric: "NetworkIn", dimensions: vec![("AutoScalingGroupName", asg)], stat: "Sum", period_secs }
        }
        TrafficSource::LoadBalancer => {
            let lb = wd.load_balancer.as_ref().map(ToString::to_string).unwrap_or_default();
            let namespace = if lb.starts_with("app/") { "AWS/ApplicationELB" } else { "AWS/NetworkELB" };
            SumQuery { namespace, metric: "ProcessedBytes", dimensions: vec![("LoadBalancer", lb)], stat: "Sum", period_secs }
        }
        TrafficSource::Service => {
            let (cluster, service) = leaf.ecs().map(|(c, s)| (c.to_string(), s.to_string())).unwrap_or_default();
            SumQuery { namespace: "ECS/ContainerInsights", metric: "NetworkRxBytes", dimensions: vec![("ClusterName", cluster), ("ServiceName", service)], stat: "Average", period_secs }
        }
    };
    let mut queries = vec![source];
    if let Some(efs) = leaf.efs.as_ref().filter(|_| *wd.traffic != TrafficSource::LoadBalancer) {
        queries.push(SumQuery { namespace: "AWS/EFS", metric: "DataReadIOBytes", dimensions: vec![("FileSystemId", efs.to_string())], stat: "Sum", period_secs });
    }
    queries
}

/// Bytes per period from what `query` read: a rate (an `Average` of bytes/s) times the
/// period, a `Sum` as it is.
pub fn as_period_bytes(query: &SumQuery, values: BTreeMap<i64, f64>) -> BTreeMap<i64, f64> {
    if query.stat == "Sum" {
        return values;
    }
    let secs = f64::from(query.period_secs);
    values.into_iter().map(|(t, v)| (t, v * secs)).collect()
}

/// When a leaf judged `e` sleeps if from now on every period stays at or under the
/// threshold: the idle periods it still lacks, plus the periods CloudWatch delivers late.
pub fn sleeps_at(wd: &WatchdogConfig, e: &Evaluation, now: Timestamp) -> Option<Timestamp> {
    let period = wd.period.as_millis().max(1);
    let needed = (wd.idle_after.as_millis() + period - 1) / period;
    let streak = i64::try_from(e.idle_streak).unwrap_or(0);
    let missing = (needed - streak).max(0);
    Some(now.plus_ms(missing.saturating_add(GRACE_PERIODS).saturating_mul(period)))
}

/// Period sums read from CloudWatch, by period start (epoch ms).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    /// Bytes in per period from the leaf's traffic source (NetworkIn of the ASG, the
    /// load balancer's ProcessedBytes, or the service's NetworkRxBytes).
    pub network_in: BTreeMap<i64, f64>,
    /// AWS/EFS DataReadIOBytes, Sum, per period (empty without `efs`; a missing
    /// period means no reads).
    pub efs_read: BTreeMap<i64, f64>,
}

/// One judged period, for logs, alerts and `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// Period start.
    pub start: Timestamp,
    /// Player traffic in bytes/s; None when CloudWatch has no datapoint.
    pub bytes_per_s: Option<f64>,
}

/// What the watchdog concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Woken less than `idle_after` ago (or the window reaches before the wake).
    TooSoon,
    /// A DNS query was logged in the window or after it: someone is connecting.
    DnsActivity {
        /// The newest query.
        at: Timestamp,
    },
    /// A period has no datapoint: never judged idle.
    MissingData {
        /// Its start.
        period: Timestamp,
    },
    /// A period was above the threshold.
    Busy {
        /// The newest busy period.
        period: Period,
    },
    /// Every period of the window was at or below the threshold.
    Idle {
        /// How long that is, in milliseconds.
        idle_for_ms: i64,
    },
}

impl Verdict {
    /// Short name for `/status` and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::TooSoon => "too_soon",
            Verdict::DnsActivity { .. } => "dns_activity",
            Verdict::MissingData { .. } => "missing_data",
            Verdict::Busy { .. } => "busy",
            Verdict::Idle { .. } => "idle",
        }
    }
}

/// The verdict with the periods it looked at (newest last).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The conclusion.
    pub verdict: Verdict,
    /// The judged periods.
    pub periods: Vec<Period>,
    /// Consecutive idle periods at the end of the window (for tuning).
    pub idle_streak: usize,
}

impl Evaluation {
    /// Newest judged activity, for the metrics an operator tunes the threshold with.
    pub fn latest(&self) -> Option<f64> {
        self.periods.iter().rev().find_map(|p| p.bytes_per_s)
    }

    /// "12 B/s, 0 B/s, ..." for alerts and logs.
    pub fn figures(&self) -> String {
        let parts: Vec<String> = self.periods.iter().map(|p| p.bytes_per_s.map_or_else(|| "no data".into(), |b| format!("{b:.0} B/s"))).collect();
        parts.join(", ")
    }
}

/// Number of periods that make `idle_after`.
pub fn periods_needed(cfg: &WatchdogConfig) -> i64 {
    let p = cfg.period.as_millis().max(1);
    (cfg.idle_after.get().as_millis() + p - 1) / p
}

/// The time range to read from CloudWatch for an evaluation at `now`: the window plus
/// the grace periods, aligned to period boundaries. (start, end) in epoch ms.
pub fn fetch_range(cfg: &WatchdogConfig, now: Timestamp) -> (Timestamp, Timestamp) {
    let p = cfg.period.as_millis().max(1);
    let end = now.0.div_euclid(p) * p;
    (Timestamp(end - (periods_needed(cfg) + GRACE_PERIODS) * p), Timestamp(end))
}

/// Judges a running leaf. `awake_since` is when it was woken or its instance launched;
/// `last_query_at` the newest DNS query seen for its domain.
pub fn evaluate(cfg: &WatchdogConfig, traffic: &Traffic, last_query_at: Option<Timestamp>, awake_since: Option<Timestamp>, now: Timestamp) -> Evaluation {
    let p = cfg.period.as_millis().max(1);
    let n = periods_needed(cfg);
    let (_, end) = fetch_range(cfg, now);
    let mut last = end.0;
    for _ in 0..GRACE_PERIODS {
        if traffic.network_in.contains_key(&(last - p)) {
            break;
        }
        last -= p;
    }
    let first = last - n * p;
    #[allow(clippy::cast_precision_loss, reason = "periods are far below 2^52 ms")]
    let secs = p as f64 / 1000.0;
    let periods: Vec<Period> = (0..n)
        .map(|k| {
            let start = first + k * p;
            let bytes_per_s = traffic.network_in.get(&start).map(|net| {
                let efs = traffic.efs_read.get(&start).copied().unwrap_or(0.0);
                (net - efs).max(0.0) / secs
            });
            Period { start: Timestamp(start), bytes_per_s }
        })
        .collect();
    let threshold = *cfg.threshold.get();
    let idle_streak = periods.iter().rev().take_while(|p| p.bytes_per_s.is_some_and(|b| b <= threshold)).count();
    let verdict = if awake_since.is_none_or(|t| t.0 > first || now.since(t) < cfg.idle_after.get().as_millis()) {
        Verdict::TooSoon
    } else if let Some(at) = last_query_at.filter(|t| t.0 >= first) {
        Verdict::DnsActivity { at }
    } else if let Some(missing) = periods.iter().find(|p| p.bytes_per_s.is_none()) {
        Verdict::MissingData { period: missing.start }
    } else if let Some(busy) = periods.iter().rev().find(|p| p.bytes_per_s.is_some_and(|b| b > threshold)) {
        Verdict::Busy { period: busy.clone() }
    } else {
        Verdict::Idle { idle_for_ms: n * p }
    };
    Evaluation { verdict, periods, idle_streak }
}

#[cfg(test)]
mod tests;
