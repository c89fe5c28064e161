//! Scenarios of the wake path, decided without any network: a small in-memory world
//! stands for what AWS would answer, and applying the plan changes it as AWS would.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::aws::asg::GroupInstance;
use crate::reconcile::capacity::Step;
use crate::config::Config;
use crate::crashloop::ContainerExit;

const IP: Ipv4Addr = Ipv4Addr::new(54, 1, 2, 3);

fn leaf(ecs: bool) -> LeafConfig {
    leaf_with(ecs, "")
}

/// A leaf whose `[leaf.watchdog]` has `extra` lines after the threshold (1175 B/s).
fn leaf_with(ecs: bool, extra: &str) -> LeafConfig {
    let ecs = if ecs { "ecs_cluster = \"mc\"\necs_service = \"mc\"\n" } else { "" };
    let text = format!(
        "[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"mc-asg\"\n{ecs}[leaf.watchdog]\nthreshold = 1175\n{extra}\n"
    );
    Config::parse(Path::new("t.toml"), &text).unwrap().leafs.remove(0)
}

/// What AWS holds for one leaf, and the daemon's memory of it.
struct World {
    group: Group,
    instances: HashMap<String, Instance>,
    record: Option<ARecord>,
    service: Option<Service>,
    traffic: Option<Traffic>,
    tasks: Vec<StoppedTask>,
    zone_holds_domain: Option<bool>,
    state: LeafState,
    alerts: Vec<String>,
    now: Timestamp,
}

impl World {
    fn asleep(ecs: Option<bool>) -> Self {
        World {
            group: Group { name: "mc-asg".into(), desired: 0, min: 0, max: 1, policies: Some(false), instances: vec![] },
            instances: HashMap::new(),
            record: Some(ARecord { values: vec!["0.0.0.0".into()], ttl: Some(1) }),
            service: ecs.map(|daemon| Service { name: "mc".into(), daemon, desired: 0, scalable: None }),
            traffic: None,
            tasks: vec![],
            zone_holds_domain: Some(true),
            state: LeafState { announced: Some(Announced::Down), ..LeafState::default() },
            alerts: vec![],
            now: Timestamp(1_000_000),
        }
    }

    /// A sleeping leaf that a DNS query (at 500 ms) woke, converged.
    fn woken(leaf: &LeafConfig, ecs: Option<bool>) -> Self {
        let mut w = World::asleep(ecs);
        w.state.request_wake(Timestamp(500), "FRA6");
        w.converge(leaf);
        w
    }

