//! From a verified request to an [`Event`]: pure functions of the mapping,
//! the path, the headers and the JSON body.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderName};
use connector_sdk::ipc_proto::Json;
use connector_sdk::{Event, Message};
use serde_json::Value;

use crate::config::Mapping;

/// The event for one request, and its dedupe key if the request carries one.
pub fn event(
    mapping: &Mapping,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
) -> (Event, Option<String>) {
    let name = mapping
        .event_pointer
        .as_deref()
        .and_then(|p| body.pointer(p))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| header(headers, mapping.event_header.as_ref()))
        .unwrap_or_else(|| mapping.event_name.clone());
    let instance_key = lookup(body, mapping.instance_key_pointer.as_deref())
        .unwrap_or_else(|| format!("webhook:{path}"));
    let text = lookup(body, mapping.text_pointer.as_deref()).unwrap_or_else(|| body.to_string());
    let properties: BTreeMap<String, String> = mapping
        .properties
        .iter()
        .filter_map(|(name, p)| lookup(body, Some(p)).map(|v| (name.clone(), v)))
        .collect();
    let event = Event {
        name,
        message: Some(Message::text(text)),
        properties,
        instance_key: Some(instance_key),
        // The sender's whole object (bounded by the Connector's maxPayloadBytes).
        payload: Some(Json(body.clone())),
    };
    (event, header(headers, mapping.dedupe_header.as_ref()))
}

/// The value at `pointer` as a string: strings as they are, numbers and
/// booleans printed, anything else as compact JSON. Absent or null is `None`.
fn lookup(body: &Value, pointer: Option<&str>) -> Option<String> {
    match body.pointer(pointer?)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn header(headers: &HeaderMap, name: Option<&HeaderName>) -> Option<String> {
    let value = headers.get(name?)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            event_name: "webhook".into(),
            ..Mapping::default()
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn defaults_use_the_path_and_the_whole_body() {
        let body = json!({"b": 1, "a": "x"});
        let (e, key) = event(&mapping(), "/hooks/ci", &HeaderMap::new(), &body);
        assert_eq!(e.name, "webhook");
        assert_eq!(e.instance_key.as_deref(), Some("webhook:/hooks/ci"));
        assert_eq!(e.message, Some(Message::text(body.to_string())));
        assert!(e.properties.is_empty());
        assert_eq!(key, None);
        assert_eq!(e.payload, Some(Json(body)), "the whole body is the payload");
    }

    #[test]
    fn pointers_headers_and_properties() {
        let m = Mapping {
            event_pointer: Some("/kind".into()),
            event_header: Some(HeaderName::from_static("x-event")),
            instance_key_pointer: Some("/chat/id".into()),
            text_pointer: Some("/text".into()),
            properties: vec![
                ("id".into(), "/chat/id".into()),
                ("ok".into(), "/ok".into()),
                ("tags".into(), "/tags".into()),
                ("who".into(), "/from/name".into()),
                ("gone".into(), "/missing".into()),
                ("nothing".into(), "/null".into()),
            ],
            dedupe_header: Some(HeaderName::from_static("x-delivery")),
            ..mapping()
        };
        let body = json!({
            "kind": "message", "chat": {"id": 42}, "text": "hi", "ok": true,
            "tags": ["a", "b"], "from": {"name": "ada"}, "null": null
        });
        let h = headers(&[("x-event", "from-header"), ("x-delivery", "d-1")]);
        let (e, key) = event(&m, "/", &h, &body);
        assert_eq!(e.name, "message", "the body's pointer wins over the header");
        assert_eq!(e.instance_key.as_deref(), Some("42"));
        assert_eq!(e.message, Some(Message::text("hi")));
        let props: Vec<(&str, &str)> = e
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                ("id", "42"),
                ("ok", "true"),
                ("tags", r#"["a","b"]"#),
                ("who", "ada")
            ]
        );
        assert_eq!(key.as_deref(), Some("d-1"));

        // Without the pointer's value, the header names the event; then EVENT_NAME.
        let (e, _) = event(&m, "/", &h, &json!({"kind": 7}));
        assert_eq!(e.name, "from-header");
        let (e, _) = event(&m, "/", &HeaderMap::new(), &json!({}));
        assert_eq!(e.name, "webhook");
        assert_eq!(e.instance_key.as_deref(), Some("webhook:/"));
        assert_eq!(
            e.message,
            Some(Message::text("{}")),
            "absent text falls back to the body"
        );
    }
}
