//! Runs the real `connector-cli` binary against a fake orchestrator.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use connector_sdk::ipc_proto::{
    ConnectorInit, EmitAck, EmitNack, FromConnector, NackError, NackKind, PROTOCOL_VERSION, Ping,
    Pong, Shutdown,
};
use connector_sdk::testing::ConnectorPeer;
use connector_sdk::{Message, Secrets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn lines_become_user_messages_and_it_waits_for_shutdown() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-cli"));
    cmd.stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let (mut child, mut orch) = ConnectorPeer::spawn(&mut cmd).unwrap();
    orch.send(ConnectorInit {
        protocol: PROTOCOL_VERSION,
        connector: "cli".into(),
        connection: "cli".into(),
        config: BTreeMap::from([("USER".into(), "ada".into())]),
        secrets: Secrets::default(),
        state_dir: "/nonexistent".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        orch.recv_within(DEADLINE).await.unwrap(),
        Some(FromConnector::Ready(_))
    ));

    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"hello\n\n  \nsecond line\r\n")
        .await
        .unwrap();
    drop(stdin);

    let mut emits = Vec::new();
    for _ in 0..2 {
        match orch.recv_within(DEADLINE).await.unwrap() {
            Some(FromConnector::Emit(e)) => emits.push(e),
            other => panic!("expected an emit, got {other:?}"),
        }
    }
    assert_eq!(emits[0].seq, 1);
    assert_eq!(emits[0].event.name, "user_message");
    assert_eq!(emits[0].event.message, Some(Message::text("hello")));
    assert_eq!(emits[0].event.instance_key.as_deref(), Some("cli:ada"));
    assert_eq!(emits[1].seq, 2);
    assert_eq!(emits[1].event.message, Some(Message::text("second line")));

    orch.send(EmitAck {
        seq: 1,
        duplicate: None,
    })
    .await
    .unwrap();
    let error = NackError {
        kind: NackKind::QuotaExceeded,
        message: "slow down".into(),
    };
    orch.send(EmitNack { seq: 2, error }).await.unwrap();

    // Input is over and answered, but it does not exit until told to.
    orch.send(Ping { nonce: 1 }).await.unwrap();
    assert_eq!(
        orch.recv_within(DEADLINE).await.unwrap(),
        Some(FromConnector::Pong(Pong { nonce: 1 }))
    );
    assert!(child.try_wait().unwrap().is_none());
    orch.send(Shutdown { grace_ms: 5000 }).await.unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");

    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("line 4 not accepted"), "{stderr}");
    assert!(stderr.contains("quota_exceeded"), "{stderr}");
    assert!(stderr.contains("slow down"), "{stderr}");
}
