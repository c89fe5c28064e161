//! The shapes beyond one instance: a Fargate service, N instances behind a balancer,
//! a service with a scaling policy. Decided without any network.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::aws::asg::GroupInstance;
use crate::config::Config;
use crate::reconcile::capacity::Step;
use crate::state::Bounds;

fn leaf(keys: &str, watchdog: &str) -> LeafConfig {
    let text = format!(
        "[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n[[leaf]]\nname = \"web\"\ndomain = \"web.example.com\"\nhosted_zone_id = \"Z1\"\n{keys}\n[leaf.watchdog]\nthreshold = 1\n{watchdog}\n"
    );
    Config::parse(Path::new("t.toml"), &text).unwrap().leafs.remove(0)
}

fn fargate(extra: &str) -> LeafConfig {
    leaf(&format!("ecs_cluster = \"c\"\necs_service = \"web\"\n{extra}"), "traffic = \"service\"")
}

fn task(id: &str, ip: Option<[u8; 4]>, started: i64, running: bool) -> TaskSeen {
    TaskSeen { unit: Unit { id: id.into(), ip: ip.map(Ipv4Addr::from), launched_at: Some(Timestamp(started)) }, running }
}

fn service(desired: i32, scalable: Option<Bounds>) -> Service {
    Service { name: "web".into(), daemon: false, desired, scalable }
}

/// An observation of a leaf without an ASG.
fn seen<'a>(instances: &'a HashMap<String, Instance>, svc: Service, tasks: Vec<TaskSeen>, record: &[&str]) -> Observation<'a> {
    Observation {
        group: None,
        instances,
        record: Seen::Known(Some(ARecord { values: record.iter().map(|s| (*s).to_owned()).collect(), ttl: Some(1) })),
        service: ServiceSeen::Known(svc),
        tasks: Seen::Known(tasks),
        targets: None,
        traffic: None,
        stopped_tasks: &[],
        zone_holds_domain: Some(true),
    }
}

fn down() -> LeafState {
    LeafState { announced: Some(Announced::Down), ..LeafState::default() }
}

#[test]
fn a_fargate_service_is_woken_by_its_desired_count_and_dns_follows_its_task() {
    let leaf = fargate("");
    let none = HashMap::new();
    let mut state = down();
    state.request_wake(Timestamp(500), "FRA6");
    let plan = decide(&leaf, &seen(&none, service(0, None), vec![], &["0.0.0.0"]), &state, Timestamp(1000));
    assert_eq!(plan.actions.first(), Some(&Action::Wake { req: WakeRequest { query_at: Timestamp(500), edge: "FRA6".into() }, steps: vec![Step::ServiceDesired(1)] }));

    let mut state = down();
    state.woke_at = Some(Timestamp(1000));
    let pending = decide(&leaf, &seen(&none, service(1, None), vec![task("t1", None, 0, false)], &["0.0.0.0"]), &state, Timestamp(2000));
    assert_eq!(pending.phase, Phase::Waking, "a PENDING task serves nobody yet");
    let up = decide(&leaf, &seen(&none, service(1, None), vec![task("t1", Some([3, 4, 5, 6]), 1500, true)], &["0.0.0.0"]), &state, Timestamp(2000));
    assert_eq!(up.actions.first(), Some(&Action::PointRecord { ips: vec![Ipv4Addr::new(3, 4, 5, 6)], ttl: 1 }));
    assert!(
        up.actions.iter().any(|a| matches!(a, Action::Announce(Transition::Started { ips, .. }) if ips == &[Ipv4Addr::new(3, 4, 5, 6)])),
        "one starting alert with the task's IP: {up:?}"
    );
}

#[test]
fn dns_all_holds_every_serving_ip_sorted_and_dns_none_is_never_written() {
    let all = leaf("asg = \"a\"\nawake_instances = 2\ndns = \"all\"", "");
    let group = Group {
        name: "a".into(),
        desired: 2,
        min: 0,
        max: 2,
        policies: Some(false),
        instances: vec![GroupInstance { id: "i-b".into(), lifecycle: Lifecycle::InService }, GroupInstance { id: "i-a".into(), lifecycle: Lifecycle::InService }],
    };
    let mut instances = HashMap::new();
    instances.insert("i-a".to_owned(), Instance { id: "i-a".into(), public_ip: Some(Ipv4Addr::new(9, 9, 9, 9)), launched_at: Some(Timestamp(1)) });
    instances.insert("i-b".to_owned(), Instance { id: "i-b".into(), public_ip: Some(Ipv4Addr::new(1, 1, 1, 1)), launched_at: Some(Timestamp(2)) });
    let mut obs = seen(&instances, service(0, None), vec![], &["0.0.0.0"]);
    obs.group = Some(&group);
    obs.service = ServiceSeen::NotConfigured;
    let plan = decide(&all, &obs, &down(), Timestamp(10));
    assert_eq!(plan.actions.first(), Some(&Action::PointRecord { ips: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(9, 9, 9, 9)], ttl: 1 }));

    let alias = fargate("dns = \"none\"");
    let none = HashMap::new();
    for (desired, tasks) in [(0, vec![]), (1, vec![task("t1", None, 1, true)])] {
        let mut obs = seen(&none, service(desired, None), tasks, &[]);
        obs.record = Seen::Unknown;
        let plan = decide(&alias, &obs, &down(), Timestamp(10));
        assert!(!plan.actions.iter().any(|a| matches!(a, Action::PointRecord { .. })), "the alias is never touched: {plan:?}");
    }
    let mut obs = seen(&none, service(1, None), vec![task("t1", None, 1, true)], &[]);
    obs.record = Seen::Unknown;
    let plan = decide(&alias, &obs, &down(), Timestamp(10));
    assert!(matches!(plan.phase, Phase::Up { .. }), "a task without a public IP serves behind the balancer: {plan:?}");
}

