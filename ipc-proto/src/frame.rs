//! The bincode body of a frame (the 4-byte length prefix is the codec's job).
//!
//! This is the one place that knows the body is bincode: swap the format here
//! and bump [`crate::PROTOCOL_VERSION`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{DecodeError, EncodeError};

/// Bincode's own allocation guard; the frame length limit is checked before this.
const BINCODE_LIMIT: usize = 256 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

/// Encodes one message as a frame body.
pub fn encode_body<T: Serialize>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    bincode::serde::encode_to_vec(msg, config()).map_err(EncodeError::Bincode)
}

/// Appends one message's frame body to `out`, returning the number of bytes written.
pub fn encode_body_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let before = out.len();
    bincode::serde::encode_into_std_write(msg, out, config()).map_err(EncodeError::Bincode)?;
    Ok(out.len() - before)
}

/// Decodes one frame body; the whole body must be one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (msg, read) =
        bincode::serde::decode_from_slice(body, config()).map_err(DecodeError::Bincode)?;
    if read != body.len() {
        return Err(DecodeError::Trailing(body.len() - read));
    }
    Ok(msg)
}
