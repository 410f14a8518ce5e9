//! From one GitHub delivery (the `X-GitHub-Event` header and the JSON
//! payload) to one [`Event`]: pure functions, no I/O.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use connector_sdk::ipc_proto::Json;
use connector_sdk::{Event, Message};
use serde_json::Value;

use crate::summary;

/// Events about one issue, pull request or discussion: they carry its `number`.
pub const NUMBERED: &[&str] = &[
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "discussion",
    "discussion_comment",
];

/// Events about one git ref: they carry `ref` (and create/delete `ref_type`).
pub const REF_EVENTS: &[&str] = &["push", "create", "delete"];

/// The events with a `ref_type` (`branch` or `tag`).
pub const REF_TYPED: &[&str] = &["create", "delete"];

/// The name of an event type this connector does not know.
pub const UNKNOWN_EVENT: &str = "unknown_event";

/// The event names `connector.yaml` declares (the orchestrator refuses others).
fn declared_names() -> &'static HashSet<String> {
    static NAMES: OnceLock<HashSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        include_str!("../connector.yaml")
            .lines()
            // The events come first; the operations' names are not events.
            .take_while(|l| l.trim_end() != "  operations:")
            .filter_map(|l| l.trim().strip_prefix("- name: "))
            .map(|n| n.trim().to_owned())
            .collect()
    })
}

/// The event's name: `<event>.<action>` (or `<event>` when the payload has no
/// `action`) when `connector.yaml` declares it; else `<event>` alone, which
/// every known event type declares as the fallback for actions the examples
/// never showed (the action is still in the `action` property); else, for an
/// event type this connector does not know at all, [`UNKNOWN_EVENT`]. So a
/// real delivery is never refused for its name.
pub fn event_name(event: &str, payload: &Value) -> String {
    let declared = declared_names();
    let full = match action(payload) {
        Some(action) => format!("{event}.{action}"),
        None => event.to_owned(),
    };
    if declared.contains(&full) {
        full
    } else if declared.contains(event) {
        event.to_owned()
    } else {
        UNKNOWN_EVENT.to_owned()
    }
}

/// The event for one delivery of `event` (the `X-GitHub-Event` header).
///
/// Properties: `event`, `action`, `repository` (full name), `organization`,
/// `sender` (logins), `installation` (id), `number` for issues, pull
/// requests and discussions, `ref` (a full ref name: `refs/heads/main`) for
/// push/create/delete and `ref_type` for create/delete; each only when the
/// payload has it. The payload itself goes along whole as `event.payload`
/// (the orchestrator keeps it up to the Connector's `maxPayloadBytes`).
/// The instance key is `github:<repo>#<number>`,
/// `github:<repo>@<ref>`, `github:<repo>`, else the organization, the
/// installation or the sender.
pub fn map(event: &str, payload: &Value) -> Event {
    let mut props = BTreeMap::new();
    props.insert("event".to_owned(), event.to_owned());
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            props.insert(key.to_owned(), v);
        }
    };
    put("action", action(payload).map(str::to_owned));
    put("repository", string(payload, "/repository/full_name"));
    put("organization", string(payload, "/organization/login"));
    put("sender", string(payload, "/sender/login"));
    put("installation", string(payload, "/installation/id"));
    put("number", number(event, payload));
    put("ref", full_ref(event, payload));
    if REF_TYPED.contains(&event) {
        put("ref_type", string(payload, "/ref_type"));
    }
    let instance_key = instance_key(event, &props);
    Event {
        name: event_name(event, payload),
        message: Some(Message::text(summary::summary(event, payload))),
        properties: props,
        instance_key: Some(instance_key),
        payload: Some(Json(payload.clone())),
    }
}

/// `payload.action` when it is a non-empty string.
fn action(payload: &Value) -> Option<&str> {
    payload["action"].as_str().filter(|a| !a.is_empty())
}

