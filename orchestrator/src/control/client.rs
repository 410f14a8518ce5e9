//! The client side, for the CLI verbs: one request, one response.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, Stream};

use super::{Request, Response};

/// Why a request failed before it got an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens at the socket.
    #[error(
        "cannot reach the orchestrator at {path}: {source} (is `orchestrator run` running with this --state-dir?)"
    )]
    Connect {
        /// The socket.
        path: String,
        /// Why not.
        #[source]
        source: io::Error,
    },
    /// The conversation failed.
    #[error("control socket: {0}")]
    Io(String),
}

/// Whether `e` means no orchestrator is running there (rather than a broken one).
pub fn connect_error_means_not_running(e: &ClientError) -> bool {
    matches!(e, ClientError::Connect { source, .. }
        if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused))
}

/// Sends `req` to the orchestrator listening at `socket` and returns its answer.
pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    let connect = |source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    };
    let name = socket.to_fs_name::<GenericFilePath>().map_err(connect)?;
    let conn = Stream::connect(name).map_err(connect)?;
    let mut line = serde_json::to_string(req).map_err(|e| ClientError::Io(e.to_string()))?;
    line.push('\n');
    (&conn)
        .write_all(line.as_bytes())
        .map_err(|e| ClientError::Io(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .map_err(|e| ClientError::Io(e.to_string()))?;
    serde_json::from_str(&answer).map_err(|e| ClientError::Io(format!("bad answer: {e}")))
}