#[test]
fn starting_waits_for_healthy_targets() {
    let leaf = fargate("awake_tasks = 2\ndns = \"none\"\ntarget_group_arns = [\"arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/web/1\"]\nready_targets = 2");
    let none = HashMap::new();
    let tasks = vec![task("t1", None, 5, true), task("t2", None, 6, true)];
    let mut state = down();
    state.woke_at = Some(Timestamp(4));
    let mut obs = seen(&none, service(2, None), tasks, &[]);
    obs.targets = Some(Health { healthy: 1, registered: 2 });
    let plan = decide(&leaf, &obs, &state, Timestamp(100));
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Announce(_))), "1 of 2 healthy: not ready: {plan:?}");
    assert_eq!(plan.unready_since, Some(Timestamp(5)), "unready since the tasks ran");
    obs.targets = Some(Health { healthy: 2, registered: 2 });
    let plan = decide(&leaf, &obs, &state, Timestamp(200));
    assert!(plan.actions.iter().any(|a| matches!(a, Action::Announce(Transition::Started { .. }))), "{plan:?}");
    assert_eq!(plan.unready_since, None);
}

#[test]
fn a_sleeping_leaf_whose_policy_could_scale_it_out_is_parked_and_a_wake_restores_it() {
    let leaf = fargate("dns = \"none\"");
    let none = HashMap::new();
    let policy = Bounds { min: 1, max: 10 };
    let plan = decide(&leaf, &seen(&none, service(0, Some(policy)), vec![], &[]), &down(), Timestamp(10));
    assert_eq!(plan.actions, vec![Action::Scale { steps: vec![Step::ServiceBounds(Bounds::PARKED)], park: Parked { asg: None, service: Some(policy) } }]);

    let mut state = down();
    plan.actions[0].record(&mut state, Timestamp(10));
    state.request_wake(Timestamp(20), "FRA6");
    let plan = decide(&leaf, &seen(&none, service(0, Some(Bounds::PARKED)), vec![], &[]), &state, Timestamp(30));
    let Some(Action::Wake { steps, .. }) = plan.actions.first() else { panic!("{plan:?}") };
    assert_eq!(steps, &vec![Step::ServiceBounds(policy), Step::ServiceDesired(1)]);
    plan.actions[0].record(&mut state, Timestamp(30));
    assert!(state.parked.is_empty(), "restored bounds are no longer recorded");
}

#[test]
fn a_restart_in_the_middle_of_a_stop_finishes_it_with_its_one_alert() {
    let leaf = fargate("dns = \"none\"");
    let none = HashMap::new();
    let policy = Bounds { min: 1, max: 10 };
    let mut sleep = Sleep::new(SleepCause::Idle, "idle".into(), Some("t1".into()), None);
    sleep.park = Parked { asg: None, service: Some(policy) };
    sleep.decided_at = Timestamp(40);
    // Written before the first call; the daemon died after parking the bounds.
    let mut state = LeafState { announced: Some(Announced::Up { instance: "t1".into() }), stopping: Some(sleep.clone()), parked: sleep.park, ..LeafState::default() };
    let obs = seen(&none, service(3, Some(Bounds::PARKED)), vec![task("t1", None, 1, true)], &[]);
    let plan = decide(&leaf, &obs, &state, Timestamp(50));
    assert_eq!(plan.actions, vec![Action::Sleep { sleep, steps: vec![Step::ServiceDesired(0)] }], "the rest of the stop, not a second decision");
    plan.actions[0].record(&mut state, Timestamp(50));
    assert_eq!(state.parked.service, Some(policy), "the recorded bounds survive for the next wake");
    let after = decide(&leaf, &seen(&none, service(0, Some(Bounds::PARKED)), vec![], &[]), &state, Timestamp(60));
    assert!(after.actions.is_empty(), "asleep, parked, announced: nothing more (no 'stopped' alert): {after:?}");
}

