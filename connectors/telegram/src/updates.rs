//! From a Bot API `Update` object to an event, or a reason to skip it. Pure.

use std::collections::BTreeMap;

use connector_sdk::ipc_proto::{File, Image, Json};
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
    let mut outcome = match kind_of(update) {
        // Without an id it could never be confirmed, nor deduplicated.
        Some(_) if update_id.is_none() => Outcome::Skip("an update without update_id".into()),
        Some((kind @ ("message" | "channel_post"), msg)) => message(msg, kind, true),
        Some((kind @ ("edited_message" | "edited_channel_post"), msg)) => message(msg, kind, false),
        Some(("callback_query", cq)) => callback_query(cq),
        Some(("my_chat_member", m)) => my_chat_member(m),
        Some((kind, _)) => Outcome::Skip(format!("{kind} updates are not handled")),
        None if update.is_object() => Outcome::Skip("an update without content".into()),
        None => Outcome::Skip("not an update object".into()),
    };
    // The whole Update, as Telegram sent it: its file_ids are references
    // too, and it holds no URL (Telegram's file URLs are built with the token).
    if let Outcome::Emit(event) = &mut outcome {
        event.payload = Some(Json(update.clone()));
    }
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

/// A message or a channel post (`name` is the update kind, the event's name
/// unless a new message's text is a command, when `commands` says so).
fn message(msg: &Value, name: &str, commands: bool) -> Outcome {
    let Some(chat_id) = msg.pointer("/chat/id").and_then(Value::as_i64) else {
        return Outcome::Skip(format!("a {name} without chat.id"));
    };
    let message_id = msg.get("message_id").and_then(Value::as_i64);
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
    let mut name = name;
    let content = if let Some(file) = attachment(msg) {
        properties.insert("attachment".into(), file.kind.to_owned());
        properties.insert("file_id".into(), file.file_id.clone());
        for (key, value) in [("file_name", &file.name), ("mime_type", &file.mime_type)] {
            if let Some(v) = value {
                properties.insert(key.into(), v.clone());
            }
        }
        if let Some(caption) = msg.get("caption").and_then(Value::as_str) {
            properties.insert("caption".into(), caption.to_owned());
        }
        file.message()
    } else if let Some(text) = msg
        .get("text")
        .or_else(|| msg.get("caption"))
        .and_then(Value::as_str)
    {
        if let Some((command, args)) = command(text).filter(|_| commands && name == "message") {
            properties.insert("command".into(), command.to_owned());
            properties.insert("args".into(), args.to_owned());
            name = "command";
        }
        Message::text(text)
    } else {
        let what = msg
            .as_object()
            .and_then(|m| m.keys().find(|k| !ABOUT.contains(&k.as_str())))
            .map_or("no content", String::as_str);
        let id = message_id.map_or_else(|| "?".to_owned(), |i| i.to_string());
        return Outcome::Skip(format!(
            "message {id} in chat {chat_id} has no text ({what})"
        ));
    };
    Outcome::Emit(Event {
        name: name.into(),
        message: Some(content),
        properties,
        instance_key: Some(format!("telegram:{chat_id}")),
        payload: None,
    })
}

/// A file a message carries: the reference `telegram-file:<file_id>` is
/// what the agent passes to `getFile`; the URL Telegram serves it at holds
/// the token, so it never leaves the connector.
#[derive(Debug)]
struct Attachment {
    kind: &'static str,
    file_id: String,
    name: Option<String>,
    mime_type: Option<String>,
}

impl Attachment {
    fn message(&self) -> Message {
        let url = format!("telegram-file:{}", self.file_id);
        if self.kind == "photo" {
            return Message::Image(Image { url });
        }
        let name = self.name.clone().unwrap_or_else(|| {
            let ext = match self.kind {
                "voice" => ".ogg",
                "video" => ".mp4",
                _ => "",
            };
            format!("{}{ext}", self.kind)
        });
        Message::File(File { url, name })
    }
}

/// The photo (its largest size), document, voice, video or audio of `msg`.
fn attachment(msg: &Value) -> Option<Attachment> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(sizes) = msg.get("photo").and_then(Value::as_array) {
        let area = |p: &Value| {
            let n = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
            (n("width") * n("height"), n("file_size"))
        };
        let largest = sizes.iter().max_by_key(|p| area(p))?;
        return Some(Attachment {
            kind: "photo",
            file_id: text(largest, "file_id")?,
            name: None,
            mime_type: None,
        });
    }
    ["document", "video", "audio", "voice"]
        .into_iter()
        .find_map(|kind| {
            let f = msg.get(kind)?;
            Some(Attachment {
                kind,
                file_id: text(f, "file_id")?,
                name: text(f, "file_name").or_else(|| text(f, "title").filter(|_| kind == "audio")),
                mime_type: text(f, "mime_type"),
            })
        })
}

/// The bot's own membership changed: added to, removed from, or promoted in a chat.
fn my_chat_member(m: &Value) -> Outcome {
    let Some(chat_id) = m.pointer("/chat/id").and_then(Value::as_i64) else {
        return Outcome::Skip("a my_chat_member without chat.id".into());
    };
    let status = |side: &str| {
        m.pointer(&format!("/{side}/status"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned()
    };
    let (old, new) = (status("old_chat_member"), status("new_chat_member"));
    let mut properties = BTreeMap::from([
        ("chat_id".to_owned(), chat_id.to_string()),
        (
            "chat_type".to_owned(),
            m.pointer("/chat/type")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
        ),
        ("old_status".to_owned(), old.clone()),
        ("new_status".to_owned(), new.clone()),
    ]);
    sender(m.get("from"), &mut properties);
    Outcome::Emit(Event {
        name: "my_chat_member".into(),
        message: Some(Message::text(format!(
            "the bot's status in chat {chat_id}: {old} → {new}"
        ))),
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
