//! Capacity: the calls that wake a leaf, put it to sleep, or keep it where it is,
//! whatever its shape (an ASG, a service, or both; with or without scaling policies).
//!
//! A scaling policy is never fought. An ASG with scaling policies or a min above 0, or a
//! service with an Application Auto Scaling scalable target, is *managed*: to sleep, the
//! daemon records its bounds in the state and parks them at 0/0, so nothing can scale the
//! leaf out while it sleeps; to wake, it restores the recorded bounds and sets the awake
//! capacity within them; while awake it never touches the capacity (the policy decides).
//! Pure: observations in, steps out.

use crate::aws::asg::Group;
use crate::aws::ecs::Service;
use crate::config::LeafConfig;
use crate::state::{Bounds, Parked};

/// One capacity call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// SetDesiredCapacity on the ASG.
    AsgDesired(i32),
    /// UpdateAutoScalingGroup: min, max and desired in one call.
    AsgBounds {
        /// New min and max.
        bounds: Bounds,
        /// New desired capacity.
        desired: i32,
    },
    /// RegisterScalableTarget of the service with these bounds.
    ServiceBounds(Bounds),
    /// UpdateService desired count.
    ServiceDesired(i32),
}

impl Step {
    /// The AWS service and operation it calls.
    pub fn call(self) -> (&'static str, &'static str) {
        match self {
            Step::AsgDesired(_) => ("autoscaling", "SetDesiredCapacity"),
            Step::AsgBounds { .. } => ("autoscaling", "UpdateAutoScalingGroup"),
            Step::ServiceBounds(_) => ("application-autoscaling", "RegisterScalableTarget"),
            Step::ServiceDesired(_) => ("ecs", "UpdateService"),
        }
    }
}

/// The leaf's ASG and service as observed: what capacity decisions read.
#[derive(Debug, Clone, Copy)]
pub struct Capacity<'a> {
    /// The ASG, when the leaf has one.
    pub group: Option<&'a Group>,
    /// The service, when the leaf has one and it was read.
    pub service: Option<&'a Service>,
}

