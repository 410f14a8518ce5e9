//! The HTTP side: verify the interaction, answer PING and autocomplete,
//! else keep the token, emit the event and answer with a deferred response
//! once it is acked.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use connector_sdk::Context;
use connector_webhook::answer;
use connector_webhook::guard::{Guard, admit};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::interaction::{self, Kind};
use crate::tokens::{Interaction, Tokens};

/// What every request needs.
#[derive(Debug)]
pub struct App {
    /// The connection to the orchestrator.
    pub ctx: Context,
    /// Verifies `X-Signature-Ed25519` with `PUBLIC_KEY`, within the replay window.
    pub guard: Guard,
    /// The interaction tokens, by reference.
    pub tokens: Arc<Mutex<Tokens>>,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
}

/// `GET /healthz`, and `POST` on any path (the Interactions Endpoint URL).
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
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("body is not valid JSON: {e}");
            return answer::error(StatusCode::BAD_REQUEST, &message);
        }
    };
    let mapped = match interaction::classify(&json) {
        Ok(Kind::Ping) => return reply(json!({"type": 1})),
        Ok(Kind::Autocomplete) => return reply(json!({"type": 8, "data": {"choices": []}})),
        Ok(Kind::Emit(mapped)) => *mapped,
        Err(message) => return answer::error(StatusCode::BAD_REQUEST, &message),
    };
    let reference = lock(&app.tokens).insert(
        &mapped.id,
        Interaction {
            application_id: mapped.application_id.clone(),
            token: mapped.token.clone(),
        },
        Instant::now(),
    );
    let mut event = mapped.event;
    event
        .properties
        .insert("interaction".into(), reference.clone());
    match app.ctx.emitter().emit_with_key(event, mapped.id).await {
        Ok(_) => reply(mapped.deferred),
        Err(e) => {
            // Nobody will follow up on a refused event.
            lock(&app.tokens).remove(&reference);
            answer::refused_audited(&app.ctx, "discord", &e)
        }
    }
}

fn reply(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn lock(tokens: &Mutex<Tokens>) -> std::sync::MutexGuard<'_, Tokens> {
    // No code panics while holding the lock; recover the data if it ever did.
    tokens.lock().unwrap_or_else(|e| e.into_inner())
}
