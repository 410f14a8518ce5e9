/// Why one frame or line could not be turned into a message.
///
/// A decode error concerns one message only: the channel it came from stays
/// usable, and the receiver answers with an `error` message and counts it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame or line is longer than the receiver accepts.
    #[error("message of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The announced (frames) or observed (jsonl) length, at least `max + 1`.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A jsonl line is not UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// A jsonl line is not JSON, or not a message this side may receive.
    #[error("invalid message{}: {source}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
    Json {
        /// The line's `seq`, when it has a readable one: an emit the
        /// receiver can still answer with a nack for that seq.
        seq: Option<u64>,
        /// What serde_json found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A frame body is not a bincode message this side may receive.
    #[error("invalid frame: {0}")]
    Bincode(#[source] bincode::error::DecodeError),
    /// A frame body decoded but left bytes unread.
    #[error("invalid frame: {0} trailing bytes")]
    Trailing(usize),
}

impl DecodeError {
    /// The `seq` of the message that could not be decoded, when it could be read.
    pub fn seq(&self) -> Option<u64> {
        match self {
            DecodeError::Json { seq, .. } => *seq,
            _ => None,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message is larger than the limit.
    #[error("encoded message of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// Bincode refused the value.
    #[error("frame encoding failed: {0}")]
    Bincode(#[source] bincode::error::EncodeError),
    /// serde_json refused the value.
    #[error("json encoding failed: {0}")]
    Json(#[source] serde_json::Error),
}
