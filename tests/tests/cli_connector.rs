//! The cli connector reads the orchestrator's own stdin (`stdin: inherit`).

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use e2e::Harness;

#[test]
fn lines_typed_into_the_orchestrator_reach_the_agent() {
    let h = Harness::new();
    let connector =
        std::fs::read_to_string(e2e::workspace_dir().join("connectors/cli/connector.yaml"))
            .unwrap();
    let bundle = format!(
        "{connector}---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: terminal }}
spec:
  connectorRef: Connector/cli
  config: {{ USER: ada }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: s }}
spec: {{ entryAgent: Agent/echo, agents: [Agent/echo] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: echo }}
spec: {{ entry: agent-echo, protocol: frames }}
"
    );
    h.write("bundle.yaml", &bundle);
    let mut child = h
        .command()
        .args(["run", "bundle.yaml", "--state-dir"])
        .arg(h.state())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("orchestrator starts");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(b"hello\n\nworld\n").expect("write");
    stdin.flush().expect("flush");
    h.wait_until("both lines at the agent", Duration::from_secs(20), || {
        h.texts("echo", "cli:ada").len() >= 2
    });
    assert_eq!(
        h.texts("echo", "cli:ada"),
        ["hello", "world"],
        "the empty line is skipped"
    );
    drop(stdin);
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
}
