//! The jsonl form: one JSON object per line, in the shapes of docs/protocol.md.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::skip_none::SkipNone;
use crate::{DecodeError, EncodeError};

/// Encodes one message as a JSON object without the trailing newline.
///
/// Absent optional fields are left out rather than written as `null`, so the
/// lines look like the ones in docs/protocol.md.
pub fn encode<T: Serialize>(msg: &T) -> Result<String, EncodeError> {
    let mut out = Vec::with_capacity(256);
    encode_into(msg, &mut out)?;
    // serde_json writes UTF-8 only.
    String::from_utf8(out).map_err(|e| EncodeError::Json(serde::ser::Error::custom(e)))
}

/// Encodes one message as a `\n`-terminated line.
pub fn encode_line<T: Serialize>(msg: &T) -> Result<String, EncodeError> {
    let mut line = encode(msg)?;
    line.push('\n');
    Ok(line)
}

/// Appends one message, as [`encode`] writes it, to `out`.
pub fn encode_into<T: Serialize, W: std::io::Write>(msg: &T, out: W) -> Result<(), EncodeError> {
    let mut ser = serde_json::Serializer::new(out);
    msg.serialize(SkipNone(&mut ser)).map_err(EncodeError::Json)
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
