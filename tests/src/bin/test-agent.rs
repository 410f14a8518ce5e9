//! `test-agent`: a frames agent (on connector-sdk) that prints what it gets
//! like agent-echo does, and misbehaves when an event's text asks it to:
//!
//! - `crash-once…`: the first time this instance sees it (a marker in its
//!   state directory remembers), print the delivery and exit 1 without
//!   acking, so the orchestrator must restart the instance and deliver it again;
//! - `nack-retry-once…`: the first time, nack it with `retry: true`;
//! - anything else: ack.
//!
//! Lines: `test-agent pid=<pid> agent=<agent> instanceKey=<key>` first, then
//! `received {"id","attempt","name","instanceKey","connection","text","properties"}`
//! per delivery.

use std::path::Path;
use std::process::ExitCode;

use connector_sdk::agent::{Agent, AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;

/// True the first time `name` is asked about in `dir`.
fn first_time(dir: &Path, name: &str) -> Result<bool, HandlerError> {
    std::fs::create_dir_all(dir)?;
    let marker = dir.join(name);
    if marker.exists() {
        return Ok(false);
    }
    std::fs::write(&marker, b"seen\n")?;
    Ok(true)
}

async fn handle(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let e = &d.event;
    let text = e
        .message
        .as_ref()
        .and_then(|m| m.as_text())
        .unwrap_or_default();
    let line = serde_json::json!({
        "id": d.id,
        "attempt": d.attempt,
        "name": e.name,
        "instanceKey": e.instance_key,
        "connection": e.connection,
        "text": text,
        "properties": e.properties,
    });
    println!("received {line}");
    if text.starts_with("crash-once") && first_time(ctx.state_dir(), &format!("crashed-{}", d.id))?
    {
        println!("crashing on purpose");
        std::process::exit(1);
    }
    if text.starts_with("nack-retry-once")
        && first_time(ctx.state_dir(), &format!("nacked-{}", d.id))?
    {
        return Err(HandlerError::retry("nacking on purpose"));
    }
    Ok(())
}

fn main() -> ExitCode {
    Agent::new(handle)
        .setup(|ctx| async move {
            let pid = std::process::id();
            println!(
                "test-agent pid={pid} agent={} instanceKey={}",
                ctx.agent(),
                ctx.instance_key()
            );
            Ok(())
        })
        .run()
}
