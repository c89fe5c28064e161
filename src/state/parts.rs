//! The state as items of the `[daemon.ha]` table: one per leaf, one per log group's
//! tail, the outbox in as few items as fit DynamoDB's 400 KB item limit, one for the
//! format version. A save writes only the parts that changed, so the table costs cents,
//! not the whole state per write.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::schema::{migrate, SchemaError, State, VERSION};

/// Parts per transaction: DynamoDB's TransactWriteItems takes 100 items, one of which
/// is the check of the lease.
pub const PARTS_PER_WRITE: usize = 99;

/// The most outbox JSON one item holds: well under DynamoDB's 400 KB per item.
const OUTBOX_ITEM_BYTES: usize = 300_000;

/// Part key → body (compact JSON), for the lease named `name`.
pub fn parts(state: &State, name: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(format!("{name}/meta"), json!({ "version": VERSION }).to_string());
    for (leaf, memory) in &state.leafs {
        out.insert(format!("{name}/leaf/{leaf}"), serde_json::to_string(memory).expect("state is plain data"));
    }
    for (group, tail) in &state.tail {
        out.insert(format!("{name}/tail/{group}"), serde_json::to_string(tail).expect("state is plain data"));
    }
    // The outbox can hold 1,000 alerts (a long SNS outage): split in items of at most
    // OUTBOX_ITEM_BYTES, in queue order. Usually there is one, holding `[]`.
    let mut chunks: Vec<Vec<String>> = vec![Vec::new()];
    let mut size = 0;
    for entry in &state.outbox {
        let text = serde_json::to_string(entry).expect("state is plain data");
        if size + text.len() > OUTBOX_ITEM_BYTES && !chunks.last().is_some_and(Vec::is_empty) {
            chunks.push(Vec::new());
            size = 0;
        }
        size += text.len() + 1;
        chunks.last_mut().expect("one chunk at least").push(text);
    }
    for (i, chunk) in chunks.iter().enumerate() {
        out.insert(format!("{name}/outbox/{i:04}"), format!("[{}]", chunk.join(",")));
    }
    out
}

/// The state from its parts (any order), migrated like a state file of its version.
pub fn state_of(parts: &[(String, String)], name: &str) -> Result<State, SchemaError> {
    let prefix = format!("{name}/");
    let (mut leafs, mut tail) = (Map::new(), Map::new());
    let mut outbox: BTreeMap<&str, Value> = BTreeMap::new();
    let mut doc = json!({ "version": VERSION });
    for (key, body) in parts {
        let Some(part) = key.strip_prefix(&prefix) else { continue };
        let value: Value = serde_json::from_str(body)?;
        if let Some(leaf) = part.strip_prefix("leaf/") {
            leafs.insert(leaf.to_owned(), value);
        } else if let Some(group) = part.strip_prefix("tail/") {
            tail.insert(group.to_owned(), value);
        } else if let Some(n) = part.strip_prefix("outbox/") {
            outbox.insert(n, value);
        } else if part == "meta" {
            doc["version"] = value["version"].clone();
        }
    }
    doc["leafs"] = Value::Object(leafs);
    doc["tail"] = Value::Object(tail);
    doc["outbox"] = Value::Array(outbox.into_values().flat_map(|v| v.as_array().cloned().unwrap_or_default()).collect());
    migrate(doc.to_string().as_bytes())
}

