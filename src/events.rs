//! One function per thing that happens: each writes its log line and its metric, so
//! what the logs say and what `/metrics` counts never drift apart.

use std::time::Duration;

use crate::aws::AwsError;
use crate::metrics::count;

/// True at most once per `every` for `key`: noisy warnings (one per bad line of a busy
/// log) are logged now and then, while their counters count every one.
fn now_and_then(key: &str, every: Duration) -> bool {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static LAST: LazyLock<Mutex<HashMap<String, std::time::Instant>>> = LazyLock::new(Mutex::default);
    let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = std::time::Instant::now();
    match last.get(key) {
        Some(t) if now.duration_since(*t) < every => false,
        _ => {
            last.insert(key.to_owned(), now);
            true
        }
    }
}

/// A worker is stuck and systemd's watchdog is no longer fed: said at once, then once
/// a minute while it lasts.
pub fn loop_stuck(why: &str) {
    if now_and_then("loop stuck", Duration::from_secs(60)) {
        tracing::error!(why, "a loop is stuck: not feeding the systemd watchdog");
    }
}

/// A query-log line did not parse; it is skipped.
pub fn malformed_line(group: &str, stream: &str, line: &str, why: &dyn std::fmt::Display) {
    count("cm_query_log_malformed_total", "Query-log lines that did not parse and were skipped", &[("group", group)], 1);
    if now_and_then(&format!("malformed {group}"), Duration::from_secs(10)) {
        let line: String = line.chars().take(200).collect();
        tracing::warn!(group, stream, line = %line, cause = %why, "skipping malformed query-log line (cm_query_log_malformed_total counts them all)");
    }
}

/// A leaf query whose own time cannot be right (`future`, or `before_window`): it is
/// neither a wake nor a query time.
pub fn query_time_refused(group: &str, leaf: &str, query_at: crate::clock::Timestamp, why: &'static str) {
    count("cm_query_log_bad_time_total", "Leaf queries refused because their own time is in the future or before the window read", &[("group", group), ("why", why)], 1);
    if now_and_then(&format!("bad time {group} {why}"), Duration::from_secs(10)) {
        tracing::warn!(group, leaf, %query_at, why, "ignoring a query-log line whose time cannot be right (cm_query_log_bad_time_total counts them all)");
    }
}

/// A page of the query log was read.
pub fn query_log_read(group: &str, pass: &'static str, lines: usize, delay_ms: Option<i64>) {
    count("cm_query_log_lines_total", "Query-log lines read, by read (head: newest, filtered; sweep: every line once)", &[("group", group), ("pass", pass)], lines as u64);
    count("cm_query_log_pages_total", "FilterLogEvents pages read, by read", &[("group", group), ("pass", pass)], 1);
    if let Some(d) = delay_ms {
        #[allow(clippy::cast_precision_loss, reason = "milliseconds of delay fit an f64 exactly")]
        crate::metrics::gauge("cm_query_log_delivery_delay_seconds", "Largest delivery delay (ingestion minus event time) of the last minutes", &[("group", group)], d as f64 / 1000.0);
    }
}

/// The sweep found leaf queries no head read had returned (delivered late, or missed).
pub fn found_by_sweep(group: &str, n: usize) {
    count("cm_query_log_found_by_sweep_total", "Leaf queries first found by the sweep, not the head", &[("group", group)], n as u64);
    tracing::info!(group, queries = n, "the sweep found leaf queries the head had not read (delivered later than the head window)");
}

/// The filtered head missed a query: the filter is off for this run.
pub fn filter_switched_off(group: &str, why: &str) {
    count("cm_query_log_filter_off_total", "Filter patterns switched off after they missed a query", &[("group", group)], 1);
    tracing::error!(group, why, "the query-log filter missed a query; reading this group unfiltered from now on (wakes may slow down on a busy zone)");
}

/// A poll skipped a read because the FilterLogEvents budget was spent.
pub fn tail_rate_limited(group: &str, pass: &'static str) {
    count("cm_tail_rate_limited_total", "Reads skipped because the FilterLogEvents budget was spent", &[("group", group), ("pass", pass)], 1);
    tracing::debug!(group, pass, "FilterLogEvents budget spent; reading next poll");
}

/// A read failed; the group's reads wait (doubling, with jitter).
pub fn tail_backoff(group: &str, error: &AwsError, wait: Duration, failures: u32) {
    count("cm_tail_backoffs_total", "Query-log reads that failed and made the group back off", &[("group", group), ("kind", error.kind.label())], 1);
    tracing::warn!(group, error = %error, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), failures, "query-log read failed; backing off");
}

