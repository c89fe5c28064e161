//! The tail's promises, checked on batches of events without any network.

use std::collections::HashMap;

use super::*;

fn tail() -> GroupTail {
    let domains = HashMap::from([("mc.example.com".to_string(), "mc".to_string()), ("old-mc.example.com".to_string(), "old".to_string())]);
    GroupTail::new("/aws/route53/example.com".into(), domains)
}

fn line(at: &str, name: &str, qtype: &str) -> String {
    format!("1.0 {at} Z1 {name} {qtype} NOERROR UDP FRA6 192.0.2.1 -")
}

fn event(stream: &str, id: &str, ts: i64, message: String) -> LogEvent {
    LogEvent { stream: stream.into(), id: id.into(), timestamp: Timestamp(ts), message }
}

fn woken(out: &Ingested) -> Vec<&str> {
    out.woken.iter().map(|(l, _)| l.as_str()).collect()
}

const T: &str = "2026-11-23T10:00:00.000Z";
const NOW: Timestamp = Timestamp(1_795_428_000_000 + 5_000);

#[test]
fn only_an_a_query_for_the_exact_domain_wakes() {
    let mut t = tail();
    let mut s = State::default();
    let events = [
        event("FRA6", "0", 1, line(T, "mc.example.com", "AAAA")),
        event("FRA6", "1", 2, line(T, "_minecraft._tcp.mc.example.com", "SRV")),
        event("FRA6", "2", 3, line(T, "_tcp.mc.example.com", "A")),
        event("FRA6", "3", 4, line(T, "x.mc.example.com", "A")),
        event("FRA6", "4", 5, line(T, "example.com", "A")),
        event("FRA6", "5", 6, line(T, "MC.Example.COM", "A")),
    ];
    let out = t.ingest(&events, Timestamp(0), NOW, &mut s);
    assert_eq!(woken(&out), vec!["mc"]);
    assert_eq!(s.leafs["mc"].wake.as_ref().unwrap().edge, "FRA6");
}

#[test]
fn a_leaf_whose_name_shares_a_suffix_is_not_woken_by_the_other() {
    let mut t = tail();
    let mut s = State::default();
    let out = t.ingest(&[event("IAD", "0", 1, line(T, "old-mc.example.com", "A"))], Timestamp(0), NOW, &mut s);
    assert_eq!(woken(&out), vec!["old"]);
    assert!(!s.leafs.contains_key("mc"));
}

#[test]
fn an_event_read_again_is_not_acted_on_twice() {
    let mut t = tail();
    let mut s = State::default();
    let batch = [event("FRA6", "7", 10, line(T, "mc.example.com", "A"))];
    assert_eq!(t.ingest(&batch, Timestamp(0), NOW, &mut s).woken.len(), 1);
    s.leafs.get_mut("mc").unwrap().wake = None; // the reconciler acted on it
    let again = t.ingest(&batch, Timestamp(0), NOW, &mut s);
    assert_eq!((again.new, again.woken.len(), again.changed), (0, 0, false), "nothing to write either");
    assert!(s.leafs["mc"].wake.is_none());
}

#[test]
fn a_late_event_older_than_the_newest_still_wakes() {
    let mut t = tail();
    let mut s = State::default();
    t.ingest(&[event("FRA6", "0", 50_000, line(T, "example.com", "A"))], Timestamp(0), NOW, &mut s);
    let out = t.ingest(&[event("IAD", "0", 10_000, line(T, "mc.example.com", "A"))], Timestamp(0), NOW, &mut s);
    assert_eq!(woken(&out), vec!["mc"]);
}

#[test]
fn emulator_style_ids_repeat_across_streams_without_losing_events() {
    let mut t = tail();
    let mut s = State::default();
    let out = t.ingest(
        &[event("FRA6", "0", 1, line(T, "mc.example.com", "A")), event("IAD", "0", 1, line(T, "old-mc.example.com", "A"))],
        Timestamp(0),
        NOW,
        &mut s,
    );
    assert_eq!(out.woken.len(), 2);
}

#[test]
fn after_a_restart_the_same_events_do_not_wake_again() {
    let mut s = State::default();
    let batch = [event("FRA6", "0", 10, line(T, "mc.example.com", "A"))];
    tail().ingest(&batch, Timestamp(0), NOW, &mut s);
    s.leafs.get_mut("mc").unwrap().wake = None;
    let persisted: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    let mut s = persisted;
    let out = tail().ingest(&batch, Timestamp(0), NOW, &mut s);
    assert!(out.woken.is_empty());
    assert!(s.leafs["mc"].wake.is_none());
}

#[test]
fn a_wake_seen_but_not_acted_on_before_a_restart_is_still_pending() {
    let mut s = State::default();
    tail().ingest(&[event("FRA6", "0", 10, line(T, "mc.example.com", "A"))], Timestamp(0), NOW, &mut s);
    let s: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert!(s.leafs["mc"].wake.is_some());
}

#[test]
fn malformed_lines_are_counted_once_and_skipped() {
    let mut t = tail();
    let mut s = State::default();
    let batch = [event("FRA6", "0", 1, "garbage".into()), event("FRA6", "1", 2, line(T, "mc.example.com", "A"))];
    let out = t.ingest(&batch, Timestamp(0), NOW, &mut s);
    assert_eq!((out.new, out.malformed, out.woken.len()), (2, 1, 1));
    assert_eq!(t.ingest(&batch, Timestamp(0), NOW, &mut s).malformed, 0);
}

#[test]
fn the_first_read_after_downtime_reaches_back_to_the_last_read() {
    let mut s = State::default();
    let lookback = 120_000;
    s.tail.entry("/aws/route53/example.com".into()).or_default().read_until = Some(NOW.minus_ms(300_000));
    let mut t = tail();
    assert_eq!(t.window_start(&s, NOW, lookback), NOW.minus_ms(300_000 + lookback));
    t.ingest(&[], NOW.minus_ms(420_000), NOW, &mut s);
    assert_eq!(t.window_start(&s, NOW, lookback), NOW.minus_ms(lookback), "later reads slide");
}

#[test]
fn catch_up_is_bounded() {
    let mut s = State::default();
    s.tail.entry("/aws/route53/example.com".into()).or_default().read_until = Some(Timestamp(0));
    assert_eq!(tail().window_start(&s, NOW, 120_000), NOW.minus_ms(MAX_CATCH_UP_MS));
}

#[test]
fn memory_of_old_events_is_pruned() {
    let mut t = tail();
    let mut s = State::default();
    t.ingest(&[event("FRA6", "0", 1_000, line(T, "mc.example.com", "A"))], Timestamp(0), NOW, &mut s);
    t.ingest(&[], Timestamp(500_000), NOW, &mut s);
    assert!(s.tail["/aws/route53/example.com"].acted.is_empty());
    assert!(t.seen.is_empty());
}
