//! From a Slack Events API `event_callback` to one [`Event`]: pure functions.

use std::collections::BTreeMap;

use connector_sdk::ipc_proto::{File, Image, Json};
use connector_sdk::{Event, Message};
use serde_json::Value;

/// Event types emitted under their own name; any other is emitted as `event`.
pub const NAMED: &[&str] = &[
    "message",
    "app_mention",
    "reaction_added",
    "reaction_removed",
    "member_joined_channel",
];

/// The name every other event type is emitted as, with its type in the `type` property.
pub const GENERIC: &str = "event";

/// One callback, mapped.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The event to emit.
    pub event: Event,
    /// `event_id`: the same on every retry of this callback, so the dedupe key.
    pub event_id: Option<String>,
}

/// The properties each emitted name may carry (see `connector.yaml`).
pub fn properties_of(name: &str) -> &'static [&'static str] {
    match name {
        "message" => &[
            "team",
            "channel",
            "user",
            "thread_ts",
            "subtype",
            "ts",
            "file_id",
            "file_name",
            "file_count",
            "text",
        ],
        "app_mention" => &[
            "team",
            "channel",
            "user",
            "thread_ts",
            "ts",
            "file_id",
            "file_name",
            "file_count",
            "text",
        ],
        "reaction_added" | "reaction_removed" => &["team", "channel", "user", "reaction"],
        "member_joined_channel" => &["team", "channel", "user"],
        _ => &["type", "team", "channel", "user", "thread_ts"],
    }
}

/// Maps an `event_callback` body; `Err` says what a well-formed one lacks.
///
/// Properties: `team` (the workspace), `channel` (for reactions the
/// reacted-to item's channel), `user`, `thread_ts` when the event is in a
/// thread, plus `subtype` for messages, `reaction` for reactions and `type`
/// for the generic `event`. The instance key is
/// `slack:<team>:<channel>[:<thread_ts>]`, or `slack:<team>` without a channel.
pub fn map_callback(body: &Value) -> Result<Mapped, String> {
    let inner = &body["event"];
    let ty = text(&inner["type"]).ok_or("event_callback without event.type")?;
    let team = text(&body["team_id"])
        .or_else(|| text(&inner["team"]))
        .or_else(|| text(&body["enterprise_id"]))
        .ok_or("event_callback without team_id")?;
    let name = if NAMED.contains(&ty.as_str()) {
        ty.clone()
    } else {
        GENERIC.to_owned()
    };
    let channel = id(&inner["channel"]).or_else(|| id(&inner["item"]["channel"]));
    let thread_ts = text(&inner["thread_ts"]);
    let mut all = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            all.insert(k.to_owned(), v);
        }
    };
    put("type", Some(ty.clone()));
    put("team", Some(team.clone()));
    put("channel", channel.clone());
    put("user", id(&inner["user"]));
    put("thread_ts", thread_ts.clone());
    put("subtype", text(&inner["subtype"]));
    put("ts", text(&inner["ts"]));
    put("reaction", text(&inner["reaction"]));
    let file = inner["files"]
        .as_array()
        .filter(|files| !files.is_empty())
        .and_then(|files| Some((file_message(&files[0])?, files.len())));
    if let Some(((id, name, _), count)) = &file {
        put("file_id", Some(id.clone()));
        put("file_name", Some(name.clone()));
        put("file_count", Some(count.to_string()));
        put("text", text(&inner["text"]));
    }
    let allowed = properties_of(&name);
    let properties = all
        .into_iter()
        .filter(|(k, _)| allowed.contains(&k.as_str()))
        .collect();
    let instance_key = match (&channel, &thread_ts) {
        (Some(c), Some(t)) => format!("slack:{team}:{c}:{t}"),
        (Some(c), None) => format!("slack:{team}:{c}"),
        _ => format!("slack:{team}"),
    };
    let message = match file {
        Some(((_, _, message), _)) => message,
        None => Message::text(text(&inner["text"]).unwrap_or_else(|| describe(&ty, inner))),
    };
    Ok(Mapped {
        event: Event {
            name,
            message: Some(message),
            properties,
            instance_key: Some(instance_key),
            payload: Some(payload(body)),
        },
        event_id: text(&body["event_id"]),
    })
}

/// Fields of a Slack request never passed on in `event.payload`: the legacy
/// verification `token` (a secret) and the `response_url`s (credentials the
/// connector keeps and names by `response_ref`).
pub const WITHHELD: &[&str] = &["token", "response_url", "response_urls"];

/// `v` as `event.payload`: the provider's object without the [`WITHHELD`] fields.
pub fn payload(v: &Value) -> Json {
    let mut v = v.clone();
    if let Some(map) = v.as_object_mut() {
        for key in WITHHELD {
            map.remove(*key);
        }
    }
    Json(v)
}

/// A Slack file as `(id, name, message)`: an image or a file whose URL is
/// `slack-file:<id>` — Slack's own URLs need the bot token, which stays in
/// the connector; the agent fetches the bytes with the `getFile` operation.
fn file_message(f: &Value) -> Option<(String, String, Message)> {
    let id = text(&f["id"])?;
    let name = text(&f["name"])
        .or_else(|| text(&f["title"]))
        .unwrap_or_else(|| id.clone());
    let url = format!("slack-file:{id}");
    let image = f["mimetype"]
        .as_str()
        .is_some_and(|m| m.starts_with("image/"));
    let message = if image {
        Message::Image(Image { url })
    } else {
        Message::File(File {
            url,
            name: name.clone(),
        })
    };
    Some((id, name, message))
}

