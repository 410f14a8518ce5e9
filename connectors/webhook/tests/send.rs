//! The `send` operation in process against a receiver (axum, in this test)
//! that verifies each request's Standard Webhooks signature with
//! `connector_sdk::verify`, as a system receiving from this swarm would.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use connector_sdk::ipc_proto::{Call, FailureClass, Json};
use connector_sdk::testing::{TestConfig, TestRun, run_connector};
use connector_sdk::verify::{self, Window};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(10);
/// The Standard Webhooks libraries' test key.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Debug)]
struct Got {
    path: String,
    verified: Result<Option<String>, String>,
    content_type: Option<String>,
    body: Value,
}

type Seen = Arc<Mutex<Vec<Got>>>;

/// A receiver on 127.0.0.1: records and verifies every POST; the body's
/// `want` (a status) picks the answer, with `Retry-After: 2` on a 429.
async fn receiver() -> (String, Seen) {
    async fn take(
        State(seen): State<Seen>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let verified =
            verify::standard_webhooks(SECRET, &headers, &body, SystemTime::now(), Window::DEFAULT)
                .map(|v| v.delivery_id)
                .map_err(|e| e.to_string());
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let want = json["want"].as_u64().unwrap_or(200) as u16;
        seen.lock().unwrap().push(Got {
            path: uri.path().to_owned(),
            verified,
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: json,
        });
        let mut r = (
            StatusCode::from_u16(want).unwrap(),
            axum::Json(json!({"got": true})),
        )
            .into_response();
        if want == 429 {
            r.headers_mut().insert("retry-after", "2".parse().unwrap());
        }
        if want == 307 {
            r.headers_mut()
                .insert("location", "http://127.0.0.1:9/elsewhere".parse().unwrap());
        }
        r
    }
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(post(take)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/inbox", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn start(url: &str, secret: Option<&str>) -> TestRun {
    let mut config = TestConfig::new()
        .config("SIGNATURE", "none")
        .config("PORT", "0")
        .config("OUTBOUND_URL", url);
    if let Some(s) = secret {
        config = config.secret("OUTBOUND_SECRET", s);
    }
    let run = run_connector(connector_webhook::run, config);
    run.wait_ready(LIMIT).await.unwrap();
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn send_posts_a_signed_body_the_receiver_verifies() {
    let (url, seen) = receiver().await;
    let run = start(&url, Some(SECRET)).await;

    let body = json!({"type": "invoice.paid", "data": {"customer": "cus_1"}});
    let r = run
        .call("send", json!({"body": body}), LIMIT)
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.provider_status, Some(200));
    let data = r.data.unwrap().0;
    assert_eq!(data["status"], 200);
    assert_eq!(data["response"], json!({"got": true}));
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/inbox");
    assert_eq!(got[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(got[0].body, body);
    let id = got[0]
        .verified
        .clone()
        .expect("the receiver verified the signature");
    assert_eq!(id.as_deref(), data["webhookId"].as_str());

    // An idempotency key is the webhook-id, so the orchestrator's retries carry the same one.
    run.send_raw_call(Call {
        id: "c-2".into(),
        operation: "send".into(),
        input: Json(json!({"body": {"n": 2}})),
        attempt: 1,
        deadline_ms: 10_000,
        idempotency_key: Some("order.42".into()),
    });
    let r = run.call_result("c-2", LIMIT).await.unwrap();
    assert_eq!(r.data.unwrap().0["webhookId"], "msg_order_42");
    assert_eq!(
        seen.lock().unwrap()[1].verified,
        Ok(Some("msg_order_42".into()))
    );

    // The input cannot choose the URL.
    let r = run
        .call(
            "send",
            json!({"body": {}, "url": "http://127.0.0.1:9/"}),
            LIMIT,
        )
        .await
        .unwrap();
    let e = r.error.unwrap();
    assert_eq!(e.class, FailureClass::ValidationError);
    assert!(e.message.contains("not input.url"), "{}", e.message);
    assert_eq!(seen.lock().unwrap().len(), 2, "nothing was sent");

    // The receiver's statuses become classes.
    let class = |want: u16| {
        let run = &run;
        async move {
            let r = run
                .call("send", json!({"body": {"want": want}}), LIMIT)
                .await
                .unwrap();
            r.error.unwrap()
        }
    };
    let e = class(429).await;
    assert_eq!(
        (e.class, e.retry_after_ms, e.provider_status),
        (FailureClass::QuotaExceeded, Some(2000), Some(429))
    );
    let e = class(503).await;
    assert_eq!(
        (e.class, e.provider_status),
        (FailureClass::Transient, Some(503))
    );
    let e = class(422).await;
    assert_eq!(
        (e.class, e.provider_status),
        (FailureClass::Permanent, Some(422))
    );
    assert!(
        e.message.contains(r#"{"got":true}"#),
        "the receiver's own text: {}",
        e.message
    );
    // A redirect is not followed: the connector goes nowhere but OUTBOUND_URL.
    let e = class(307).await;
    assert_eq!(
        (e.class, e.provider_status),
        (FailureClass::Permanent, Some(307))
    );
    assert_eq!(seen.lock().unwrap().len(), 6);
    assert!(seen.lock().unwrap().iter().all(|g| g.path == "/inbox"));
    run.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_without_a_secret_and_nothing_without_a_url() {
    let (url, seen) = receiver().await;
    let run = start(&url, None).await;
    let r = run
        .call("send", json!({"body": [1, 2]}), LIMIT)
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got[0].body, json!([1, 2]));
    assert!(
        got[0]
            .verified
            .as_ref()
            .is_err_and(|e| e.contains("webhook-")),
        "{got:?}"
    );
    run.shutdown().await.unwrap();

    let run = run_connector(
        connector_webhook::run,
        TestConfig::new()
            .config("SIGNATURE", "none")
            .config("PORT", "0"),
    );
    run.wait_ready(LIMIT).await.unwrap();
    let e = run
        .call("send", json!({"body": {}}), LIMIT)
        .await
        .unwrap()
        .error
        .unwrap();
    assert_eq!(e.class, FailureClass::Permanent);
    assert!(e.message.contains("OUTBOUND_URL"), "{}", e.message);
    run.shutdown().await.unwrap();

    // A secret that is no whsec_ key stops the connector at start (exit 78).
    let run = run_connector(
        connector_webhook::run,
        TestConfig::new()
            .config("SIGNATURE", "none")
            .config("OUTBOUND_URL", &url)
            .secret("OUTBOUND_SECRET", "whsec_!!!"),
    );
    let finished = run.wait_finished(LIMIT).await.unwrap();
    assert!(finished.is_config_error(), "{finished:?}");
}

/// Through the real orchestrator: the operator's `send` is governed, signed,
/// verified by the receiver, and the secret shows up in no log.
#[test]
fn send_through_the_orchestrator_is_verified_by_the_receiver() {
    use e2e::{DEADLINE, Harness};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, seen) = rt.block_on(receiver());
    let mut h = Harness::new();
    h.start(&format!(
        r#"{connector}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: outbox }}
spec:
  connectorRef: Connector/webhook
  config: {{ PORT: "0", SIGNATURE: none, OUTBOUND_URL: "{url}" }}
  secrets:
    OUTBOUND_SECRET: {{ value: "{SECRET}" }}
  operations:
    allow: [send]
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/echo, agents: [Agent/echo] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: echo }}
spec: {{ entry: agent-echo, protocol: frames }}
"#,
        connector = include_str!("../connector.yaml"),
    ));
    h.wait_process("ready", "connection/outbox", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let input = r#"{"body":{"event":"deployed","version":"1.2.3"}}"#;
    let out = h.cli(&["invoke", "outbox", "send", "--input", input, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["response"]["data"]["status"], 200, "{result}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body,
        json!({"event": "deployed", "version": "1.2.3"})
    );
    assert!(got[0].verified.is_ok(), "{got:?}");
    // The schema refuses a URL in the input before the connector sees it.
    let out = h.cli(&[
        "invoke",
        "outbox",
        "send",
        "--input",
        r#"{"body":{},"url":"http://127.0.0.1:9/"}"#,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    for (path, text) in h.all_logs() {
        assert!(
            !text.contains(SECRET),
            "the secret is in {}",
            path.display()
        );
    }
    assert!(h.stop().success(), "{}", h.dump());
}
