//! The HTTP side: verify `X-Hub-Signature-256`, read the payload, emit one
//! event keyed by `X-GitHub-Delivery`, and answer once the orchestrator acks.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connector_sdk::Context;
use connector_webhook::answer;
use connector_webhook::guard::{Guard, admit};
use serde_json::{Value, json};

use crate::mapping;

/// What every request needs.
#[derive(Debug)]
pub struct App {
    /// The connection to the orchestrator.
    pub ctx: Context,
    /// Verifies `X-Hub-Signature-256` with `WEBHOOK_SECRET`.
    pub guard: Guard,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
}

/// `GET /healthz`, and `POST` on any path.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.max_body_bytes;
    connector_webhook::listen::routes(delivery, app, limit)
}

async fn delivery(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, verified) = match admit(
        &app.guard,
        &app.ctx,
        &method,
        &headers,
        body,
        app.max_body_bytes,
    ) {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let payload = match payload(&headers, &body) {
        Ok(p) => p,
        Err(message) => return answer::error(StatusCode::BAD_REQUEST, &message),
    };
    let Some(event) = header_text(&headers, "x-github-event") else {
        return answer::error(StatusCode::BAD_REQUEST, "missing header X-GitHub-Event");
    };
    let ping = event == "ping";
    let event = mapping::map(&event, &payload);
    let emitter = app.ctx.emitter();
    let answer = match verified.delivery_id {
        Some(id) => emitter.emit_with_key(event, id).await,
        None => emitter.emit(event).await,
    };
    match answer {
        Ok(_) if ping => (StatusCode::OK, axum::Json(json!({"pong": true}))).into_response(),
        Ok(accepted) => answer::accepted(accepted),
        Err(e) => answer::refused(&e),
    }
}

/// The JSON payload: the body itself, or its `payload` field when the
/// webhook is set to send `application/x-www-form-urlencoded`.
fn payload(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let form = header_text(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let json = if form {
        form_urlencoded::parse(body)
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned().into_bytes())
            .ok_or("form body without a payload field")?
    } else {
        body.to_vec()
    };
    serde_json::from_slice(&json).map_err(|e| format!("payload is not valid JSON: {e}"))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_and_form_payloads() {
        let mut h = HeaderMap::new();
        assert_eq!(payload(&h, br#"{"a":1}"#).unwrap(), json!({"a": 1}));
        assert!(payload(&h, b"a=1").unwrap_err().contains("not valid JSON"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let form = b"payload=%7B%22zen%22%3A%22hi%22%7D";
        assert_eq!(payload(&h, form).unwrap(), json!({"zen": "hi"}));
        assert!(
            payload(&h, b"other=1")
                .unwrap_err()
                .contains("without a payload")
        );
    }
}