/// A DNS query for a leaf's domain was seen for the first time.
pub fn query_seen(leaf: &str, query_at: crate::clock::Timestamp, edge: &str, lag_ms: i64, asleep: bool, pass: &'static str) {
    count("cm_dns_queries_total", "A queries seen for each leaf's domain", &[("leaf", leaf)], 1);
    if asleep {
        tracing::info!(leaf, %query_at, edge, lag_ms, pass, "DNS query for sleeping leaf: wake requested");
    } else {
        tracing::debug!(leaf, %query_at, edge, lag_ms, pass, "DNS query for leaf");
    }
}

/// An action was applied (or would have been, in dry run).
pub fn action(leaf: &str, env: Option<&str>, kind: &'static str, what: &str, why: &str, dry_run: bool) {
    count("cm_actions_total", "Actions applied by kind", &[("leaf", leaf), ("kind", kind)], 1);
    if dry_run {
        tracing::info!(leaf, env, action = kind, dry_run, "would {what}: {why}");
    } else {
        tracing::info!(leaf, env, action = kind, "{what}: {why}");
    }
}

/// The leaf's static labels (environment, domain) as an info metric: dashboards join
/// it on `leaf` to group every per-leaf series by environment.
pub fn leaf_info(leaf: &str, env: &str, domain: &str) {
    crate::metrics::gauge("cm_leaf_info", "One per leaf: its environment and domain (join on leaf)", &[("leaf", leaf), ("env", env), ("domain", domain)], 1.0);
}

/// An action failed; it is retried next tick.
pub fn action_failed(leaf: &str, kind: &'static str, error: &AwsError) {
    count("cm_action_errors_total", "Actions that failed, by kind", &[("leaf", leaf), ("kind", kind)], 1);
    tracing::warn!(leaf, action = kind, error = %error, "action failed; retrying next tick");
}

/// An alert was decided and queued for publishing.
pub fn alert_queued(leaf: &str, kind: &str, subject: &str) {
    count("cm_alerts_total", "Alerts decided, by leaf and kind", &[("leaf", leaf), ("kind", kind)], 1);
    if kind != "problem" || now_and_then("problem alerts", Duration::from_secs(10)) {
        tracing::info!(leaf, alert = kind, subject, "alert");
    }
}

/// An alert could not be published to a topic and will not be retried.
pub fn alert_dropped(alert_id: &str, topic: &str, why: &str) {
    count("cm_alerts_dropped_total", "Alert deliveries given up", &[("topic", topic)], 1);
    if now_and_then(&format!("alert dropped {topic}"), Duration::from_secs(10)) {
        tracing::error!(alert_id, topic, why, "alert not delivered (cm_alerts_dropped_total counts them all)");
    }
}

/// The outbox after a round of publishing.
pub fn outbox_size(queued: usize) {
    #[allow(clippy::cast_precision_loss, reason = "the outbox holds at most a thousand alerts")]
    crate::metrics::gauge("cm_outbox_alerts", "Alerts waiting to be published", &[], queued as f64);
}

/// A stopped task counted as a failure by the crash-loop breaker.
pub fn task_failed(leaf: &str, what: &str) {
    count("cm_task_failures_total", "Stopped ECS tasks counted as failures", &[("leaf", leaf)], 1);
    tracing::warn!(leaf, "task failed: {what}");
}

/// Traffic metrics were read for a leaf.
pub fn traffic_read(leaf: &str, datapoints: usize) {
    count("cm_traffic_reads_total", "Watchdog metric reads per leaf (GetMetricData queries)", &[("leaf", leaf)], 1);
    tracing::debug!(leaf, datapoints, "traffic read");
}

/// The watchdog judged a leaf: the figures an operator tunes the threshold with.
pub fn watchdog_evaluated(leaf: &str, threshold: f64, evaluation: &crate::watchdog::Evaluation) {
    use crate::metrics::gauge;
    gauge("cm_leaf_threshold_bytes_per_second", "The leaf's idle threshold", &[("leaf", leaf)], threshold);
    if let Some(latest) = evaluation.latest() {
        gauge("cm_leaf_activity_bytes_per_second", "Player traffic of the newest judged period", &[("leaf", leaf)], latest);
    }
    #[allow(clippy::cast_precision_loss, reason = "a streak is a handful of periods")]
    gauge("cm_leaf_idle_periods", "Consecutive idle periods at the end of the window", &[("leaf", leaf)], evaluation.idle_streak as f64);
    tracing::debug!(leaf, threshold, idle_streak = evaluation.idle_streak, verdict = ?evaluation.verdict, periods = %evaluation.figures(), "watchdog");
}

/// A log group was read; the lag is now minus the newest event seen in it.
pub fn tail_polled(group: &str, newest: Option<crate::clock::Timestamp>, now: crate::clock::Timestamp) {
    use crate::metrics::gauge;
    if let Some(newest) = newest {
        #[allow(clippy::cast_precision_loss, reason = "milliseconds of lag fit an f64 exactly")]
        gauge("cm_tail_lag_seconds", "Now minus the newest query-log event seen, per log group", &[("group", group)], now.since(newest) as f64 / 1000.0);
    }
    count("cm_tail_polls_total", "Query-log reads per log group", &[("group", group)], 1);
}

