//! A connector with one operation, `respond`: it appends `input.text` to the
//! file named by config `REPLIES` and returns `{"written": true}`.
//!
//! Declare it in the Connector (`spec.operations: [{name: respond, ...}]`)
//! and allow it in the Connection (`spec.operations.allow: [respond]`).

use std::path::PathBuf;

use connector_sdk::{BoxError, ConfigError, Context, OperationCall, OperationError, OperationOk};
use serde_json::json;

fn main() -> std::process::ExitCode {
    connector_sdk::run(my_connector)
}

#[derive(serde::Deserialize)]
struct Respond {
    text: String,
}

async fn my_connector(ctx: Context) -> Result<(), BoxError> {
    let replies = PathBuf::from(
        ctx.config_value("REPLIES")
            .ok_or_else(|| ConfigError::new("config REPLIES is required"))?,
    );
    ctx.operations().on("respond", move |call: OperationCall| {
        let replies = replies.clone();
        async move {
            let input: Respond = call.input_as()?; // a mismatch is a validation_error
            let line = format!("{}\n", input.text);
            // File I/O off the runtime's worker threads.
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&replies)?
                    .write_all(line.as_bytes())
            })
            .await
            .map_err(|e| OperationError::transient(format!("the write task failed: {e}")))?
            .map_err(|e| OperationError::transient(format!("cannot append a reply: {e}")))?;
            Ok(OperationOk::new(json!({ "written": true })))
        }
    });
    ctx.ready().await; // after registering: calls may come from now on
    ctx.shutdown().await;
    Ok(())
}
