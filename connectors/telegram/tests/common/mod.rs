//! A fake Telegram Bot API for the tests: `getUpdates` on 127.0.0.1, with
//! Telegram's offset semantics, long polling, and injectable failures.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The token the fake accepts.
pub const TOKEN: &str = "123456:TEST-s3cr3t-token";

/// A failure the fake answers the next request with.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// This HTTP status with a JSON error body.
    Status(u16),
    /// 429 with `parameters.retry_after`.
    RetryAfter(u64),
    /// 409: "terminated by other getUpdates request".
    Conflict,
}

/// One `getUpdates` call the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub offset: Option<i64>,
    pub timeout: Option<u64>,
    pub token_ok: bool,
}

/// One call of another Bot API method (an operation), as the fake got it.
#[derive(Clone, Debug)]
pub struct MethodCall {
    pub method: String,
    pub token_ok: bool,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    /// Updates not yet confirmed by an offset, in update_id order.
    updates: Vec<Value>,
    faults: VecDeque<Fault>,
    requests: Vec<Request>,
    /// Failures for the next method calls (not getUpdates).
    method_faults: VecDeque<Fault>,
    calls: Vec<MethodCall>,
    /// file_id → (file_path, bytes).
    files: HashMap<String, (String, Vec<u8>)>,
    /// (token_ok, file_path) of each download.
    downloads: Vec<(bool, String)>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    /// Bumped on every change, for long polls and test waits.
    changed: Arc<watch::Sender<u64>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The fake server; it stops when dropped.
pub struct FakeBotApi {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBotApi {
    /// Binds 127.0.0.1:0 and serves in the current runtime.
    pub async fn start() -> Self {
        let shared = Shared {
            inner: Arc::default(),
            changed: Arc::new(watch::Sender::new(0)),
        };
        let app = Router::new()
            .route("/{bot}/{method}", post(method))
            .route("/file/{bot}/{*path}", get(download))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeBotApi { addr, shared, task }
    }

    /// `API_BASE` for the connector.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds updates for the next `getUpdates`.
    pub fn push(&self, updates: impl IntoIterator<Item = Value>) {
        {
            let mut inner = self.shared.lock();
            inner.updates.extend(updates);
            inner.updates.sort_by_key(update_id);
        }
        self.shared.bump();
    }

    /// The next requests get these failures, one each, before any update.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().faults.extend(faults);
        self.shared.bump();
    }

    /// The next method calls (not getUpdates) get these failures, one each.
    pub fn fail_methods(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().method_faults.extend(faults);
    }

    /// A file `getFile` knows by `file_id`, served at `file_path`.
    pub fn add_file(&self, file_id: &str, file_path: &str, bytes: Vec<u8>) {
        self.shared
            .lock()
            .files
            .insert(file_id.into(), (file_path.into(), bytes));
    }

    /// Every method call (not getUpdates) so far.
    pub fn calls(&self) -> Vec<MethodCall> {
        self.shared.lock().calls.clone()
    }

    /// The calls of `method` so far.
    pub fn calls_of(&self, method: &str) -> Vec<MethodCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Every file download so far: (token right, file_path).
    pub fn downloads(&self) -> Vec<(bool, String)> {
        self.shared.lock().downloads.clone()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `pred` holds for the requests so far; returns them.
    pub async fn wait_requests(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let mut rx = self.shared.changed.subscribe();
        let ok = tokio::time::timeout(limit, async {
            loop {
                if pred(&self.requests()) {
                    return;
                }
                rx.changed().await.unwrap();
            }
        })
        .await;
        let requests = self.requests();
        assert!(
            ok.is_ok(),
            "timed out waiting for {what}; requests: {requests:?}"
        );
        requests
    }
}

fn update_id(u: &Value) -> i64 {
    u["update_id"].as_i64().unwrap_or(i64::MIN)
}

fn error(status: u16, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status, "description": description});
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    let status = StatusCode::from_u16(status).unwrap();
    (status, axum::Json(body)).into_response()
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::Status(s) if s >= 500 => error(s, "Internal Server Error", None),
        Fault::Status(s) => error(s, "Bad Request: chat not found", None),
        Fault::RetryAfter(secs) => error(
            429,
            &format!("Too Many Requests: retry after {secs}"),
            Some(json!({"retry_after": secs})),
        ),
        Fault::Conflict => error(409, "Conflict", None),
    }
}

