//! From a Bot API `Update` object to an event, or a reason to skip it. Pure.

use std::collections::BTreeMap;

use connector_sdk::{Event, Message};
use serde_json::Value;

/// What one update becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An event to emit.
    Emit(Event),
    /// Nothing to emit, and why (for the log).
    Skip(String),
}

/// One update, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    /// `update_id`, when the update has one.
    pub update_id: Option<i64>,
    /// What to do with it.
    pub outcome: Outcome,
}

/// Message fields that say something about a message rather than being its content.
const ABOUT: &[&str] = &[
    "message_id",
    "message_thread_id",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "date",
    "edit_date",
    "business_connection_id",
    "chat",
    "forward_origin",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "via_bot",
    "has_protected_content",
    "is_from_offline",
    "media_group_id",
    "author_signature",
    "entities",
    "caption_entities",
    "link_preview_options",
    "effect_id",
    "show_caption_above_media",
    "reply_markup",
];

/// Classifies one element of a `getUpdates` result.
pub fn classify(update: &Value) -> Classified {
    let update_id = update.get("update_id").and_then(Value::as_i64);
    let outcome = match kind_of(update) {
        // Without an id it could never be confirmed, nor deduplicated.
        Some(_) if update_id.is_none() => Outcome::Skip("an update without update_id".into()),
        Some(("message", msg)) => message(msg, false),
        Some(("edited_message", msg)) => message(msg, true),
        Some(("callback_query", cq)) => callback_query(cq),
        Some((kind, _)) => Outcome::Skip(format!("{kind} updates are not handled")),
        None if update.is_object() => Outcome::Skip("an update without content".into()),
        None => Outcome::Skip("not an update object".into()),
    };
    Classified { update_id, outcome }
}

/// The update's one field besides `update_id`: its kind and its object.
fn kind_of(update: &Value) -> Option<(&str, &Value)> {
    update
        .as_object()?
        .iter()
        .find(|(k, _)| k.as_str() != "update_id")
        .map(|(k, v)| (k.as_str(), v))
}

fn message(msg: &Value, edited: bool) -> Outcome {
    let Some(chat_id) = msg.pointer("/chat/id").and_then(Value::as_i64) else {
        return Outcome::Skip("a message without chat.id".into());
    };
    let message_id = msg.get("message_id").and_then(Value::as_i64);
    let text = msg
        .get("text")
        .or_else(|| msg.get("caption"))
        .and_then(Value::as_str);
    let Some(text) = text else {
        let what = msg
            .as_object()
            .and_then(|m| m.keys().find(|k| !ABOUT.contains(&k.as_str())))
            .map_or("no content", String::as_str);
        let id = message_id.map_or_else(|| "?".to_owned(), |i| i.to_string());
        return Outcome::Skip(format!(
            "message {id} in chat {chat_id} has no text ({what})"
        ));
    };
    let mut properties = BTreeMap::from([
        ("chat_id".to_owned(), chat_id.to_string()),
        (
            "chat_type".to_owned(),
            msg.pointer("/chat/type")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
        ),
    ]);
    if let Some(id) = message_id {
        properties.insert("message_id".into(), id.to_string());
    }
    sender(msg.get("from"), &mut properties);
    let name = if edited {
        "edited_message"
    } else if let Some((command, args)) = command(text) {
        properties.insert("command".into(), command.to_owned());
        properties.insert("args".into(), args.to_owned());
        "command"
    } else {
        "message"
    };
    Outcome::Emit(Event {
        name: name.into(),
        message: Some(Message::text(text)),
        properties,
        instance_key: Some(format!("telegram:{chat_id}")),
        payload: None,
    })
}

/// `/start@MyBot a b` → (`/start`, `a b`); `None` unless the text starts with `/`.
fn command(text: &str) -> Option<(&str, &str)> {
    if !text.starts_with('/') {
        return None;
    }
    let (head, args) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(h, a)| (h, a.trim()));
    let command = head.split_once('@').map_or(head, |(c, _)| c);
    Some((command, args))
}

/// Adds `user_id` and `username` from a `User` object.
fn sender(from: Option<&Value>, properties: &mut BTreeMap<String, String>) {
    let Some(from) = from else { return };
    if let Some(id) = from.get("id").and_then(Value::as_i64) {
        properties.insert("user_id".into(), id.to_string());
    }
    if let Some(name) = from.get("username").and_then(Value::as_str) {
        properties.insert("username".into(), name.to_owned());
    }
}

fn callback_query(cq: &Value) -> Outcome {
    let Some(user_id) = cq.pointer("/from/id").and_then(Value::as_i64) else {
        return Outcome::Skip("a callback_query without from.id".into());
    };
    let Some(data) = cq.get("data").and_then(Value::as_str) else {
        return Outcome::Skip(format!(
            "a callback_query from user {user_id} without data (a game button)"
        ));
    };
    let mut properties = BTreeMap::from([("data".to_owned(), data.to_owned())]);
    if let Some(id) = cq.get("id").and_then(Value::as_str) {
        properties.insert("callback_query_id".into(), id.to_owned());
    }
    sender(cq.get("from"), &mut properties);
    let chat_id = cq.pointer("/message/chat/id").and_then(Value::as_i64);
    let instance_key = match chat_id {
        Some(chat) => {
            properties.insert("chat_id".into(), chat.to_string());
            format!("telegram:{chat}")
        }
        // A button on an inline message: no chat, the user is the conversation.
        None => format!("telegram:user:{user_id}"),
    };
    Outcome::Emit(Event {
        name: "callback_query".into(),
        message: Some(Message::text(data)),
        properties,
        instance_key: Some(instance_key),
        payload: None,
    })
}

#[cfg(test)]
mod tests;
