//! `bench-op-connector`: the connector side of `bench-invoke` (frames, on
//! connector-sdk). It serves `noop`, which returns `{}` at once, and emits
//! one `go` event (instance key `k`) so the invoking agent starts.

use std::process::ExitCode;

use connector_sdk::{BoxError, Context, Event, Message, OperationCall, OperationOk};
use serde_json::json;

fn main() -> ExitCode {
    connector_sdk::run(connector)
}

async fn connector(ctx: Context) -> Result<(), BoxError> {
    ctx.operations().on("noop", |_call: OperationCall| async {
        Ok(OperationOk::new(json!({})))
    });
    ctx.ready().await;
    let event = Event {
        name: "go".into(),
        message: Some(Message::text("go")),
        instance_key: Some("k".into()),
        ..Event::default()
    };
    ctx.emitter().emit(event).await?;
    ctx.shutdown().await;
    Ok(())
}
