//! Runs the real `agent-echo` binary on both transports.

use std::process::Stdio;
use std::time::Duration;

use connector_sdk::Message;
use connector_sdk::ipc_proto::{
    AgentInit, Deliver, DeliveredEvent, DeliveryAck, FromAgent, PROTOCOL_VERSION, Shutdown,
};
use connector_sdk::testing::AgentPeer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const DEADLINE: Duration = Duration::from_secs(10);

fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-echo"));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn line(lines: &mut tokio::io::Lines<impl tokio::io::AsyncBufRead + Unpin>) -> String {
    tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("a line")
}

const RECEIVED: &str = r#"received {"id":"e1","attempt":2,"name":"user_message","instanceKey":"cli:ada","connection":"cli","text":"hi","properties":{"a":"1","b":"2"}}"#;

#[tokio::test]
async fn frames_prints_each_delivery_and_acks() {
    let (mut child, mut orch) = AgentPeer::spawn(&mut command()).unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    orch.send(AgentInit {
        protocol: PROTOCOL_VERSION,
        agent: "echo".into(),
        instance_key: "cli:ada".into(),
        swarm: "default".into(),
        state_dir: "/nonexistent".into(),
        secrets: Default::default(),
    })
    .await
    .unwrap();
    assert!(matches!(
        orch.recv_within(DEADLINE).await.unwrap(),
        Some(FromAgent::Ready(_))
    ));
    let pid = child.id().unwrap();
    assert_eq!(
        line(&mut stdout).await,
        format!("agent-echo pid={pid} agent=echo instanceKey=cli:ada")
    );

    orch.send(Deliver {
        id: "e1".into(),
        attempt: 2,
        event: DeliveredEvent {
            id: "e1".into(),
            connection: "cli".into(),
            connector: "cli".into(),
            name: "user_message".into(),
            message: Some(Message::text("hi")),
            properties: [("b".into(), "2".into()), ("a".into(), "1".into())].into(),
            instance_key: "cli:ada".into(),
            received_at: "2026-11-27T10:30:00Z".into(),
            payload: None,
        },
    })
    .await
    .unwrap();
    assert_eq!(
        orch.recv_within(DEADLINE).await.unwrap(),
        Some(FromAgent::Ack(DeliveryAck { id: "e1".into() }))
    );
    assert_eq!(line(&mut stdout).await, RECEIVED);

    orch.send(Shutdown { grace_ms: 5000 }).await.unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn jsonl_keeps_stdout_for_the_protocol() {
    let mut child = command().spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let init = r#"{"type":"init","protocol":1,"agent":"echo","instanceKey":"cli:ada","swarm":"default","stateDir":"/nonexistent"}"#;
    let deliver = r#"{"type":"deliver","id":"e1","attempt":2,"event":{"id":"e1","connection":"cli","connector":"cli","name":"user_message","message":{"type":"text","text":"hi"},"properties":{"b":"2","a":"1"},"instanceKey":"cli:ada","receivedAt":"2026-11-27T10:30:00Z"}}"#;
    stdin
        .write_all(format!("{init}\n{deliver}\n").as_bytes())
        .await
        .unwrap();

    // The println!s went to stderr; stdout carries only protocol lines.
    assert!(line(&mut stderr).await.starts_with("agent-echo pid="));
    assert_eq!(line(&mut stderr).await, RECEIVED);
    assert_eq!(
        line(&mut stdout).await,
        r#"{"type":"ready","protocol":1,"features":["payload"]}"#
    );
    assert_eq!(line(&mut stdout).await, r#"{"type":"ack","id":"e1"}"#);

    stdin
        .write_all(b"{\"type\":\"shutdown\",\"graceMs\":5000}\n")
        .await
        .unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
