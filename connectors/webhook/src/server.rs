//! The HTTP side: one handler for every POST. Read the body (413 over the
//! limit), verify its signature (401 + audit), parse it (400), answer
//! Discord's PING itself, else emit one event and answer after the ack.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use connector_sdk::Context;
use connector_sdk::verify::{Scheme, Verified};
use serde_json::{Value, json};

use crate::answer;
use crate::config::Config;
use crate::extract;

/// What every request needs.
#[derive(Debug)]
pub struct App {
    pub ctx: Context,
    pub config: Config,
    /// Requests waiting for an agent's `respond` (`REPLY_TIMEOUT`).
    pub replies: Arc<crate::reply::Replies>,
}

/// `GET /healthz`, and `POST` on any path.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.listen.max_body_bytes;
    crate::listen::routes(webhook, app, limit)
}

async fn webhook(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let guard = &app.config.guard;
    let (body, verified) = match crate::guard::admit(
        guard,
        &app.ctx,
        &method,
        &headers,
        body,
        app.config.listen.max_body_bytes,
    ) {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("body is not valid JSON: {e}");
            return answer::error(StatusCode::BAD_REQUEST, &message);
        }
    };
    let scheme = guard.scheme();
    if let Some(pong) = discord_ping(scheme, &json) {
        return pong;
    }
    if let Some(challenge) = slack_url_verification(scheme, &json) {
        return challenge;
    }
    let (mut event, header_key) = extract::event(&app.config.mapping, uri.path(), &headers, &json);
    // With REPLY_TIMEOUT, the event names where its reply goes.
    let waiting = app
        .config
        .reply_timeout
        .and_then(|t| app.replies.open().map(|w| (w, t)));
    if let Some((w, _)) = &waiting {
        event
            .properties
            .insert(crate::reply::REPLY_TO.into(), w.reference.clone());
    }
    let dedupe_key = header_key.or_else(|| delivery_id(scheme, verified, &json));
    let emitter = app.ctx.emitter();
    let answer = match dedupe_key {
        Some(key) => emitter.emit_with_key(event, key).await,
        None => emitter.emit(event).await,
    };
    match answer {
        Ok(accepted) => match discord_reply(scheme, &json) {
            Some(reply) => (StatusCode::OK, axum::Json(reply)).into_response(),
            None => match waiting {
                // A duplicate is not delivered again: nobody will reply.
                Some((w, timeout)) if !accepted.duplicate => {
                    let mut w = w;
                    match tokio::time::timeout(timeout, &mut w.answer).await {
                        Ok(Ok(reply)) => (
                            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
                            axum::Json(reply.body),
                        )
                            .into_response(),
                        _ => answer::accepted(accepted),
                    }
                }
                _ => answer::accepted(accepted),
            },
        },
        Err(e) => answer::refused_audited(&app.ctx, scheme.name(), &e),
    }
}

/// Discord's endpoint check: a verified `{"type":1}` is answered `{"type":1}`, never emitted.
fn discord_ping(scheme: &Scheme, body: &Value) -> Option<Response> {
    let ping = *scheme == Scheme::Discord && body["type"] == 1;
    ping.then(|| (StatusCode::OK, axum::Json(json!({"type": 1}))).into_response())
}

/// Slack's Request URL check: a verified `url_verification` is answered
/// `{"challenge": …}` with its challenge, never emitted.
fn slack_url_verification(scheme: &Scheme, body: &Value) -> Option<Response> {
    if *scheme != Scheme::Slack || body["type"] != "url_verification" {
        return None;
    }
    Some(match body["challenge"].as_str() {
        Some(c) => (StatusCode::OK, axum::Json(json!({"challenge": c}))).into_response(),
        None => answer::error(
            StatusCode::BAD_REQUEST,
            "url_verification without challenge",
        ),
    })
}