    fn observe(&self) -> Observation<'_> {
        Observation {
            group: Some(&self.group),
            instances: &self.instances,
            record: Seen::Known(self.record.clone()),
            service: self.service.clone().map_or(ServiceSeen::NotConfigured, ServiceSeen::Known),
            tasks: Seen::Known(Vec::new()),
            targets: None,
            traffic: self.traffic.as_ref(),
            stopped_tasks: &self.tasks,
            zone_holds_domain: self.zone_holds_domain,
        }
    }

    fn decide(&self, leaf: &LeafConfig) -> Plan {
        decide(leaf, &self.observe(), &self.state, self.now)
    }

    /// Applies a plan as AWS would (instances launch at once, as on moto).
    fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            match action {
                Action::Wake { steps, .. } | Action::Scale { steps, .. } => self.steps(steps),
                Action::Sleep { sleep, steps } => {
                    self.steps(steps);
                    self.alerts.push(sleep.cause.as_str().to_owned());
                }
                Action::PointRecord { ips, ttl } => self.record = Some(ARecord { values: ips.iter().map(ToString::to_string).collect(), ttl: Some(*ttl) }),
                Action::Announce(t) => self.alerts.push(kind(t).to_owned()),
                Action::DropWake { .. } | Action::Adopt(_) | Action::NoteTasks { .. } | Action::EndQuarantine | Action::ForgetManual { .. } | Action::ForgetParked(_) | Action::AbandonStop => {}
            }
            action.record(&mut self.state, self.now);
        }
    }

    /// Capacity calls as AWS would take them (an instance launches at once, as on moto).
    fn steps(&mut self, steps: &[Step]) {
        for step in steps {
            match *step {
                Step::AsgDesired(0) | Step::AsgBounds { desired: 0, .. } => self.scale_to_zero(),
                Step::AsgDesired(_) | Step::AsgBounds { .. } => {
                    self.group.desired = 1;
                    let n = self.group.instances.len() + 1;
                    self.launch(&format!("i-{n}"), Some(IP), self.now.0);
                }
                Step::ServiceDesired(n) => self.service.as_mut().unwrap().desired = n,
                Step::ServiceBounds(b) => self.service.as_mut().unwrap().scalable = Some(b),
            }
        }
    }

    fn launch(&mut self, id: &str, ip: Option<Ipv4Addr>, launched: i64) {
        self.group.instances.push(GroupInstance { id: id.into(), lifecycle: Lifecycle::InService });
        self.instances.insert(id.into(), Instance { id: id.into(), public_ip: ip, launched_at: Some(Timestamp(launched)) });
    }

    fn scale_to_zero(&mut self) {
        self.group.desired = 0;
        self.group.instances.clear();
    }

    /// Decides and applies until nothing is left to do; returns the number of ticks.
    fn converge(&mut self, leaf: &LeafConfig) -> usize {
        for tick in 1..10 {
            let plan = self.decide(leaf);
            if plan.actions.is_empty() {
                return tick;
            }
            self.apply(&plan);
        }
        panic!("did not converge");
    }
}

fn kind(t: &Transition) -> &'static str {
    match t {
        Transition::Started { .. } => "started",
        Transition::Stopped { .. } => "stopped",
        Transition::LeftUp { .. } => "left_up",
    }
}

fn query(at: i64) -> WakeRequest {
    WakeRequest { query_at: Timestamp(at), edge: "FRA6".into() }
}

#[test]
fn a_dns_query_wakes_a_sleeping_leaf_first_thing() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.state.request_wake(Timestamp(500), "FRA6");
    let plan = w.decide(&leaf);
    assert_eq!(plan.actions.first(), Some(&Action::Wake { req: query(500), steps: vec![Step::AsgDesired(1)] }));
}

#[test]
fn a_woken_leaf_gets_its_record_its_service_and_one_starting_alert() {
    let leaf = leaf(true);
    let w = World::woken(&leaf, Some(false));
    assert_eq!(w.record, Some(ARecord { values: vec!["54.1.2.3".into()], ttl: Some(1) }));
    assert_eq!(w.service.as_ref().unwrap().desired, 1);
    assert_eq!(w.alerts, vec!["started"]);
    assert_eq!(w.state.woken_by, Some(query(500)));
    assert!(w.decide(&leaf).actions.is_empty(), "a second look changes nothing");
}

#[test]
fn scaling_to_zero_resets_dns_and_service_with_one_stopped_alert() {
    let leaf = leaf(true);
    let mut w = World::woken(&leaf, Some(false));
    w.scale_to_zero();
    w.converge(&leaf);
    assert_eq!(w.record, Some(ARecord { values: vec!["0.0.0.0".into()], ttl: Some(1) }));
    assert_eq!(w.service.as_ref().unwrap().desired, 0);
    assert_eq!(w.alerts, vec!["started", "stopped"]);
}

#[test]
fn a_daemon_service_is_never_given_a_desired_count() {
    let leaf = leaf(true);
    let mut w = World::woken(&leaf, Some(true));
    w.scale_to_zero();
    w.converge(&leaf);
    assert_eq!(w.service.as_ref().unwrap().desired, 0);
    assert_eq!(w.alerts.len(), 2);
}

