//! `op-agent`: a frames agent on connector-sdk for the operations tests. For
//! each event it invokes `respond` of the Connection the event came through
//! with `{"text": "echo: <text>"}`, prints `result ok <data>` or
//! `result err <class> <message>` on stdout, and acks. It prints each
//! event's payload first (`payload <json>`). An event whose text starts with
//! `job:` invokes the async `respondLater` instead (`job started <state>`);
//! a `job.*` event is printed as `job event <name> <payload>` and acked.

use connector_sdk::agent::{AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;
use serde_json::json;

fn main() -> std::process::ExitCode {
    connector_sdk::agent::run(handle)
}

async fn handle(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let payload = d.event.payload.as_ref().map(|p| p.0.to_string());
    println!("payload {}", payload.as_deref().unwrap_or("none"));
    if d.event.name.starts_with("job.") {
        println!("job event {} {}", d.event.name, payload.unwrap_or_default());
        return Ok(());
    }
    let text = d
        .event
        .message
        .as_ref()
        .and_then(|m| m.as_text())
        .unwrap_or("");
    let input = json!({ "text": format!("echo: {text}") });
    if text.starts_with("job:") {
        match ctx
            .invoke(&d.event.connection, "respondLater", input)
            .job()
            .await
        {
            Ok(job) => println!("job started {}", job.state),
            Err(e) => println!("result err {} {}", e.class, e.message),
        }
        return Ok(());
    }
    match ctx.invoke(&d.event.connection, "respond", input).await {
        Ok(r) => println!("result ok {}", r.data.0),
        Err(e) => println!("result err {} {}", e.class, e.message),
    }
    Ok(())
}
