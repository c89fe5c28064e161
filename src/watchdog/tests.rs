//! The watchdog's edges, judged with a fake clock: period 60 s, idle after 3 periods,
//! threshold 1000 B/s (60,000 bytes per period).

use std::path::Path;

use super::*;
use crate::config::Config;

const P: i64 = 60_000;

fn cfg(threshold: f64) -> WatchdogConfig {
    let text = format!(
        "[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"a\"\n[leaf.watchdog]\nthreshold = {threshold}\nperiod = \"1m\"\nidle_after = \"3m\"\n"
    );
    Config::parse(Path::new("t.toml"), &text).unwrap().leafs.remove(0).watchdog
}

/// now is 30 s into period 100; the complete periods are 99, 98, ...
const NOW: Timestamp = Timestamp(100 * P + 30_000);
const AWAKE: Option<Timestamp> = Some(Timestamp(90 * P));

fn traffic(bytes: &[(i64, f64)]) -> Traffic {
    Traffic { network_in: bytes.iter().map(|&(k, b)| (k * P, b)).collect(), efs_read: BTreeMap::new() }
}

fn judge(t: &Traffic) -> Verdict {
    evaluate(&cfg(1000.0), t, None, AWAKE, NOW).verdict
}

#[test]
fn exactly_the_threshold_is_idle_one_byte_over_is_not() {
    let at = traffic(&[(97, 60_000.0), (98, 60_000.0), (99, 60_000.0)]);
    assert_eq!(judge(&at), Verdict::Idle { idle_for_ms: 3 * P });
    let over = traffic(&[(97, 60_000.0), (98, 60_001.0), (99, 60_000.0)]);
    assert!(matches!(judge(&over), Verdict::Busy { period } if period.start == Timestamp(98 * P)));
}

#[test]
fn a_period_without_a_datapoint_is_never_idle() {
    let hole = traffic(&[(96, 0.0), (97, 0.0), (99, 0.0)]);
    assert_eq!(judge(&hole), Verdict::MissingData { period: Timestamp(98 * P) });
}

#[test]
fn the_newest_periods_may_still_be_waiting_for_their_datapoint() {
    // CloudWatch has not delivered 98 and 99 yet: the window slides back to 95..97.
    let late = traffic(&[(95, 0.0), (96, 0.0), (97, 0.0)]);
    let e = evaluate(&cfg(1000.0), &late, None, AWAKE, NOW);
    assert_eq!(e.verdict, Verdict::Idle { idle_for_ms: 3 * P });
    assert_eq!(e.periods.last().unwrap().start, Timestamp(97 * P));
    // ...but not further: three missing trailing periods are missing data.
    let later = traffic(&[(94, 0.0), (95, 0.0), (96, 0.0)]);
    assert!(matches!(judge(&later), Verdict::MissingData { .. }));
}

#[test]
fn the_period_still_being_filled_is_not_judged() {
    // Period 100 is in progress: a huge value there changes nothing.
    let t = traffic(&[(97, 0.0), (98, 0.0), (99, 0.0), (100, 1e12)]);
    assert_eq!(judge(&t), Verdict::Idle { idle_for_ms: 3 * P });
}

#[test]
fn a_dns_query_inside_an_otherwise_idle_window_keeps_it_up() {
    let quiet = traffic(&[(97, 0.0), (98, 0.0), (99, 0.0)]);
    let q = Timestamp(98 * P + 10);
    assert_eq!(evaluate(&cfg(1000.0), &quiet, Some(q), AWAKE, NOW).verdict, Verdict::DnsActivity { at: q });
    // A query in the period still being filled counts too: a player is arriving.
    let now_q = Some(Timestamp(100 * P + 5));
    assert!(matches!(evaluate(&cfg(1000.0), &quiet, now_q, AWAKE, NOW).verdict, Verdict::DnsActivity { .. }));
    // One from before the window does not.
    let old = Some(Timestamp(90 * P));
    assert!(matches!(evaluate(&cfg(1000.0), &quiet, old, AWAKE, NOW).verdict, Verdict::Idle { .. }));
}

#[test]
fn efs_reads_are_not_players_and_never_make_activity_negative() {
    let mut t = traffic(&[(97, 500_000.0), (98, 500_000.0), (99, 100.0)]);
    t.efs_read = [(97 * P, 490_000.0), (98 * P, 480_000.0), (99 * P, 9_000_000.0)].into_iter().collect();
    let e = evaluate(&cfg(1000.0), &t, None, AWAKE, NOW);
    assert_eq!(e.verdict, Verdict::Idle { idle_for_ms: 3 * P });
    assert_eq!(e.periods.last().unwrap().bytes_per_s, Some(0.0));
    assert!((e.periods[1].bytes_per_s.unwrap() - 20_000.0 / 60.0).abs() < 1e-9);
}

#[test]
fn a_leaf_woken_less_than_idle_after_ago_is_not_judged() {
    let quiet = traffic(&[(97, 0.0), (98, 0.0), (99, 0.0)]);
    let just_woken = Some(Timestamp(98 * P));
    assert_eq!(evaluate(&cfg(1000.0), &quiet, None, just_woken, NOW).verdict, Verdict::TooSoon);
    assert_eq!(evaluate(&cfg(1000.0), &quiet, None, None, NOW).verdict, Verdict::TooSoon);
}

#[test]
fn the_idle_streak_counts_from_the_newest_period() {
    let t = traffic(&[(97, 1e9), (98, 0.0), (99, 0.0)]);
    let e = evaluate(&cfg(1000.0), &t, None, AWAKE, NOW);
    assert_eq!(e.idle_streak, 2);
    assert_eq!(e.figures(), "16666667 B/s, 0 B/s, 0 B/s");
}

#[test]
fn the_same_inputs_after_a_restart_give_the_same_verdict() {
    let t = traffic(&[(97, 0.0), (98, 0.0), (99, 0.0)]);
    assert_eq!(evaluate(&cfg(1000.0), &t, None, AWAKE, NOW), evaluate(&cfg(1000.0), &t.clone(), None, AWAKE, NOW));
}

#[test]
fn the_fetch_range_covers_the_window_and_the_grace_periods() {
    assert_eq!(fetch_range(&cfg(1.0), NOW), (Timestamp(95 * P), Timestamp(100 * P)));
}
