//! The tail's promises, checked on batches of events without any network.

use std::collections::HashMap;

use super::window::{sweep_every_ms, Chunk, MAX_CHUNK_MS};
use super::*;
use crate::aws::logs::LogEvent;
use crate::state::State;

const GROUP: &str = "/aws/route53/example.com";
const LOOKBACK: i64 = 120_000;
/// 2026-11-23T10:00:05Z.
const NOW: Timestamp = Timestamp(1_795_428_005_000);

fn tail() -> GroupTail {
    let domains = HashMap::from([("mc.example.com".to_string(), "mc".to_string()), ("old-mc.example.com".to_string(), "old".to_string())]);
    GroupTail::new(GROUP.into(), domains)
}

fn line(at: Timestamp, name: &str, qtype: &str) -> String {
    format!("1.0 {} Z1 {name} {qtype} NOERROR UDP FRA6 192.0.2.1 -", at.rfc3339())
}

/// An event whose line is stamped with its own time, ingested `delay_ms` later.
fn event(stream: &str, id: &str, at: Timestamp, delay_ms: i64, message: String) -> LogEvent {
    LogEvent { stream: stream.into(), id: id.into(), timestamp: at, ingestion: Some(at.plus_ms(delay_ms)), message }
}

fn query(id: &str, at: Timestamp, name: &str) -> LogEvent {
    event("FRA6", id, at, 500, line(at, name, "A"))
}

fn woken(out: &window::Folded) -> Vec<&str> {
    out.woken.iter().map(|(l, _)| l.as_str()).collect()
}

fn head(t: &mut GroupTail, events: &[LogEvent], s: &mut State) -> window::Folded {
    t.fold(Pass::Head, events, NOW.minus_ms(LOOKBACK), NOW, s)
}

#[test]
fn only_an_a_query_for_the_exact_domain_wakes() {
    let mut t = tail();
    let mut s = State::default();
    let at = NOW.minus_ms(1_000);
    let events = [
        event("FRA6", "0", at, 0, line(at, "mc.example.com", "AAAA")),
        event("FRA6", "1", at, 0, line(at, "_minecraft._tcp.mc.example.com", "SRV")),
        event("FRA6", "2", at, 0, line(at, "_tcp.mc.example.com", "A")),
        event("FRA6", "3", at, 0, line(at, "x.mc.example.com", "A")),
        event("FRA6", "4", at, 0, line(at, "example.com", "A")),
        event("FRA6", "5", at, 0, line(at, "MC.Example.COM", "A")),
    ];
    let out = head(&mut t, &events, &mut s);
    assert_eq!(woken(&out), vec!["mc"]);
    assert_eq!(s.leafs["mc"].wake.as_ref().unwrap().edge, "FRA6");
}

#[test]
fn a_leaf_whose_name_shares_a_suffix_is_not_woken_by_the_other() {
    let mut t = tail();
    let mut s = State::default();
    let out = head(&mut t, &[query("0", NOW.minus_ms(1_000), "old-mc.example.com")], &mut s);
    assert_eq!(woken(&out), vec!["old"]);
    assert!(!s.leafs.contains_key("mc"));
}

#[test]
fn an_event_read_by_the_head_and_again_by_the_sweep_is_acted_on_once() {
    let mut t = tail();
    let mut s = State::default();
    let batch = [query("7", NOW.minus_ms(1_000), "mc.example.com")];
    assert_eq!(head(&mut t, &batch, &mut s).woken.len(), 1);
    s.leafs.get_mut("mc").unwrap().wake = None; // the reconciler acted on it
    let again = head(&mut t, &batch, &mut s);
    assert_eq!((again.woken.len(), again.changed), (0, false), "nothing to write either");
    let swept = t.fold(Pass::Sweep, &batch, NOW.minus_ms(LOOKBACK), NOW.plus_ms(LOOKBACK), &mut s);
    assert_eq!((swept.woken.len(), swept.found_by_sweep), (0, 0));
    assert!(s.leafs["mc"].wake.is_none());
}

#[test]
fn a_late_event_older_than_the_newest_still_wakes() {
    let mut t = tail();
    let mut s = State::default();
    head(&mut t, &[query("0", NOW.minus_ms(500), "example.com")], &mut s);
    let out = head(&mut t, &[event("IAD", "0", NOW.minus_ms(40_000), 39_000, line(NOW.minus_ms(40_000), "mc.example.com", "A"))], &mut s);
    assert_eq!(woken(&out), vec!["mc"]);
}

