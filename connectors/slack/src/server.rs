//! The HTTP side: verify the Slack signature, then answer the URL check,
//! or emit the callback or slash command and answer once it is acked.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connector_sdk::{Context, Event};
use connector_webhook::answer;
use connector_webhook::guard::{Guard, admit};
use serde_json::{Value, json};

use crate::commands::{self, Form};
use crate::events;

/// What every request needs.
#[derive(Debug)]
pub struct App {
    /// The connection to the orchestrator.
    pub ctx: Context,
    /// Verifies `X-Slack-Signature` with `SIGNING_SECRET`, within the replay window.
    pub guard: Guard,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
}

/// `GET /healthz`, and `POST` on any path (Events API and slash commands alike).
pub fn router(app: Arc<App>) -> Router {
    let limit = app.max_body_bytes;
    connector_webhook::listen::routes(request, app, limit)
}

async fn request(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match admit(
        &app.guard,
        &app.ctx,
        &method,
        &headers,
        body,
        app.max_body_bytes,
    ) {
        Ok((body, _)) => body,
        Err(refused) => return refused,
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        slash_command(&app, &body).await
    } else {
        callback(&app, &headers, &body).await
    }
}

async fn slash_command(app: &App, body: &[u8]) -> Response {
    match commands::parse(body) {
        Ok(Form::SslCheck) => StatusCode::OK.into_response(),
        // An empty 200: Slack shows nothing, the agent answers in the channel.
        Ok(Form::Command { event, trigger_id }) => match emit(app, event, trigger_id).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(refused) => refused,
        },
        Err(message) => answer::error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn callback(app: &App, headers: &HeaderMap, body: &[u8]) -> Response {
    let json: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("body is not valid JSON: {e}");
            return answer::error(StatusCode::BAD_REQUEST, &message);
        }
    };
    match json["type"].as_str().unwrap_or("") {
        "url_verification" => match json["challenge"].as_str() {
            Some(challenge) => axum::Json(json!({"challenge": challenge})).into_response(),
            None => answer::error(
                StatusCode::BAD_REQUEST,
                "url_verification without challenge",
            ),
        },
        "event_callback" => {
            let mapped = match events::map_callback(&json) {
                Ok(m) => m,
                Err(message) => return answer::error(StatusCode::BAD_REQUEST, &message),
            };
            if let Some(n) = header_text(headers, "x-slack-retry-num") {
                let reason = header_text(headers, "x-slack-retry-reason").unwrap_or("unknown");
                let id = mapped.event_id.as_deref().unwrap_or("(no event_id)");
                app.ctx.info(format!("Slack retry {n} of {id} ({reason})"));
            }
            match emit(app, mapped.event, mapped.event_id).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(refused) => refused,
            }
        }
        "app_rate_limited" => {
            app.ctx
                .warn("Slack is rate-limiting this app's events (app_rate_limited)");
            StatusCode::OK.into_response()
        }
        other => {
            // Answered 200 so Slack does not retry what this connector will never take.
            app.ctx
                .warn(format!("ignored a Slack request of type '{other}'"));
            StatusCode::OK.into_response()
        }
    }
}

/// Emits `event` (keyed by `key` when there is one); `Err` is the HTTP refusal.
async fn emit(app: &App, event: Event, key: Option<String>) -> Result<(), Response> {
    let emitter = app.ctx.emitter();
    let answer = match key {
        Some(key) => emitter.emit_with_key(event, key).await,
        None => emitter.emit(event).await,
    };
    answer.map(|_| ()).map_err(|e| answer::refused(&e))
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then_some(value)
}
