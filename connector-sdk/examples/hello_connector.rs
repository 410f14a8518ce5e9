//! The connector of the README's "Writing a connector" section, kept here so
//! it compiles: one greeting, acked, then wait for `shutdown`.

use connector_sdk::{BoxError, Context, Event, Message};

fn main() -> std::process::ExitCode {
    connector_sdk::run(my_connector)
}

async fn my_connector(ctx: Context) -> Result<(), BoxError> {
    let greeting = ctx.config_value("GREETING").unwrap_or("hello").to_owned();
    ctx.ready().await; // after binding ports etc.: a failure before this is a failed start
    // `..Event::default()` keeps this compiling when Event gains fields (e.g. `payload`).
    #[allow(clippy::needless_update)]
    let event = Event {
        name: "user_message".into(),
        message: Some(Message::text(greeting)),
        // Declared in the Connector's `events[].properties`; values are strings.
        properties: [("chat_id".to_string(), "1".to_string())].into(),
        instance_key: Some("demo:1".into()),
        ..Event::default()
    };
    let accepted = ctx.emitter().emit(event).await?; // the orchestrator's ack
    ctx.info(format!("accepted (duplicate: {})", accepted.duplicate));
    ctx.shutdown().await; // `shutdown` from the orchestrator
    Ok(())
}
