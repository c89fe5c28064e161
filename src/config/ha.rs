//! `[daemon.ha]`: two daemons with the same config on two hosts, one acting at a time,
//! sharing their state in a DynamoDB table.

use serde::{Deserialize, Serialize};

use super::{At, HumanDuration};

/// `[daemon.ha]`. Without it the daemon keeps its state in `state_file` and always acts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// The DynamoDB table (string partition key `pk`, nothing else, on-demand billing).
    pub table: At<String>,
    /// How long a lease lasts unless renewed: the longest a dead holder's leafs go
    /// unattended is about this long.
    #[serde(default = "default_ttl")]
    pub ttl: At<HumanDuration>,
    /// The lease's key, so daemons of several regions may share one table. Default: the
    /// region.
    pub name: Option<At<String>>,
}

fn default_ttl() -> At<HumanDuration> {
    At::new(HumanDuration(std::time::Duration::from_secs(20)))
}

impl HaConfig {
    /// Checks the table name and the lease length.
    pub(super) fn validate(&self) -> Result<(), super::Refusal> {
        let table = self.table.as_str();
        if !(3..=255).contains(&table.len()) || !table.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Err((self.table.span(), "daemon.ha.table".into(), format!("{table:?} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)")));
        }
        let ttl = self.ttl.0;
        if ttl < std::time::Duration::from_secs(2) || ttl > std::time::Duration::from_secs(600) {
            return Err((self.ttl.span(), "daemon.ha.ttl".into(), format!("{} must be between 2s and 10m: shorter, renewals cannot keep up; longer, a dead holder's leafs wait that long", *self.ttl)));
        }
        if let Some(name) = self.name.as_ref().filter(|n| n.is_empty() || n.len() > 100 || n.contains('/')) {
            return Err((name.span(), "daemon.ha.name".into(), format!("name {:?} must be 1-100 characters without '/'", name.as_str())));
        }
        Ok(())
    }

    /// The lease's key.
    pub fn lease_name<'a>(&'a self, region: &'a str) -> &'a str {
        self.name.as_ref().map_or(region, |n| n.as_str())
    }
}