#[test]
fn a_query_for_a_leaf_already_waking_makes_no_second_wake() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.group.desired = 1;
    w.state.request_wake(Timestamp(500), "FRA6");
    let plan = w.decide(&leaf);
    assert_eq!(plan.actions, vec![Action::DropWake { query_at: Timestamp(500), why: "the ASG already wants an instance".into(), notable: false }]);
}

#[test]
fn an_asg_with_max_zero_is_not_woken() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.group.max = 0;
    w.state.request_wake(Timestamp(500), "FRA6");
    assert!(matches!(w.decide(&leaf).actions[..], [Action::DropWake { .. }]));
}

#[test]
fn a_launching_instance_leaves_dns_alone() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.group.desired = 1;
    w.group.instances.push(GroupInstance { id: "i-1".into(), lifecycle: Lifecycle::Pending });
    let plan = w.decide(&leaf);
    assert_eq!(plan.phase, Phase::Waking);
    assert!(plan.actions.is_empty());
}

#[test]
fn an_in_service_instance_without_public_ip_is_not_up() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.group.desired = 1;
    w.launch("i-1", None, 10);
    assert_eq!(w.decide(&leaf).phase, Phase::Waking);
}

#[test]
fn with_two_instances_dns_follows_the_newest() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.group.desired = 1;
    w.launch("i-old", Some(Ipv4Addr::new(1, 1, 1, 1)), 10);
    w.launch("i-new", Some(IP), 20);
    let phase = w.decide(&leaf).phase;
    assert_eq!(phase.instance(), Some("i-new"));
    assert_eq!(phase.newest().and_then(|u| u.ip), Some(IP));
}

#[test]
fn a_running_leafs_record_is_written_without_waiting_to_read_it() {
    // Regression: at 1,000 leafs after a restart, a woken leaf waited ~43 s for its
    // turn in the record-read budget before DNS followed.
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.group.desired = 1;
    w.launch("i-1", Some(IP), 10);
    let mut obs = w.observe();
    obs.record = Seen::Unknown;
    let plan = decide(&leaf, &obs, &w.state, Timestamp(0));
    assert_eq!(plan.actions.first(), Some(&Action::PointRecord { ips: vec![IP], ttl: 1 }), "{plan:?}");
    assert!(matches!(plan.actions.last(), Some(Action::Announce(Transition::Started { .. }))), "the alert follows the write in order");
}

#[test]
fn an_asleep_leaf_with_an_unknown_record_waits_for_the_read() {
    let leaf = leaf(false);
    let w = World::asleep(None);
    let mut obs = w.observe();
    obs.record = Seen::Unknown;
    let plan = decide(&leaf, &obs, &w.state, Timestamp(0));
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(plan.waiting_for, Some("the A record to be read"));
}

#[test]
fn a_first_sight_adopts_silently() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.state.announced = None;
    w.group.desired = 1;
    w.launch("i-1", Some(IP), 10);
    w.record = Some(ARecord { values: vec![IP.to_string()], ttl: Some(1) });
    w.converge(&leaf);
    assert!(w.alerts.is_empty());
    assert_eq!(w.state.announced, Some(Announced::Up { instance: "i-1".into() }));
}

#[test]
fn a_missing_asg_changes_nothing() {
    let leaf = leaf(false);
    let w = World::asleep(None);
    let mut obs = w.observe();
    obs.group = None;
    let plan = decide(&leaf, &obs, &w.state, Timestamp(0));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.waiting_for, Some("the ASG to exist"));
}

#[test]
fn a_replaced_instance_is_announced_down_then_up() {
    let leaf = leaf(false);
    let mut w = World::woken(&leaf, None);
    w.group.instances.clear(); // the instance died; desired stays 1
    w.converge(&leaf);
    w.launch("i-2", Some(Ipv4Addr::new(9, 9, 9, 9)), 30);
    w.converge(&leaf);
    assert_eq!(w.alerts, vec!["started", "stopped", "started"]);
    assert_eq!(w.record.unwrap().values, vec!["9.9.9.9".to_string()]);
}