/// What Discord must hear back for an interaction once it is accepted: a
/// deferred response, so the agent answers later through the interaction's
/// token (the body is the event's text unless `TEXT_POINTER` says otherwise).
fn discord_reply(scheme: &Scheme, body: &Value) -> Option<Value> {
    if *scheme != Scheme::Discord {
        return None;
    }
    Some(match body["type"].as_u64() {
        // MESSAGE_COMPONENT: acknowledge, edit the message later.
        Some(3) => json!({"type": 6}),
        // APPLICATION_COMMAND_AUTOCOMPLETE: no suggestions from here.
        Some(4) => json!({"type": 8, "data": {"choices": []}}),
        // APPLICATION_COMMAND, MODAL_SUBMIT: "thinking…", answered later.
        _ => json!({"type": 5}),
    })
}

/// The scheme's delivery id: a header the scheme defines (GitHub's
/// `X-GitHub-Delivery`, Standard Webhooks' `webhook-id`), else the id the
/// sender puts in the body and keeps on retries (Stripe, Notion and Discord
/// `id`, Slack `event_id`).
pub fn delivery_id(scheme: &Scheme, verified: Verified, body: &Value) -> Option<String> {
    if let Some(id) = verified.delivery_id {
        return Some(id);
    }
    let pointer = match scheme {
        Scheme::Stripe | Scheme::Notion | Scheme::Discord => "/id",
        Scheme::Slack => "/event_id",
        _ => return None,
    };
    match body.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(name: &str) -> Scheme {
        name.parse().unwrap()
    }

    #[test]
    fn delivery_ids_per_scheme() {
        let header = Verified {
            delivery_id: Some("d-1".into()),
            timestamp: None,
        };
        let body = json!({"id": "evt_1", "event_id": "Ev1"});
        assert_eq!(
            delivery_id(&scheme("github"), header.clone(), &body).as_deref(),
            Some("d-1")
        );
        assert_eq!(
            delivery_id(&scheme("github"), Verified::default(), &body),
            None
        );
        for (name, want) in [
            ("stripe", Some("evt_1")),
            ("notion", Some("evt_1")),
            ("discord", Some("evt_1")),
            ("slack", Some("Ev1")),
            ("hmac-sha256", None),
            ("none", None),
        ] {
            let got = delivery_id(&scheme(name), Verified::default(), &body);
            assert_eq!(got.as_deref(), want, "{name}");
        }
        assert_eq!(
            delivery_id(&scheme("discord"), Verified::default(), &json!({"id": 7})).as_deref(),
            Some("7")
        );
        assert_eq!(
            delivery_id(&scheme("stripe"), Verified::default(), &json!({"id": ""})),
            None
        );
    }

    #[test]
    fn slack_url_verification_only_for_slack() {
        let check = json!({"type": "url_verification", "token": "t", "challenge": "c-1"});
        let r = slack_url_verification(&scheme("slack"), &check).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(slack_url_verification(&scheme("none"), &check).is_none());
        let callback = json!({"type": "event_callback", "challenge": "c"});
        assert!(slack_url_verification(&scheme("slack"), &callback).is_none());
        let bare = json!({"type": "url_verification"});
        let r = slack_url_verification(&scheme("slack"), &bare).unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn discord_answers() {
        let discord = scheme("discord");
        assert!(discord_ping(&discord, &json!({"type": 1})).is_some());
        assert!(discord_ping(&discord, &json!({"type": 2})).is_none());
        assert!(discord_ping(&scheme("github"), &json!({"type": 1})).is_none());
        assert_eq!(
            discord_reply(&discord, &json!({"type": 2})),
            Some(json!({"type": 5}))
        );
        assert_eq!(
            discord_reply(&discord, &json!({"type": 3})),
            Some(json!({"type": 6}))
        );
        assert_eq!(
            discord_reply(&discord, &json!({"type": 4})).map(|v| v["type"].clone()),
            Some(json!(8))
        );
        assert_eq!(discord_reply(&scheme("none"), &json!({"type": 2})), None);
    }
}
