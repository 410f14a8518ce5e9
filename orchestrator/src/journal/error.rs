//! The journal's one error type.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a journal call failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The state directory could not be created.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened (or is held by another process).
    #[error("cannot open journal {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: redb::DatabaseError,
    },
    /// The memory file of `--journal memory` could not be made.
    #[error("cannot create the memory file of the in-memory journal")]
    MemoryFile(#[source] std::io::Error),
    /// The writer thread could not be started.
    #[error("cannot start the journal writer thread")]
    Spawn(#[source] std::io::Error),
    /// A transaction failed; everything in its batch failed with it, so
    /// nothing the caller was waiting for is durable.
    #[error("journal storage failed")]
    Storage(#[source] Arc<redb::Error>),
    /// A record could not be serialized.
    #[error("cannot encode the journal record of event {id}")]
    Encode {
        /// The event id.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stored record could not be read back.
    #[error("corrupt journal record of event {id}")]
    Decode {
        /// The event id.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// An event id is not a UUID.
    #[error("event id '{0}' is not a uuid")]
    InvalidId(String),
    /// No such event where the call looked for it.
    #[error("no event {id} {place}")]
    NotFound {
        /// The event id.
        id: String,
        /// Where it was looked for: "pending" or "in the dead-letter queue".
        place: &'static str,
    },
    /// The writer has stopped: the journal was closed.
    #[error("the journal is closed")]
    Closed,
    /// Cluster mode: NATS JetStream did not store the event (see `cluster`).
    #[error("{0}")]
    Cluster(String),
}

impl JournalError {
    /// A storage failure, from any of redb's error types.
    pub(super) fn storage(e: impl Into<redb::Error>) -> Self {
        JournalError::Storage(Arc::new(e.into()))
    }
}
