//! The client side, for the CLI verbs: one request, one response, within a
//! deadline — a hung orchestrator makes the verb fail, not hang.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Request, Response};

/// How long a verb waits for the answer unless `ORCHESTRATOR_CONTROL_TIMEOUT` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that sets the timeout (`5s`, `2m`).
pub const TIMEOUT_ENV: &str = "ORCHESTRATOR_CONTROL_TIMEOUT";

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
    /// It accepted the request and said nothing in time.
    #[error(
        "the orchestrator at {path} did not answer within {} (hung? its pid is in orchestrator.lock; {TIMEOUT_ENV} sets the wait)",
        humantime::format_duration(*.after)
    )]
    Timeout {
        /// The socket.
        path: String,
        /// How long we waited.
        after: Duration,
    },
    /// `ORCHESTRATOR_CONTROL_TIMEOUT` is not a duration.
    #[error("{TIMEOUT_ENV}={value:?} is not a duration like 5s or 2m")]
    BadTimeout {
        /// What it holds.
        value: String,
    },
    /// The conversation failed.
    #[error("control socket {path}: {what}")]
    Io {
        /// The socket.
        path: String,
        /// What went wrong.
        what: String,
    },
}

/// Whether `e` means no orchestrator is running there (rather than a broken one).
pub fn connect_error_means_not_running(e: &ClientError) -> bool {
    matches!(e, ClientError::Connect { source, .. }
        if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused))
}

/// The timeout `ORCHESTRATOR_CONTROL_TIMEOUT` sets, or the default.
pub fn timeout_from_env() -> Result<Duration, ClientError> {
    match std::env::var(TIMEOUT_ENV) {
        Ok(value) => humantime::parse_duration(&value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(ClientError::BadTimeout { value }),
        Err(_) => Ok(DEFAULT_TIMEOUT),
    }
}

/// Sends `req` to the orchestrator listening at `socket` and returns its
/// answer, waiting at most the timeout [`timeout_from_env`] gives.
pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    request_within(socket, req, timeout_from_env()?)
}

/// [`request`] with an explicit timeout for each read and write.
pub fn request_within(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let conn = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: path.clone(),
        source,
    })?;
    let failed = |e: io::Error| {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            ClientError::Timeout {
                path: path.clone(),
                after: timeout,
            }
        } else {
            ClientError::Io {
                path: path.clone(),
                what: e.to_string(),
            }
        }
    };
    conn.set_read_timeout(Some(timeout)).map_err(failed)?;
    conn.set_write_timeout(Some(timeout)).map_err(failed)?;
    let mut line = serde_json::to_string(req).map_err(|e| ClientError::Io {
        path: path.clone(),
        what: e.to_string(),
    })?;
    line.push('\n');
    (&conn).write_all(line.as_bytes()).map_err(failed)?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .map_err(failed)?;
    serde_json::from_str(&answer).map_err(|e| ClientError::Io {
        path: path.clone(),
        what: format!("bad answer: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A listener that accepts and never answers (a hung orchestrator): the
    /// request fails after its timeout, saying so.
    #[test]
    fn a_silent_orchestrator_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let err = request_within(&path, &Request::Status, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!(
                "the orchestrator at {} did not answer within 300ms",
                path.display()
            )),
            "{err}"
        );
        drop(listener);
    }

    #[test]
    fn nobody_listening_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let err = request_within(
            &dir.path().join("control.sock"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(connect_error_means_not_running(&err), "{err:?}");
    }
}