#[test]
fn emulator_style_ids_repeat_across_streams_without_losing_events() {
    let mut t = tail();
    let mut s = State::default();
    let at = NOW.minus_ms(1_000);
    let out = head(&mut t, &[event("FRA6", "0", at, 0, line(at, "mc.example.com", "A")), event("IAD", "0", at, 0, line(at, "old-mc.example.com", "A"))], &mut s);
    assert_eq!(out.woken.len(), 2);
}

#[test]
fn after_a_restart_the_same_events_do_not_wake_again() {
    let mut s = State::default();
    let batch = [query("0", NOW.minus_ms(1_000), "mc.example.com")];
    head(&mut tail(), &batch, &mut s);
    s.leafs.get_mut("mc").unwrap().wake = None;
    let mut s: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    let out = head(&mut tail(), &batch, &mut s);
    assert!(out.woken.is_empty());
    assert!(s.leafs["mc"].wake.is_none());
}

#[test]
fn a_wake_seen_but_not_acted_on_before_a_restart_is_still_pending() {
    let mut s = State::default();
    head(&mut tail(), &[query("0", NOW.minus_ms(1_000), "mc.example.com")], &mut s);
    let s: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert!(s.leafs["mc"].wake.is_some());
}

#[test]
fn malformed_lines_are_counted_by_the_sweep_once_and_skipped() {
    let mut t = tail();
    let mut s = State::default();
    let at = NOW.minus_ms(200_000);
    let batch = [event("FRA6", "0", at, 0, "garbage".into()), query("1", at, "mc.example.com")];
    assert_eq!(t.fold(Pass::Head, &batch, at, NOW, &mut s).malformed, 0, "the head re-reads lines: it does not count them");
    let out = t.fold(Pass::Sweep, &batch, at, NOW, &mut s);
    assert_eq!((out.events, out.malformed), (2, 1));
}

#[test]
fn regression_a_line_from_2099_is_neither_a_wake_nor_a_query_time() {
    let mut t = tail();
    let mut s = State::default();
    let in_2099 = Timestamp(4_102_444_800_000);
    // Ingested now, stamped now, but the line itself says 2099.
    let bogus = event("FRA6", "9", NOW.minus_ms(1_000), 0, line(in_2099, "mc.example.com", "A"));
    let out = head(&mut t, std::slice::from_ref(&bogus), &mut s);
    assert_eq!((out.woken.len(), out.bad_time), (0, 1));
    assert!(s.leafs.get("mc").is_none_or(|l| l.last_query_at.is_none() && l.wake.is_none()));
    assert_eq!(head(&mut t, &[bogus], &mut s).bad_time, 0, "counted once, not once per read");
}

#[test]
fn a_line_stamped_long_before_the_window_read_is_refused() {
    let mut t = tail();
    let mut s = State::default();
    let ancient = NOW.minus_ms(3_600_000);
    let out = head(&mut t, &[event("FRA6", "1", NOW.minus_ms(1_000), 0, line(ancient, "mc.example.com", "A"))], &mut s);
    assert_eq!((out.woken.len(), out.bad_time), (0, 1));
}

#[test]
fn a_host_clock_behind_aws_does_not_turn_real_queries_into_future_ones() {
    let mut t = tail();
    let mut s = State::default();
    // Our clock says NOW; AWS stamped and ingested the query five minutes later.
    let aws_now = NOW.plus_ms(300_000);
    let out = head(&mut t, &[event("FRA6", "2", aws_now, 100, line(aws_now, "mc.example.com", "A"))], &mut s);
    assert_eq!(woken(&out), vec!["mc"], "ingestion time is AWS's own clock: the line is believable");
}

