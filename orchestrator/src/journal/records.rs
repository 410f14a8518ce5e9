//! What the journal stores, and how it is encoded.
//!
//! Records are serde_json, not the wire's bincode (`ipc_proto::frame`). The
//! wire is versioned per connection and its fixtures pin the bytes, but this
//! file outlives the binary that wrote it: after an upgrade the new
//! orchestrator must still read the events the old one accepted. JSON carries
//! field names, so an added `#[serde(default)]` field or a reordered struct
//! still decodes, where bincode would misread every later byte. The cost (a
//! few hundred bytes and about a microsecond an event) is small next to the
//! fsync each batch pays; and records are encoded on the caller's thread, not
//! the writer's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipc_proto::DeliveredEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{JournalError, RouteRecord};

/// A pending or delivered event: what `accept` stores (`E` is the event,
/// borrowed when it is written).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EventRecord<E = DeliveredEvent> {
    /// The event as agents get it.
    pub event: E,
    /// Where ingress routed it when it was accepted.
    pub route: RouteRecord,
}

/// A dead letter.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeadRecord {
    /// The event.
    pub event: DeliveredEvent,
    /// Where it was routed.
    pub route: RouteRecord,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it was given up on, in milliseconds since the Unix epoch.
    pub dead_at_ms: u64,
}

/// Serializes a record of event `id`.
pub(super) fn encode<T: Serialize>(id: &str, record: &T) -> Result<Vec<u8>, JournalError> {
    serde_json::to_vec(record).map_err(|source| JournalError::Encode {
        id: id.to_owned(),
        source,
    })
}

/// Reads back a record of event `id`.
pub(super) fn decode<T: DeserializeOwned>(id: Uuid, bytes: &[u8]) -> Result<T, JournalError> {
    serde_json::from_slice(bytes).map_err(|source| JournalError::Decode {
        id: id.to_string(),
        source,
    })
}

/// The table key of an event id. UUIDv7 bytes sort by creation time, so key
/// order is acceptance order.
pub(super) fn parse_id(id: &str) -> Result<Uuid, JournalError> {
    Uuid::parse_str(id).map_err(|_| JournalError::InvalidId(id.to_owned()))
}

/// `t` in milliseconds since the Unix epoch (0 before it).
pub(super) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The inverse of [`millis`].
pub(super) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A duration in whole milliseconds, saturating.
pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
