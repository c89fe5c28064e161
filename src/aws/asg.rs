//! AutoScaling: read every leaf's group in as few calls as possible, set desired capacity.

use aws_config::SdkConfig;
use aws_sdk_autoscaling::Client;

use super::{call, AwsError};

/// The API accepts up to 100 names per call when MaxRecords is 100.
pub const NAMES_PER_CALL: usize = 100;

/// Where an instance is in the ASG lifecycle, reduced to what the leaf cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// Launching (`Pending`, `Pending:Wait`, `Pending:Proceed`).
    Pending,
    /// Serving.
    InService,
    /// Going away (`Terminating*`, `Terminated`, `Detaching`, `Detached`).
    Leaving,
    /// Anything else (`Standby`, warm pool states): neither up nor launching.
    Other(String),
}

impl Lifecycle {
    /// Reads the SDK's state text.
    pub fn from_state(state: &str) -> Self {
        if state.starts_with("Pending") {
            Self::Pending
        } else if state == "InService" {
            Self::InService
        } else if state.starts_with("Terminat") || state.starts_with("Detach") {
            Self::Leaving
        } else {
            Self::Other(state.to_owned())
        }
    }
}

/// One instance of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInstance {
    /// EC2 instance id.
    pub id: String,
    /// Lifecycle state.
    pub lifecycle: Lifecycle,
}

/// What DescribeAutoScalingGroups says about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Desired capacity: 0 asleep, 1 wanted up.
    pub desired: i32,
    /// Min size: above 0, something else keeps it up, so the daemon parks it to sleep.
    pub min: i32,
    /// Max size: a wake above it is refused by AWS, so it is checked first.
    pub max: i32,
    /// Whether it has scaling policies (from DescribePolicies, filled in by the
    /// reconciler; None until read): such a group is parked, not just set to 0, to sleep.
    pub policies: Option<bool>,
    /// Its instances.
    pub instances: Vec<GroupInstance>,
}

/// AutoScaling client.
#[derive(Clone, Debug)]
pub struct AsgApi {
    client: Client,
}

impl AsgApi {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// Describes the named groups, 100 per call. Groups that do not exist are simply
    /// absent from the answer.
    pub async fn describe(&self, names: &[String]) -> Result<Vec<Group>, AwsError> {
        let mut groups = Vec::with_capacity(names.len());
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut token = None;
            loop {
                let out = call(
                    "autoscaling",
                    "DescribeAutoScalingGroups",
                    self.client
                        .describe_auto_scaling_groups()
                        .set_auto_scaling_group_names(Some(chunk.to_vec()))
                        .max_records(100)
                        .set_next_token(token)
                        .send(),
                )
                .await?;
                groups.extend(out.auto_scaling_groups().iter().map(|g| Group {
                    name: g.auto_scaling_group_name().unwrap_or_default().to_owned(),
                    desired: g.desired_capacity().unwrap_or(0),
                    min: g.min_size().unwrap_or(0),
                    max: g.max_size().unwrap_or(0),
                    policies: None,
                    instances: g
                        .instances()
                        .iter()
                        .map(|i| GroupInstance {
                            id: i.instance_id().unwrap_or_default().to_owned(),
                            lifecycle: Lifecycle::from_state(i.lifecycle_state().map_or("", |s| s.as_str())),
                        })
                        .collect(),
                }));
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(groups)
    }

    /// Names of every group in the region that has a scaling policy: one paged call
    /// for all leafs (DescribePolicies without a group name), cached by the caller.
    pub async fn with_policies(&self) -> Result<std::collections::BTreeSet<String>, AwsError> {
        let mut names = std::collections::BTreeSet::new();
        let mut token = None;
        loop {
            let out = call("autoscaling", "DescribePolicies", self.client.describe_policies().max_records(100).set_next_token(token).send()).await?;
            names.extend(out.scaling_policies().iter().filter_map(|p| p.auto_scaling_group_name().map(str::to_owned)));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// Sets min, max and desired in one call: parking a group at 0/0 (nothing can
    /// scale it out) or restoring its bounds on wake cannot be half done.
    pub async fn set_bounds(&self, name: &str, bounds: crate::state::Bounds, desired: i32) -> Result<(), AwsError> {
        call(
            "autoscaling",
            "UpdateAutoScalingGroup",
            self.client.update_auto_scaling_group().auto_scaling_group_name(name).min_size(bounds.min).max_size(bounds.max).desired_capacity(desired).send(),
        )
        .await
        .map(drop)
    }

    /// Sets the desired capacity, ignoring cooldowns: a player is waiting.
    pub async fn set_desired(&self, name: &str, desired: i32) -> Result<(), AwsError> {
        call(
            "autoscaling",
            "SetDesiredCapacity",
            self.client.set_desired_capacity().auto_scaling_group_name(name).desired_capacity(desired).honor_cooldown(false).send(),
        )
        .await
        .map(drop)
    }
}
