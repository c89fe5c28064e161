//! CloudWatch Logs: read a window of the query-log group with FilterLogEvents.
//!
//! One call (plus pages) per group per poll, whatever the number of leafs: every line
//! is parsed and matched in the daemon. No filter pattern is sent: their matching
//! differs between AWS and emulators, and correctness must not depend on it.

use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::Client;

use super::{call, AwsError};
use crate::clock::Timestamp;

/// Pages read per poll at most: each page is a call against the account's shared
/// 25/s FilterLogEvents limit. A window with more is reported (see [`Events::truncated`]).
const MAX_PAGES: usize = 10;

/// One log event, as much of it as deduplication and parsing need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Stream (one per Route53 edge location).
    pub stream: String,
    /// Event id; unique on AWS, a per-stream counter on emulators.
    pub id: String,
    /// Event time (the query's time).
    pub timestamp: Timestamp,
    /// The query-log line.
    pub message: String,
}

/// One read of a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// The events read.
    pub events: Vec<LogEvent>,
    /// More pages were left unread: the window holds more lines than one poll reads.
    pub truncated: bool,
}

/// CloudWatch Logs client (in the query-log region).
#[derive(Clone, Debug)]
pub struct LogsApi {
    client: Client,
}

impl LogsApi {
    /// Wraps a client built from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: Client::new(config) }
    }

    /// Events of `group` with a timestamp at or after `from`, in no particular order;
    /// all of them unless `truncated`.
    pub async fn events_since(&self, group: &str, from: Timestamp) -> Result<Events, AwsError> {
        let mut events = Vec::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let out = call(
                "logs",
                "FilterLogEvents",
                self.client.filter_log_events().log_group_name(group).start_time(from.0).set_next_token(token).send(),
            )
            .await?;
            events.extend(out.events().iter().filter_map(|e| {
                Some(LogEvent {
                    stream: e.log_stream_name()?.to_owned(),
                    id: e.event_id().unwrap_or_default().to_owned(),
                    timestamp: Timestamp(e.timestamp()?),
                    message: e.message()?.to_owned(),
                })
            }));
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(Events { events, truncated: false });
            }
        }
        Ok(Events { events, truncated: true })
    }
}
