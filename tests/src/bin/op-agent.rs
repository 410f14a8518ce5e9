//! `op-agent`: a frames agent on connector-sdk for the operations tests. For
//! each event it invokes `respond` of the Connection the event came through
//! with `{"text": "echo: <text>"}`, prints `result ok <data>` or
//! `result err <class> <message>` on stdout, and acks.

use connector_sdk::agent::{AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;
use serde_json::json;

fn main() -> std::process::ExitCode {
    connector_sdk::agent::run(handle)
}

async fn handle(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let text = d
        .event
        .message
        .as_ref()
        .and_then(|m| m.as_text())
        .unwrap_or("");
    let input = json!({ "text": format!("echo: {text}") });
    match ctx.invoke(&d.event.connection, "respond", input).await {
        Ok(r) => println!("result ok {}", r.data.0),
        Err(e) => println!("result err {} {}", e.class, e.message),
    }
    Ok(())
}