#[test]
fn restart_after_every_action_never_repeats_an_alert() {
    // A restart keeps the persisted LeafState and rereads AWS: deciding from any
    // intermediate world must finish the job with exactly one alert per transition.
    let leaf = leaf(true);
    for stop_after in 0..6 {
        let mut w = World::asleep(Some(false));
        w.state.request_wake(Timestamp(500), "FRA6");
        let mut done = 0;
        'outer: for _ in 0..5 {
            let plan = w.decide(&leaf);
            for action in &plan.actions {
                if done == stop_after {
                    break 'outer; // killed here; the state of the earlier actions persisted
                }
                w.apply(&Plan { phase: plan.phase.clone(), actions: vec![action.clone()], waiting_for: None, evaluation: None, unready_since: None });
                done += 1;
            }
        }
        w.converge(&leaf);
        assert_eq!(w.alerts.len(), 1, "stop after {stop_after} actions: {:?}", w.alerts);
        assert_eq!(w.group.desired, 1);
    }
}

const MIN: i64 = 60_000;

/// A watchdog of 1-minute periods, idle after 3 minutes.
fn fast_leaf(extra: &str) -> LeafConfig {
    leaf_with(true, &format!("period = \"1m\"\nidle_after = \"3m\"\n{extra}"))
}

impl World {
    /// Wakes the leaf at minute `at` and converges.
    fn woken_at(leaf: &LeafConfig, at: i64) -> Self {
        let mut w = World::asleep(Some(false));
        w.now = Timestamp(at * MIN);
        w.state.request_wake(w.now, "FRA6");
        w.converge(leaf);
        w
    }

    /// Woken at minute 10, silent since: stopped as idle at minute 14 (clock left there).
    fn stopped_idle(leaf: &LeafConfig) -> Self {
        let mut w = World::woken_at(leaf, 10);
        w.at_minute(14, 0.0);
        let plan = w.decide(leaf);
        assert!(plan.actions.iter().any(|a| matches!(a, Action::Sleep { .. })), "an idle stop: {plan:?}");
        w.apply(&plan);
        w
    }

    /// Moves the clock to minute `at` with `bytes` per period of NetworkIn since the wake.
    fn at_minute(&mut self, at: i64, bytes: f64) {
        self.now = Timestamp(at * MIN + 30_000);
        let mut t = Traffic::default();
        for m in 0..at {
            t.network_in.insert(m * MIN, bytes);
        }
        self.traffic = Some(t);
    }
}

#[test]
fn a_stopping_instance_gets_the_idle_record_at_once_and_no_alert_yet() {
    let leaf = leaf(true);
    let mut w = World::woken(&leaf, Some(false));
    w.group.desired = 0; // an operator scaled it down; the instance is still terminating
    let plan = w.decide(&leaf);
    assert_eq!(plan.phase, Phase::Stopping { instance: "i-1".into() });
    assert_eq!(plan.actions, vec![Action::PointRecord { ips: vec![Ipv4Addr::UNSPECIFIED], ttl: 1 }, Action::Scale { steps: vec![Step::ServiceDesired(0)], park: Parked::default() }]);
}

#[test]
fn an_idle_leaf_is_stopped_with_one_alert_saying_why() {
    let leaf = fast_leaf("");
    let mut w = World::woken_at(&leaf, 10);
    w.at_minute(14, 100.0);
    let plan = w.decide(&leaf);
    let Some(Action::Sleep { sleep: s, .. }) = plan.actions.last() else { panic!("{plan:?}") };
    assert_eq!(s.cause, SleepCause::Idle);
    assert!(s.detail.contains("idle for 3m") && s.detail.contains("2 B/s"), "{}", s.detail);
    w.apply(&plan);
    w.converge(&leaf);
    assert_eq!(w.alerts, vec!["started", "idle"], "the idle alert is the stop's only alert");
    assert_eq!(w.record.as_ref().unwrap().values, vec!["0.0.0.0".to_string()]);
    assert_eq!(w.service.as_ref().unwrap().desired, 0);
}

