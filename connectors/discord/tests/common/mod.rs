//! What the Discord tests share: the application's key pair, signed
//! interactions, and a fake Discord API (axum) that checks each request as
//! Discord documents it and records it.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

/// The bot token the tests give the connector.
pub const BOT_TOKEN: &str = "MTA5.bot-token-never-shown.Xq";
/// The interaction token in the test interactions.
pub const INTERACTION_TOKEN: &str = "aW50ZXJhY3Rpb24-token-never-shown";
/// The application id in the test interactions.
pub const APP_ID: &str = "1011000000000000001";

/// The application's key pair: the same seed in every run.
pub fn app_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// The public key, as the `PUBLIC_KEY` secret holds it.
pub fn public_key_hex() -> String {
    hex::encode(app_key().verifying_key().to_bytes())
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The headers Discord sends with `body`, signed by `key` at `ts`.
pub fn signed(key: &SigningKey, ts: u64, body: &[u8]) -> Vec<(String, String)> {
    let ts = ts.to_string();
    let sig = key.sign(&[ts.as_bytes(), body].concat());
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Signature-Ed25519".into(), hex::encode(sig.to_bytes())),
        ("X-Signature-Timestamp".into(), ts),
    ]
}

/// POSTs `body` to the connector at `addr` with `headers`; (status, JSON body).
pub fn post(addr: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let answer = e2e::http_post(addr, "/interactions", &h, body);
    let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    (answer.status, json)
}

/// POSTs `body` signed now by the application's key.
pub fn post_signed(addr: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    post(addr, &signed(&app_key(), now(), &bytes), &bytes)
}

/// A slash command `/ask question:<question>` in channel 4400 of guild 3300.
pub fn command(id: &str, question: &str) -> Value {
    json!({
        "id": id, "application_id": APP_ID, "type": 2, "token": INTERACTION_TOKEN, "version": 1,
        "guild_id": "3300", "channel_id": "4400", "locale": "en-US",
        "channel": {"id": "4400", "type": 0},
        "member": {"user": {"id": "5500", "username": "ada", "global_name": "Ada"}, "roles": []},
        "data": {"id": "6600", "name": "ask", "type": 1,
                 "options": [{"name": "question", "type": 3, "value": question}]},
    })
}

/// A button press (`custom_id` `approve`) with an image attached to the command.
pub fn button_with_image(id: &str) -> Value {
    json!({
        "id": id, "application_id": APP_ID, "type": 3, "token": INTERACTION_TOKEN, "version": 1,
        "channel_id": "4401", "user": {"id": "5501", "username": "bob"},
        "message": {"id": "7700", "channel_id": "4401", "content": "approve?"},
        "data": {"custom_id": "approve", "component_type": 2, "resolved": {"attachments": {
            "9900": {"id": "9900", "filename": "cat.png", "size": 1024,
                     "url": "https://cdn.discordapp.com/attachments/1/9900/cat.png",
                     "content_type": "image/png"}}}},
    })
}

/// One request the fake API received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    /// Canned answers by channel id (createMessage) or anything: (status, body, Retry-After).
    answers: Vec<(String, u16, Value, Option<String>)>,
}

/// A fake Discord API on a port-0 socket of 127.0.0.1.
#[derive(Clone)]
pub struct FakeDiscord {
    inner: Arc<Mutex<Inner>>,
    url: String,
}

impl FakeDiscord {
    /// Starts it on the current tokio runtime.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/api/v10/webhooks/{app}/{token}", routing::post(followup))
            .route(
                "/api/v10/channels/{channel}/messages",
                routing::post(create_message),
            )
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v10", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeDiscord { inner, url }
    }

    /// The API base to configure.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Answers requests whose path contains `needle` with `status` and `body`.
    pub fn answer(&self, needle: &str, status: u16, body: Value, retry_after: Option<&str>) {
        self.inner.lock().unwrap().answers.push((
            needle.into(),
            status,
            body,
            retry_after.map(str::to_owned),
        ));
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Records the request, then answers it with a canned answer or a message object.
fn record(
    inner: &Mutex<Inner>,
    path: String,
    headers: &HeaderMap,
    body: &Bytes,
    channel: &str,
) -> Response {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut inner = inner.lock().unwrap();
    inner.seen.push(Seen {
        path: path.clone(),
        authorization: header(headers, "authorization"),
        content_type: header(headers, "content-type"),
        body: body.clone(),
    });
    if header(headers, "content-type").as_deref() != Some("application/json") {
        let e = json!({"message": "Cannot send an empty message", "code": 50006});
        return (StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
    }
    if let Some((_, status, answer, retry_after)) = inner
        .answers
        .iter()
        .find(|(n, ..)| path.contains(n.as_str()))
    {
        let mut r = (
            StatusCode::from_u16(*status).unwrap(),
            axum::Json(answer.clone()),
        )
            .into_response();
        if let Some(ra) = retry_after {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return r;
    }
    let n = inner.seen.len();
    let message = json!({"id": format!("880{n}"), "channel_id": channel, "content": body["content"], "type": 0});
    (StatusCode::OK, axum::Json(message)).into_response()
}

/// `POST /webhooks/{application.id}/{interaction.token}`: no bot token wanted.
async fn followup(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((app, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if app != APP_ID || token != INTERACTION_TOKEN {
        let e = json!({"message": "Unknown Webhook", "code": 10015});
        return (StatusCode::NOT_FOUND, axum::Json(e)).into_response();
    }
    record(
        &inner,
        format!("/webhooks/{app}/{token}"),
        &headers,
        &body,
        "4400",
    )
}

/// `POST /channels/{channel.id}/messages`: `Authorization: Bot <token>` required.
async fn create_message(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if header(&headers, "authorization").as_deref() != Some(&format!("Bot {BOT_TOKEN}")) {
        let e = json!({"message": "401: Unauthorized", "code": 0});
        return (StatusCode::UNAUTHORIZED, axum::Json(e)).into_response();
    }
    record(
        &inner,
        format!("/channels/{channel}/messages"),
        &headers,
        &body,
        &channel,
    )
}
