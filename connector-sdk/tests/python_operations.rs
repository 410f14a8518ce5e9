//! The Python examples' operations speak the protocol this SDK speaks:
//! lines.py answers each `call` with one `callResult`, reply.py invokes
//! `respond` per delivery and acks after the matching `result`. Every line
//! they write decodes with ipc-proto.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ipc_proto::{FailureClass, FromAgent, FromConnector, json};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(10);

struct Script {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

impl Script {
    fn spawn(path: &str) -> Script {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(path);
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("python3 runs {}: {e}", path.display()));
        Script {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr: BufReader::new(child.stderr.take().unwrap()).lines(),
            child,
        }
    }

    async fn send(&mut self, msg: Value) {
        let line = format!("{msg}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
    }

    async fn out(&mut self) -> String {
        next_line(&mut self.stdout).await
    }

    async fn err(&mut self) -> String {
        next_line(&mut self.stderr).await
    }

    async fn exits_0(mut self) {
        self.send(json!({"type": "shutdown", "graceMs": 1000}))
            .await;
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>) -> String {
    tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("a line")
}

#[tokio::test]
async fn lines_py_answers_every_call_with_one_call_result() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "").unwrap();
    let replies = dir.path().join("replies.txt");
    let mut py = Script::spawn("connectors/lines.py");
    py.send(json!({
        "type": "init", "protocol": 1, "connector": "lines", "connection": "l",
        "config": {"FILE": events, "REPLIES": replies, "LOG_ACKS": "false"},
        "secrets": {}, "stateDir": "/nonexistent",
    }))
    .await;
    let ready: FromConnector = json::decode(&py.out().await).unwrap();
    assert_eq!(ready.tag(), "ready");

    let call = |id: &str, operation: &str, input: Value| {
        json!({"type": "call", "id": id, "operation": operation, "input": input,
               "attempt": 1, "deadlineMs": 5000})
    };
    py.send(call("c-1", "respond", json!({"text": "echo: hi"})))
        .await;
    py.send(call("c-2", "respond", json!({"text": 7}))).await;
    py.send(call("c-3", "sendMessage", json!({}))).await;
    py.send(json!({"type": "cancel", "id": "c-9"})).await;
    py.send(json!({"type": "ping", "nonce": 4})).await;
    let mut results = std::collections::BTreeMap::new();
    let mut pong = false;
    while results.len() < 3 || !pong {
        match json::decode(&py.out().await).unwrap() {
            FromConnector::CallResult(r) => assert!(results.insert(r.id.clone(), r).is_none()),
            FromConnector::Pong(p) => pong = p.nonce == 4,
            other => panic!("unexpected {other:?}"),
        }
    }
    let c1 = &results["c-1"];
    assert!(c1.ok, "{c1:?}");
    assert_eq!(
        c1.data.as_ref().map(|d| &d.0),
        Some(&json!({"written": true}))
    );
    let class = |id: &str| results[id].error.as_ref().map(|e| e.class);
    assert_eq!(class("c-2"), Some(FailureClass::ValidationError));
    assert_eq!(class("c-3"), Some(FailureClass::Unavailable));
    assert_eq!(std::fs::read_to_string(&replies).unwrap(), "echo: hi\n");
    py.exits_0().await;
}

fn deliver(id: &str, text: &str) -> Value {
    json!({"type": "deliver", "id": id, "attempt": 1, "event": {
        "id": id, "connection": "lines-demo", "connector": "lines", "name": "user_message",
        "message": {"type": "text", "text": text}, "properties": {},
        "instanceKey": "demo", "receivedAt": "2026-11-29T10:30:00Z"}})
}

fn ok_result(id: &str) -> Value {
    json!({"type": "result", "id": id, "ok": true, "response": {
        "data": {"written": true},
        "metadata": {"requestId": "q", "connection": "lines-demo", "operation": "respond",
                     "durationMs": 2, "attempts": 1},
        "warnings": [], "redactionsApplied": [], "truncated": false}})
}

#[tokio::test]
async fn reply_py_invokes_respond_per_event_and_acks_after_the_matching_result() {
    let mut py = Script::spawn("agents/reply.py");
    py.send(
        json!({"type": "init", "protocol": 1, "agent": "reply", "instanceKey": "demo",
                   "swarm": "default", "stateDir": "/nonexistent"}),
    )
    .await;
    let ready: FromAgent = json::decode(&py.out().await).unwrap();
    assert_eq!(ready.tag(), "ready");
    py.send(deliver("e1", "one")).await;
    py.send(deliver("e2", "two")).await;
    let mut invokes = Vec::new();
    for _ in 0..2 {
        match json::decode(&py.out().await).unwrap() {
            FromAgent::Invoke(i) => invokes.push(i),
            other => panic!("expected an invoke, got {other:?}"),
        }
    }
    let (first, second) = (&invokes[0], &invokes[1]);
    assert_ne!(first.id, second.id);
    assert_eq!(
        (first.connection.as_str(), first.operation.as_str()),
        ("lines-demo", "respond")
    );
    assert_eq!(first.input.0, json!({"text": "echo: one"}));
    assert_eq!(first.correlation_id.as_deref(), Some("e1"));
    assert_eq!(second.input.0, json!({"text": "echo: two"}));

    // Pings are answered while both wait; the second result comes first.
    py.send(json!({"type": "ping", "nonce": 8})).await;
    assert_eq!(
        json::decode::<FromAgent>(&py.out().await).unwrap().tag(),
        "pong"
    );
    py.send(ok_result(&second.id)).await;
    py.send(
        json!({"type": "result", "id": first.id, "ok": false, "error": {
        "class": "permanent", "message": "no such chat", "attempts": 1}}),
    )
    .await;
    for want in ["e2", "e1"] {
        match json::decode(&py.out().await).unwrap() {
            FromAgent::Ack(a) => assert_eq!(a.id, want),
            other => panic!("expected the ack of {want}, got {other:?}"),
        }
    }
    let logged = py.err().await;
    assert!(logged.starts_with("result {"), "{logged}");
    let logged: Value = serde_json::from_str(&logged["result ".len()..]).unwrap();
    assert_eq!(logged["id"], json!(second.id));
    assert_eq!(logged["ok"], json!(true));
    assert!(py.err().await.contains("\"class\":\"permanent\""));
    py.exits_0().await;
}
