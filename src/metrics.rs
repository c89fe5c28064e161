//! A tiny process-wide metrics registry rendered in Prometheus text format.
//!
//! Counters and gauges are keyed by their full series text (`name{label="v"}`), so
//! recording is one map lookup and rendering is a sorted walk. Events write here and
//! log in the same function (see [`crate::events`]), so the two never drift.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

/// Series name -> (help text, kind) and series -> value.
#[derive(Default)]
struct Registry {
    help: BTreeMap<&'static str, (&'static str, &'static str)>,
    values: BTreeMap<String, f64>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut s = format!("{name}{{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s.push('}');
    s
}

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    // A panic while holding this lock cannot leave a counter half-written, so a
    // poisoned lock is still safe to use.
    let mut guard = REGISTRY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard)
}

/// Adds `by` to a counter.
pub fn count(name: &'static str, help: &'static str, labels: &[(&str, &str)], by: u64) {
    with(|r| {
        r.help.entry(name).or_insert((help, "counter"));
        #[allow(clippy::cast_precision_loss, reason = "counters stay far below 2^53")]
        let by = by as f64;
        *r.values.entry(series(name, labels)).or_insert(0.0) += by;
    });
}

/// Sets a gauge.
pub fn gauge(name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
    with(|r| {
        r.help.entry(name).or_insert((help, "gauge"));
        r.values.insert(series(name, labels), value);
    });
}

/// Drops every series with the label `key="value"` (a leaf that left the config).
pub fn forget(key: &str, value: &str) {
    let needle = series("", &[(key, value)]);
    let needle = needle.trim_start_matches('{').trim_end_matches('}').to_owned();
    with(|r| r.values.retain(|s, _| !s.split_once('{').is_some_and(|(_, labels)| labels.trim_end_matches('}').split(',').any(|l| l == needle))));
}

/// Reads one series (tests and `/status`); 0 when never recorded.
pub fn value(name: &str, labels: &[(&str, &str)]) -> f64 {
    with(|r| r.values.get(&series(name, labels)).copied().unwrap_or(0.0))
}

/// Prometheus text exposition of everything recorded so far.
pub fn render() -> String {
    with(|r| {
        let mut out = String::new();
        for (name, (help, kind)) in &r.help {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (s, v) in r.values.range(name.to_string()..) {
                let Some(rest) = s.strip_prefix(name) else { break };
                if rest.is_empty() || rest.starts_with('{') {
                    let _ = writeln!(out, "{s} {v}");
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        count("cm_test_total", "a test counter", &[("leaf", "a\"b")], 2);
        count("cm_test_total", "a test counter", &[("leaf", "a\"b")], 1);
        assert!((value("cm_test_total", &[("leaf", "a\"b")]) - 3.0).abs() < f64::EPSILON);
        let text = render();
        assert!(text.contains("# TYPE cm_test_total counter"), "{text}");
        assert!(text.contains("cm_test_total{leaf=\"a\\\"b\"} 3"), "{text}");
    }

    #[test]
    fn a_leaf_that_left_loses_its_series_and_no_other() {
        gauge("cm_test_phase", "a test gauge", &[("leaf", "gone"), ("phase", "up")], 1.0);
        gauge("cm_test_phase", "a test gauge", &[("leaf", "gone-too"), ("phase", "up")], 1.0);
        forget("leaf", "gone");
        let text = render();
        assert!(!text.contains("leaf=\"gone\","), "{text}");
        assert!(text.contains("leaf=\"gone-too\""), "{text}");
    }
}
