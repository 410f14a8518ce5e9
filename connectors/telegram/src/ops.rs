//! The operations: `sendMessage`, `editMessageText`, `answerCallbackQuery`,
//! `sendChatAction` and `getFile`, each one Bot API call made with the
//! connector's token; the agent never sees the token nor a URL holding it.
//!
//! Inputs are camelCase (the orchestrator checked them against the schemas
//! of `connector.yaml`); they become the Bot API's snake_case fields here.
//! Failures are classified by [`failure`]: 429 → `quota_exceeded` with
//! `parameters.retry_after`, 5xx and no answer → `transient`, any other
//! 4xx → `permanent` with Telegram's `description`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use connector_sdk::operations::{OperationCall, OperationError, OperationOk};
use connector_sdk::{Context, FailureClass};
use serde_json::{Map, Value, json};

use crate::api::{ApiError, BotApi};

/// The most one Bot API call of an operation may take when the call's deadline is further.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The operations this connector serves (and `connector.yaml` declares).
pub const OPERATIONS: &[&str] = &[
    "sendMessage",
    "editMessageText",
    "answerCallbackQuery",
    "sendChatAction",
    "getFile",
];

/// Registers every operation on `ctx`.
pub fn register(ctx: &Context, api: Arc<BotApi>, max_file_bytes: u64) {
    let ops = ctx.operations();
    let a = api.clone();
    ops.on("sendMessage", move |call| send_message(a.clone(), call));
    let a = api.clone();
    ops.on("editMessageText", move |call| {
        edit_message_text(a.clone(), call)
    });
    let a = api.clone();
    ops.on("answerCallbackQuery", move |call| {
        answer_callback_query(a.clone(), call)
    });
    let a = api.clone();
    ops.on("sendChatAction", move |call| {
        send_chat_action(a.clone(), call)
    });
    ops.on("getFile", move |call| {
        get_file(api.clone(), call, max_file_bytes)
    });
}

async fn send_message(
    api: Arc<BotApi>,
    call: OperationCall,
) -> Result<OperationOk, OperationError> {
    let mut body = Map::new();
    body.insert("chat_id".into(), chat_id(&call.input["chatId"])?);
    body.insert("text".into(), string(&call.input, "text")?.into());
    copy(&call.input, &mut body, "parseMode", "parse_mode");
    copy(&call.input, &mut body, "replyMarkup", "reply_markup");
    copy(
        &call.input,
        &mut body,
        "messageThreadId",
        "message_thread_id",
    );
    copy(
        &call.input,
        &mut body,
        "disableNotification",
        "disable_notification",
    );
    if let Some(id) = call.input.get("replyToMessageId") {
        // Bot API 7.0: reply_parameters replaces reply_to_message_id.
        body.insert("reply_parameters".into(), json!({ "message_id": id }));
    }
    let message = request(&api, &call, "sendMessage", Value::Object(body)).await?;
    Ok(OperationOk::new(message_output(&message)).provider_status(200))
}

async fn edit_message_text(
    api: Arc<BotApi>,
    call: OperationCall,
) -> Result<OperationOk, OperationError> {
    let mut body = Map::new();
    match (call.input.get("inlineMessageId"), call.input.get("chatId")) {
        (Some(inline), _) => {
            body.insert("inline_message_id".into(), inline.clone());
        }
        (None, Some(chat)) => {
            body.insert("chat_id".into(), chat_id(chat)?);
            let id = call.input.get("messageId").ok_or_else(|| {
                OperationError::validation("editMessageText: chatId needs messageId")
            })?;
            body.insert("message_id".into(), id.clone());
        }
        (None, None) => {
            return Err(OperationError::validation(
                "editMessageText: give chatId and messageId, or inlineMessageId",
            ));
        }
    }
    body.insert("text".into(), string(&call.input, "text")?.into());
    copy(&call.input, &mut body, "parseMode", "parse_mode");
    copy(&call.input, &mut body, "replyMarkup", "reply_markup");
    let result = request(&api, &call, "editMessageText", Value::Object(body)).await?;
    // A Message for a chat message, `true` for an inline one.
    let mut out = if result.is_object() {
        message_output(&result)
    } else {
        json!({})
    };
    out["edited"] = true.into();
    Ok(OperationOk::new(out).provider_status(200))
}

