//! `op-connector`: a frames connector on connector-sdk for the operations
//! tests. It emits one `go` event per word of config `WORDS` (instance key
//! `k`, payload `{"word": …}`), and serves `respond` (and `respondLater`,
//! the same, for an async declaration): appends `input.text` as a line to
//! the file config `REPLIES` names and returns `{"written": true, "attempt": n}`.

use std::io::Write as _;
use std::process::ExitCode;

use connector_sdk::{
    BoxError, Context, Event, Message, OperationCall, OperationError, OperationOk,
};
use serde_json::json;

fn main() -> ExitCode {
    connector_sdk::run(connector)
}

async fn connector(ctx: Context) -> Result<(), BoxError> {
    let replies = ctx.config_value("REPLIES").unwrap_or_default().to_owned();
    let words: Vec<String> = ctx
        .config_value("WORDS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let respond = move |call: OperationCall| {
        let replies = replies.clone();
        async move {
            let text = call.input["text"]
                .as_str()
                .ok_or_else(|| OperationError::validation("input.text is not a string"))?
                .to_owned();
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&replies)
                .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()))
                .map_err(|e| OperationError::transient(format!("cannot append: {e}")))?;
            Ok(OperationOk::new(
                json!({"written": true, "attempt": call.attempt}),
            ))
        }
    };
    ctx.operations()
        .on("respond", respond.clone())
        .on("respondLater", respond);
    ctx.ready().await;
    for word in words {
        let event = Event {
            name: "go".into(),
            message: Some(Message::text(word.clone())),
            instance_key: Some("k".into()),
            payload: Some(json!({ "word": &word }).into()),
            ..Event::default()
        };
        ctx.emitter().emit(event).await?;
    }
    ctx.shutdown().await;
    Ok(())
}