/// The text of an event that has none of its own.
fn describe(ty: &str, inner: &Value) -> String {
    let user = id(&inner["user"]).unwrap_or_else(|| "someone".into());
    match (ty, text(&inner["reaction"])) {
        ("reaction_added", Some(r)) => format!("{user} reacted :{r}:"),
        ("reaction_removed", Some(r)) => format!("{user} removed :{r}:"),
        ("member_joined_channel", _) => format!("{user} joined the channel"),
        _ => ty.to_owned(),
    }
}

/// A non-empty string.
fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A string id, or the `id` of an object (some events carry `{"id": …}` where others carry the id).
fn id(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn props(m: &Mapped) -> Vec<(&str, &str)> {
        m.event
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn a_thread_reply_is_keyed_by_its_thread() {
        let body = json!({
            "type": "event_callback", "team_id": "T1", "event_id": "Ev1",
            "event": {"type": "message", "channel": "C1", "user": "U1", "text": "hi",
                      "ts": "2.0", "thread_ts": "1.0"}
        });
        let m = map_callback(&body).unwrap();
        assert_eq!(m.event.name, "message");
        assert_eq!(m.event.instance_key.as_deref(), Some("slack:T1:C1:1.0"));
        assert_eq!(m.event.message, Some(Message::text("hi")));
        assert_eq!(
            props(&m),
            [
                ("channel", "C1"),
                ("team", "T1"),
                ("thread_ts", "1.0"),
                ("ts", "2.0"),
                ("user", "U1")
            ]
        );
        assert_eq!(m.event_id.as_deref(), Some("Ev1"));
        assert_eq!(m.event.payload.as_ref().map(|p| &p.0), Some(&body));
    }

    #[test]
    fn reactions_use_the_item_channel() {
        let body = json!({
            "team_id": "T1",
            "event": {"type": "reaction_added", "user": "U1", "reaction": "thumbsup",
                      "item": {"type": "message", "channel": "C2", "ts": "1.0"}}
        });
        let m = map_callback(&body).unwrap();
        assert_eq!(m.event.instance_key.as_deref(), Some("slack:T1:C2"));
        assert_eq!(
            props(&m),
            [
                ("channel", "C2"),
                ("reaction", "thumbsup"),
                ("team", "T1"),
                ("user", "U1")
            ]
        );
        assert_eq!(
            m.event.message,
            Some(Message::text("U1 reacted :thumbsup:"))
        );
    }

    #[test]
    fn other_types_are_generic_events() {
        let body = json!({
            "team_id": "T1",
            "event": {"type": "channel_created", "channel": {"id": "C3", "name": "new"}}
        });
        let m = map_callback(&body).unwrap();
        assert_eq!(m.event.name, "event");
        assert_eq!(
            props(&m),
            [
                ("channel", "C3"),
                ("team", "T1"),
                ("type", "channel_created")
            ]
        );
        let body = json!({"team_id": "T1", "event": {"type": "app_home_opened", "user": "U1"}});
        let m = map_callback(&body).unwrap();
        assert_eq!(m.event.instance_key.as_deref(), Some("slack:T1"));
    }

    #[test]
    fn files_become_references_for_get_file() {
        let body = json!({
            "team_id": "T1", "event_id": "Ev2",
            "event": {"type": "message", "subtype": "file_share", "channel": "C1", "user": "U1",
                      "text": "the plan", "ts": "3.0",
                      "files": [{"id": "F0123", "name": "plan.pdf", "mimetype": "application/pdf",
                                 "url_private": "https://files.slack.com/files-pri/T1-F0123/plan.pdf"},
                                {"id": "F0124", "name": "cat.png", "mimetype": "image/png"}]}
        });
        let m = map_callback(&body).unwrap();
        assert_eq!(
            m.event.message,
            Some(Message::File(File {
                url: "slack-file:F0123".into(),
                name: "plan.pdf".into()
            }))
        );
        assert_eq!(m.event.properties["file_id"], "F0123");
        assert_eq!(m.event.properties["file_count"], "2");
        assert_eq!(m.event.properties["text"], "the plan");
        // Slack's URL (useless without the token) stays in the payload only.
        let shown = format!("{:?} {:?}", m.event.message, m.event.properties);
        assert!(!shown.contains("files.slack.com"), "{shown}");
        let mut body = body;
        body["event"]["files"] = json!([{"id": "F9", "name": "cat.png", "mimetype": "image/png"}]);
        let m = map_callback(&body).unwrap();
        assert_eq!(
            m.event.message,
            Some(Message::Image(Image {
                url: "slack-file:F9".into()
            }))
        );
    }

    #[test]
    fn malformed_callbacks() {
        assert!(
            map_callback(&json!({"team_id": "T"}))
                .unwrap_err()
                .contains("event.type")
        );
        let e = map_callback(&json!({"event": {"type": "message"}})).unwrap_err();
        assert!(e.contains("team_id"), "{e}");
        assert!(map_callback(&json!(null)).is_err());
    }
}
