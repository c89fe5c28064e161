//! SNS: publish alerts, to a client in each topic's own region.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::{Region, SdkConfig};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use super::{call, AwsError, ErrorKind};

/// SNS clients by region, made on first use: a topic may live outside the leafs' region.
#[derive(Clone, Debug)]
pub struct SnsApi {
    base: SdkConfig,
    clients: Arc<Mutex<HashMap<String, Client>>>,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// E-mail subject (SNS allows up to 100 characters).
    pub subject: &'a str,
    /// Body.
    pub body: &'a str,
    /// Stable id of the alert: FIFO topics deduplicate on it, subscribers can too.
    pub id: &'a str,
    /// String attributes for subscription filter policies (leaf, kind, alert id).
    pub attributes: &'a [(&'a str, &'a str)],
}

impl SnsApi {
    /// Keeps `base` to derive per-region clients from.
    pub fn new(base: SdkConfig) -> Self {
        Self { base, clients: Arc::default() }
    }

    fn client_for(&self, topic_arn: &str) -> Client {
        let region = topic_arn.split(':').nth(3).unwrap_or_default().to_owned();
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                // No automatic retries: a Publish whose answer was lost may have been
                // delivered, and retrying it would send the alert twice. The outbox
                // retries what certainly failed (see `alerts::flush`).
                let config = aws_sdk_sns::config::Builder::from(&self.base).region(Region::new(region)).retry_config(aws_config::retry::RetryConfig::disabled()).build();
                Client::from_conf(config)
            })
            .clone()
    }

    /// Publishes `message` to `topic_arn`.
    pub async fn publish(&self, topic_arn: &str, message: &Message<'_>) -> Result<(), AwsError> {
        let mut req = self.client_for(topic_arn).publish().topic_arn(topic_arn).message(message.body);
        let subject: String = message.subject.chars().filter(|c| !c.is_control()).take(100).collect();
        req = req.subject(subject);
        #[allow(clippy::case_sensitive_file_extension_comparisons, reason = "SNS requires the lower-case .fifo suffix")]
        if topic_arn.ends_with(".fifo") {
            // FIFO topics need a group and drop a repeated deduplication id for 5 minutes.
            let dedup: String = message.id.chars().filter(char::is_ascii_graphic).take(128).collect();
            req = req.message_group_id("container-manager").message_deduplication_id(dedup);
        }
        for (k, v) in message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*v)
                .build()
                .map_err(|e| AwsError::answer("sns", "Publish", ErrorKind::Invalid, e.to_string()))?;
            req = req.message_attributes(*k, value);
        }
        call("sns", "Publish", req.send()).await.map(drop)
    }
}
