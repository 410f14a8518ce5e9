//! The real `connector-github` binary against a fake orchestrator: what it
//! sends (dedupe keys, audit records) and how each answer of the
//! orchestrator becomes an HTTP status.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::{Answer, github_headers, post, samples, sign};
use connector_sdk::Secrets;
use connector_sdk::ipc_proto::{
    Audit, ConnectorInit, Emit, EmitAck, EmitNack, FromConnector, NackError, NackKind,
    PROTOCOL_VERSION, Shutdown,
};
use connector_sdk::testing::ConnectorPeer;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(10);

/// A configuration case: config pairs, the secret, and what stderr must say.
type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
const SECRET: &str = "s3cret";

fn init(config: &[(&str, &str)], secret: Option<&str>, state_dir: &str) -> ConnectorInit {
    let secrets = secret
        .map(|s| BTreeMap::from([("WEBHOOK_SECRET".to_string(), s.to_string())]))
        .unwrap_or_default();
    ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: "github".into(),
        connection: "gh".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: Secrets(secrets),
        state_dir: state_dir.into(),
    }
}

fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-github"));
    cmd.stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

struct Running {
    child: Child,
    orch: ConnectorPeer,
    addr: String,
    _state: tempfile::TempDir,
}

async fn start() -> Running {
    start_with(&[]).await
}

/// [`start`] with `config` besides `PORT: 0`.
async fn start_with(extra: &[(&str, &str)]) -> Running {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("gh");
    let (child, mut orch) = ConnectorPeer::spawn(&mut command()).unwrap();
    let mut config = vec![("PORT", "0")];
    config.extend_from_slice(extra);
    orch.send(init(&config, Some(SECRET), dir.to_str().unwrap()))
        .await
        .unwrap();
    let ready = orch.recv_within(DEADLINE).await.unwrap();
    assert!(matches!(ready, Some(FromConnector::Ready(_))), "{ready:?}");
    let addr = std::fs::read_to_string(dir.join("address")).unwrap();
    Running {
        child,
        orch,
        addr,
        _state: state,
    }
}

/// The next message that is not a log line.
async fn next(orch: &mut ConnectorPeer) -> FromConnector {
    loop {
        match orch.recv_within(DEADLINE).await.unwrap() {
            Some(FromConnector::Log(_)) => continue,
            Some(msg) => return msg,
            None => panic!("the connector closed the channel"),
        }
    }
}

async fn next_emit(orch: &mut ConnectorPeer) -> Emit {
    match next(orch).await {
        FromConnector::Emit(e) => e,
        other => panic!("expected an emit, got {other:?}"),
    }
}

/// POSTs on a blocking thread, so the test can play the orchestrator meanwhile.
fn spawn_post(
    addr: &str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
) -> JoinHandle<Answer> {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(&addr, "/", &h, &body)
    })
}

fn signed(event: &str, delivery: &str, body: &[u8], secret: &str) -> Vec<(&'static str, String)> {
    let sig = sign(secret, body);
    github_headers(event, delivery, &sig)
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
}

#[tokio::test]
async fn deliveries_are_keyed_by_their_id_and_answered_after_the_orchestrator() {
    let mut r = start().await;
    let sample = |folder: &str, file: &str| {
        samples()
            .into_iter()
            .find(|s| s.folder == folder && s.file == file)
            .unwrap()
    };

    // ping: emitted, answered {"pong":true} once acked.
    let ping = sample("ping", "payload.json");
    let post = spawn_post(
        &r.addr,
        signed("ping", "d-ping", &ping.bytes, SECRET),
        ping.bytes.clone(),
    );
    let emit = next_emit(&mut r.orch).await;
    assert_eq!(emit.event.name, "ping");
    assert_eq!(emit.dedupe_key.as_deref(), Some("d-ping"));
    assert!(!post.is_finished(), "no answer before the ack");
    let ack = EmitAck {
        seq: emit.seq,
        duplicate: None,
    };
    r.orch.send(ack).await.unwrap();
    let a = post.await.unwrap();
    assert_eq!(
        (a.status, a.json()),
        (200, serde_json::json!({"pong": true}))
    );

    // The orchestrator is overloaded: 503 with Retry-After, GitHub redelivers later.
    let pr = sample("pull_request", "opened.payload.json");
    let headers = signed("pull_request", "d-pr", &pr.bytes, SECRET);
    let post = spawn_post(&r.addr, headers.clone(), pr.bytes.clone());
    let emit = next_emit(&mut r.orch).await;
    assert_eq!(emit.event.name, "pull_request.opened");
    assert_eq!(emit.dedupe_key.as_deref(), Some("d-pr"));
    let error = NackError {
        kind: NackKind::Overloaded,
        message: "queues are full".into(),
    };
    r.orch
        .send(EmitNack {
            seq: emit.seq,
            error,
        })
        .await
        .unwrap();
    let a = post.await.unwrap();
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.head.contains("retry-after: 1"), "{}", a.head);

    // The redelivery carries the same key; the orchestrator's verdict is passed on.
    let post = spawn_post(&r.addr, headers, pr.bytes.clone());
    let emit = next_emit(&mut r.orch).await;
    assert_eq!(emit.dedupe_key.as_deref(), Some("d-pr"));
    let ack = EmitAck {
        seq: emit.seq,
        duplicate: Some(true),
    };
    r.orch.send(ack).await.unwrap();
    let a = post.await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json(),
        serde_json::json!({"accepted": true, "duplicate": true})
    );

    // A forgery: 401 and an audit record, nothing emitted.
    let post = spawn_post(
        &r.addr,
        signed("pull_request", "d-x", &pr.bytes, "guess"),
        pr.bytes.clone(),
    );
    let audit = next(&mut r.orch).await;
    let want = Audit {
        kind: "signature_rejected".into(),
        scheme: Some("github".into()),
        reason: Some("bad_signature".into()),
    };
    assert_eq!(audit, FromConnector::Audit(want));
    assert_eq!(post.await.unwrap().status, 401);

    r.orch.send(Shutdown { grace_ms: 5000 }).await.unwrap();
    let status = tokio::time::timeout(DEADLINE, r.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_missing_secret_or_bad_config_exits_78() {
    let cases: [Case; 3] = [
        (
            &[("PORT", "0")],
            None,
            "the github scheme needs the secret WEBHOOK_SECRET",
        ),
        (
            &[("PORT", "0")],
            Some(""),
            "needs the secret WEBHOOK_SECRET",
        ),
        (
            &[("PORT", "http")],
            Some(SECRET),
            "PORT: 'http' is not a valid number",
        ),
    ];
    for (config, secret, want) in cases {
        let (mut child, mut orch) = ConnectorPeer::spawn(&mut command()).unwrap();
        orch.send(init(config, secret, "/nonexistent"))
            .await
            .unwrap();
        let status = tokio::time::timeout(DEADLINE, child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(78), "{want}");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        assert!(stderr.contains(want), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
        assert_eq!(
            orch.recv_within(DEADLINE).await.unwrap(),
            None,
            "never ready"
        );
    }
}

/// The connection limits come with the shared HTTP plumbing (their own tests
/// are connector-webhook's `limits.rs`): here, a client that connects and
/// sends nothing is closed at `HEADER_TIMEOUT`.
#[tokio::test]
async fn a_silent_client_is_closed_at_the_header_timeout() {
    let r = start_with(&[("HEADER_TIMEOUT", "300ms")]).await;
    let mut silent = tokio::net::TcpStream::connect(r.addr.as_str())
        .await
        .unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, silent.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "still open after {DEADLINE:?}");
    assert!(got.is_empty(), "{got:?}");
}
