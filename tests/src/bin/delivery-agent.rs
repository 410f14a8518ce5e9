//! `delivery-agent`: a frames agent (on connector-sdk) for the delivery
//! tests. It records every delivery in a file, before answering it, so a test
//! sees exactly what reached an agent process even at 10,000 events (the
//! process log drops lines past 2,000/s), and misbehaves when an event's text
//! asks it to.
//!
//! Environment (the Agent's `spec.env`):
//! - `RECORD_DIR` (required): each delivery is appended, as one JSON line
//!   `{"id","attempt","text","key","pid"}`, to `<RECORD_DIR>/<instanceKey>.jsonl`
//!   (one `write(2)` per line, so a `kill -9` never leaves half a line).
//! - `FIXED_MARKER`: a path; see `poison`.
//! - `UNBLOCK_FILE`: a path; see `block`.
//!
//! By the text of the event:
//! - `poison…`: nacked with `retry: true` ("poisoned: …") while
//!   `FIXED_MARKER` does not exist, acked once it does;
//! - `fail…`: nacked with `retry: false` ("refused: …");
//! - `hang-first…`: attempt 1 is never answered (the handler waits forever);
//!   later attempts are acked;
//! - `block…`: not answered until `UNBLOCK_FILE` exists, then acked;
//! - anything else: acked at once.
//!
//! Its stdout (the process log) gets one line at start:
//! `delivery-agent pid=<pid> agent=<agent> instanceKey=<key>`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use connector_sdk::agent::{Agent, AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;

/// How often a blocked delivery looks for its unblock file.
const POLL: Duration = Duration::from_millis(10);

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn record(dir: &Path, key: &str, d: &Deliver, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut line = serde_json::json!({
        "id": d.id,
        "attempt": d.attempt,
        "text": text,
        "key": key,
        "pid": std::process::id(),
    })
    .to_string();
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{key}.jsonl")))?;
    // One write: the line is whole in the file, or not there at all.
    file.write_all(line.as_bytes())
}

async fn handle(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let text = d
        .event
        .message
        .as_ref()
        .and_then(|m| m.as_text())
        .unwrap_or_default()
        .to_owned();
    let dir = env_path("RECORD_DIR").ok_or_else(|| HandlerError::fail("RECORD_DIR is not set"))?;
    record(&dir, ctx.instance_key(), &d, &text)?;

    if text.starts_with("poison") {
        let fixed = env_path("FIXED_MARKER").is_some_and(|p| p.exists());
        if !fixed {
            return Err(HandlerError::retry(format!(
                "poisoned: cannot handle {text}"
            )));
        }
    } else if text.starts_with("fail") {
        return Err(HandlerError::fail(format!("refused: {text}")));
    } else if text.starts_with("hang-first") && d.attempt == 1 {
        std::future::pending::<()>().await;
    } else if text.starts_with("block") {
        let unblock = env_path("UNBLOCK_FILE")
            .ok_or_else(|| HandlerError::fail("UNBLOCK_FILE is not set"))?;
        while !unblock.exists() {
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    Agent::new(handle)
        .setup(|ctx| async move {
            println!(
                "delivery-agent pid={} agent={} instanceKey={}",
                std::process::id(),
                ctx.agent(),
                ctx.instance_key()
            );
            Ok(())
        })
        .run()
}
