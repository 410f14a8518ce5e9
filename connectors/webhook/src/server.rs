//! The HTTP side: one handler for every POST, answered only after the
//! orchestrator's ack, so a 200 means the event is durable.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use connector_sdk::{Audit, Context, EmitError, NackKind};
use serde_json::{Value, json};

use crate::config::Config;
use crate::extract;

/// What every request needs.
pub struct App {
    pub ctx: Context,
    pub config: Config,
}

/// `GET /healthz`, and `POST` on any path.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz).post(webhook))
        .fallback(webhook)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response()
}

async fn webhook(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if method != Method::POST {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = app.config.max_body_bytes;
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body is over {limit} bytes"),
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let verifier = &app.config.verifier;
    if let Err(rejection) = verifier.verify(&headers, &body) {
        app.ctx.audit(Audit {
            kind: "signature_rejected".into(),
            scheme: Some(verifier.scheme().into()),
            reason: Some(rejection.reason.into()),
        });
        return error(StatusCode::UNAUTHORIZED, "request signature rejected");
    }
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("body is not valid JSON: {e}"),
            );
        }
    };
    let (event, dedupe_key) = extract::event(&app.config.mapping, uri.path(), &headers, &json);
    let emitter = app.ctx.emitter();
    let answer = match dedupe_key {
        Some(key) => emitter.emit_with_key(event, key).await,
        None => emitter.emit(event).await,
    };
    match answer {
        Ok(accepted) => {
            let body = json!({"accepted": true, "duplicate": accepted.duplicate});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => refused(&e),
    }
}

/// The HTTP answer for an event the orchestrator did not accept.
fn refused(e: &EmitError) -> Response {
    let (status, retry_after) = match e {
        EmitError::Nacked {
            kind: NackKind::Overloaded,
            ..
        } => (StatusCode::SERVICE_UNAVAILABLE, true),
        EmitError::Nacked {
            kind: NackKind::QuotaExceeded,
            ..
        } => (StatusCode::TOO_MANY_REQUESTS, true),
        EmitError::Nacked {
            kind: NackKind::ValidationError,
            ..
        } => (StatusCode::UNPROCESSABLE_ENTITY, false),
        EmitError::Nacked { .. } => (StatusCode::BAD_GATEWAY, false),
        EmitError::Unsendable(_) => (StatusCode::PAYLOAD_TOO_LARGE, false),
        // Usually a restart of this connector or the orchestrator: try again soon.
        EmitError::Closed => (StatusCode::SERVICE_UNAVAILABLE, true),
    };
    let message = match e {
        EmitError::Nacked { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let mut body = json!({"error": message});
    if let EmitError::Nacked { kind, .. } = e {
        body["kind"] = kind.as_str().into();
    }
    let mut r = (status, axum::Json(body)).into_response();
    if retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nack(kind: NackKind) -> EmitError {
        EmitError::Nacked {
            kind,
            message: "why".into(),
        }
    }

    #[test]
    fn refusals_map_to_statuses() {
        let cases = [
            (nack(NackKind::Overloaded), 503, Some("1")),
            (nack(NackKind::QuotaExceeded), 429, Some("1")),
            (nack(NackKind::ValidationError), 422, None),
            (nack(NackKind::Transient), 502, None),
            (nack(NackKind::Permanent), 502, None),
            (EmitError::Closed, 503, Some("1")),
            (EmitError::Unsendable("too big".into()), 413, None),
        ];
        for (e, status, retry_after) in cases {
            let r = refused(&e);
            assert_eq!(r.status().as_u16(), status, "{e:?}");
            let got = r
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap());
            assert_eq!(got, retry_after, "{e:?}");
        }
    }
}
