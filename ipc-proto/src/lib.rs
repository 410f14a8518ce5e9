//! The wire contract between the orchestrator and the child processes it spawns.
//!
//! # Theory of operation
//!
//! Every message that crosses a process boundary is defined here, once, as a
//! Rust type: four enums, one per direction and kind of child
//! ([`ToConnector`], [`FromConnector`], [`ToAgent`], [`FromAgent`]), whose
//! variants wrap named structs. Each type has two encodings over the same
//! value:
//!
//! - **frames**: a 4-byte big-endian length, then a bincode body
//!   ([`frame`]). Bincode is not self-describing, so in this form an enum is
//!   its variant index followed by the fields in order.
//! - **jsonl**: one JSON object per line ([`json`]), in exactly the shapes of
//!   docs/protocol.md: the variant is a `"type"` field beside the struct's fields.
//!
//! The two forms come from one set of `Serialize`/`Deserialize` impls that
//! ask the format [`is_human_readable`](serde::Serializer::is_human_readable)
//! and pick the tagged (JSON) or positional (bincode) shape. Golden fixtures
//! of both forms for every message kind live in `tests/fixtures/`; changing
//! them means bumping [`PROTOCOL_VERSION`].
//!
//! With the `codec` feature, [`codec::FrameCodec`] and [`codec::JsonlCodec`]
//! plug the encodings into `tokio_util::codec::Framed`. A frame or line that
//! does not decode is yielded as an `Err` item, not as a stream error, so one
//! bad message does not end a channel. The exception is a frame whose length
//! prefix is over the limit: it is reported as one `Err` item and then ends
//! the stream, since the frames after it cannot be found again.
//!
//! This crate holds no process, routing or retry policy: it never decides what
//! a message means, only what its bytes are.

#[cfg(feature = "codec")]
pub mod codec;
mod error;
pub mod frame;
pub mod json;
mod messages;
mod operations;
mod skip_none;
mod v1;
mod wire;

pub use error::{DecodeError, EncodeError};
pub use messages::*;
pub use operations::*;

/// The protocol version carried in every `init` and accepted in `ready`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The default largest frame body or jsonl line, in bytes (4 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The environment variable that names the inherited IPC socket's fd (frames transport).
pub const IPC_FD_ENV: &str = "ORCHESTRATOR_IPC_FD";
