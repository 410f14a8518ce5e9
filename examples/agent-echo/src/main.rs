//! `agent-echo`: the smallest useful Rust agent. Copy it to start your own.
//!
//! It prints one line per delivery to stdout (which lands in this instance's
//! log), answers the event when it names a `replyTo` (the webhook
//! connector's `respond` operation: the answer becomes the HTTP response),
//! and acks it. Returning `Err(HandlerError::retry(..))` instead would have
//! the orchestrator deliver the event again; `HandlerError::fail(..)` sends
//! it to the dead-letter queue.

use std::collections::BTreeMap;
use std::process::ExitCode;

use connector_sdk::agent::{Agent, AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;
use serde::Serialize;

/// What one delivery looks like in the `received …` line.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Received<'a> {
    id: &'a str,
    attempt: u32,
    name: &'a str,
    instance_key: &'a str,
    connection: &'a str,
    /// The message text, when the event carries a text message.
    text: Option<&'a str>,
    properties: &'a BTreeMap<String, String>,
}

async fn handle(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let e = &d.event;
    let received = Received {
        id: &d.id,
        attempt: d.attempt,
        name: &e.name,
        instance_key: &e.instance_key,
        connection: &e.connection,
        text: e.message.as_ref().and_then(|m| m.as_text()),
        properties: &e.properties,
    };
    println!("received {}", serde_json::to_string(&received)?);
    if let Some(reply_to) = e.properties.get("replyTo") {
        let body = serde_json::json!({
            "echo": received.text,
            "by": "agent-echo",
            "instanceKey": e.instance_key,
        });
        let input = serde_json::json!({ "replyTo": reply_to, "body": body });
        // A reply that cannot be sent is logged; the event itself was handled.
        if let Err(err) = ctx.invoke(&e.connection, "respond", input).await {
            eprintln!("could not reply: {err}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    Agent::new(handle)
        .setup(|ctx| async move {
            let pid = std::process::id();
            println!(
                "agent-echo pid={pid} agent={} instanceKey={}",
                ctx.agent(),
                ctx.instance_key()
            );
            Ok(())
        })
        .run()
}