/// Any method: getUpdates, or an operation's method, recorded and answered
/// the way the Bot API does.
async fn method(
    State(shared): State<Shared>,
    UrlPath((bot, method)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == "getUpdates" {
        return get_updates(shared, bot, body).await;
    }
    let token_ok = bot == format!("bot{TOKEN}");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (fault, n, file) = {
        let mut inner = shared.lock();
        inner.calls.push(MethodCall {
            method: method.clone(),
            token_ok,
            content_type: content_type.clone(),
            body: body.clone(),
        });
        let file = body["file_id"]
            .as_str()
            .and_then(|id| inner.files.get(id).cloned());
        (inner.method_faults.pop_front(), inner.calls.len(), file)
    };
    shared.bump();
    if !token_ok {
        return error(401, "Unauthorized", None);
    }
    if !content_type.starts_with("application/json") {
        return error(400, "Bad Request: expected a JSON body", None);
    }
    if let Some(f) = fault {
        return fault_response(f);
    }
    let result = match method.as_str() {
        "sendMessage" | "editMessageText" => {
            if body["chat_id"].is_null() || !body["text"].is_string() {
                return error(400, "Bad Request: chat_id and text are required", None);
            }
            json!({"message_id": 1000 + n, "date": 1700000000,
                   "chat": {"id": body["chat_id"], "type": "private"}, "text": body["text"]})
        }
        "getFile" => match (body["file_id"].as_str(), file) {
            (Some(id), Some((path, bytes))) => json!({"file_id": id, "file_unique_id": "u",
                "file_size": bytes.len(), "file_path": path}),
            _ => return error(400, "Bad Request: invalid file_id", None),
        },
        "answerCallbackQuery" | "sendChatAction" => json!(true),
        _ => return error(404, "Not Found", None),
    };
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

/// `GET /file/bot<token>/<file_path>`: the file's bytes.
async fn download(
    State(shared): State<Shared>,
    UrlPath((bot, path)): UrlPath<(String, String)>,
) -> Response {
    let token_ok = bot == format!("bot{TOKEN}");
    let bytes = {
        let mut inner = shared.lock();
        inner.downloads.push((token_ok, path.clone()));
        inner
            .files
            .values()
            .find(|(p, _)| *p == path)
            .map(|(_, b)| b.clone())
    };
    shared.bump();
    match bytes {
        Some(b) if token_ok => b.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn get_updates(shared: Shared, bot: String, body: Bytes) -> Response {
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let offset = params["offset"].as_i64();
    let timeout = params["timeout"].as_u64();
    let token_ok = bot == format!("bot{TOKEN}");
    let mut rx = shared.changed.subscribe();
    let fault = {
        let mut inner = shared.lock();
        inner.requests.push(Request {
            offset,
            timeout,
            token_ok,
        });
        if token_ok {
            // Telegram forgets every update below the offset: they are confirmed.
            if let Some(o) = offset {
                inner.updates.retain(|u| update_id(u) >= o);
            }
            inner.faults.pop_front()
        } else {
            None
        }
    };
    shared.bump();
    if !token_ok {
        return error(401, "Unauthorized", None);
    }
    match fault {
        Some(Fault::Status(s)) => return error(s, "Internal Server Error", None),
        Some(Fault::RetryAfter(secs)) => {
            return error(
                429,
                &format!("Too Many Requests: retry after {secs}"),
                Some(json!({"retry_after": secs})),
            );
        }
        Some(Fault::Conflict) => {
            return error(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot \
                 instance is running",
                None,
            );
        }
        None => {}
    }
    // Long polling: answer as soon as there are updates, or after `timeout` seconds.
    let wait = Duration::from_secs(timeout.unwrap_or(0));
    let _ = tokio::time::timeout(wait, async {
        loop {
            if !shared.lock().updates.is_empty() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    let result: Vec<Value> = shared.lock().updates.iter().take(100).cloned().collect();
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

/// The 14 updates of `testdata/`, in update_id order.
pub fn testdata() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut out: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap())
        .collect();
    out.sort_by_key(update_id);
    out
}

/// A private text message update from testdata's `message` with another id and text.
pub fn text_update(update_id: i64, text: &str) -> Value {
    let mut u = testdata()
        .into_iter()
        .find(|u| u["update_id"] == 892252934)
        .unwrap();
    u["update_id"] = update_id.into();
    u["message"]["text"] = text.into();
    u
}
