//! Scenarios of the wake path, decided without any network: a small in-memory world
//! stands for what AWS would answer, and applying the plan changes it as AWS would.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::aws::asg::GroupInstance;
use crate::config::Config;

const IP: Ipv4Addr = Ipv4Addr::new(54, 1, 2, 3);

fn leaf(ecs: bool) -> LeafConfig {
    let ecs = if ecs { "ecs_cluster = \"mc\"\necs_service = \"mc\"\n" } else { "" };
    let text = format!(
        "[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n[[leaf]]\nname = \"mc\"\ndomain = \"mc.example.com\"\nhosted_zone_id = \"Z1\"\nasg = \"mc-asg\"\n{ecs}[leaf.watchdog]\nthreshold = 1175\n"
    );
    Config::parse(Path::new("t.toml"), &text).unwrap().leafs.remove(0)
}

/// What AWS holds for one leaf, and the daemon's memory of it.
struct World {
    group: Group,
    instances: HashMap<String, Instance>,
    record: Option<ARecord>,
    service: Option<Service>,
    state: LeafState,
    alerts: Vec<Transition>,
}

impl World {
    fn asleep(ecs: Option<bool>) -> Self {
        World {
            group: Group { name: "mc-asg".into(), desired: 0, max: 1, instances: vec![] },
            instances: HashMap::new(),
            record: Some(ARecord { values: vec!["0.0.0.0".into()], ttl: Some(1) }),
            service: ecs.map(|daemon| Service { name: "mc".into(), daemon, desired: 0 }),
            state: LeafState { announced: Some(Announced::Down), ..LeafState::default() },
            alerts: vec![],
        }
    }

    fn observe(&self) -> Observation<'_> {
        Observation {
            group: Some(&self.group),
            instances: &self.instances,
            record: Seen::Known(self.record.clone()),
            service: self.service.clone().map_or(ServiceSeen::NotConfigured, ServiceSeen::Known),
        }
    }

    fn decide(&self, leaf: &LeafConfig) -> Plan {
        decide(leaf, &self.observe(), &self.state, Timestamp(1_000_000))
    }

    /// Applies a plan as AWS would (instances launch at once, as on moto).
    fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            match action {
                Action::Wake(_) => {
                    self.group.desired = 1;
                    self.launch("i-1", Some(IP), 10);
                }
                Action::PointRecord { ip, ttl } => self.record = Some(ARecord { values: vec![ip.to_string()], ttl: Some(*ttl) }),
                Action::ScaleService { desired } => self.service.as_mut().unwrap().desired = *desired,
                Action::Announce(t) => self.alerts.push(t.clone()),
                Action::DropWake { .. } | Action::Adopt(_) => {}
            }
            action.record(&mut self.state);
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

fn query(at: i64) -> WakeRequest {
    WakeRequest { query_at: Timestamp(at), edge: "FRA6".into() }
}

#[test]
fn a_dns_query_wakes_a_sleeping_leaf_first_thing() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.state.request_wake(Timestamp(500), "FRA6");
    let plan = w.decide(&leaf);
    assert_eq!(plan.actions.first(), Some(&Action::Wake(query(500))));
}

#[test]
fn a_woken_leaf_gets_its_record_its_service_and_one_starting_alert() {
    let leaf = leaf(true);
    let mut w = World::asleep(Some(false));
    w.state.request_wake(Timestamp(500), "FRA6");
    w.converge(&leaf);
    assert_eq!(w.record, Some(ARecord { values: vec!["54.1.2.3".into()], ttl: Some(1) }));
    assert_eq!(w.service.as_ref().unwrap().desired, 1);
    assert_eq!(w.alerts, vec![Transition::Started { instance: "i-1".into(), ip: IP, woken_by: Some(query(500)) }]);
    assert!(w.decide(&leaf).actions.is_empty(), "a second look changes nothing");
}

#[test]
fn scaling_to_zero_resets_dns_and_service_with_one_stopped_alert() {
    let leaf = leaf(true);
    let mut w = World::asleep(Some(false));
    w.state.request_wake(Timestamp(500), "FRA6");
    w.converge(&leaf);
    w.scale_to_zero();
    w.converge(&leaf);
    assert_eq!(w.record, Some(ARecord { values: vec!["0.0.0.0".into()], ttl: Some(1) }));
    assert_eq!(w.service.as_ref().unwrap().desired, 0);
    assert_eq!(w.alerts.len(), 2);
    assert_eq!(w.alerts[1], Transition::Stopped { instance: "i-1".into() });
}

#[test]
fn a_daemon_service_is_never_given_a_desired_count() {
    let leaf = leaf(true);
    let mut w = World::asleep(Some(true));
    w.state.request_wake(Timestamp(500), "FRA6");
    w.converge(&leaf);
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
    assert_eq!(plan.actions, vec![Action::DropWake { why: "the ASG already wants an instance" }]);
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
    assert_eq!(w.decide(&leaf).phase, Phase::Up { instance: "i-new".into(), ip: IP });
}

#[test]
fn no_alert_is_sent_before_the_record_is_known() {
    let leaf = leaf(false);
    let mut w = World::asleep(None);
    w.group.desired = 1;
    w.launch("i-1", Some(IP), 10);
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
    let mut w = World::asleep(None);
    w.state.request_wake(Timestamp(500), "FRA6");
    w.converge(&leaf);
    w.group.instances.clear(); // the instance died; desired stays 1
    w.converge(&leaf);
    w.launch("i-2", Some(Ipv4Addr::new(9, 9, 9, 9)), 30);
    w.converge(&leaf);
    let kinds: Vec<_> = w.alerts.iter().map(|t| matches!(t, Transition::Started { .. })).collect();
    assert_eq!(kinds, vec![true, false, true]);
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
                w.apply(&Plan { phase: plan.phase.clone(), actions: vec![action.clone()], waiting_for: None });
                done += 1;
            }
        }
        w.converge(&leaf);
        assert_eq!(w.alerts.len(), 1, "stop after {stop_after} actions: {:?}", w.alerts);
        assert_eq!(w.group.desired, 1);
    }
}
