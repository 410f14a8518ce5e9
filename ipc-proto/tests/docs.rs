//! `docs/protocol.md` shows every message: a new message type without a JSON
//! example there fails this test.
//!
//! The list of message types comes from the code, not from a list written
//! here: each wire enum is asked to decode a `"type"` no message has, and
//! the error serde reports names every tag the enum knows (its `VARIANTS`).
//!
//! The examples come from the document: every line of a fenced code block
//! that starts with `{` (after an optional `>` or `<` direction marker, as
//! in the worked sessions) is one JSON value and must parse. One that has a
//! `"type"` must decode as a real message of some direction, so the
//! examples cannot drift from the code field by field either.

use std::fmt;
use std::path::PathBuf;

use ipc_proto::{FromAgent, FromConnector, Message, ToAgent, ToConnector, json};
use serde::de::{self, DeserializeOwned, value::MapDeserializer};
use serde_json::Value;

/// A serde error that keeps the list of variants an unknown tag was checked against.
#[derive(Debug)]
struct Probe {
    variants: Option<&'static [&'static str]>,
    message: String,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Probe {}

impl de::Error for Probe {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Probe {
            variants: None,
            message: msg.to_string(),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Probe {
            variants: Some(expected),
            message: format!("unknown variant {variant}"),
        }
    }
}

/// Every `"type"` tag `T` decodes, as the code declares them.
fn tags<T: DeserializeOwned>(what: &str) -> Vec<&'static str> {
    let probe = MapDeserializer::<_, Probe>::new(std::iter::once(("type", "\u{1}no such type")));
    match T::deserialize(probe) {
        Err(Probe {
            variants: Some(tags),
            ..
        }) => {
            assert!(!tags.is_empty(), "{what} has no message types");
            tags.to_vec()
        }
        Err(e) => panic!("{what}: the probe did not list the message types: {e}"),
        Ok(_) => panic!("{what}: the probe decoded as a message"),
    }
}

/// The JSON examples in `docs/protocol.md`, with their line numbers.
fn examples() -> Vec<(usize, Value)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut in_block = false;
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let body = trimmed
            .strip_prefix('>')
            .or_else(|| trimmed.strip_prefix('<'))
            .unwrap_or(trimmed)
            .trim();
        if !body.starts_with('{') {
            continue;
        }
        let value: Value = serde_json::from_str(body).unwrap_or_else(|e| {
            panic!(
                "docs/protocol.md:{}: not one JSON value: {e}\n{body}",
                i + 1
            )
        });
        found.push((i + 1, value));
    }
    found
}

/// The tag of `value` when it decodes as a `T`.
fn decoded_tag<T: DeserializeOwned>(
    value: &Value,
    tag: fn(&T) -> &'static str,
) -> Option<&'static str> {
    let line = serde_json::to_string(value).ok()?;
    json::decode::<T>(&line).ok().map(|m| tag(&m))
}

/// `value` and every object nested in it.
fn objects<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            out.push(value);
            map.values().for_each(|v| objects(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| objects(v, out)),
        _ => {}
    }
}

fn check_shown<T: DeserializeOwned>(
    what: &str,
    candidates: &[&Value],
    tag: fn(&T) -> &'static str,
) -> Vec<String> {
    let shown: Vec<&'static str> = candidates
        .iter()
        .filter_map(|v| decoded_tag::<T>(v, tag))
        .collect();
    tags::<T>(what)
        .into_iter()
        .filter(|t| !shown.contains(t))
        .map(|t| format!("{what} \"type\":\"{t}\""))
        .collect()
}

#[test]
fn every_message_type_has_a_json_example_in_protocol_md() {
    let examples = examples();
    let top: Vec<&Value> = examples.iter().map(|(_, v)| v).collect();
    let mut nested = Vec::new();
    for v in &top {
        objects(v, &mut nested);
    }
    let mut missing = Vec::new();
    missing.extend(check_shown::<ToConnector>(
        "ToConnector",
        &top,
        ToConnector::tag,
    ));
    missing.extend(check_shown::<FromConnector>(
        "FromConnector",
        &top,
        FromConnector::tag,
    ));
    missing.extend(check_shown::<ToAgent>("ToAgent", &top, ToAgent::tag));
    missing.extend(check_shown::<FromAgent>("FromAgent", &top, FromAgent::tag));
    missing.extend(check_shown::<Message>("Message", &nested, Message::tag));
    assert!(
        missing.is_empty(),
        "docs/protocol.md has no valid JSON example of: {}",
        missing.join(", ")
    );
}

#[test]
fn every_json_example_with_a_type_is_a_real_message() {
    let mut wrong = Vec::new();
    for (line, value) in examples() {
        if value.get("type").is_none() {
            continue;
        }
        let decodes = decoded_tag::<ToConnector>(&value, ToConnector::tag).is_some()
            || decoded_tag::<FromConnector>(&value, FromConnector::tag).is_some()
            || decoded_tag::<ToAgent>(&value, ToAgent::tag).is_some()
            || decoded_tag::<FromAgent>(&value, FromAgent::tag).is_some()
            || decoded_tag::<Message>(&value, Message::tag).is_some();
        if !decodes {
            wrong.push(format!("docs/protocol.md:{line}: {value}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "these examples decode as no message of any direction:\n{}",
        wrong.join("\n")
    );
}

/// The probe itself finds the tags the code gives its messages (a subset
/// check, so a new message does not have to be added here).
#[test]
fn the_probe_finds_the_tags_of_the_code() {
    let to_connector = tags::<ToConnector>("ToConnector");
    let ping = ToConnector::Ping(ipc_proto::Ping { nonce: 1 });
    assert!(to_connector.contains(&ping.tag()), "{to_connector:?}");
    assert!(to_connector.contains(&"init"), "{to_connector:?}");
    let messages = tags::<Message>("Message");
    assert!(
        messages.contains(&Message::text("hi").tag()),
        "{messages:?}"
    );
}