#[test]
fn the_head_window_is_the_lookback_when_filtered_and_the_measured_delay_when_not() {
    let mut t = tail();
    assert!(t.pattern().is_some());
    assert_eq!(t.head_window_ms(LOOKBACK, NOW), LOOKBACK);
    let many: HashMap<String, String> = (0..300).map(|i| (format!("leaf-{i}.example.com"), format!("l{i}"))).collect();
    t.set_domains(many);
    assert!(t.pattern().is_none(), "300 names do not fit in one pattern");
    assert_eq!(t.head_window_ms(LOOKBACK, NOW), LOOKBACK, "no delay measured yet: be safe");
    let mut s = State::default();
    t.fold(Pass::Head, &[event("FRA6", "0", NOW.minus_ms(20_000), 16_000, "x".into())], NOW.minus_ms(LOOKBACK), NOW, &mut s);
    assert_eq!(t.head_window_ms(LOOKBACK, NOW), 16_000 + 4_000 + 2_000, "delay + a quarter + 2 s");
    assert_eq!(t.head_window_ms(LOOKBACK, NOW.plus_ms(11 * 60_000)), LOOKBACK, "delays are forgotten after ten minutes");
}

#[test]
fn the_sweep_reads_closed_chunks_once_and_resumes_after_a_restart() {
    let mut t = tail();
    let mut s = State::default();
    assert_eq!(t.sweep_chunk(&s, NOW, LOOKBACK), None, "a fresh start has nothing closed to sweep yet");
    let later = NOW.plus_ms(sweep_every_ms(LOOKBACK));
    let chunk = t.sweep_chunk(&s, later, LOOKBACK).cloned().unwrap();
    assert_eq!(chunk, Chunk { from: NOW.minus_ms(LOOKBACK), until: later.minus_ms(LOOKBACK), token: None });
    assert!(!t.sweep_page_done(Some("page2".into()), &mut s, later), "a chunk with more pages stays open");
    assert_eq!(t.sweep_chunk(&s, later, LOOKBACK).and_then(|c| c.token.clone()).as_deref(), Some("page2"));
    t.sweep_page_done(None, &mut s, later);
    assert_eq!(s.tail[GROUP].swept_until, Some(chunk.until));
    assert_eq!(t.sweep_chunk(&s, later, LOOKBACK), None, "nothing more is closed");

    // Down for an hour: the next run catches up at most 15 minutes, in bounded chunks.
    let back = later.plus_ms(3_600_000);
    let mut restarted = tail();
    let first = restarted.sweep_chunk(&s, back, LOOKBACK).cloned().unwrap();
    assert_eq!(first.from, back.minus_ms(MAX_CATCH_UP_MS));
    assert_eq!(first.until.since(first.from), MAX_CHUNK_MS);
}

#[test]
fn state_written_before_the_sweep_resumes_one_lookback_before_its_last_read() {
    let mut s = State::default();
    s.tail.entry(GROUP.into()).or_default().read_until = Some(NOW.minus_ms(300_000));
    assert_eq!(tail().swept_until(&s, NOW, LOOKBACK), NOW.minus_ms(300_000 + LOOKBACK));
}

#[test]
fn a_query_the_filtered_head_should_have_returned_switches_the_filter_off() {
    let mut t = tail();
    let mut s = State::default();
    let at = NOW.minus_ms(10_000);
    t.head_complete(NOW.minus_ms(LOOKBACK), NOW); // a complete filtered read that returned nothing
    let late_by_sweep = t.fold(Pass::Sweep, &[query("5", at, "mc.example.com")], at, NOW.plus_ms(200_000), &mut s);
    assert_eq!((late_by_sweep.found_by_sweep, late_by_sweep.woken.len()), (1, 1), "still a wake: nothing is lost");
    assert!(t.filter_off.is_some() && t.pattern().is_none(), "the filter is not trusted any more");
}

#[test]
fn a_query_delivered_after_the_last_head_read_is_no_filter_miss() {
    let mut t = tail();
    let mut s = State::default();
    let at = NOW.minus_ms(10_000);
    t.head_complete(NOW.minus_ms(LOOKBACK), at.minus_ms(1)); // the head read before it was ingested
    t.fold(Pass::Sweep, &[query("6", at, "mc.example.com")], at, NOW.plus_ms(200_000), &mut s);
    assert!(t.filter_off.is_none());
}

#[test]
fn memory_of_old_events_is_pruned() {
    let mut t = tail();
    let mut s = State::default();
    head(&mut t, &[query("0", NOW.minus_ms(1_000), "mc.example.com")], &mut s);
    assert_eq!(s.tail[GROUP].acted.len(), 1);
    let later = NOW.plus_ms(400_000);
    s.tail.get_mut(GROUP).unwrap().swept_until = Some(later.minus_ms(LOOKBACK));
    assert!(t.prune(&mut s, later, LOOKBACK));
    assert!(s.tail[GROUP].acted.is_empty());
}