/// SIGHUP re-read the config (error: it was refused and the old one keeps running).
pub fn config_reloaded(path: &std::path::Path, leafs: usize, added: &[&String], removed: &[&String], error: Option<&str>) {
    let outcome = if error.is_some() { "refused" } else { "applied" };
    count("cm_config_reloads_total", "SIGHUP config reloads by outcome", &[("outcome", outcome)], 1);
    match error {
        None => tracing::info!(path = %path.display(), leafs, ?added, ?removed, "config reloaded"),
        Some(e) => tracing::error!(path = %path.display(), error = e, "config reload refused; the previous config keeps running"),
    }
}

/// A problem an operator must fix appeared (alerted once).
pub fn problem_raised(leaf: &str, key: &str, text: &str) {
    count("cm_problems_total", "Problems raised (alerted once each)", &[("leaf", leaf), ("problem", key)], 1);
    crate::metrics::gauge("cm_leaf_problem", "1 while the problem is open", &[("leaf", leaf), ("problem", key)], 1.0);
    if now_and_then(&format!("problem {key}"), Duration::from_secs(10)) {
        tracing::error!(leaf, problem = key, "{text} (cm_leaf_problem lists every leaf with it)");
    }
}

/// A problem is fixed.
pub fn problem_cleared(leaf: &str, key: &str) {
    crate::metrics::gauge("cm_leaf_problem", "1 while the problem is open", &[("leaf", leaf), ("problem", key)], 0.0);
    tracing::info!(leaf, problem = key, "problem resolved");
}

/// An alert was delivered to a topic.
pub fn alert_published(alert_id: &str, topic: &str) {
    count("cm_alerts_published_total", "Alert deliveries SNS accepted", &[("topic", topic)], 1);
    tracing::debug!(alert_id, topic, "alert published");
}

/// An alert was sent but its answer was lost: not repeated (it may have been delivered).
pub fn alert_uncertain(alert_id: &str, topic: &str, why: &str) {
    count("cm_alerts_uncertain_total", "Alert deliveries whose answer was lost (not repeated)", &[("topic", topic)], 1);
    tracing::warn!(alert_id, topic, why, "alert sent but unconfirmed; not repeated so it cannot arrive twice");
}

/// The HTTP listener could not accept a connection (out of descriptors, say).
pub fn http_accept_failed(error: &std::io::Error, in_a_row: u32) {
    count("cm_http_accept_errors_total", "Connections the HTTP listener could not accept", &[], 1);
    if now_and_then("http accept", Duration::from_secs(10)) {
        tracing::warn!(error = %error, in_a_row, "HTTP accept failed; backing off");
    }
}

/// An HTTP connection was turned away (`busy`: every slot taken) or cut (`timeout`).
pub fn http_connection_refused(why: &'static str) {
    count("cm_http_connections_refused_total", "HTTP connections turned away (busy) or cut (timeout)", &[("why", why)], 1);
    if now_and_then(&format!("http {why}"), Duration::from_secs(10)) {
        tracing::warn!(why, "HTTP connection turned away or cut (cm_http_connections_refused_total counts them all)");
    }
}

/// A connection (or datagram) reached the responder.
pub fn responder_connection(protocol: &str) {
    count("cm_responder_connections_total", "Connections and datagrams that reached the responder, by protocol", &[("protocol", protocol)], 1);
}

/// The responder turned a connection away, or let it go unanswered.
pub fn responder_refused(reason: &str) {
    count("cm_responder_refused_total", "Connections the responder refused or dropped, by reason (busy, rate, share, evicted, allow, unknown_host, deadline, accept_error)", &[("reason", reason)], 1);
}

/// A client sent bytes that are not the protocol: counted and dropped.
pub fn responder_malformed(why: &str) {
    count("cm_responder_refused_total", "Connections the responder refused or dropped, by reason (busy, rate, share, evicted, allow, unknown_host, deadline, accept_error)", &[("reason", "malformed")], 1);
    if now_and_then("responder malformed", Duration::from_secs(10)) {
        tracing::info!(why, "responder: malformed packet dropped");
    }
}

/// The responder asked for a leaf to wake.
pub fn responder_wake(leaf: &str, what: &str, from: &str) {
    count("cm_responder_wakes_total", "Wake requests made by the responder, by leaf", &[("leaf", leaf)], 1);
    tracing::info!(leaf, from, what, "responder: a client asks the sleeping leaf to wake");
}

/// Time a leaf was up, counted pass by pass.
pub fn leaf_up(leaf: &str, ms: i64) {
    count("cm_leaf_up_seconds_total", "Seconds each leaf has served (counted while up)", &[("leaf", leaf)], u64::try_from(ms / 1000).unwrap_or(0));
}
