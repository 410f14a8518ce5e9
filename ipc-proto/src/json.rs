//! The jsonl form: one JSON object per line, in the shapes of docs/protocol.md.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{DecodeError, EncodeError};

/// Encodes one message as a JSON object without the trailing newline.
///
/// Absent optional fields are left out rather than written as `null`, so the
/// lines look like the ones in docs/protocol.md.
pub fn encode<T: Serialize>(msg: &T) -> Result<String, EncodeError> {
    let mut value = serde_json::to_value(msg).map_err(EncodeError::Json)?;
    strip_nulls(&mut value);
    serde_json::to_string(&value).map_err(EncodeError::Json)
}

/// Encodes one message as a `\n`-terminated line.
pub fn encode_line<T: Serialize>(msg: &T) -> Result<String, EncodeError> {
    let mut line = encode(msg)?;
    line.push('\n');
    Ok(line)
}

/// Decodes one line (with or without its `\n`).
pub fn decode<T: DeserializeOwned>(line: &str) -> Result<T, DecodeError> {
    let line = line.trim_end_matches(['\n', '\r']);
    serde_json::from_str(line).map_err(|source| DecodeError::Json {
        seq: readable_seq(line),
        source,
    })
}

/// The `seq` of a line that is a JSON object with a whole-number `seq`, so a
/// malformed emit can still be answered for its seq.
fn readable_seq(line: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_str::<Seq>(line).ok().map(|s| s.seq)
}

/// The fields that hold any JSON of someone else's ([`crate::Json`]): a
/// `null` inside them is data, kept as sent.
const OPAQUE: [&str; 3] = ["input", "data", "payload"];

/// Leaves out absent optional fields of the message's own structure, but
/// never touches what is inside an opaque field.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            for (key, v) in map.iter_mut() {
                if !OPAQUE.contains(&key.as_str()) {
                    strip_nulls(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
