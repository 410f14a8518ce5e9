//! The operations: `chat.postMessage`, `chat.update`, `reactions.add` and
//! `getFile` with the bot token, and `respond` through a kept
//! `response_url`. Inputs are camelCase (checked by the orchestrator against
//! `connector.yaml`); they become Slack's snake_case fields here.
//!
//! Failures ([`failure`]): HTTP 429 and `ratelimited` → `quota_exceeded`
//! with `Retry-After`; 5xx, no answer, and Slack's own `internal_error`,
//! `fatal_error`, `service_unavailable`, `request_timeout` → `transient`;
//! any other `ok: false` or 4xx → `permanent` with Slack's error code.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use connector_sdk::operations::{OperationCall, OperationError, OperationOk};
use connector_sdk::{Context, FailureClass};
use serde_json::{Map, Value, json};

use crate::api::{ApiError, SlackApi};
use crate::responses::ResponseUrls;

/// The most one HTTP request of an operation may take when the call's deadline is further.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Slack `error` codes worth a retry.
const TRANSIENT: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// What the handlers share.
pub struct Ops {
    /// The Web API client.
    pub api: SlackApi,
    /// The kept response_urls.
    pub responses: Arc<ResponseUrls>,
    /// `MAX_FILE_BYTES`.
    pub max_file_bytes: u64,
    /// "Now", for response_url expiry.
    pub now: connector_webhook::guard::Clock,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("api", &self.api)
            .field("max_file_bytes", &self.max_file_bytes)
            .finish_non_exhaustive()
    }
}

/// Registers every operation on `ctx`.
pub fn register(ctx: &Context, ops: Arc<Ops>) {
    let o = ctx.operations();
    let s = ops.clone();
    o.on("chat.postMessage", move |call| {
        post_message(s.clone(), call)
    });
    let s = ops.clone();
    o.on("chat.update", move |call| update(s.clone(), call));
    let s = ops.clone();
    o.on("reactions.add", move |call| react(s.clone(), call));
    let s = ops.clone();
    o.on("respond", move |call| respond(s.clone(), call));
    o.on("getFile", move |call| get_file(ops.clone(), call));
}

async fn post_message(ops: Arc<Ops>, call: OperationCall) -> Result<OperationOk, OperationError> {
    let mut body = Map::new();
    copy(&call.input, &mut body, "channel", "channel");
    copy(&call.input, &mut body, "text", "text");
    copy(&call.input, &mut body, "threadTs", "thread_ts");
    copy(&call.input, &mut body, "blocks", "blocks");
    copy(&call.input, &mut body, "replyBroadcast", "reply_broadcast");
    copy(&call.input, &mut body, "unfurlLinks", "unfurl_links");
    let v = web(&ops, &call, "chat.postMessage", Value::Object(body)).await?;
    Ok(OperationOk::new(json!({"channel": v["channel"], "ts": v["ts"]})).provider_status(200))
}

async fn update(ops: Arc<Ops>, call: OperationCall) -> Result<OperationOk, OperationError> {
    let mut body = Map::new();
    copy(&call.input, &mut body, "channel", "channel");
    copy(&call.input, &mut body, "ts", "ts");
    copy(&call.input, &mut body, "text", "text");
    copy(&call.input, &mut body, "blocks", "blocks");
    let v = web(&ops, &call, "chat.update", Value::Object(body)).await?;
    Ok(OperationOk::new(json!({"channel": v["channel"], "ts": v["ts"]})).provider_status(200))
}

async fn react(ops: Arc<Ops>, call: OperationCall) -> Result<OperationOk, OperationError> {
    let mut body = Map::new();
    copy(&call.input, &mut body, "channel", "channel");
    copy(&call.input, &mut body, "ts", "timestamp");
    copy(&call.input, &mut body, "name", "name");
    web(&ops, &call, "reactions.add", Value::Object(body)).await?;
    Ok(OperationOk::new(json!({"added": true})).provider_status(200))
}

/// Posts to the response_url kept under `responseRef`.
async fn respond(ops: Arc<Ops>, call: OperationCall) -> Result<OperationOk, OperationError> {
    let reference = call.input["responseRef"]
        .as_str()
        .ok_or_else(|| OperationError::validation("input.responseRef must be a string"))?;
    let url = ops
        .responses
        .take(reference, (ops.now)())
        .map_err(|e| OperationError::permanent(format!("slack respond: {e}")))?;
    let mut body = Map::new();
    copy(&call.input, &mut body, "text", "text");
    copy(&call.input, &mut body, "blocks", "blocks");
    copy(&call.input, &mut body, "responseType", "response_type");
    copy(
        &call.input,
        &mut body,
        "replaceOriginal",
        "replace_original",
    );
    copy(&call.input, &mut body, "deleteOriginal", "delete_original");
    copy(&call.input, &mut body, "threadTs", "thread_ts");
    ops.api
        .respond(&url, &Value::Object(body), timeout(&call))
        .await
        .map_err(|e| failure("respond", e))?;
    Ok(OperationOk::new(json!({"sent": true})).provider_status(200))
}

