//! Runs the real `connector-webhook` binary against a fake orchestrator and
//! talks HTTP to it on a port-0 socket.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use connector_sdk::Secrets;
use connector_sdk::ipc_proto::{ConnectorInit, Emit, FromConnector, PROTOCOL_VERSION, Shutdown};
use connector_sdk::testing::ConnectorPeer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub const DEADLINE: Duration = Duration::from_secs(10);

pub struct Webhook {
    pub child: Child,
    pub orch: ConnectorPeer,
    pub addr: SocketAddr,
    _state: tempfile::TempDir,
}

pub fn init(config: &[(&str, &str)], secret: Option<&str>, state_dir: &str) -> ConnectorInit {
    let secrets = secret
        .map(|s| BTreeMap::from([("WEBHOOK_SECRET".to_string(), s.to_string())]))
        .unwrap_or_default();
    ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: "webhook".into(),
        connection: "hooks".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: Secrets(secrets),
        state_dir: state_dir.into(),
    }
}

pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-webhook"));
    cmd.stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts the binary with `config` (plus `PORT: 0`) and `WEBHOOK_SECRET` = `secret`.
pub async fn start(config: &[(&str, &str)], secret: Option<&str>) -> Webhook {
    let state = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: the connector creates it.
    let state_dir = state.path().join("state/hooks");
    let (child, mut orch) = ConnectorPeer::spawn(&mut command()).unwrap();
    let mut config = config.to_vec();
    config.push(("PORT", "0"));
    orch.send(init(&config, secret, state_dir.to_str().unwrap()))
        .await
        .unwrap();
    // The address is written before ready.
    let ready = orch.recv_within(DEADLINE).await.unwrap();
    assert!(matches!(ready, Some(FromConnector::Ready(_))), "{ready:?}");
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

impl Webhook {
    /// The next message that is not a log line.
    pub async fn next(&mut self) -> FromConnector {
        loop {
            match self.orch.recv_within(DEADLINE).await.unwrap() {
                Some(FromConnector::Log(_)) => continue,
                Some(msg) => return msg,
                None => panic!("the connector closed the channel"),
            }
        }
    }

    pub async fn next_emit(&mut self) -> Emit {
        match self.next().await {
            FromConnector::Emit(e) => e,
            other => panic!("expected an emit, got {other:?}"),
        }
    }

    /// `shutdown`, then the exit must be clean.
    pub async fn stop(mut self) {
        self.orch.send(Shutdown { grace_ms: 5000 }).await.unwrap();
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// Feeds `config` to the binary and expects exit 78 with `want` on stderr, never ready.
pub async fn expect_config_error(config: &[(&str, &str)], secret: Option<&str>, want: &str) {
    let (mut child, mut orch) = ConnectorPeer::spawn(&mut command()).unwrap();
    orch.send(init(config, secret, "/nonexistent"))
        .await
        .unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(78), "{config:?}: {stderr}");
    assert!(stderr.contains(want), "{config:?}: {stderr}");
    if let Some(secret) = secret.filter(|s| s.len() > 3) {
        assert!(
            !stderr.contains(secret),
            "never prints the secret: {stderr}"
        );
    }
    assert_eq!(
        orch.recv_within(DEADLINE).await.unwrap(),
        None,
        "never ready"
    );
}

pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http(
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
    // A server may answer (413) and close before reading all of a large body.
    let _ = stream.write_all(body).await;
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

/// [`http`] POST with owned headers, spawned, so the test can play the orchestrator meanwhile.
pub fn spawn_post(
    addr: SocketAddr,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http(addr, "POST", "/", &h, &body).await
    })
}
