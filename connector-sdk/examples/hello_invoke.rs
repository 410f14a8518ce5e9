//! An agent that answers every event through the `respond` operation of the
//! Connection it came from (see hello_operation.rs), then acks it.
//!
//! The Agent needs `spec.invoke: [{connection: ..., operations: [respond]}]`.

use connector_sdk::FailureClass;
use connector_sdk::agent::{AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;
use serde_json::json;

fn main() -> std::process::ExitCode {
    connector_sdk::agent::run(reply)
}

async fn reply(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let text = d
        .event
        .message
        .as_ref()
        .and_then(|m| m.as_text())
        .unwrap_or("");
    let result = ctx
        .invoke(
            &d.event.connection,
            "respond",
            json!({ "text": format!("echo: {text}") }),
        )
        // Passed to the connector with every attempt (a provider that takes
        // one dedupes on it); the orchestrator does not remember results by key yet.
        .idempotency_key(format!("reply:{}", d.event.id))
        .correlation_id(d.event.id.clone())
        .await;
    match result {
        Ok(response) => {
            ctx.info(format!(
                "replied in {} attempt(s): {}",
                response.metadata.attempts, response.data.0
            ));
            Ok(())
        }
        // Worth another delivery later.
        Err(e) if matches!(e.class, FailureClass::Transient | FailureClass::Timeout) => {
            Err(HandlerError::retry(e.to_string()))
        }
        Err(e) => Err(HandlerError::fail(e.to_string())),
    }
}