async fn answer_callback_query(
    api: Arc<BotApi>,
    call: OperationCall,
) -> Result<OperationOk, OperationError> {
    let mut body = Map::new();
    body.insert(
        "callback_query_id".into(),
        string(&call.input, "callbackQueryId")?.into(),
    );
    copy(&call.input, &mut body, "text", "text");
    copy(&call.input, &mut body, "showAlert", "show_alert");
    copy(&call.input, &mut body, "url", "url");
    copy(&call.input, &mut body, "cacheTime", "cache_time");
    request(&api, &call, "answerCallbackQuery", Value::Object(body)).await?;
    Ok(OperationOk::new(json!({ "answered": true })).provider_status(200))
}

async fn send_chat_action(
    api: Arc<BotApi>,
    call: OperationCall,
) -> Result<OperationOk, OperationError> {
    let mut body = Map::new();
    body.insert("chat_id".into(), chat_id(&call.input["chatId"])?);
    body.insert("action".into(), string(&call.input, "action")?.into());
    copy(
        &call.input,
        &mut body,
        "messageThreadId",
        "message_thread_id",
    );
    request(&api, &call, "sendChatAction", Value::Object(body)).await?;
    Ok(OperationOk::new(json!({ "sent": true })).provider_status(200))
}

/// `getFile`, then the file's bytes (at most `cap`), base64.
async fn get_file(
    api: Arc<BotApi>,
    call: OperationCall,
    cap: u64,
) -> Result<OperationOk, OperationError> {
    let file_id = string(&call.input, "fileId")?;
    let file = request(&api, &call, "getFile", json!({ "file_id": file_id })).await?;
    let size = file.get("file_size").and_then(Value::as_u64);
    if let Some(size) = size.filter(|s| *s > cap) {
        return Err(too_large(file_id, Some(size), cap));
    }
    let Some(path) = file.get("file_path").and_then(Value::as_str) else {
        return Err(OperationError::permanent(format!(
            "telegram getFile: file {file_id} has no file_path (Telegram cannot serve it for \
             download, e.g. over its 20 MB limit)"
        ))
        .provider_status(200));
    };
    let bytes = api
        .download(path, cap, timeout(&call))
        .await
        .map_err(|e| match e {
            ApiError::TooLarge { .. } => too_large(file_id, size, cap),
            e => failure("getFile (download)", e),
        })?;
    let name = path.rsplit('/').next().unwrap_or(path);
    Ok(OperationOk::new(json!({
        "fileId": file_id,
        "fileUniqueId": file.get("file_unique_id").cloned().unwrap_or(Value::Null),
        "filePath": path,
        "fileName": name,
        "size": bytes.len(),
        "contentBase64": base64::engine::general_purpose::STANDARD.encode(&bytes),
    }))
    .provider_status(200))
}

fn too_large(file_id: &str, size: Option<u64>, cap: u64) -> OperationError {
    let size = size.map_or_else(|| "more than that".to_owned(), |s| format!("{s} bytes"));
    OperationError::permanent(format!(
        "telegram getFile: file {file_id} is over MAX_FILE_BYTES ({cap} bytes): {size}"
    ))
}

/// One Bot API call within the operation's deadline, its failure classified.
async fn request(
    api: &BotApi,
    call: &OperationCall,
    method: &str,
    body: Value,
) -> Result<Value, OperationError> {
    api.call(method, &body, timeout(call))
        .await
        .map_err(|e| failure(method, e))
}

fn timeout(call: &OperationCall) -> Duration {
    call.remaining()
        .clamp(Duration::from_millis(1), CALL_TIMEOUT)
}

