//! Files attached to an interaction (`data.resolved.attachments`) and the
//! message each becomes: an `image` for an `image/*` type, else a `file`,
//! by its Discord CDN URL.

use connector_sdk::Message;
use serde_json::Value;

use crate::interaction::text;

/// A file attached to the interaction (`data.resolved.attachments`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Its CDN URL.
    pub url: String,
    /// Its file name.
    pub filename: String,
    /// Its media type, when Discord sent one.
    pub content_type: Option<String>,
}

impl Attachment {
    /// An image message for an `image/*` type, else a file message.
    pub fn message(self) -> Message {
        let image = self
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("image/"));
        if image {
            Message::Image(connector_sdk::ipc_proto::Image { url: self.url })
        } else {
            Message::File(connector_sdk::ipc_proto::File {
                url: self.url,
                name: self.filename,
            })
        }
    }
}

/// The attachments of an interaction, in the order its options name them
/// (then any other resolved ones, by id).
pub fn attachments(data: &Value) -> Vec<Attachment> {
    let Some(resolved) = data["resolved"]["attachments"].as_object() else {
        return Vec::new();
    };
    let mut ids: Vec<String> = Vec::new();
    let mut stack: Vec<&Value> = vec![&data["options"]];
    while let Some(options) = stack.pop() {
        for o in options.as_array().into_iter().flatten() {
            if o["type"] == 11 {
                ids.extend(text(&o["value"]));
            }
            stack.push(&o["options"]);
        }
    }
    let mut rest: Vec<&String> = resolved.keys().filter(|k| !ids.contains(k)).collect();
    rest.sort();
    ids.extend(rest.into_iter().cloned());
    ids.iter()
        .filter_map(|id| {
            let a = resolved.get(id)?;
            Some(Attachment {
                url: text(&a["url"])?,
                filename: text(&a["filename"]).unwrap_or_else(|| id.clone()),
                content_type: text(&a["content_type"]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::interaction::{Kind, Mapped, classify};

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
            "guild_id": "3300", "channel_id": "4400",
            "member": {"user": {"id": "5500", "username": "ada"}},
            "data": {"id": "6600", "name": "ask", "type": 1, "options": options, "resolved": resolved},
        })
    }

    #[test]
    fn attachments_become_image_or_file_messages() {
        let resolved = json!({"attachments": {
            "77": {"id": "77", "filename": "cat.png", "url": "https://cdn.example/cat.png", "content_type": "image/png"},
            "88": {"id": "88", "filename": "notes.pdf", "url": "https://cdn.example/notes.pdf", "content_type": "application/pdf"},
        }});
        let options = json!([{"name": "doc", "type": 11, "value": "88"}, {"name": "pic", "type": 11, "value": "77"}]);
        let m = emitted(command(options, resolved.clone()));
        assert_eq!(
            m.event.message,
            Some(Message::File(connector_sdk::ipc_proto::File {
                url: "https://cdn.example/notes.pdf".into(),
                name: "notes.pdf".into()
            }))
        );
        assert_eq!(m.event.properties["text"], "/ask");
        assert_eq!(
            m.event.properties["attachments"],
            r#"["https://cdn.example/notes.pdf","https://cdn.example/cat.png"]"#
        );
        let one = json!([{"name": "pic", "type": 11, "value": "77"}]);
        let resolved = json!({"attachments": {"77": resolved["attachments"]["77"]}});
        let m = emitted(command(one, resolved));
        assert_eq!(
            m.event.message,
            Some(Message::Image(connector_sdk::ipc_proto::Image {
                url: "https://cdn.example/cat.png".into()
            }))
        );
        assert!(!m.event.properties.contains_key("attachments"));
    }
}