/// `files.info`, then the file's bytes with the token (at most `MAX_FILE_BYTES`), base64.
async fn get_file(ops: Arc<Ops>, call: OperationCall) -> Result<OperationOk, OperationError> {
    let id = call.input["fileId"]
        .as_str()
        .ok_or_else(|| OperationError::validation("input.fileId must be a string"))?;
    let cap = ops.max_file_bytes;
    let info = ops
        .api
        .get("files.info", &[("file", id)], timeout(&call))
        .await
        .map_err(|e| failure("files.info", e))?;
    let file = &info["file"];
    let too_large = |size: Option<u64>| {
        let size = size.map_or_else(|| "more than that".to_owned(), |s| format!("{s} bytes"));
        OperationError::permanent(format!(
            "slack getFile: file {id} is over MAX_FILE_BYTES ({cap} bytes): {size}"
        ))
    };
    let size = file["size"].as_u64();
    if size.is_some_and(|s| s > cap) {
        return Err(too_large(size));
    }
    let url = file["url_private_download"]
        .as_str()
        .or_else(|| file["url_private"].as_str())
        .ok_or_else(|| {
            OperationError::permanent(format!(
                "slack getFile: file {id} has no url_private (an external file?)"
            ))
            .provider_status(200)
        })?;
    let bytes = ops
        .api
        .download(url, cap, timeout(&call))
        .await
        .map_err(|e| match e {
            ApiError::TooLarge { .. } => too_large(size),
            e => failure("getFile (download)", e),
        })?;
    Ok(OperationOk::new(json!({
        "fileId": id,
        "name": file["name"].as_str().unwrap_or(id),
        "mimetype": file["mimetype"],
        "size": bytes.len(),
        "contentBase64": base64::engine::general_purpose::STANDARD.encode(&bytes),
    }))
    .provider_status(200))
}

async fn web(
    ops: &Ops,
    call: &OperationCall,
    method: &str,
    body: Value,
) -> Result<Value, OperationError> {
    ops.api
        .call(method, &body, timeout(call))
        .await
        .map_err(|e| failure(method, e))
}

fn timeout(call: &OperationCall) -> Duration {
    call.remaining()
        .clamp(Duration::from_millis(1), CALL_TIMEOUT)
}

/// A Slack failure as an operation's failure class (OPERATIONS.md).
pub fn failure(method: &str, e: ApiError) -> OperationError {
    let message = format!("slack {method}: {e}");
    match e {
        ApiError::Transport(_) => OperationError::transient(message),
        ApiError::Http {
            status: 429,
            retry_after,
            ..
        } => OperationError::quota_exceeded(message, Duration::from_secs(retry_after.unwrap_or(1)))
            .provider_status(429),
        ApiError::Http { status, .. } => {
            let class = if status >= 500 {
                FailureClass::Transient
            } else {
                FailureClass::Permanent
            };
            OperationError::new(class, message).provider_status(status)
        }
        ApiError::Slack { error, status } => {
            let e = if error == "ratelimited" {
                OperationError::quota_exceeded(message, Duration::from_secs(1))
            } else if TRANSIENT.contains(&error.as_str()) {
                OperationError::transient(message)
            } else {
                OperationError::permanent(message)
            };
            e.provider_status(status)
        }
        ApiError::Decode(_) | ApiError::TooLarge { .. } | ApiError::Refused(_) => {
            OperationError::permanent(message)
        }
    }
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

    #[test]
    fn failures_are_classified() {
        let slack = |error: &str| ApiError::Slack {
            error: error.into(),
            status: 200,
        };
        let e = failure("chat.postMessage", slack("channel_not_found"));
        assert_eq!(e.class, FailureClass::Permanent);
        assert_eq!(e.message, "slack chat.postMessage: channel_not_found");
        assert_eq!(e.provider_status, Some(200));
        assert_eq!(
            failure("x", slack("internal_error")).class,
            FailureClass::Transient
        );
        assert_eq!(
            failure("x", slack("ratelimited")).class,
            FailureClass::QuotaExceeded
        );
        let e = failure(
            "x",
            ApiError::Http {
                status: 429,
                body: String::new(),
                retry_after: Some(30),
            },
        );
        assert_eq!(e.class, FailureClass::QuotaExceeded);
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        let e = failure(
            "x",
            ApiError::Http {
                status: 503,
                body: "down".into(),
                retry_after: None,
            },
        );
        assert_eq!(e.class, FailureClass::Transient);
        assert_eq!(
            failure("x", ApiError::Transport("reset".into())).class,
            FailureClass::Transient
        );
    }
}