impl Capacity<'_> {
    /// Whether AWS wants the leaf running: its ASG's desired capacity, or, without an
    /// ASG, its service's desired count.
    pub fn awake(&self) -> bool {
        match (self.group, self.service) {
            (Some(g), _) => g.desired >= 1,
            (None, Some(s)) => s.desired >= 1,
            (None, None) => false,
        }
    }

    fn asg_managed(group: &Group, parked: &Parked) -> bool {
        group.policies == Some(true) || group.min > 0 || parked.asg.is_some()
    }

    /// Whether what scales the leaf is known well enough to stop it or park it: an
    /// ASG's policies must have been read (a stop that only set 0 would let them scale
    /// it out again).
    pub fn known(&self) -> bool {
        self.group.is_none_or(|g| g.policies.is_some())
    }

    fn scalable(&self) -> Option<(&Service, Bounds)> {
        let s = self.service.filter(|s| !s.daemon)?;
        Some((s, s.scalable?))
    }

    /// The steps of a wake, ASG first (instances take longest to boot), or why the leaf
    /// cannot be woken.
    pub fn wake(&self, leaf: &LeafConfig, parked: &Parked) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        if let Some(g) = self.group.filter(|g| g.desired < 1) {
            let bounds = Bounds { min: g.min, max: g.max };
            match (bounds.parked(), parked.asg) {
                (true, Some(recorded)) if !recorded.parked() => steps.push(Step::AsgBounds { bounds: recorded, desired: recorded.clamp(leaf.awake_instances()) }),
                (true, _) => return Err("the ASG's max size is 0".to_owned()),
                (false, _) => steps.push(Step::AsgDesired(bounds.clamp(leaf.awake_instances()))),
            }
        }
        if self.group.is_none() && self.service.is_some_and(|s| s.daemon) {
            return Err("a DAEMON service without an ASG has no count to set (give the leaf its `asg`)".to_owned());
        }
        if let Some(s) = self.service.filter(|s| !s.daemon) {
            let want = leaf.awake_tasks();
            match (s.scalable, parked.service) {
                (Some(b), Some(recorded)) if b.parked() && !recorded.parked() => {
                    steps.push(Step::ServiceBounds(recorded));
                    steps.push(Step::ServiceDesired(recorded.clamp(want)));
                }
                (Some(b), _) if b.parked() => return Err("the service's scalable target has max capacity 0".to_owned()),
                (Some(b), _) if s.desired < 1 => steps.push(Step::ServiceDesired(b.clamp(want))),
                (None, _) if s.desired != want => steps.push(Step::ServiceDesired(want)),
                _ => {}
            }
        }
        Ok(steps)
    }

    /// The steps of a sleep, service first (its tasks drain before their instances go),
    /// and the bounds to record before the first of them.
    pub fn sleep(&self, parked: &Parked) -> (Parked, Vec<Step>) {
        let (mut record, mut steps) = self.park_service();
        if self.service.is_some_and(|s| !s.daemon && s.desired != 0) {
            steps.push(Step::ServiceDesired(0));
        }
        if let Some(g) = self.group {
            if Self::asg_managed(g, parked) && !(Bounds { min: g.min, max: g.max }).parked() {
                record.asg = Some(Bounds { min: g.min, max: g.max });
                steps.push(Step::AsgBounds { bounds: Bounds::PARKED, desired: 0 });
            } else if g.desired != 0 {
                steps.push(Step::AsgDesired(0));
            }
        }
        (record, steps)
    }

    /// A service's scalable target not parked yet: record it, park it.
    fn park_service(&self) -> (Parked, Vec<Step>) {
        let mut record = Parked::default();
        let mut steps = Vec::new();
        if let Some((_, b)) = self.scalable().filter(|(_, b)| !b.parked()) {
            record.service = Some(b);
            steps.push(Step::ServiceBounds(Bounds::PARKED));
        }
        (record, steps)
    }

    /// While asleep: the same as a sleep (bounds a policy could scale out with are
    /// parked, a service still wanting tasks is set to 0), without its alert.
    pub fn keep_asleep(&self, parked: &Parked) -> (Parked, Vec<Step>) {
        self.sleep(parked)
    }

    /// While awake: bounds left parked by an interrupted wake are restored; a plain
    /// REPLICA service is kept at its awake count (a scalable one is the policy's); and
    /// records of bounds that someone else restored are returned to be forgotten.
    ///
    /// `restore`: whether parked bounds may be restored now. Right after the daemon's own
    /// stop, a read that has not caught up yet looks just like an interrupted wake.
    pub fn keep_awake(&self, leaf: &LeafConfig, parked: &Parked, restore: bool) -> (Vec<Step>, Parked) {
        let mut steps = Vec::new();
        let mut forget = Parked::default();
        if let Some(s) = self.service.filter(|s| !s.daemon) {
            match (s.scalable, parked.service) {
                (Some(b), Some(recorded)) if b.parked() && !recorded.parked() && restore => {
                    steps.push(Step::ServiceBounds(recorded));
                    if s.desired < 1 {
                        steps.push(Step::ServiceDesired(recorded.clamp(leaf.awake_tasks())));
                    }
                }
                (Some(b), Some(_)) if !b.parked() => forget.service = parked.service,
                (None, recorded) => {
                    forget.service = recorded;
                    if s.desired != leaf.awake_tasks() {
                        steps.push(Step::ServiceDesired(leaf.awake_tasks()));
                    }
                }
                _ => {}
            }
        }
        if let (Some(g), Some(_)) = (self.group, parked.asg)
            && !(Bounds { min: g.min, max: g.max }).parked()
        {
            forget.asg = parked.asg;
        }
        (steps, forget)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn leaf(extra: &str) -> LeafConfig {
        let text = format!(
            "[daemon]\nregion = \"us-west-2\"\nquery_log_group = \"g\"\n[[leaf]]\nname = \"web\"\ndomain = \"web.example.com\"\nhosted_zone_id = \"Z1\"\necs_cluster = \"c\"\necs_service = \"web\"\n{extra}\n[leaf.watchdog]\nthreshold = 1\ntraffic = \"service\"\n"
        );
        Config::parse(Path::new("t.toml"), &text).unwrap().leafs.remove(0)
    }

    fn service(desired: i32, scalable: Option<Bounds>) -> Service {
        Service { name: "web".into(), daemon: false, desired, scalable }
    }

    fn group(desired: i32, min: i32, max: i32, policies: bool) -> Group {
        Group { name: "g".into(), desired, min, max, policies: Some(policies), instances: vec![] }
    }

    #[test]
    fn a_scalable_service_is_parked_to_sleep_and_restored_to_wake() {
        let leaf = leaf("awake_tasks = 2");
        let policy = Bounds { min: 1, max: 10 };
        let awake = service(4, Some(policy));
        let cap = Capacity { group: None, service: Some(&awake) };
        let (record, steps) = cap.sleep(&Parked::default());
        assert_eq!(record.service, Some(policy), "the bounds are recorded before they are parked");
        assert_eq!(steps, vec![Step::ServiceBounds(Bounds::PARKED), Step::ServiceDesired(0)]);

        let asleep = service(0, Some(Bounds::PARKED));
        let cap = Capacity { group: None, service: Some(&asleep) };
        assert_eq!(cap.keep_asleep(&record), (Parked::default(), vec![]), "parked and at 0: nothing to do");
        assert_eq!(cap.wake(&leaf, &record), Ok(vec![Step::ServiceBounds(policy), Step::ServiceDesired(2)]));
        assert!(cap.wake(&leaf, &Parked::default()).is_err(), "parked with nothing recorded: cannot guess the bounds");
    }

    #[test]
    fn while_awake_a_policy_owns_the_count() {
        let leaf = leaf("");
        let scaled = service(7, Some(Bounds { min: 1, max: 10 }));
        let cap = Capacity { group: None, service: Some(&scaled) };
        let (steps, forget) = cap.keep_awake(&leaf, &Parked { asg: None, service: Some(Bounds { min: 1, max: 10 }) }, true);
        assert!(steps.is_empty(), "7 tasks chosen by the policy stay 7");
        assert_eq!(forget.service, Some(Bounds { min: 1, max: 10 }), "the wake is done: the record is forgotten");
    }

    #[test]
    fn an_interrupted_wake_is_finished() {
        let leaf = leaf("");
        let half = service(0, Some(Bounds::PARKED));
        let cap = Capacity { group: Some(&group(1, 0, 2, false)), service: Some(&half) };
        let recorded = Parked { asg: None, service: Some(Bounds { min: 1, max: 10 }) };
        assert_eq!(cap.keep_awake(&leaf, &recorded, true).0, vec![Step::ServiceBounds(Bounds { min: 1, max: 10 }), Step::ServiceDesired(1)]);
        assert!(cap.keep_awake(&leaf, &recorded, false).0.is_empty(), "not right after the daemon's own stop");
    }

    #[test]
    fn an_asg_with_policies_is_parked_in_one_call_and_a_plain_one_is_only_set_to_zero() {
        let with = group(3, 0, 4, true);
        let cap = Capacity { group: Some(&with), service: None };
        let (record, steps) = cap.sleep(&Parked::default());
        assert_eq!((record.asg, steps), (Some(Bounds { min: 0, max: 4 }), vec![Step::AsgBounds { bounds: Bounds::PARKED, desired: 0 }]));
        let plain = group(2, 0, 2, false);
        let cap = Capacity { group: Some(&plain), service: None };
        assert_eq!(cap.sleep(&Parked::default()), (Parked::default(), vec![Step::AsgDesired(0)]));
    }

    #[test]
    fn a_wake_stays_within_the_bounds() {
        let leaf = leaf("");
        let mut text_leaf = leaf.clone();
        text_leaf.awake_instances = Some(crate::config::At::new(5));
        let parked = group(0, 0, 0, true);
        let cap = Capacity { group: Some(&parked), service: None };
        let recorded = Parked { asg: Some(Bounds { min: 1, max: 3 }), service: None };
        assert_eq!(cap.wake(&text_leaf, &recorded), Ok(vec![Step::AsgBounds { bounds: Bounds { min: 1, max: 3 }, desired: 3 }]));
    }
}