/// The value at `pointer` as text: strings as they are, numbers printed.
pub(crate) fn string(payload: &Value, pointer: &str) -> Option<String> {
    match payload.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The issue, pull request or discussion number, for the events about one.
pub(crate) fn number(event: &str, payload: &Value) -> Option<String> {
    if !NUMBERED.contains(&event) {
        return None;
    }
    [
        "/pull_request/number",
        "/issue/number",
        "/discussion/number",
        "/number",
    ]
    .iter()
    .find_map(|p| payload.pointer(p).and_then(Value::as_u64))
    .map(|n| n.to_string())
}

/// The full ref name for push/create/delete: create and delete name a
/// branch or tag by its short name, push by its full one; `refs/…` keeps
/// all three routable by one property value.
pub(crate) fn full_ref(event: &str, payload: &Value) -> Option<String> {
    if !REF_EVENTS.contains(&event) {
        return None;
    }
    let name = string(payload, "/ref")?;
    if name.starts_with("refs/") {
        return Some(name);
    }
    Some(match payload["ref_type"].as_str() {
        Some("branch") => format!("refs/heads/{name}"),
        Some("tag") => format!("refs/tags/{name}"),
        _ => name,
    })
}

fn instance_key(event: &str, props: &BTreeMap<String, String>) -> String {
    let get = |k: &str| props.get(k);
    if let Some(repo) = get("repository") {
        if let Some(n) = get("number") {
            return format!("github:{repo}#{n}");
        }
        if let Some(r) = get("ref") {
            return format!("github:{repo}@{r}");
        }
        return format!("github:{repo}");
    }
    if let Some(org) = get("organization") {
        return format!("github:{org}");
    }
    if let Some(id) = get("installation") {
        return format!("github:installation:{id}");
    }
    match get("sender") {
        Some(sender) => format!("github:{sender}"),
        None => format!("github:{event}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn props(e: &Event) -> Vec<(&str, &str)> {
        e.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn pull_request_is_keyed_by_repo_and_number() {
        let p = json!({
            "action": "opened", "number": 2,
            "pull_request": {"number": 2, "title": "Update the README"},
            "repository": {"full_name": "octo/hello"},
            "sender": {"login": "ada"},
            "installation": {"id": 42}
        });
        let e = map("pull_request", &p);
        assert_eq!(e.name, "pull_request.opened");
        assert_eq!(e.instance_key.as_deref(), Some("github:octo/hello#2"));
        assert_eq!(
            props(&e),
            [
                ("action", "opened"),
                ("event", "pull_request"),
                ("installation", "42"),
                ("number", "2"),
                ("repository", "octo/hello"),
                ("sender", "ada"),
            ]
        );
        assert_eq!(
            e.message.unwrap().as_text(),
            Some("ada opened pull request #2: Update the README")
        );
    }

    #[test]
    fn refs_are_full_names() {
        let repo = json!({"full_name": "octo/hello"});
        let push = json!({"ref": "refs/heads/main", "repository": repo, "commits": []});
        let e = map("push", &push);
        assert_eq!(e.name, "push");
        assert_eq!(
            e.instance_key.as_deref(),
            Some("github:octo/hello@refs/heads/main")
        );
        let tag = json!({"ref": "v1", "ref_type": "tag", "repository": repo});
        let e = map("create", &tag);
        assert_eq!(e.properties["ref"], "refs/tags/v1");
        assert_eq!(e.properties["ref_type"], "tag");
        let branch = json!({"ref": "dev", "ref_type": "branch", "repository": repo});
        assert_eq!(
            map("delete", &branch).instance_key.as_deref(),
            Some("github:octo/hello@refs/heads/dev")
        );
    }

    #[test]
    fn keys_without_a_repository() {
        let org = json!({"action": "member_added", "organization": {"login": "octo-org"}});
        assert_eq!(
            map("organization", &org).instance_key.as_deref(),
            Some("github:octo-org")
        );
        let inst =
            json!({"action": "created", "installation": {"id": 7}, "sender": {"login": "a"}});
        assert_eq!(
            map("installation", &inst).instance_key.as_deref(),
            Some("github:installation:7")
        );
        let bare = json!({"action": "published"});
        let e = map("security_advisory", &bare);
        assert_eq!(e.instance_key.as_deref(), Some("github:security_advisory"));
        assert_eq!(
            props(&e),
            [("action", "published"), ("event", "security_advisory")]
        );
    }

    #[test]
    fn odd_payloads_do_not_panic() {
        for p in [
            json!(null),
            json!([]),
            json!("x"),
            json!({"action": 5}),
            json!({"action": ""}),
        ] {
            let e = map("issues", &p);
            assert_eq!(e.name, "issues");
        }
    }
}
