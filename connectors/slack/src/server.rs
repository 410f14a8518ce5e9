//! The HTTP side: verify the Slack signature, then answer the URL check, or
//! emit the callback, slash command or interaction and answer once it is acked.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connector_sdk::{Audit, Context, EmitError, Event, NackKind};
use connector_webhook::answer;
use connector_webhook::guard::{Clock, Guard, admit};
use serde_json::{Value, json};

use crate::commands::{self, Form};
use crate::responses::ResponseUrls;
use crate::{events, interactions};

/// What every request needs.
pub struct App {
    /// The connection to the orchestrator.
    pub ctx: Context,
    /// Verifies `X-Slack-Signature` with `SIGNING_SECRET`, within the replay window.
    pub guard: Guard,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// The response_urls, kept under the `response_ref` the events carry.
    pub responses: Arc<ResponseUrls>,
    /// "Now", for their expiry.
    pub now: Clock,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("guard", &self.guard)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// `GET /healthz`, and `POST` on any path (Events API, slash commands and interactivity alike).
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
    if !form {
        return callback(&app, &headers, &body).await;
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned());
    match payload {
        Some(payload) => interaction(&app, &payload).await,
        None => slash_command(&app, &body).await,
    }
}

async fn slash_command(app: &App, body: &[u8]) -> Response {
    match commands::parse(body) {
        Ok(Form::SslCheck) => StatusCode::OK.into_response(),
        // An empty 200: Slack shows nothing, the agent answers in the channel.
        Ok(Form::Command {
            mut event,
            trigger_id,
            response_url,
        }) => {
            keep(app, &mut event, response_url);
            match emit(app, event, trigger_id).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(refused) => refused,
            }
        }
        Err(message) => answer::error(StatusCode::BAD_REQUEST, &message),
    }
}

/// An interactivity request: `payload=<JSON>` (a button, a modal submit, a shortcut …).
async fn interaction(app: &App, payload: &str) -> Response {
    let json: Value = match serde_json::from_str(payload) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("payload is not valid JSON: {e}");
            return answer::error(StatusCode::BAD_REQUEST, &message);
        }
    };
    let mut mapped = match interactions::map_payload(&json) {
        Ok(m) => m,
        Err(message) => return answer::error(StatusCode::BAD_REQUEST, &message),
    };
    keep(app, &mut mapped.event, mapped.response_url);
    // An empty 200 acknowledges it (and closes a submitted modal).
    match emit(app, mapped.event, mapped.key).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refused) => refused,
    }
}

/// Keeps `url` and gives `event` its `response_ref`.
fn keep(app: &App, event: &mut Event, url: Option<String>) {
    let Some(url) = url else { return };
    match app.responses.insert(url, (app.now)()) {
        Ok((reference, unsaved)) => {
            if let Some(e) = unsaved {
                app.ctx.warn(format!(
                    "response_urls.json not written ({e}): response_ref {reference} is only in memory"
                ));
            }
            event.properties.insert("response_ref".into(), reference);
        }
        Err(e) => app.ctx.error(format!(
            "no randomness for a response_ref ({e}): this event cannot be answered with respond"
        )),
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
///
/// A `validation_error` nack is answered `500`, not `4xx`: the request is
/// genuine, the declarations are what is wrong, and Slack retries a 5xx
/// (a 4xx would lose it silently). The refusal is written to the audit log.
async fn emit(app: &App, event: Event, key: Option<String>) -> Result<(), Response> {
    let name = event.name.clone();
    let emitter = app.ctx.emitter();
    let answer = match key {
        Some(key) => emitter.emit_with_key(event, key).await,
        None => emitter.emit(event).await,
    };
    match answer {
        Ok(_) => Ok(()),
        Err(EmitError::Nacked {
            kind: NackKind::ValidationError,
            message,
        }) => {
            app.ctx.warn(format!(
                "the orchestrator refused a {name} event as invalid ({message}); answered 500 \
                 so Slack retries it: check the Connector's event declarations"
            ));
            app.ctx.audit(Audit {
                kind: "delivery_refused".into(),
                scheme: Some("slack".into()),
                reason: Some(format!("validation_error: {name}")),
            });
            let body = json!({"error": message, "kind": "validation_error"});
            Err((StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response())
        }
        Err(e) => Err(answer::refused(&e)),
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then_some(value)
}
