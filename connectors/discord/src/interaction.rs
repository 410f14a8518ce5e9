//! From a Discord interaction (the JSON body Discord POSTs) to what the
//! connector does with it: pure functions, no I/O.
//!
//! Interaction types (Discord's `InteractionType`): 1 `PING`, 2
//! `APPLICATION_COMMAND`, 3 `MESSAGE_COMPONENT`, 4
//! `APPLICATION_COMMAND_AUTOCOMPLETE`, 5 `MODAL_SUBMIT`.

use std::collections::BTreeMap;

use connector_sdk::ipc_proto::Json;
use connector_sdk::{Event, Message};
use serde_json::{Value, json};

use crate::attachments::attachments;

/// The event name of an application command (a slash, user or message command).
pub const COMMAND: &str = "command";
/// The event name of a message component (a button, a select menu).
pub const COMPONENT: &str = "component";
/// The event name of a modal's submission.
pub const MODAL_SUBMIT: &str = "modal_submit";

/// What to do with one verified interaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `PING`: answer `{"type":1}` (PONG), emit nothing.
    Ping,
    /// Autocomplete: answer with no suggestions, emit nothing.
    Autocomplete,
    /// Emit an event, then answer Discord with `deferred`.
    Emit(Box<Mapped>),
}

/// An interaction that becomes an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The event (its `interaction` property is filled in by the caller, once
    /// the token is kept under a reference).
    pub event: Event,
    /// The interaction's `id`: the dedupe key.
    pub id: String,
    /// `application_id`: the followup URL needs it.
    pub application_id: String,
    /// The interaction's `token`: kept by the connector, never put in the event.
    pub token: String,
    /// The interaction response that tells Discord the answer comes later.
    pub deferred: Value,
}

/// Reads a verified interaction body; `Err` says what is wrong with it.
pub fn classify(body: &Value) -> Result<Kind, String> {
    let Some(kind) = body["type"].as_u64() else {
        return Err("interaction without a numeric type".into());
    };
    let (name, deferred) = match kind {
        1 => return Ok(Kind::Ping),
        4 => return Ok(Kind::Autocomplete),
        // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "thinking…" until the followup.
        2 => (COMMAND, json!({"type": 5})),
        // DEFERRED_UPDATE_MESSAGE: acknowledged, the message is changed later if at all.
        3 => (COMPONENT, json!({"type": 6})),
        5 => (MODAL_SUBMIT, json!({"type": 5})),
        other => {
            return Err(format!(
                "interaction type {other} is not one this connector knows"
            ));
        }
    };
    let required = |field: &str| match &body[field] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("interaction without {field}")),
    };
    let id = required("id")?;
    let application_id = required("application_id")?;
    let token = required("token")?;
    let data = &body["data"];
    // In a guild the user is in `member.user`, in a DM in `user`.
    let user = match &body["member"]["user"] {
        u @ Value::Object(_) => u,
        _ => &body["user"],
    };
    let channel = text(&body["channel_id"]).or_else(|| text(&body["channel"]["id"]));
    let guild = text(&body["guild_id"]);

    let mut properties = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            properties.insert(k.to_owned(), v);
        }
    };
    put("interaction_id", Some(id.clone()));
    put("application_id", Some(application_id.clone()));
    put("channel", channel.clone());
    put("guild", guild.clone());
    put("user", text(&user["id"]));
    put("username", text(&user["username"]));
    put("locale", text(&body["locale"]));
    let line = match kind {
        2 => {
            let name = text(&data["name"]).unwrap_or_default();
            put("command", Some(name.clone()));
            command_line(&name, &data["options"])
        }
        3 => {
            let custom_id = text(&data["custom_id"]).unwrap_or_default();
            put("custom_id", Some(custom_id.clone()));
            match data["values"].as_array() {
                Some(values) => values.iter().filter_map(text).collect::<Vec<_>>().join(","),
                None => custom_id,
            }
        }
        _ => {
            put("custom_id", text(&data["custom_id"]));
            modal_text(&data["components"])
        }
    };
    put("text", Some(line.clone()));
    let attachments = attachments(data);
    if attachments.len() > 1 {
        let urls: Vec<&str> = attachments.iter().map(|a| a.url.as_str()).collect();
        put("attachments", Some(json!(urls).to_string()));
    }
    let message = match attachments.into_iter().next() {
        Some(a) => a.message(),
        None => Message::text(line),
    };
    let instance_key = Some(match (&channel, &guild) {
        (Some(c), _) => format!("discord:{c}"),
        (None, Some(g)) => format!("discord:guild:{g}"),
        (None, None) => format!("discord:app:{application_id}"),
    });
    let event = Event {
        name: name.to_owned(),
        message: Some(message),
        properties,
        instance_key,
        payload: Some(Json(without_token(body))),
    };
    Ok(Kind::Emit(Box::new(Mapped {
        event,
        id,
        application_id,
        token,
        deferred,
    })))
}

/// The interaction as Discord sent it, for `event.payload`, less its
/// `token` (the connector keeps it; the event has the reference).
fn without_token(body: &Value) -> Value {
    let mut payload = body.clone();
    if let Some(fields) = payload.as_object_mut() {
        fields.remove("token");
    }
    payload
}