#[test]
fn a_busy_leaf_stays_up() {
    let leaf = fast_leaf("");
    let mut w = World::woken_at(&leaf, 10);
    w.at_minute(20, 1175.0 * 60.0 + 1.0);
    let plan = w.decide(&leaf);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(matches!(plan.evaluation.unwrap().verdict, Verdict::Busy { .. }));
}

#[test]
fn a_leaf_woken_less_than_idle_after_ago_is_not_judged_idle() {
    let leaf = fast_leaf("");
    let mut w = World::woken_at(&leaf, 10);
    w.at_minute(12, 0.0);
    assert!(w.decide(&leaf).actions.is_empty());
}

#[test]
fn a_query_while_the_leaf_is_stopping_wakes_it_again() {
    let leaf = fast_leaf("");
    let mut w = World::stopped_idle(&leaf);
    // The player is back a second after the decision.
    w.now = w.now.plus_ms(1000);
    w.state.request_wake(w.now, "FRA6");
    assert!(matches!(w.decide(&leaf).actions.first(), Some(Action::Wake { .. })));
}

#[test]
fn a_late_query_from_before_the_sleep_decision_does_not_wake() {
    let leaf = fast_leaf("");
    let mut w = World::stopped_idle(&leaf);
    let decided = w.now;
    w.state.request_wake(decided.minus_ms(5_000), "FRA6");
    let plan = w.decide(&leaf);
    assert!(matches!(&plan.actions[0], Action::DropWake { notable: true, .. }), "{plan:?}");
}

#[test]
fn left_up_alerts_once_and_keeps_running() {
    let leaf = fast_leaf("left_up_after = \"1h\"");
    let mut w = World::woken_at(&leaf, 10);
    w.now = Timestamp(71 * MIN);
    w.converge(&leaf);
    w.now = Timestamp(72 * MIN);
    w.converge(&leaf);
    assert_eq!(w.alerts, vec!["started", "left_up"]);
    assert_eq!(w.group.desired, 1);
}

#[test]
fn left_up_with_stop_scales_down() {
    let leaf = fast_leaf("left_up_after = \"1h\"\nleft_up_stop = true");
    let mut w = World::woken_at(&leaf, 10);
    w.now = Timestamp(71 * MIN);
    w.converge(&leaf);
    assert_eq!(w.alerts, vec!["started", "left_up"]);
    assert_eq!(w.group.desired, 0);
    assert_eq!(w.state.slept.as_ref().map(|s| s.cause), Some(SleepCause::LeftUp));
}

fn crashed(arn: &str, at_min: i64) -> StoppedTask {
    StoppedTask {
        arn: format!("arn:aws:ecs:us-west-2:1:task/mc/{arn}"),
        stop_code: Some("EssentialContainerExited".into()),
        stopped_reason: Some("Essential container in task exited".into()),
        stopped_at: Some(Timestamp(at_min * MIN)),
        containers: vec![ContainerExit { name: "game".into(), exit_code: Some(1), reason: None, essential: true }],
    }
}

