//! CloudWatch Logs: read one page of a query-log group with FilterLogEvents.
//!
//! The tail drives the paging itself (see `tail`): it decides how many pages a poll may
//! spend against the account's shared FilterLogEvents quota, and it processes each page
//! before asking for the next, so a burst never piles up in memory.

use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::Client;

use super::{call, AwsError};
use crate::clock::Timestamp;

/// One log event, as much of it as deduplication, parsing and delay measurement need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Stream (one per Route53 edge location).
    pub stream: String,
    /// Event id; unique on AWS, a per-stream counter on emulators.
    pub id: String,
    /// Event time (the query's time, as Route53 stamped it).
    pub timestamp: Timestamp,
    /// When CloudWatch Logs ingested it: `ingestion - timestamp` is the delivery delay.
    pub ingestion: Option<Timestamp>,
    /// The query-log line.
    pub message: String,
}

/// What one page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<'a> {
    /// The log group.
    pub group: &'a str,
    /// Events with a timestamp at or after this.
    pub from: Timestamp,
    /// And before this (exclusive), when set.
    pub until: Option<Timestamp>,
    /// A filter pattern; None reads every event.
    pub pattern: Option<&'a str>,
    /// The previous page's token, to continue a read.
    pub token: Option<String>,
}

/// One page of a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The events, oldest first (AWS sorts by timestamp; do not rely on it for correctness).
    pub events: Vec<LogEvent>,
    /// More pages follow (a page may be partial, even empty, while more are available).
    pub next_token: Option<String>,
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

    /// Reads one page.
    pub async fn page(&self, req: PageRequest<'_>) -> Result<Page, AwsError> {
        // FilterLogEvents' endTime is inclusive; our windows are half-open.
        let end = req.until.map(|t| t.0 - 1);
        let out = call(
            "logs",
            "FilterLogEvents",
            self.client
                .filter_log_events()
                .log_group_name(req.group)
                .start_time(req.from.0)
                .set_end_time(end)
                .set_filter_pattern(req.pattern.map(str::to_owned))
                .set_next_token(req.token)
                .send(),
        )
        .await?;
        let events = out
            .events()
            .iter()
            .filter_map(|e| {
                Some(LogEvent {
                    stream: e.log_stream_name()?.to_owned(),
                    id: e.event_id().unwrap_or_default().to_owned(),
                    timestamp: Timestamp(e.timestamp()?),
                    ingestion: e.ingestion_time().map(Timestamp),
                    message: e.message()?.to_owned(),
                })
            })
            .collect();
        Ok(Page { events, next_token: out.next_token().map(str::to_owned) })
    }
}
