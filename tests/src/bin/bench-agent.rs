//! `bench-agent`: the agent side of `bench-throughput` (frames, on
//! `connector_sdk::agent`). It acks every delivery at once and counts.
//!
//! Environment (the Agent's `spec.env`):
//! - `EXPECT` = how many measured events this instance gets; once it has them
//!   it writes `<stateDir>/result.json` (`{"key","count","firstNs","lastNs"}`,
//!   CLOCK_REALTIME nanoseconds of the first and last receipt) and, if any
//!   event carried a send time, `<stateDir>/latency.bin` (one little-endian
//!   u64 of receive − send nanoseconds per event).
//! - `WARM_DIR`: an event whose text is `warm` is not counted; the instance
//!   creates `<WARM_DIR>/<instanceKey>` instead, so the connector knows every
//!   instance is up before it starts measuring.
//!
//! An event's send time is its `t` property (CLOCK_REALTIME nanoseconds,
//! put there by `bench-connector`); both run on one machine, so the clocks agree.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use connector_sdk::agent::{Agent, AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;

#[derive(Default)]
struct Tally {
    count: u64,
    first_ns: u64,
    last_ns: u64,
    latencies: Vec<u64>,
    written: bool,
}

static TALLY: Mutex<Option<Tally>> = Mutex::new(None);
static EXPECT: OnceLock<u64> = OnceLock::new();

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn write_result(ctx: &AgentContext, t: &Tally) -> std::io::Result<()> {
    let dir = ctx.state_dir();
    std::fs::create_dir_all(dir)?;
    if !t.latencies.is_empty() {
        let bytes: Vec<u8> = t.latencies.iter().flat_map(|l| l.to_le_bytes()).collect();
        std::fs::write(dir.join("latency.bin"), bytes)?;
    }
    let json = serde_json::json!({
        "key": ctx.instance_key(),
        "count": t.count,
        "firstNs": t.first_ns,
        "lastNs": t.last_ns,
    });
    let tmp = dir.join("result.json.tmp");
    std::fs::write(&tmp, json.to_string())?;
    std::fs::rename(tmp, dir.join("result.json"))
}

async fn handle(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let now = now_ns();
    let text = d.event.message.as_ref().and_then(|m| m.as_text());
    if text == Some("warm") {
        if let Some(dir) = std::env::var_os("WARM_DIR").map(PathBuf::from) {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(ctx.instance_key()), b"")?;
        }
        return Ok(());
    }
    let sent: Option<u64> = d.event.properties.get("t").and_then(|t| t.parse().ok());
    let mut guard = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    let t = guard.get_or_insert_with(Tally::default);
    if t.count == 0 {
        t.first_ns = now;
    }
    t.count += 1;
    t.last_ns = now;
    if let Some(sent) = sent {
        t.latencies.push(now.saturating_sub(sent));
    }
    let expect = *EXPECT.get().unwrap_or(&u64::MAX);
    if t.count >= expect && !t.written {
        t.written = true;
        write_result(&ctx, t)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let expect = std::env::var("EXPECT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let _ = EXPECT.set(expect);
    Agent::new(handle).run()
}
