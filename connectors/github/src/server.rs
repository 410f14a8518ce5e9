//! The HTTP side: verify `X-Hub-Signature-256`, read the payload, refuse it
//! if `MAX_DELIVERY_AGE` says it is a replay, emit one event keyed by
//! `X-GitHub-Delivery`, and answer once the orchestrator acks.
//!
//! An emit the orchestrator refuses as `validation_error` is answered `500`,
//! not `422`: GitHub does not retry a 4xx, so a 422 would lose a real
//! delivery for the sake of a declaration; a 500 is retried (and GitHub's
//! log shows it), and an audit record says what was refused.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connector_sdk::{Audit, Context, EmitError, NackKind};
use connector_webhook::answer;
use connector_webhook::guard::{Guard, admit};
use serde_json::{Value, json};

use crate::{mapping, replay};

/// What every request needs.
#[derive(Debug)]
pub struct App {
    /// The connection to the orchestrator.
    pub ctx: Context,
    /// Verifies `X-Hub-Signature-256` with `WEBHOOK_SECRET`.
    pub guard: Guard,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `MAX_DELIVERY_AGE`: older payloads are refused (off when `None`).
    pub max_delivery_age: Option<Duration>,
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
    if let Some(max_age) = app.max_delivery_age
        && let Some(age) = replay::too_old(&payload, max_age, SystemTime::now())
    {
        return stale(&app.ctx, &event, age, max_age);
    }
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
        Err(EmitError::Nacked {
            kind: NackKind::ValidationError,
            message,
        }) => undeclared(&app.ctx, &message),
        Err(e) => answer::refused(&e),
    }
}

/// The orchestrator refused the event as not what `connector.yaml`
/// declares: audited, logged, and answered `500` so that GitHub retries.
fn undeclared(ctx: &Context, message: &str) -> Response {
    ctx.audit(Audit {
        kind: "delivery_refused".into(),
        scheme: Some("github".into()),
        reason: Some(format!("validation_error: {message}")),
    });
    ctx.error(format!(
        "a verified delivery was refused by the orchestrator as undeclared; \
         answered 500 so GitHub retries it: {message}"
    ));
    answer::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("the event was refused as undeclared: {message}"),
    )
}

/// A delivery older than `MAX_DELIVERY_AGE`: audited and answered `403`.
fn stale(ctx: &Context, event: &str, age: Duration, max_age: Duration) -> Response {
    let age = humantime::format_duration(Duration::from_secs(age.as_secs()));
    let max_age = humantime::format_duration(max_age);
    ctx.audit(Audit {
        kind: "delivery_rejected".into(),
        scheme: Some("github".into()),
        reason: Some("stale".into()),
    });
    ctx.warn(format!(
        "refused a {event} delivery whose payload is {age} old, over MAX_DELIVERY_AGE {max_age} (a replay?)"
    ));
    answer::error(
        StatusCode::FORBIDDEN,
        &format!("the payload is {age} old, over MAX_DELIVERY_AGE ({max_age})"),
    )
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
