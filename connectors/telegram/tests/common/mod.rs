//! A fake Telegram Bot API for the tests: `getUpdates` on 127.0.0.1, with
//! Telegram's offset semantics, long polling, and injectable failures.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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

#[derive(Default)]
struct Inner {
    /// Updates not yet confirmed by an offset, in update_id order.
    updates: Vec<Value>,
    faults: VecDeque<Fault>,
    requests: Vec<Request>,
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
            .route("/{bot}/getUpdates", post(get_updates))
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

async fn get_updates(
    State(shared): State<Shared>,
    UrlPath(bot): UrlPath<String>,
    body: Bytes,
) -> Response {
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
