//! Runs the real `connector-webhook` binary against a fake orchestrator and
//! talks HTTP to it on a port-0 socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use connector_sdk::Secrets;
use connector_sdk::ipc_proto::{
    ConnectorInit, Emit, EmitAck, EmitNack, FromConnector, NackError, NackKind, PROTOCOL_VERSION,
    Shutdown,
};
use connector_sdk::testing::ConnectorPeer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const DEADLINE: Duration = Duration::from_secs(10);

struct Webhook {
    child: Child,
    orch: ConnectorPeer,
    addr: SocketAddr,
    _state: tempfile::TempDir,
}

fn init(config: &[(&str, &str)], state_dir: &str) -> ConnectorInit {
    ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: "webhook".into(),
        connection: "hooks".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: Secrets(BTreeMap::new()),
        state_dir: state_dir.into(),
    }
}

fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-webhook"));
    cmd.stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn start(config: &[(&str, &str)]) -> Webhook {
    let state = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: the connector creates it.
    let state_dir = state.path().join("state/hooks");
    let (child, mut orch) = ConnectorPeer::spawn(&mut command()).unwrap();
    let mut config = config.to_vec();
    config.push(("PORT", "0"));
    orch.send(init(&config, state_dir.to_str().unwrap()))
        .await
        .unwrap();
    // The address is written before ready.
    assert!(matches!(
        orch.recv_within(DEADLINE).await.unwrap(),
        Some(FromConnector::Ready(_))
    ));
    let addr = std::fs::read_to_string(state_dir.join("address"))
        .unwrap()
        .parse()
        .unwrap();
    match orch.recv_within(DEADLINE).await.unwrap() {
        Some(FromConnector::Log(l)) => assert_eq!(l.message, format!("listening on {addr}")),
        other => panic!("expected the listening log, got {other:?}"),
    }
    Webhook {
        child,
        orch,
        addr,
        _state: state,
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

async fn next_emit(orch: &mut ConnectorPeer) -> Emit {
    match orch.recv_within(DEADLINE).await.unwrap() {
        Some(FromConnector::Emit(e)) => e,
        other => panic!("expected an emit, got {other:?}"),
    }
}

#[tokio::test]
async fn posts_become_events_answered_after_the_ack() {
    let mut w = start(&[
        ("SIGNATURE", "none"),
        ("EVENT_HEADER", "X-Event"),
        ("TEXT_POINTER", "/text"),
        ("INSTANCE_KEY_POINTER", "/chat"),
        ("PROPERTIES", "chat=/chat,urgent=/urgent"),
        ("DEDUPE_HEADER", "X-Delivery"),
        ("MAX_BODY_BYTES", "200"),
    ])
    .await;
    let addr = w.addr;

    let body = br#"{"text":"hi","chat":42,"urgent":true}"#;
    let post = tokio::spawn(async move {
        http(
            addr,
            "POST",
            "/hooks/a",
            &[("X-Event", "chat"), ("X-Delivery", "d-1")],
            body,
        )
        .await
    });
    let emit = next_emit(&mut w.orch).await;
    assert_eq!(emit.event.name, "chat");
    assert_eq!(emit.event.instance_key.as_deref(), Some("42"));
    assert_eq!(
        emit.event.message.as_ref().and_then(|m| m.as_text()),
        Some("hi")
    );
    assert_eq!(
        emit.event.properties.get("urgent").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        emit.event.properties.get("chat").map(String::as_str),
        Some("42")
    );
    assert_eq!(emit.dedupe_key.as_deref(), Some("d-1"));
    assert!(!post.is_finished(), "no answer before the ack");
    w.orch
        .send(EmitAck {
            seq: emit.seq,
            duplicate: Some(true),
        })
        .await
        .unwrap();
    let answer = post.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        serde_json::json!({"accepted": true, "duplicate": true})
    );

    // Refusals by the orchestrator.
    for (kind, status, retry_after) in [
        (NackKind::Overloaded, 503, true),
        (NackKind::QuotaExceeded, 429, true),
        (NackKind::ValidationError, 422, false),
        (NackKind::Permanent, 502, false),
    ] {
        let post = tokio::spawn(async move { http(addr, "POST", "/", &[], b"{}").await });
        let emit = next_emit(&mut w.orch).await;
        assert_eq!(emit.event.name, "webhook");
        assert_eq!(emit.event.instance_key.as_deref(), Some("webhook:/"));
        let error = NackError {
            kind,
            message: "no thanks".into(),
        };
        w.orch
            .send(EmitNack {
                seq: emit.seq,
                error,
            })
            .await
            .unwrap();
        let answer = post.await.unwrap();
        assert_eq!(answer.status, status, "{kind:?}: {}", answer.body);
        assert_eq!(
            answer.head.contains("retry-after: 1"),
            retry_after,
            "{kind:?}: {}",
            answer.head
        );
        assert_eq!(answer.json()["error"], "no thanks");
    }

    // Refusals before any emit.
    let answer = http(addr, "POST", "/", &[], b"{not json").await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let answer = http(addr, "POST", "/", &[], &[b' '; 300]).await;
    assert_eq!(answer.status, 413);
    let answer = http(addr, "GET", "/hooks/a", &[], b"").await;
    assert_eq!(answer.status, 405);
    let answer = http(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(answer.status, 200);

    w.orch.send(Shutdown { grace_ms: 5000 }).await.unwrap();
    let status = tokio::time::timeout(DEADLINE, w.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn unsupported_or_missing_signature_exits_78() {
    for (config, want) in [
        (
            vec![("SIGNATURE", "github")],
            "signature scheme 'github' is not supported yet",
        ),
        (vec![], "SIGNATURE is required"),
    ] {
        let (mut child, mut orch) = ConnectorPeer::spawn(&mut command()).unwrap();
        orch.send(init(&config, "/nonexistent")).await.unwrap();
        let status = tokio::time::timeout(DEADLINE, child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(78));
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        assert!(stderr.contains(want), "{stderr}");
        assert_eq!(
            orch.recv_within(DEADLINE).await.unwrap(),
            None,
            "never ready"
        );
    }
}
