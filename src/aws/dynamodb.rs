//! DynamoDB: the lease and the shared state of `[daemon.ha]`, in one table keyed by `pk`.
//!
//! The lease is one item (`pk` = the lease's name) with the holder, its expiry and a
//! fencing counter that only grows: each acquisition adds one. The state is one item per
//! part (`<name>/leaf/<leaf>`, `<name>/tail/<group>`, `<name>/outbox`, `<name>/meta`),
//! written in transactions that also check the lease still carries the writer's fence:
//! once another daemon has taken the lease, a deposed holder's late write is refused
//! whole.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::{call, AwsError, ErrorKind};

/// The lease as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (`host:pid`).
    pub holder: String,
    /// Until when (ms since the epoch, the holder's clock); 0 once released.
    pub expires_ms: i64,
    /// The fencing counter of the holder's term.
    pub fence: u64,
}

/// The table.
#[derive(Clone, Debug)]
pub struct TableApi {
    client: Client,
    table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn lease_of(item: &HashMap<String, AttributeValue>) -> Option<Lease> {
    let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    Some(Lease {
        holder: item.get("holder").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
        expires_ms: num("expires_ms").unwrap_or(0),
        fence: u64::try_from(num("fence")?).ok()?,
    })
}

/// True when AWS refused a write because its condition did not hold.
fn refused(e: &AwsError) -> bool {
    matches!(e.code.as_deref(), Some("ConditionalCheckFailedException" | "TransactionCanceledException")) && (e.code.as_deref() != Some("TransactionCanceledException") || e.message.contains("ConditionalCheckFailed"))
}

impl TableApi {
    /// The table `table` in the region `config` is for.
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self { client: Client::new(config), table: table.to_owned() }
    }

    /// The lease `key`, read consistently; None if nobody ever took it.
    pub async fn lease(&self, key: &str) -> Result<Option<Lease>, AwsError> {
        let out = call("dynamodb", "GetItem", self.client.get_item().table_name(&self.table).key("pk", s(key)).consistent_read(true).send()).await?;
        Ok(out.item().and_then(lease_of))
    }

    /// Takes the lease if it is still exactly `seen` (None: nobody ever held it) or
    /// already ours: a compare-and-swap on what the standby watched, so no clock is
    /// compared with another host's. The fence grows by one. None when it changed.
    pub async fn acquire(&self, key: &str, me: &str, seen: Option<&Lease>, expires_ms: i64) -> Result<Option<Lease>, AwsError> {
        let mut sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET holder = :me, expires_ms = :e, fence = if_not_exists(fence, :zero) + :one")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":e", n(expires_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew);
        sent = match seen {
            None => sent.condition_expression("attribute_not_exists(pk) OR holder = :me"),
            Some(l) => sent
                .condition_expression("(fence = :seen_fence AND expires_ms = :seen_expires AND holder = :seen_holder) OR holder = :me")
                .expression_attribute_values(":seen_fence", n(i64::try_from(l.fence).unwrap_or(i64::MAX)))
                .expression_attribute_values(":seen_expires", n(l.expires_ms))
                .expression_attribute_values(":seen_holder", s(&l.holder)),
        };
        match call("dynamodb", "UpdateItem", sent.send()).await {
            Ok(out) => Ok(out.attributes().and_then(lease_of)),
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Extends our lease to `expires_ms`; false when it is no longer ours.
    pub async fn renew(&self, key: &str, me: &str, fence: u64, expires_ms: i64) -> Result<bool, AwsError> {
        self.set_expiry(key, me, fence, expires_ms).await
    }

    /// Gives our lease up (expiry 0): a standby takes it at its next look.
    pub async fn release(&self, key: &str, me: &str, fence: u64) -> Result<bool, AwsError> {
        self.set_expiry(key, me, fence, 0).await
    }

    async fn set_expiry(&self, key: &str, me: &str, fence: u64, expires_ms: i64) -> Result<bool, AwsError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET expires_ms = :e")
            .condition_expression("holder = :me AND fence = :f")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":f", n(i64::try_from(fence).unwrap_or(i64::MAX)))
            .expression_attribute_values(":e", n(expires_ms))
            .send();
        match call("dynamodb", "UpdateItem", sent).await {
            Ok(_) => Ok(true),
            Err(e) if refused(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every state part under `prefix` (key, body), read consistently.
    pub async fn parts(&self, prefix: &str) -> Result<Vec<(String, String)>, AwsError> {
        let mut found = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = call(
                "dynamodb",
                "Scan",
                self.client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("begins_with(pk, :p)")
                    .expression_attribute_values(":p", s(prefix))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send(),
            )
            .await?;
            for item in out.items() {
                if let (Some(Ok(key)), Some(Ok(body))) = (item.get("pk").map(AttributeValue::as_s), item.get("body").map(AttributeValue::as_s)) {
                    found.push((key.clone(), body.clone()));
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(found),
            }
        }
    }

    /// Writes `puts` and removes `deletes` in one transaction, if the lease `key` is still
    /// `me`'s at `fence`. False when it is not (nothing was written). At most
    /// `state::parts::PARTS_PER_WRITE` parts.
    pub async fn write(&self, key: &str, me: &str, fence: u64, puts: &[(String, String)], deletes: &[String]) -> Result<bool, AwsError> {
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| AwsError::answer("dynamodb", "TransactWriteItems", ErrorKind::Invalid, e.to_string());
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression("holder = :me AND fence = :f")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":f", n(i64::try_from(fence).unwrap_or(i64::MAX)))
            .build()
            .map_err(invalid)?;
        let mut items = vec![TransactWriteItem::builder().condition_check(check).build()];
        for (part, body) in puts {
            let put = Put::builder().table_name(&self.table).item("pk", s(part)).item("body", s(body)).build().map_err(invalid)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        for part in deletes {
            let delete = Delete::builder().table_name(&self.table).key("pk", s(part)).build().map_err(invalid)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        // A renewal of the lease item at the same moment cancels the transaction with a
        // TransactionConflict: nothing was written, so it is simply tried again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call("dynamodb", "TransactWriteItems", self.client.transact_write_items().set_transact_items(Some(items.clone())).send()).await {
                Ok(_) => return Ok(true),
                Err(e) if refused(&e) => return Ok(false),
                Err(e) if attempt < 3 && e.message.contains("TransactionConflict") => tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await,
                Err(e) => return Err(e),
            }
        }
    }
}

impl crate::state::Table for TableApi {
    fn parts<'a>(&'a self, prefix: &'a str) -> crate::state::Pending<'a, Vec<(String, String)>> {
        Box::pin(async move { TableApi::parts(self, prefix).await.map_err(|e| e.to_string()) })
    }

    fn write<'a>(&'a self, key: &'a str, me: &'a str, fence: u64, puts: &'a [(String, String)], deletes: &'a [String]) -> crate::state::Pending<'a, bool> {
        Box::pin(async move { TableApi::write(self, key, me, fence, puts, deletes).await.map_err(|e| e.to_string()) })
    }
}
