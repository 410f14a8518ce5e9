//! The jsonl form: one JSON object per line, in the shapes of PROTOCOL.md.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{DecodeError, EncodeError};

/// Encodes one message as a JSON object without the trailing newline.
///
/// Absent optional fields are left out rather than written as `null`, so the
/// lines look like the ones in PROTOCOL.md.
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
    serde_json::from_str(line.trim_end_matches(['\n', '\r'])).map_err(DecodeError::Json)
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