/// A string, or a number as its text; `None` for anything else or an empty string.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `/name sub option:value …`, as a user would have typed it; attachment
/// options (type 11) are left out (they are the message).
fn command_line(name: &str, options: &Value) -> String {
    let mut line = format!("/{name}");
    let mut options = options.as_array().cloned().unwrap_or_default();
    while let Some(option) = options.first().cloned() {
        // A subcommand (1) or group (2) holds the options that follow it.
        if matches!(option["type"].as_u64(), Some(1 | 2)) && options.len() == 1 {
            if let Some(sub) = text(&option["name"]) {
                line.push(' ');
                line.push_str(&sub);
            }
            options = option["options"].as_array().cloned().unwrap_or_default();
            continue;
        }
        break;
    }
    for option in options {
        if option["type"] == 11 {
            continue;
        }
        if let (Some(n), Some(v)) = (text(&option["name"]), text(&option["value"])) {
            line.push_str(&format!(" {n}:{v}"));
        }
    }
    line
}

/// Each text input of a modal as `custom_id: value`, one a line.
fn modal_text(components: &Value) -> String {
    let mut lines = Vec::new();
    let mut stack: Vec<&Value> = components
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    stack.reverse();
    while let Some(c) = stack.pop() {
        if let Some(children) = c["components"].as_array() {
            stack.extend(children.iter().rev());
        } else if let Some(child) = c.get("component") {
            stack.push(child);
        } else if let (Some(id), Some(v)) = (text(&c["custom_id"]), text(&c["value"])) {
            lines.push(format!("{id}: {v}"));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitted(body: Value) -> Mapped {
        match classify(&body).unwrap() {
            Kind::Emit(m) => *m,
            other => panic!("not emitted: {other:?}"),
        }
    }

    fn command(options: Value, resolved: Value) -> Value {
        json!({
            "id": "1100", "application_id": "2200", "type": 2, "token": "tok-en",
            "guild_id": "3300", "channel_id": "4400", "locale": "en-US",
            "member": {"user": {"id": "5500", "username": "ada"}},
            "data": {"id": "6600", "name": "ask", "type": 1, "options": options, "resolved": resolved},
        })
    }

    #[test]
    fn ping_and_autocomplete_are_answered_not_emitted() {
        assert_eq!(classify(&json!({"type": 1})), Ok(Kind::Ping));
        assert_eq!(classify(&json!({"type": 4})), Ok(Kind::Autocomplete));
        assert!(
            classify(&json!({"type": 9}))
                .unwrap_err()
                .contains("type 9")
        );
        assert!(classify(&json!({})).is_err());
    }

    #[test]
    fn a_slash_command_becomes_a_command_event() {
        let m = emitted(command(
            json!([{"name": "question", "type": 3, "value": "why?"}, {"name": "n", "type": 4, "value": 3}]),
            Value::Null,
        ));
        assert_eq!(m.id, "1100");
        assert_eq!(m.application_id, "2200");
        assert_eq!(m.token, "tok-en");
        assert_eq!(m.deferred, json!({"type": 5}));
        let e = &m.event;
        assert_eq!(e.name, "command");
        assert_eq!(e.message, Some(Message::text("/ask question:why? n:3")));
        assert_eq!(e.instance_key.as_deref(), Some("discord:4400"));
        let p = &e.properties;
        assert_eq!(p["command"], "ask");
        assert_eq!(p["channel"], "4400");
        assert_eq!(p["guild"], "3300");
        assert_eq!(p["user"], "5500");
        assert_eq!(p["username"], "ada");
        assert_eq!(p["interaction_id"], "1100");
        assert!(!p.values().any(|v| v.contains("tok-en")), "{p:?}");
        // The payload is the interaction, whole but for its token.
        let payload = &e.payload.as_ref().unwrap().0;
        assert_eq!(payload["data"]["name"], "ask");
        assert_eq!(payload["member"]["user"]["username"], "ada");
        assert!(payload.get("token").is_none(), "{payload}");
    }

    #[test]
    fn subcommands_read_as_typed() {
        let m = emitted(command(
            json!([{"name": "set", "type": 1, "options": [{"name": "to", "type": 3, "value": "x"}]}]),
            Value::Null,
        ));
        assert_eq!(m.event.message, Some(Message::text("/ask set to:x")));
    }

    #[test]
    fn components_and_modals() {
        let button = json!({
            "id": "1", "application_id": "2", "type": 3, "token": "t", "channel_id": "9",
            "user": {"id": "5"}, "data": {"custom_id": "approve", "component_type": 2},
        });
        let m = emitted(button);
        assert_eq!(m.event.name, "component");
        assert_eq!(m.deferred, json!({"type": 6}));
        assert_eq!(m.event.properties["custom_id"], "approve");
        assert_eq!(m.event.properties["user"], "5");
        assert_eq!(m.event.message, Some(Message::text("approve")));
        let select = json!({
            "id": "1", "application_id": "2", "type": 3, "token": "t", "channel_id": "9",
            "data": {"custom_id": "pick", "component_type": 3, "values": ["a", "b"]},
        });
        assert_eq!(emitted(select).event.message, Some(Message::text("a,b")));
        let modal = json!({
            "id": "1", "application_id": "2", "type": 5, "token": "t", "guild_id": "8",
            "data": {"custom_id": "form", "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": "name", "value": "Ada"}]},
                {"type": 18, "component": {"type": 4, "custom_id": "why", "value": "because"}},
            ]},
        });
        let m = emitted(modal);
        assert_eq!(m.event.name, "modal_submit");
        assert_eq!(
            m.event.message,
            Some(Message::text("name: Ada\nwhy: because"))
        );
        assert_eq!(m.event.instance_key.as_deref(), Some("discord:guild:8"));
    }

    #[test]
    fn an_interaction_without_its_token_is_refused() {
        let e = classify(&json!({"id": "1", "application_id": "2", "type": 2})).unwrap_err();
        assert_eq!(e, "interaction without token");
    }
}
