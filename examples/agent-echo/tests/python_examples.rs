//! The Python examples beside this crate speak the same protocol: their lines
//! decode with ipc-proto, echo.py prints what agent-echo prints, and lines.py
//! reads its answers while it writes (20,000 events through a real
//! orchestrator).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use connector_sdk::ipc_proto::{FromAgent, FromConnector, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStderr, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(10);

fn script(path: &str) -> Command {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    let mut cmd = Command::new(path);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>) -> String {
    tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("a line")
}

type Out = Lines<BufReader<ChildStdout>>;
type Err = Lines<BufReader<ChildStderr>>;

fn pipes(child: &mut tokio::process::Child) -> (tokio::process::ChildStdin, Out, Err) {
    (
        child.stdin.take().unwrap(),
        BufReader::new(child.stdout.take().unwrap()).lines(),
        BufReader::new(child.stderr.take().unwrap()).lines(),
    )
}

#[tokio::test]
async fn echo_py_answers_like_agent_echo() {
    let mut child = script("agents/echo.py")
        .spawn()
        .expect("python3 runs examples/agents/echo.py");
    let (mut stdin, mut stdout, mut stderr) = pipes(&mut child);
    let input = concat!(
        r#"{"type":"init","protocol":1,"agent":"echo","instanceKey":"cli:ada","swarm":"default","stateDir":"/nonexistent"}"#,
        "\n",
        r#"{"type":"deliver","id":"e1","attempt":2,"event":{"id":"e1","connection":"cli","connector":"cli","name":"user_message","message":{"type":"text","text":"hi"},"properties":{"b":"2","a":"1"},"instanceKey":"cli:ada","receivedAt":"2026-11-27T10:30:00Z"}}"#,
        "\n",
        r#"{"type":"ping","nonce":5}"#,
        "\n",
    );
    stdin.write_all(input.as_bytes()).await.unwrap();

    let pid = child.id().unwrap();
    assert_eq!(
        line(&mut stderr).await,
        format!("echo.py pid={pid} agent=echo instanceKey=cli:ada")
    );
    assert_eq!(
        line(&mut stderr).await,
        r#"received {"id":"e1","attempt":2,"name":"user_message","instanceKey":"cli:ada","connection":"cli","text":"hi","properties":{"a":"1","b":"2"}}"#
    );
    for want in ["ready", "ack", "pong"] {
        let msg: FromAgent = json::decode(&line(&mut stdout).await).unwrap();
        assert_eq!(msg.tag(), want);
    }
    stdin
        .write_all(b"{\"type\":\"shutdown\",\"graceMs\":1000}\n")
        .await
        .unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn lines_py_emits_pipelined_and_reports_answers() {
    let dir = std::env::temp_dir().join(format!("lines-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"name":"user_message","message":{"type":"text","text":"one"},"instanceKey":"demo"}"#, "\n",
            r#"{"name":"user_message","message":{"type":"text","text":"two"},"properties":{"k":"v"}}"#, "\n",
        ),
    )
    .unwrap();
    let mut child = script("connectors/lines.py")
        .spawn()
        .expect("python3 runs examples/connectors/lines.py");
    let (mut stdin, mut stdout, mut stderr) = pipes(&mut child);
    let init = format!(
        r#"{{"type":"init","protocol":1,"connector":"lines","connection":"l","config":{{"FILE":{}}},"secrets":{{}},"stateDir":"/nonexistent"}}"#,
        serde_json::to_string(file.to_str().unwrap()).unwrap()
    );
    stdin
        .write_all(format!("{init}\n").as_bytes())
        .await
        .unwrap();

    let ready: FromConnector = json::decode(&line(&mut stdout).await).unwrap();
    assert_eq!(ready.tag(), "ready");
    // Both emits come before any answer: they are pipelined.
    for seq in [1, 2] {
        match json::decode(&line(&mut stdout).await).unwrap() {
            FromConnector::Emit(e) => assert_eq!(e.seq, seq),
            other => panic!("expected emit {seq}, got {other:?}"),
        }
    }
    let answers = concat!(
        r#"{"type":"nack","seq":2,"error":{"kind":"overloaded","message":"queue full"}}"#,
        "\n",
        r#"{"type":"ack","seq":1}"#,
        "\n",
        r#"{"type":"shutdown","graceMs":1000}"#,
        "\n",
    );
    stdin.write_all(answers.as_bytes()).await.unwrap();
    assert_eq!(line(&mut stderr).await, "nack 2 overloaded queue full");
    assert_eq!(line(&mut stderr).await, "ack 1");
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// 20,000 events through a real orchestrator into a real agent, with the
/// agent's queue smaller than the file and `overflow: wait`: the orchestrator
/// holds acks while lines.py keeps writing. A client that wrote every emit
/// before reading an answer would fill the pipe the acks come through and
/// wedge both sides; lines.py reads while it writes and sees every ack.
#[test]
fn lines_py_sends_20000_events_through_an_orchestrator_and_sees_every_ack() {
    use e2e::Harness;

    const N: usize = 20_000;
    let mut h = Harness::new();
    h.copy_example("connectors/lines.py");
    let events: Vec<serde_json::Value> = (1..=N)
        .map(|i| {
            serde_json::json!({
                "name": "user_message",
                "message": {"type": "text", "text": format!("line {i} of a long file")},
                "instanceKey": "bulk",
            })
        })
        .collect();
    let file = h.write_events("events.jsonl", &events);
    let bundle = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: lines }
spec:
  entry: ./lines.py
  protocol: jsonl
  events: [{ name: user_message }]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: bulk }
spec:
  connectorRef: Connector/lines
  config: { FILE: "@EVENTS@", LOG_ACKS: "false" }
  overflow: wait
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec: { entry: agent-echo, protocol: frames, maxInFlight: 64, maxQueue: 256 }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/echo, agents: [Agent/echo] }
"#
    .replace("@EVENTS@", &file);
    h.start(&bundle);
    let want = format!("all {N} answered: {N} acked, 0 nacked");
    h.wait_until(&want, Duration::from_secs(180), || {
        h.connection_log("bulk").contains(&want)
    });
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}
