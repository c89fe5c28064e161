//! The state as items of the `[daemon.ha]` table: one per leaf, one per log group's
//! tail, one for the outbox, one for the format version. A save writes only the parts
//! that changed, so a renewal-sized table costs cents, not the whole state per write.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::schema::{migrate, SchemaError, State, VERSION};

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
    out.insert(format!("{name}/outbox"), serde_json::to_string(&state.outbox).expect("state is plain data"));
    out
}

/// The state from its parts (any order), migrated like a state file of its version.
pub fn state_of(parts: &[(String, String)], name: &str) -> Result<State, SchemaError> {
    let prefix = format!("{name}/");
    let (mut leafs, mut tail) = (Map::new(), Map::new());
    let mut doc = json!({ "version": VERSION, "outbox": [] });
    for (key, body) in parts {
        let Some(part) = key.strip_prefix(&prefix) else { continue };
        let value: Value = serde_json::from_str(body)?;
        if let Some(leaf) = part.strip_prefix("leaf/") {
            leafs.insert(leaf.to_owned(), value);
        } else if let Some(group) = part.strip_prefix("tail/") {
            tail.insert(group.to_owned(), value);
        } else if part == "outbox" {
            doc["outbox"] = value;
        } else if part == "meta" {
            doc["version"] = value["version"].clone();
        }
    }
    doc["leafs"] = Value::Object(leafs);
    doc["tail"] = Value::Object(tail);
    migrate(doc.to_string().as_bytes())
}

/// What to write to go from `written` to `now`: changed or new parts, then parts gone.
/// Leafs come first and the tail last, so a save cut between two transactions (more
/// than 99 parts changed at once) at worst re-reads a query, never forgets a wake.
pub fn diff(written: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> (Vec<(String, String)>, Vec<String>) {
    let mut puts: Vec<(String, String)> = now.iter().filter(|(k, v)| written.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let rank = |k: &str| if k.contains("/leaf/") { 0 } else if k.ends_with("/outbox") { 1 } else if k.contains("/tail/") { 2 } else { 3 };
    puts.sort_by_key(|(k, _)| rank(k));
    let deletes = written.keys().filter(|k| !now.contains_key(*k)).cloned().collect();
    (puts, deletes)
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
    fn parts_of_a_newer_daemon_are_refused() {
        let list = vec![("r/meta".to_owned(), r#"{"version": 99}"#.to_owned())];
        assert!(matches!(state_of(&list, "r"), Err(SchemaError::Newer { found: 99 })));
    }
}
