//! A fake Slack on 127.0.0.1: the Web API methods the operations call
//! (`POST /api/<method>`, `GET /api/files.info`), file downloads
//! (`GET /files/<id>`) and response_urls (`POST /response/<id>`), each
//! request recorded with its auth header, content type and body, and
//! failures injectable the ways Slack fails.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The bot token the fake accepts.
pub const BOT_TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";

/// A failure the fake answers the next Web API call with.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This HTTP status.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    RetryAfter(u64),
    /// 200 `{"ok": false, "error": …}`.
    Error(&'static str),
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `chat.postMessage`, `files.info`, `download F1`, `response r1`.
    pub what: String,
    pub authorization: Option<String>,
    pub content_type: String,
    /// The JSON body (or the query, as an object, for a GET).
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    faults: VecDeque<Fault>,
    /// id → (name, mimetype, bytes).
    files: HashMap<String, (String, String, Vec<u8>)>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    base: String,
}

/// The fake; it stops when dropped.
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSlack {
    /// Binds 127.0.0.1:0 and serves in the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            inner: Arc::default(),
            base: format!("http://{addr}"),
        };
        let app = Router::new()
            .route("/api/files.info", get(files_info))
            .route("/api/{method}", post(method))
            .route("/files/{id}", get(download))
            .route("/response/{id}", post(response))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeSlack { addr, shared, task }
    }

    /// `API_BASE` for the connector.
    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A response_url on the fake.
    pub fn response_url(&self, id: &str) -> String {
        format!("http://{}/response/{id}", self.addr)
    }

    /// The next Web API calls fail so, one each.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.inner.lock().unwrap().faults.extend(faults);
    }

    /// A file `files.info` knows and `/files/<id>` serves.
    pub fn add_file(&self, id: &str, name: &str, mimetype: &str, bytes: Vec<u8>) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .files
            .insert(id.into(), (name.into(), mimetype.into(), bytes));
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.inner.lock().unwrap().seen.clone()
    }

    /// The requests whose `what` is `what`.
    pub fn seen_of(&self, what: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.what == what).collect()
    }
}

fn record(shared: &Shared, what: String, headers: &HeaderMap, body: Value) -> Option<Fault> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut inner = shared.inner.lock().unwrap();
    inner.seen.push(Seen {
        what,
        authorization: header("authorization"),
        content_type: header("content-type").unwrap_or_default(),
        body,
    });
    inner.faults.pop_front()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == format!("Bearer {BOT_TOKEN}").as_bytes())
}

fn fault_response(f: Fault) -> Response {
    match f {
        Fault::Status(s) => (StatusCode::from_u16(s).unwrap(), "upstream trouble").into_response(),
        Fault::RetryAfter(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response(),
        Fault::Error(e) => axum::Json(json!({"ok": false, "error": e})).into_response(),
    }
}

async fn method(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = record(&shared, method.clone(), &headers, json.clone());
    if !authorized(&headers) {
        return axum::Json(json!({"ok": false, "error": "not_authed"})).into_response();
    }
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !json_body {
        return axum::Json(json!({"ok": false, "error": "invalid_form_data"})).into_response();
    }
    if let Some(f) = fault {
        return fault_response(f);
    }
    let answer = match method.as_str() {
        "chat.postMessage" | "chat.update" => {
            if !json["channel"].is_string() {
                return axum::Json(json!({"ok": false, "error": "channel_not_found"}))
                    .into_response();
            }
            json!({"ok": true, "channel": json["channel"], "ts": json["ts"].as_str().unwrap_or("1700000000.000100"),
                   "message": {"text": json["text"], "type": "message"}})
        }
        "reactions.add" => json!({"ok": true}),
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(answer).into_response()
}

async fn files_info(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query: serde_json::Map<String, Value> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
    let id = query
        .get("file")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let fault = record(&shared, "files.info".into(), &headers, Value::Object(query));
    if !authorized(&headers) {
        return axum::Json(json!({"ok": false, "error": "not_authed"})).into_response();
    }
    if let Some(f) = fault {
        return fault_response(f);
    }
    let file = shared.inner.lock().unwrap().files.get(&id).cloned();
    match file {
        Some((name, mimetype, bytes)) => axum::Json(json!({"ok": true, "file": {
            "id": id, "name": name, "mimetype": mimetype, "size": bytes.len(),
            "url_private": format!("{}/files/{id}", shared.base),
            "url_private_download": format!("{}/files/{id}", shared.base),
        }}))
        .into_response(),
        None => axum::Json(json!({"ok": false, "error": "file_not_found"})).into_response(),
    }
}

async fn download(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(&shared, format!("download {id}"), &headers, Value::Null);
    if !authorized(&headers) {
        // Slack answers an unauthenticated download with its sign-in page.
        return (StatusCode::OK, "<html>sign in</html>").into_response();
    }
    let file = shared.inner.lock().unwrap().files.get(&id).cloned();
    match file {
        Some((_, _, bytes)) => bytes.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn response(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&shared, format!("response {id}"), &headers, json);
    axum::Json(json!({"ok": true})).into_response()
}