#[test]
fn one_of_several_units_replaced_is_no_news() {
    let leaf = fargate("awake_tasks = 2\ndns = \"all\"");
    let none = HashMap::new();
    let state = LeafState { announced: Some(Announced::Up { instance: "t-gone".into() }), ..LeafState::default() };
    let obs = seen(&none, service(2, None), vec![task("t2", Some([1, 1, 1, 2]), 2, true), task("t3", Some([1, 1, 1, 3]), 3, true)], &["1.1.1.2", "1.1.1.3"]);
    let plan = decide(&leaf, &obs, &state, Timestamp(10));
    assert_eq!(plan.actions, vec![Action::Adopt(Announced::Up { instance: "t3".into() })], "{plan:?}");
}

#[test]
fn a_resumed_stop_records_bounds_it_had_not_seen_and_keeps_its_decision_time() {
    let leaf = fargate("dns = \"none\"");
    let none = HashMap::new();
    let policy = Bounds { min: 1, max: 10 };
    // Decided at 40 while the scalable target was not known yet; its calls then failed.
    let mut sleep = Sleep::new(SleepCause::Idle, "idle".into(), Some("t1".into()), None);
    sleep.decided_at = Timestamp(40);
    let mut state = LeafState { announced: Some(Announced::Up { instance: "t1".into() }), stopping: Some(sleep), ..LeafState::default() };
    let plan = decide(&leaf, &seen(&none, service(2, Some(policy)), vec![task("t1", None, 1, true)], &[]), &state, Timestamp(90));
    let Some(Action::Sleep { sleep, steps }) = plan.actions.first() else { panic!("{plan:?}") };
    assert_eq!(sleep.park.service, Some(policy), "recorded before parking, or no wake could restore them");
    assert_eq!(steps.first(), Some(&Step::ServiceBounds(Bounds::PARKED)));
    plan.actions[0].record(&mut state, Timestamp(90));
    assert_eq!(state.slept.as_ref().map(|s| s.at), Some(Timestamp(40)), "a query at 50 (the daemon was down) still wakes it");
    assert_eq!(state.parked.service, Some(policy));
}

#[test]
fn an_operators_wake_abandons_a_stop_that_keeps_failing() {
    let leaf = fargate("");
    let none = HashMap::new();
    let mut state = down();
    state.stopping = Some(Sleep::new(SleepCause::Idle, "idle".into(), None, None));
    state.manual = Some(Manual::Wake { at: Timestamp(70) });
    let plan = decide(&leaf, &seen(&none, service(0, None), vec![], &["0.0.0.0"]), &state, Timestamp(80));
    assert_eq!(plan.actions.first(), Some(&Action::AbandonStop));
    assert!(plan.actions.iter().any(|a| matches!(a, Action::Wake { .. })), "{plan:?}");
}

#[test]
fn an_asg_whose_policies_are_not_read_yet_is_neither_stopped_nor_parked() {
    let leaf = leaf("asg = \"a\"", "");
    let group = Group { name: "a".into(), desired: 0, min: 0, max: 4, policies: None, instances: vec![] };
    let none = HashMap::new();
    let mut obs = seen(&none, service(0, None), vec![], &["0.0.0.0"]);
    obs.group = Some(&group);
    obs.service = ServiceSeen::NotConfigured;
    let plan = decide(&leaf, &obs, &down(), Timestamp(10));
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(plan.waiting_for, Some("the ASG's scaling policies to be read"));
    let known = Group { policies: Some(true), ..group.clone() };
    obs.group = Some(&known);
    let plan = decide(&leaf, &obs, &down(), Timestamp(10));
    assert!(matches!(plan.actions[..], [Action::Scale { .. }]), "once known, a sleeping ASG with policies is parked: {plan:?}");
}

#[test]
fn a_daemon_service_without_an_asg_is_not_woken_with_nothing() {
    let leaf = fargate("");
    let none = HashMap::new();
    let mut state = down();
    state.request_wake(Timestamp(5), "FRA6");
    let daemon = Service { daemon: true, ..service(0, None) };
    let plan = decide(&leaf, &seen(&none, daemon, vec![], &["0.0.0.0"]), &state, Timestamp(10));
    assert!(matches!(&plan.actions[0], Action::DropWake { why, notable: true, .. } if why.contains("DAEMON")), "{plan:?}");
}

#[test]
fn with_wake_on_dns_off_only_the_responder_or_an_operator_wakes() {
    let leaf = fargate("wake_on_dns = false");
    let none = HashMap::new();
    let asleep = || seen(&none, service(0, None), vec![], &["0.0.0.0"]);
    let mut state = down();
    state.request_wake(Timestamp(5), "FRA6");
    let plan = decide(&leaf, &asleep(), &state, Timestamp(10));
    assert!(matches!(&plan.actions[..], [Action::DropWake { .. }]), "a resolver is not a player: {plan:?}");
    let mut state = down();
    state.request_wake(Timestamp(5), &format!("{}login of Alex from 203.0.113.9", crate::state::RESPONDER));
    let plan = decide(&leaf, &asleep(), &state, Timestamp(10));
    assert!(matches!(plan.actions.first(), Some(Action::Wake { .. })), "a login is: {plan:?}");
}