#[test]
fn a_crash_stops_the_leaf_and_quarantines_it_until_the_cooldown_ends() {
    let leaf = leaf_with(true, "[leaf.crash_loop]\ncooldown = \"30m\"");
    let mut w = World::woken_at(&leaf, 10);
    w.now = Timestamp(11 * MIN);
    w.tasks = vec![crashed("t1", 11)];
    w.converge(&leaf);
    assert_eq!(w.alerts, vec!["started", "crash_loop"]);
    assert_eq!(w.group.desired, 0);
    assert_eq!(w.record.as_ref().unwrap().values, vec!["0.0.0.0".to_string()]);
    let q = w.state.quarantine.clone().expect("quarantined");
    assert_eq!(q.until, Timestamp(41 * MIN));
    assert!(q.detail.contains("t1") && q.detail.contains("exit code 1"), "{}", q.detail);

    // A player during the cooldown: no wake, and the same crashed task is not recounted.
    w.now = Timestamp(20 * MIN);
    w.state.request_wake(w.now, "FRA6");
    w.converge(&leaf);
    assert_eq!(w.group.desired, 0, "quarantined");
    assert!(w.state.wake.is_none());

    // After it: the next query wakes it.
    w.now = Timestamp(42 * MIN);
    w.state.request_wake(w.now, "FRA6");
    w.converge(&leaf);
    assert_eq!(w.group.desired, 1);
    assert!(w.state.quarantine.is_none());
    assert_eq!(w.alerts, vec!["started", "crash_loop", "started"]);
}

#[test]
fn crashes_count_only_inside_the_window_and_each_task_once_across_restarts() {
    let leaf = leaf_with(true, "[leaf.crash_loop]\nmax_failures = 2\nwindow = \"15m\"");
    let mut w = World::woken_at(&leaf, 10);
    w.now = Timestamp(11 * MIN);
    w.tasks = vec![crashed("t1", 11)];
    w.converge(&leaf);
    // Restart: the state goes through the state file, the task is listed again.
    w.state = serde_json::from_str(&serde_json::to_string(&w.state).unwrap()).unwrap();
    w.now = Timestamp(12 * MIN);
    w.converge(&leaf);
    assert_eq!(w.group.desired, 1, "one failure, counted once, is below max_failures 2");
    // A second failure 20 minutes later: the first is outside the window.
    w.now = Timestamp(31 * MIN);
    w.tasks.push(crashed("t2", 31));
    w.converge(&leaf);
    assert_eq!(w.group.desired, 1);
    w.tasks.push(crashed("t3", 32));
    w.now = Timestamp(32 * MIN);
    w.converge(&leaf);
    assert_eq!(w.group.desired, 0, "t2 and t3 within 15 minutes");
}

#[test]
fn a_restart_between_the_idle_decision_and_its_effect_decides_the_same() {
    let leaf = fast_leaf("");
    let mut w = World::woken_at(&leaf, 10);
    w.at_minute(14, 0.0);
    let before = w.decide(&leaf);
    w.state = serde_json::from_str(&serde_json::to_string(&w.state).unwrap()).unwrap();
    assert_eq!(w.decide(&leaf).actions, before.actions);
}

#[test]
fn an_operator_wake_overrides_the_quarantine() {
    let leaf = leaf_with(true, "[leaf.crash_loop]\ncooldown = \"30m\"");
    let mut w = World::woken_at(&leaf, 10);
    w.now = Timestamp(11 * MIN);
    w.tasks = vec![crashed("t1", 11)];
    w.converge(&leaf);
    assert!(w.state.quarantine.is_some());
    w.now = Timestamp(12 * MIN);
    w.state.manual = Some(crate::state::Manual::Wake { at: w.now });
    w.converge(&leaf);
    assert_eq!(w.group.desired, 1);
    assert!(w.state.quarantine.is_none() && w.state.manual.is_none());
    assert_eq!(w.alerts, vec!["started", "crash_loop", "started"]);
    assert_eq!(w.state.woken_by.as_ref().map(|r| r.edge.as_str()), Some(OPERATOR));
}

#[test]
fn an_operator_sleep_stops_the_leaf_with_one_alert() {
    let leaf = leaf(true);
    let mut w = World::woken_at(&leaf, 10);
    w.state.manual = Some(crate::state::Manual::Sleep { at: w.now });
    w.converge(&leaf);
    assert_eq!(w.group.desired, 0);
    assert_eq!(w.alerts, vec!["started", "manual"]);
    assert!(w.state.manual.is_none());
    // Asking again when asleep does nothing.
    w.state.manual = Some(crate::state::Manual::Sleep { at: w.now });
    w.converge(&leaf);
    assert_eq!(w.alerts.len(), 2);
    assert!(w.state.manual.is_none());
}

