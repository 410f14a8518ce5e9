//! The operations: `followup` (into an interaction, by the reference its
//! event carried) and `createMessage` (into a channel, as the bot).

use std::sync::{Arc, Mutex};

use connector_sdk::{Context, OperationCall, OperationError, OperationOk};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::api::DiscordApi;
use crate::tokens::Tokens;

/// Discord's `MessageFlags.EPHEMERAL`: only the user who interacted sees it.
const EPHEMERAL: u64 = 1 << 6;

/// Registers `followup` and `createMessage` on `ctx`.
pub fn register(ctx: &Context, api: DiscordApi, tokens: Arc<Mutex<Tokens>>) {
    let followup_api = api.clone();
    ctx.operations()
        .on("followup", move |call: OperationCall| {
            let api = followup_api.clone();
            let tokens = tokens.clone();
            async move { followup(&api, &tokens, call).await }
        })
        .on("createMessage", move |call: OperationCall| {
            let api = api.clone();
            async move { create_message(&api, call).await }
        });
}

async fn followup(
    api: &DiscordApi,
    tokens: &Mutex<Tokens>,
    call: OperationCall,
) -> Result<OperationOk, OperationError> {
    let reference = string(&call.input, "interaction")?;
    let interaction = tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&reference, Instant::now())
        .map_err(|e| OperationError::permanent(e.to_string()))?;
    let mut body = message_body(&call.input)?;
    if call.input["ephemeral"] == true {
        body.insert("flags".into(), EPHEMERAL.into());
    }
    api.followup(
        &interaction.application_id,
        &interaction.token,
        &Value::Object(body),
        call.remaining(),
    )
    .await
}

async fn create_message(
    api: &DiscordApi,
    call: OperationCall,
) -> Result<OperationOk, OperationError> {
    let channel = string(&call.input, "channelId")?;
    if !channel.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OperationError::validation(format!(
            "input.channelId '{channel}' is not a Discord id (digits)"
        )));
    }
    let mut body = message_body(&call.input)?;
    if let Some(reply_to) = call.input["replyTo"].as_str() {
        body.insert(
            "message_reference".into(),
            serde_json::json!({"message_id": reply_to, "fail_if_not_exists": false}),
        );
    }
    api.create_message(&channel, &Value::Object(body), call.remaining())
        .await
}

/// A required, non-empty string field of the input.
fn string(input: &Value, field: &str) -> Result<String, OperationError> {
    match input[field].as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(OperationError::validation(format!(
            "input.{field} must be a non-empty string"
        ))),
    }
}

/// The message fields both operations send: `content`, `embeds`,
/// `components`, `allowedMentions` (as Discord's `allowed_mentions`); at
/// least one of `content` and `embeds`.
fn message_body(input: &Value) -> Result<Map<String, Value>, OperationError> {
    let mut body = Map::new();
    for (from, to) in [
        ("content", "content"),
        ("embeds", "embeds"),
        ("components", "components"),
        ("allowedMentions", "allowed_mentions"),
    ] {
        if let Some(v) = input.get(from).filter(|v| !v.is_null()) {
            body.insert(to.into(), v.clone());
        }
    }
    let has_content = body
        .get("content")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty());
    let has_embeds = body
        .get("embeds")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if !has_content && !has_embeds {
        return Err(OperationError::validation(
            "a message needs input.content or input.embeds",
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn message_bodies_use_discord_names() {
        let b = message_body(
            &json!({"content": "hi", "allowedMentions": {"parse": []}, "components": null}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(b),
            json!({"content": "hi", "allowed_mentions": {"parse": []}})
        );
        let e = message_body(&json!({"content": ""})).unwrap_err();
        assert!(e.message.contains("input.content or input.embeds"), "{e}");
        assert!(message_body(&json!({"embeds": [{"title": "t"}]})).is_ok());
    }
}
