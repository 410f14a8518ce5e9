//! The client side, for the CLI verbs: one request, one response.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, Stream};

use super::{Request, Response};

/// Sends `req` to the orchestrator listening at `socket` and returns its answer.
pub fn request(socket: &Path, req: &Request) -> Result<Response, String> {
    let name = socket
        .to_fs_name::<GenericFilePath>()
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let conn = Stream::connect(name).map_err(|e| {
        format!(
            "cannot reach the orchestrator at {}: {e} (is `orchestrator run` running with this --state-dir?)",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    (&conn)
        .write_all(line.as_bytes())
        .map_err(|e| format!("control socket: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .map_err(|e| format!("control socket: {e}"))?;
    serde_json::from_str(&answer).map_err(|e| format!("control socket: bad answer: {e}"))
}