/// A Bot API failure as an operation's failure class (OPERATIONS.md).
pub fn failure(method: &str, e: ApiError) -> OperationError {
    match e {
        ApiError::Transport(why) => {
            OperationError::transient(format!("telegram {method}: no answer: {why}"))
        }
        ApiError::Http {
            status: 429,
            description,
            retry_after,
        } => OperationError::quota_exceeded(
            format!("telegram {method}: HTTP 429: {description}"),
            Duration::from_secs(retry_after.unwrap_or(1)),
        )
        .provider_status(429),
        ApiError::Http {
            status,
            description,
            ..
        } => {
            let class = if status >= 500 {
                FailureClass::Transient
            } else {
                FailureClass::Permanent
            };
            OperationError::new(
                class,
                format!("telegram {method}: HTTP {status}: {description}"),
            )
            .provider_status(status)
        }
        e @ (ApiError::Decode(_) | ApiError::TooLarge { .. }) => {
            OperationError::permanent(format!("telegram {method}: {e}"))
        }
    }
}

/// `{messageId, chatId, date}` of a Bot API `Message`.
fn message_output(message: &Value) -> Value {
    let mut out = json!({});
    if let Some(id) = message.get("message_id") {
        out["messageId"] = id.clone();
    }
    if let Some(chat) = message.pointer("/chat/id") {
        out["chatId"] = chat.clone();
    }
    if let Some(date) = message.get("date") {
        out["date"] = date.clone();
    }
    out
}

/// A chat id: a number, the text of one (event properties are text), or `@channelname`.
fn chat_id(v: &Value) -> Result<Value, OperationError> {
    match v {
        Value::Number(_) => Ok(v.clone()),
        Value::String(s) => Ok(s
            .trim()
            .parse::<i64>()
            .map_or_else(|_| Value::String(s.clone()), Value::from)),
        _ => Err(OperationError::validation(
            "chatId must be a chat id (a number) or @channelusername",
        )),
    }
}

fn string<'a>(input: &'a Value, key: &str) -> Result<&'a str, OperationError> {
    input[key]
        .as_str()
        .ok_or_else(|| OperationError::validation(format!("input.{key} must be a string")))
}

/// Copies `input[from]`, when present, to `body[to]`.
fn copy(input: &Value, body: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = input.get(from).filter(|v| !v.is_null()) {
        body.insert(to.to_owned(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, description: &str, retry_after: Option<u64>) -> ApiError {
        ApiError::Http {
            status,
            description: description.into(),
            retry_after,
        }
    }

    #[test]
    fn failures_are_classified() {
        let e = failure(
            "sendMessage",
            http(429, "Too Many Requests: retry after 7", Some(7)),
        );
        assert_eq!(e.class, FailureClass::QuotaExceeded);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.provider_status, Some(429));
        let e = failure("sendMessage", http(502, "Bad Gateway", None));
        assert_eq!(e.class, FailureClass::Transient);
        assert_eq!(e.provider_status, Some(502));
        let e = failure(
            "sendMessage",
            http(400, "Bad Request: chat not found", None),
        );
        assert_eq!(e.class, FailureClass::Permanent);
        assert_eq!(e.provider_status, Some(400));
        assert!(e.message.contains("chat not found"), "{}", e.message);
        let e = failure(
            "sendMessage",
            ApiError::Transport("connection refused".into()),
        );
        assert_eq!(e.class, FailureClass::Transient);
        assert_eq!(e.provider_status, None);
    }

    #[test]
    fn chat_ids_from_text_become_numbers() {
        assert_eq!(chat_id(&json!("-100123")).unwrap(), json!(-100123));
        assert_eq!(chat_id(&json!(42)).unwrap(), json!(42));
        assert_eq!(chat_id(&json!("@news")).unwrap(), json!("@news"));
        assert!(chat_id(&json!(null)).is_err());
    }
}
