//! From a slash command (a form-encoded POST) to one [`Event`]: pure functions.

use std::collections::BTreeMap;

use connector_sdk::{Event, Message};

/// The event name of every slash command.
pub const SLASH_COMMAND: &str = "slash_command";

/// What a form-encoded request is.
#[derive(Clone, Debug, PartialEq)]
pub enum Form {
    /// A slash command, as an event, with its `trigger_id` (unique per invocation) as dedupe key.
    Command {
        /// The event to emit.
        event: Event,
        /// `trigger_id`, when present.
        trigger_id: Option<String>,
        /// `response_url`, when present: kept by the connector, never emitted.
        response_url: Option<String>,
    },
    /// Slack checking the endpoint's certificate (`ssl_check=1`): answer 200, emit nothing.
    SslCheck,
}

/// Reads a form body: a slash command, or Slack's SSL check; `Err` names what is missing.
///
/// Properties: `command` (e.g. `/deploy`), `user`, `channel`, `team` (the
/// ids Slack sends as `user_id`, `channel_id`, `team_id`); the message text
/// is the command's `text`; the instance key `slack:<team>:<channel>`, the
/// same as the channel's messages.
pub fn parse(body: &[u8]) -> Result<Form, String> {
    let fields: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if get("ssl_check") == Some("1") && get("command").is_none() {
        return Ok(Form::SslCheck);
    }
    let required = |k: &str| get(k).ok_or_else(|| format!("slash command without {k}"));
    let command = required("command")?;
    let team = required("team_id")?;
    let channel = required("channel_id")?;
    let user = required("user_id")?;
    let properties = BTreeMap::from([
        ("command".to_owned(), command.to_owned()),
        ("team".to_owned(), team.to_owned()),
        ("channel".to_owned(), channel.to_owned()),
        ("user".to_owned(), user.to_owned()),
    ]);
    let event = Event {
        name: SLASH_COMMAND.to_owned(),
        message: Some(Message::text(get("text").unwrap_or(""))),
        properties,
        instance_key: Some(format!("slack:{team}:{channel}")),
        // The form's fields, as Slack sent them, without token and response_url.
        payload: Some(crate::events::payload(&serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        ))),
    };
    Ok(Form::Command {
        event,
        trigger_id: get("trigger_id").map(str::to_owned),
        response_url: get("response_url").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_with_its_text() {
        let body = b"token=x&team_id=T1&channel_id=C1&user_id=U1&command=%2Fdeploy&text=web+now&trigger_id=1.2.3&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1";
        let Form::Command {
            event,
            trigger_id,
            response_url,
        } = parse(body).unwrap()
        else {
            panic!("not a command");
        };
        assert_eq!(event.name, "slash_command");
        assert_eq!(event.properties["command"], "/deploy");
        assert_eq!(event.message, Some(Message::text("web now")));
        assert_eq!(event.instance_key.as_deref(), Some("slack:T1:C1"));
        assert_eq!(trigger_id.as_deref(), Some("1.2.3"));
        assert_eq!(
            response_url.as_deref(),
            Some("https://hooks.slack.com/commands/1")
        );
        assert!(!format!("{event:?}").contains("hooks"));
    }

    #[test]
    fn ssl_check_and_incomplete_forms() {
        assert_eq!(parse(b"ssl_check=1&token=x"), Ok(Form::SslCheck));
        let e = parse(b"command=%2Fx&team_id=T&user_id=U").unwrap_err();
        assert_eq!(e, "slash command without channel_id");
        assert!(parse(b"payload=%7B%7D").unwrap_err().contains("command"));
    }
}