/// What to write to go from `written` to `now`: changed or new parts, then parts gone.
/// Leafs come first and the tail last, so a save cut between two transactions (more
/// than 99 parts changed at once) at worst re-reads a query, never forgets a wake.
pub fn diff(written: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> (Vec<(String, String)>, Vec<String>) {
    let mut puts: Vec<(String, String)> = now.iter().filter(|(k, v)| written.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let rank = |k: &str| if k.contains("/leaf/") { 0 } else if k.contains("/outbox/") { 1 } else if k.contains("/tail/") { 2 } else { 3 };
    puts.sort_by_key(|(k, _)| rank(k));
    let deletes = written.keys().filter(|k| !now.contains_key(*k)).cloned().collect();
    (puts, deletes)
}

/// One transaction of a save: parts to put (key, body) and parts to delete.
pub type Transaction<'a> = (&'a [(String, String)], &'a [String]);

/// The writes of one save, `per` parts per transaction at most, in `diff`'s order
/// (puts first, then deletes, each transaction filled up).
pub fn transactions<'a>(puts: &'a [(String, String)], deletes: &'a [String], per: usize) -> Vec<Transaction<'a>> {
    let mut out = Vec::new();
    let (mut puts, mut deletes) = (puts, deletes);
    while !puts.is_empty() || !deletes.is_empty() {
        let (these_puts, rest) = puts.split_at(puts.len().min(per));
        let (these_deletes, rest_deletes) = deletes.split_at(deletes.len().min(per - these_puts.len()));
        out.push((these_puts, these_deletes));
        (puts, deletes) = (rest, rest_deletes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    #[test]
    fn the_state_survives_its_parts_and_only_changes_are_written() {
        let mut state = State::default();
        state.leafs.entry("mc".into()).or_default().request_wake(Timestamp(5), "FRA6");
        state.leafs.entry("valheim".into()).or_default();
        state.tail.entry("/aws/route53/example.com".into()).or_default().swept_until = Some(Timestamp(9));
        let written = parts(&state, "us-east-1");
        let list: Vec<(String, String)> = written.clone().into_iter().collect();
        let mut back = state_of(&list, "us-east-1").unwrap();
        back.version = state.version;
        assert_eq!(back, state);
        assert!(state_of(&list, "eu-west-1").unwrap().leafs.is_empty(), "another lease's parts are not ours");

        state.leafs.get_mut("mc").unwrap().wake = None;
        state.leafs.remove("valheim");
        let (puts, deletes) = diff(&written, &parts(&state, "us-east-1"));
        assert_eq!(puts.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["us-east-1/leaf/mc"]);
        assert_eq!(deletes, ["us-east-1/leaf/valheim"]);
    }

    #[test]
    fn a_full_outbox_is_split_under_the_item_limit_and_read_back_in_order() {
        let mut state = State::default();
        for i in 0..1_000 {
            let alert = crate::state::Alert { id: format!("a{i}"), leaf: "mc".into(), kind: "problem".into(), subject: "s".repeat(100), body: "b".repeat(400) };
            state.outbox.push(crate::state::OutboxEntry { alert, pending: vec!["arn:aws:sns:us-east-1:123456789012:alerts".into()], in_flight: Vec::new() });
        }
        let written = parts(&state, "r");
        let outbox: Vec<&String> = written.iter().filter(|(k, _)| k.starts_with("r/outbox/")).map(|(_, v)| v).collect();
        assert!(outbox.len() >= 2 && outbox.iter().all(|v| v.len() <= 300_000), "{} items", outbox.len());
        let back = state_of(&written.into_iter().collect::<Vec<_>>(), "r").unwrap();
        assert_eq!(back.outbox, state.outbox);
    }

    #[test]
    fn a_save_of_many_parts_is_cut_into_full_transactions_puts_first() {
        let puts: Vec<(String, String)> = (0..150).map(|i| (format!("r/leaf/{i}"), "{}".to_owned())).collect();
        let deletes: Vec<String> = (0..60).map(|i| format!("r/leaf/old{i}")).collect();
        let plan = transactions(&puts, &deletes, 99);
        let sizes: Vec<(usize, usize)> = plan.iter().map(|(p, d)| (p.len(), d.len())).collect();
        assert_eq!(sizes, [(99, 0), (51, 48), (0, 12)]);
        assert!(transactions(&[], &[], 99).is_empty(), "nothing changed, nothing written");
    }

    #[test]
    fn parts_of_a_newer_daemon_are_refused() {
        let list = vec![("r/meta".to_owned(), r#"{"version": 99}"#.to_owned())];
        assert!(matches!(state_of(&list, "r"), Err(SchemaError::Newer { found: 99 })));
    }
}
