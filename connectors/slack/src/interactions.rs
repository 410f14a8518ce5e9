//! From an interactivity request (a form with one field, `payload=<JSON>`)
//! to one [`Event`]: pure functions.
//!
//! `block_actions` (a button, a select, … in a message or a view) and
//! `view_submission` (a modal's submit) are named after their type; every
//! other type (`shortcut`, `message_action`, `view_closed`,
//! `block_suggestion`) is emitted as `interaction` with `type`.

use std::collections::BTreeMap;

use connector_sdk::{Event, Message};
use serde_json::Value;

/// Interaction types emitted under their own name.
pub const NAMED: &[&str] = &["block_actions", "view_submission"];
/// The name of every other interaction type.
pub const GENERIC: &str = "interaction";

/// The properties an interaction event may carry (see `connector.yaml`);
/// `type`, `team` and `user` always.
pub const PROPERTIES: &[&str] = &[
    "type",
    "team",
    "user",
    "channel",
    "thread_ts",
    "action_id",
    "block_id",
    "value",
    "message_ts",
    "callback_id",
    "view_id",
    "response_ref",
];

/// One interaction, mapped.
#[derive(Clone, Debug, PartialEq)]
pub struct Interaction {
    /// The event to emit (without `response_ref`: the server adds it).
    pub event: Event,
    /// The dedupe key: `trigger_id`, unique per user action.
    pub key: Option<String>,
    /// Where to answer, kept by the connector and never emitted.
    pub response_url: Option<String>,
}

/// Maps an interaction payload; `Err` says what a well-formed one lacks.
///
/// Properties: `type`, `team`, `user`, `channel` (when in a channel),
/// `thread_ts`, and for `block_actions` the first action's `action_id`,
/// `block_id`, `value` (or its selected option's value) and `message_ts`;
/// for views `callback_id` and `view_id`. The instance key is the
/// channel's (`slack:<team>:<channel>[:<thread_ts>]`), or for a view
/// outside any channel `slack:<team>:user:<user>`.
pub fn map_payload(payload: &Value) -> Result<Interaction, String> {
    let ty = text(&payload["type"]).ok_or("interaction payload without type")?;
    let team = text(&payload["team"]["id"])
        .or_else(|| text(&payload["user"]["team_id"]))
        .or_else(|| text(&payload["enterprise"]["id"]))
        .ok_or("interaction payload without team.id")?;
    let user = text(&payload["user"]["id"]).ok_or("interaction payload without user.id")?;
    let channel =
        text(&payload["channel"]["id"]).or_else(|| text(&payload["container"]["channel_id"]));
    let thread_ts = text(&payload["message"]["thread_ts"]);
    let name = if NAMED.contains(&ty.as_str()) {
        ty.clone()
    } else {
        GENERIC.to_owned()
    };
    let mut properties = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            properties.insert(k.to_owned(), v);
        }
    };
    put("type", Some(ty.clone()));
    put("team", Some(team.clone()));
    put("user", Some(user.clone()));
    put("channel", channel.clone());
    put("thread_ts", thread_ts.clone());
    let action = &payload["actions"][0];
    let value = text(&action["value"]).or_else(|| text(&action["selected_option"]["value"]));
    put("action_id", text(&action["action_id"]));
    put("block_id", text(&action["block_id"]));
    put("value", value.clone());
    put(
        "message_ts",
        text(&payload["container"]["message_ts"]).or_else(|| text(&payload["message"]["ts"])),
    );
    put(
        "callback_id",
        text(&payload["view"]["callback_id"]).or_else(|| text(&payload["callback_id"])),
    );
    put("view_id", text(&payload["view"]["id"]));
    let message = value
        .or_else(|| text(&action["action_id"]))
        .or_else(|| text(&payload["view"]["callback_id"]))
        .or_else(|| text(&payload["callback_id"]))
        .unwrap_or_else(|| ty.clone());
    let instance_key = match (&channel, &thread_ts) {
        (Some(c), Some(t)) => format!("slack:{team}:{c}:{t}"),
        (Some(c), None) => format!("slack:{team}:{c}"),
        _ => format!("slack:{team}:user:{user}"),
    };
    let response_url = text(&payload["response_url"])
        .or_else(|| text(&payload["response_urls"][0]["response_url"]));
    Ok(Interaction {
        event: Event {
            name,
            message: Some(Message::text(message)),
            properties,
            instance_key: Some(instance_key),
            payload: Some(crate::events::payload(payload)),
        },
        key: text(&payload["trigger_id"]).map(|t| format!("trigger:{t}")),
        response_url,
    })
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_button_in_a_thread() {
        let p = json!({
            "type": "block_actions", "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "team": {"id": "T9TK3CUKW", "domain": "example"},
            "user": {"id": "UA8RXUSPL", "username": "jtorrance", "team_id": "T9TK3CUKW"},
            "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "CBR2V3XEX"},
            "channel": {"id": "CBR2V3XEX", "name": "review-updates"},
            "message": {"ts": "1548261231.000200", "thread_ts": "1548261000.000100", "text": "approve?"},
            "response_url": "https://hooks.slack.com/actions/AABA1ABCD/1232321423432/D09sSasdasdAS9091209",
            "actions": [{"action_id": "WaXA", "block_id": "=qXel", "type": "button",
                         "value": "approve", "action_ts": "1548426417.840180"}]
        });
        let i = map_payload(&p).unwrap();
        assert_eq!(i.event.name, "block_actions");
        assert_eq!(i.event.message, Some(Message::text("approve")));
        assert_eq!(
            i.event.instance_key.as_deref(),
            Some("slack:T9TK3CUKW:CBR2V3XEX:1548261000.000100")
        );
        assert_eq!(i.event.properties["action_id"], "WaXA");
        assert_eq!(i.event.properties["message_ts"], "1548261231.000200");
        assert!(
            i.response_url
                .as_deref()
                .unwrap()
                .starts_with("https://hooks.slack.com/")
        );
        assert!(!format!("{:?}", i.event).contains("hooks.slack.com"));
        let whole = &i.event.payload.as_ref().unwrap().0;
        assert_eq!(
            whole["actions"][0]["value"], "approve",
            "the payload, whole"
        );
        assert!(whole.get("response_url").is_none());
        assert_eq!(
            i.key.as_deref(),
            Some("trigger:13345224609.738474920.8088930838d88f008e0")
        );
    }

    #[test]
    fn a_modal_submission_and_other_types() {
        let p = json!({
            "type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1"},
            "view": {"id": "V1", "callback_id": "feedback", "state": {"values": {}}},
            "response_urls": [{"response_url": "https://hooks.slack.com/app/x", "channel_id": "C1"}]
        });
        let i = map_payload(&p).unwrap();
        assert_eq!(i.event.name, "view_submission");
        assert_eq!(i.event.instance_key.as_deref(), Some("slack:T1:user:U1"));
        assert_eq!(i.event.properties["callback_id"], "feedback");
        assert_eq!(
            i.response_url.as_deref(),
            Some("https://hooks.slack.com/app/x")
        );
        let p = json!({"type": "shortcut", "team": {"id": "T1"}, "user": {"id": "U1"},
                       "callback_id": "open_form", "trigger_id": "t"});
        let i = map_payload(&p).unwrap();
        assert_eq!(i.event.name, "interaction");
        assert_eq!(i.event.properties["type"], "shortcut");
        assert_eq!(i.event.message, Some(Message::text("open_form")));
        assert!(
            map_payload(&json!({"type": "block_actions"}))
                .unwrap_err()
                .contains("team")
        );
    }
}
