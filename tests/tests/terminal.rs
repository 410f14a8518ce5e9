//! The terminal of a foreground `orchestrator run`: one line per lifecycle
//! change of each child, a connector's own word of what it listens on, and
//! why a start failed — without colour escapes when stdout is not a terminal.

use std::net::TcpListener;

use e2e::{DEADLINE, Harness};

const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: webhook }
spec:
  entry: connector-webhook
  events: [{ name: webhook }]
  restart: { backoff: { initial: 200ms, max: 1s } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: hook }
spec:
  connectorRef: Connector/webhook
  config: { HOST: 127.0.0.1, PORT: "$PORT", SIGNATURE: none }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/echo, agents: [Agent/echo] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec: { entry: agent-echo, protocol: frames }
"#;

fn stdout(h: &Harness) -> String {
    std::fs::read_to_string(h.path("orchestrator.stdout")).unwrap_or_default()
}

#[test]
fn run_tells_the_terminal_what_starts_and_what_fails_and_why() {
    // Port taken: the connector cannot bind, and the terminal says so.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut h = Harness::new();
    h.start(&BUNDLE.replace("$PORT", &port.to_string()));
    h.wait_until("a failed start on the terminal", DEADLINE, || {
        stdout(&h)
            .lines()
            .any(|l| l.starts_with("connection/hook") && l.contains("| exited: failed start"))
    });
    h.wait_until("a restart on the terminal", DEADLINE, || {
        stdout(&h).contains("| restarting in ")
    });
    let out = stdout(&h);
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is a file\n{out}"
    );
    let failed = out
        .lines()
        .find(|l| l.contains("| exited: failed start"))
        .expect("found");
    assert!(
        failed.to_lowercase().contains("address") && failed.to_lowercase().contains("in use"),
        "the child's own reason, not only 'channel closed before ready': {failed}\n{out}"
    );
    let row = h.process("connection/hook").expect("status row");
    assert!(
        row["lastError"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("in use")),
        "{row}"
    );

    // Port free: started, then ready, then its address.
    drop(taken);
    h.wait_until("ready on the terminal", DEADLINE, || {
        stdout(&h)
            .lines()
            .any(|l| l.starts_with("connection/hook") && l.contains("| ready (pid "))
    });
    h.wait_until("the listening address on the terminal", DEADLINE, || {
        stdout(&h).contains(&format!("127.0.0.1:{port}"))
    });
    assert!(h.stop().success(), "{}", h.dump());
}
