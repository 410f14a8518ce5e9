//! Both transports in both roles: a Rust connector over frames feeding a
//! Python agent over jsonl, and a Python connector over jsonl feeding a Rust
//! agent over frames.

use e2e::{DEADLINE, Harness, agent_pids, event};

const SWARM: &str = r#"
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/echo, agents: [Agent/echo] }
"#;

/// Sends three events to two keys and checks each arrives whole, in order.
fn check_deliveries(h: &Harness, connection: &str, agent_banner: &str) {
    let a = h.wait_received("echo", "a", 2);
    let b = h.wait_received("echo", "b", 1);
    let texts = |v: &[serde_json::Value]| {
        v.iter()
            .map(|r| r["text"].as_str().expect("text").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&a), ["a-1 ünïcode", "a-2"]);
    assert_eq!(texts(&b), ["b-1"]);
    for r in a.iter().chain(&b) {
        assert_eq!(r["connection"], connection, "{r}");
        assert_eq!(r["name"], "user_message", "{r}");
        assert_eq!(r["attempt"], 1, "{r}");
        assert!(r["id"].as_str().is_some_and(|id| !id.is_empty()), "{r}");
    }
    assert_eq!(
        a[0]["properties"],
        serde_json::json!({"chat_id": "a", "lang": "de"})
    );
    for key in ["a", "b"] {
        let log = h.agent_log("echo", key);
        assert!(
            log.contains(&format!("{agent_banner} pid=")),
            "the agent that ran is {agent_banner}\n{log}"
        );
        assert_eq!(agent_pids(&log).len(), 1, "one process per key\n{log}");
    }
}

fn events(h: &Harness) -> String {
    h.write_events(
        "events.jsonl",
        &[
            event(
                "user_message",
                "a-1 ünïcode",
                &[("chat_id", "a"), ("lang", "de")],
                None,
            ),
            event("user_message", "b-1", &[("chat_id", "b")], None),
            event("user_message", "a-2", &[("chat_id", "a")], None),
        ],
    )
}

#[test]
fn rust_connector_over_frames_to_python_agent_over_jsonl() {
    let mut h = Harness::new();
    h.copy_example("agents/echo.py");
    let events = events(&h);
    let bundle = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: emitter }
spec:
  entry: test-emitter
  protocol: frames
  events:
    - name: user_message
      properties: { chat_id: { type: string }, lang: { type: string, optional: true } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: rust-in }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@" }
  ingress:
    rules:
      - route: { instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec: { entry: ./echo.py, protocol: jsonl }
"#
    .replace("@EVENTS@", &events);
    h.start(&format!("{bundle}{SWARM}"));
    check_deliveries(&h, "rust-in", "echo.py");
    h.wait_until("all acks", DEADLINE, || {
        h.connection_log("rust-in").contains("all answered")
    });
    let log = h.connection_log("rust-in");
    for seq in 1..=3 {
        assert!(
            log.contains(&format!(" stdout ack {seq}\n")),
            "ack {seq}\n{log}"
        );
    }
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

#[test]
fn python_connector_over_jsonl_to_rust_agent_over_frames() {
    let mut h = Harness::new();
    h.copy_example("connectors/lines.py");
    let events = events(&h);
    let bundle = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: lines }
spec:
  entry: ./lines.py
  protocol: jsonl
  events:
    - name: user_message
      properties: { chat_id: { type: string }, lang: { type: string, optional: true } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: python-in }
spec:
  connectorRef: Connector/lines
  config: { FILE: "@EVENTS@" }
  ingress:
    rules:
      - route: { instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec: { entry: agent-echo, protocol: frames }
"#
    .replace("@EVENTS@", &events);
    h.start(&format!("{bundle}{SWARM}"));
    check_deliveries(&h, "python-in", "agent-echo");
    h.wait_until("all acks", DEADLINE, || {
        h.connection_log("python-in").contains(" stderr ack 3\n")
    });
    let log = h.connection_log("python-in");
    for seq in 1..=3 {
        assert!(
            log.contains(&format!(" stderr ack {seq}\n")),
            "ack {seq}\n{log}"
        );
    }
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}