#[test]
fn regression_an_operator_command_that_lands_during_a_tick_is_not_dropped() {
    let leaf = leaf(true);
    let mut w = World::woken_at(&leaf, 10);
    let asked = w.now;
    w.state.manual = Some(crate::state::Manual::Sleep { at: asked });
    // The tick decides on the sleep...
    let plan = w.decide(&leaf);
    // ...while the operator, changing their mind, asks for a wake (later, so its own time).
    w.state.manual = Some(crate::state::Manual::Wake { at: asked.plus_ms(1) });
    w.apply(&plan);
    assert_eq!(w.group.desired, 0, "the sleep decided on was carried out");
    assert_eq!(w.state.manual, Some(crate::state::Manual::Wake { at: asked.plus_ms(1) }), "the wake that arrived meanwhile is still there");
    w.converge(&leaf);
    assert_eq!(w.group.desired, 1, "and the next tick carries it out");
    assert_eq!(w.alerts, vec!["started", "manual", "started"]);
    assert!(w.state.manual.is_none());
}

#[test]
fn a_player_back_soon_after_an_idle_stop_is_not_quarantined_by_the_old_task() {
    let leaf = fast_leaf("");
    let mut w = World::stopped_idle(&leaf);
    // The old instance's task was killed with it (ECS shows it after the next wake).
    w.tasks = vec![crashed("killed-with-instance", 14)];
    w.now = Timestamp(15 * MIN);
    w.state.request_wake(w.now, "FRA6");
    w.converge(&leaf);
    assert_eq!(w.group.desired, 1);
    assert!(w.state.quarantine.is_none());
    assert_eq!(w.alerts, vec!["started", "idle", "started"]);
    assert!(w.state.seen_tasks.keys().any(|a| a.ends_with("killed-with-instance")), "seen, not counted");
}

#[test]
fn a_late_line_and_the_returning_players_query_in_one_batch_still_wake() {
    let leaf = fast_leaf("");
    let mut w = World::stopped_idle(&leaf);
    let decided = w.now;
    w.state.request_wake(decided.minus_ms(20_000), "FRA6"); // late line from before the stop
    w.state.request_wake(decided.plus_ms(5_000), "FRA6"); // the player is back
    w.now = decided.plus_ms(6_000);
    assert!(matches!(w.decide(&leaf).actions.first(), Some(Action::Wake { .. })));
}

#[test]
fn a_stop_is_decided_once_per_instance_even_if_the_asg_stays_up() {
    // Dry run, or an operator scaling back up: the stop must not repeat every tick.
    let leaf = fast_leaf("");
    let mut w = World::woken_at(&leaf, 10);
    w.at_minute(14, 0.0);
    let plan = w.decide(&leaf);
    for a in &plan.actions {
        a.record(&mut w.state, w.now); // recorded as in dry run; the ASG is untouched
    }
    w.at_minute(15, 0.0);
    assert!(!w.decide(&leaf).actions.iter().any(|a| matches!(a, Action::Sleep { .. })));
}

#[test]
fn regression_a_leaf_whose_zone_does_not_hold_its_domain_is_not_woken() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.zone_holds_domain = Some(false);
    w.state.request_wake(Timestamp(500), "FRA6");
    let plan = w.decide(&leaf);
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Wake { .. })), "{plan:?}");
    assert!(plan.actions.iter().any(|a| matches!(a, Action::DropWake { notable: true, why, .. } if why.contains("hosted zone"))), "{plan:?}");
    w.zone_holds_domain = None;
    w.state.request_wake(Timestamp(600), "FRA6");
    assert!(w.decide(&leaf).actions.iter().any(|a| matches!(a, Action::Wake { .. })), "a zone not read yet does not hold a wake back");
}
