//! EC2: public IPs and launch times of the leafs' instances, one call for all.

use std::net::Ipv4Addr;

use aws_config::SdkConfig;
use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client;

use super::{call, AwsError};
use crate::clock::Timestamp;

/// A filter takes up to 200 values.
const IDS_PER_CALL: usize = 200;

/// What the daemon needs of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Public IPv4 address; None until assigned (or never, in a private subnet).
    pub public_ip: Option<Ipv4Addr>,
    /// Launch time, for the left-up guard.
    pub launched_at: Option<Timestamp>,
}

/// EC2 client.
#[derive(Clone, Debug)]
pub struct Ec2Api {
    client: Client,
}

impl Ec2Api {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// Describes the given instances. Uses an `instance-id` filter rather than
    /// InstanceIds so that an id EC2 does not know yet (eventual consistency right
    /// after launch) is just absent instead of failing the whole call.
    pub async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, AwsError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_CALL) {
            let filter = Filter::builder().name("instance-id").set_values(Some(chunk.to_vec())).build();
            let mut token = None;
            loop {
                let out = call(
                    "ec2",
                    "DescribeInstances",
                    self.client.describe_instances().filters(filter.clone()).set_next_token(token).send(),
                )
                .await?;
                for instance in out.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances) {
                    found.push(Instance {
                        id: instance.instance_id().unwrap_or_default().to_owned(),
                        public_ip: instance.public_ip_address().and_then(|ip| ip.parse().ok()),
                        launched_at: instance.launch_time().and_then(|t| t.to_millis().ok()).map(Timestamp),
                    });
                }
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }
}

impl Ec2Api {
    /// Public IPs of network interfaces (an awsvpc task's ENI), by interface id; an
    /// interface without one is absent.
    pub async fn interface_ips(&self, ids: &[String]) -> Result<std::collections::HashMap<String, Ipv4Addr>, AwsError> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let filter = Filter::builder().name("network-interface-id").set_values(Some(chunk.to_vec())).build();
            let out = call("ec2", "DescribeNetworkInterfaces", self.client.describe_network_interfaces().filters(filter).send()).await?;
            for eni in out.network_interfaces() {
                let ip = eni.association().and_then(|a| a.public_ip()).and_then(|ip| ip.parse().ok());
                if let (Some(id), Some(ip)) = (eni.network_interface_id(), ip) {
                    found.insert(id.to_owned(), ip);
                }
            }
        }
        Ok(found)
    }
}
