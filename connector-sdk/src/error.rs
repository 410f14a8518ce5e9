//! The SDK's errors.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use ipc_proto::{IPC_FD_ENV, NackKind, PROTOCOL_VERSION};

/// A boxed error, what user code returns from `run`'s future.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The exit code that says "fix the configuration, restarting will not help" (EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Why the SDK could not set up or keep its channel to the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ORCHESTRATOR_IPC_FD` is not a file descriptor number.
    #[error("{IPC_FD_ENV}={0:?} is not a file descriptor number")]
    BadFdEnv(String),
    /// The inherited fd is not an open socket.
    #[error("fd {fd} named by {IPC_FD_ENV} is not an open Unix socket")]
    NotASocket {
        /// The fd number.
        fd: i32,
        /// What checking it found.
        #[source]
        source: io::Error,
    },
    /// The inherited fd was already taken by this process.
    #[error("fd named by {IPC_FD_ENV} was already taken by this process")]
    FdTaken,
    /// Setting up the transport failed.
    #[error("setting up the {transport} transport failed")]
    Transport {
        /// `frames` or `jsonl`.
        transport: &'static str,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// No `init` arrived in time.
    #[error("no init message from the orchestrator within {0:?}")]
    InitTimeout(Duration),
    /// The channel closed (or failed) before `init`.
    #[error("the orchestrator closed the channel before sending init")]
    ClosedBeforeInit,
    /// The first message was `init` with a protocol version this SDK does not speak.
    #[error(
        "protocol version mismatch: the orchestrator speaks {got}, this program speaks \
         {PROTOCOL_VERSION}; rebuild it against a matching connector-sdk"
    )]
    ProtocolMismatch {
        /// The version in `init`.
        got: u32,
    },
}

impl Error {
    /// The process exit code this error calls for: 78 when a restart cannot help.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::BadFdEnv(_) | Error::NotASocket { .. } | Error::ProtocolMismatch { .. } => {
                ExitCode::from(EXIT_CONFIG)
            }
            _ => ExitCode::FAILURE,
        }
    }
}

/// Why an emit was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The orchestrator refused the event.
    #[error("event refused ({}): {message}", kind.as_str())]
    Nacked {
        /// The failure class; `overloaded` and `quota_exceeded` are worth retrying later.
        kind: NackKind,
        /// The orchestrator's reason.
        message: String,
    },
    /// The event could not be encoded (for example it is over the frame size limit); it was not sent.
    #[error("event could not be sent: {0}")]
    Unsendable(String),
    /// The channel to the orchestrator is gone; whether the event was accepted is unknown.
    #[error("channel to the orchestrator is closed")]
    Closed,
}

/// A configuration problem: returned from `run`'s future, it makes the process exit 78.
///
/// The orchestrator treats 78 (EX_CONFIG) as permanent: it waits for a
/// configuration change instead of restarting the process in a loop.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A configuration error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for ConfigError {}

/// The exit code for a user error: 78 for a [`ConfigError`], else 1.
pub(crate) fn exit_code_of(e: &BoxError) -> ExitCode {
    if e.is::<ConfigError>() {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}
