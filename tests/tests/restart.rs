//! A connector that crashes is restarted by its policy, and what it emits
//! after the restart still arrives.

use e2e::{DEADLINE, Harness, event, started_pids};

const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: emitter }
spec:
  entry: test-emitter
  protocol: frames
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
  restart: { backoff: { initial: 100ms, max: 1s } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: crashy }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@", CRASH_AFTER: "3" }
  ingress:
    rules:
      - route: { agentRef: Agent/handler, instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/handler, agents: [Agent/handler] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: handler }
spec: { entry: agent-echo, protocol: frames }
"#;

#[test]
fn a_crashing_connector_is_restarted_and_later_events_arrive() {
    let mut h = Harness::new();
    let all: Vec<_> = (1..=6)
        .map(|i| event("user_message", &format!("e{i}"), &[("chat_id", "c")], None))
        .collect();
    let events = h.write_events("events.jsonl", &all);
    h.start(&BUNDLE.replace("@EVENTS@", &events));

    let received = h.wait_received("handler", "c", 6);
    h.wait_until(
        "the restarted connector to report all answers",
        DEADLINE,
        || h.connection_log("crashy").contains("all answered"),
    );
    let texts: Vec<&str> = received
        .iter()
        .map(|r| r["text"].as_str().expect("text"))
        .collect();
    assert_eq!(
        texts,
        ["e1", "e2", "e3", "e4", "e5", "e6"],
        "every event once, in order\n{}",
        h.dump()
    );

    let log = h.connection_log("crashy");
    let pids = started_pids(&log);
    assert_eq!(pids.len(), 2, "started twice\n{log}");
    assert_ne!(pids[0], pids[1], "a new process\n{log}");
    assert!(
        log.contains(" orchestrator exited: exit code 1\n"),
        "the crash is logged\n{log}"
    );
    assert!(
        log.contains(" orchestrator restarting in "),
        "the backoff is logged\n{log}"
    );
    // The crash came after the first run's acks, the restart before the second run's emits.
    let crash = log.find("crashing on purpose").expect("first run crashed");
    let second_start = log.rfind(" orchestrator started ").expect("second start");
    assert!(crash < second_start, "{log}");
    assert!(
        log[second_start..].contains("emitting 3 events"),
        "the second run emits the rest\n{log}"
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

const AGENT_BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: emitter }
spec:
  entry: test-emitter
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@" }
  ingress:
    rules:
      - route: { instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/worker, agents: [Agent/worker] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: worker }
spec:
  entry: test-agent
  protocol: frames
  restart: { backoff: { initial: 50ms, max: 500ms } }
"#;

/// An agent that dies holding a delivery gets it again, with the same id
/// and attempt 2, before anything queued behind it; its sibling instance
/// never notices.
#[test]
fn an_agent_crash_redelivers_the_unacked_event_first() {
    let mut h = Harness::new();
    let events = h.write_events(
        "events.jsonl",
        &[
            event("user_message", "before", &[("chat_id", "w")], None),
            event("user_message", "crash-once", &[("chat_id", "w")], None),
            event(
                "user_message",
                "other-instance",
                &[("chat_id", "calm")],
                None,
            ),
            event("user_message", "after", &[("chat_id", "w")], None),
        ],
    );
    h.start(&AGENT_BUNDLE.replace("@EVENTS@", &events));
    let got = h.wait_received("worker", "w", 4);
    let seen: Vec<(&str, u64)> = got
        .iter()
        .map(|r| {
            (
                r["text"].as_str().expect("text"),
                r["attempt"].as_u64().expect("attempt"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("before", 1),
            ("crash-once", 1),
            ("crash-once", 2),
            ("after", 1)
        ],
        "{}",
        h.dump()
    );
    assert_eq!(
        got[1]["id"], got[2]["id"],
        "the id is stable across attempts"
    );

    let log = h.agent_log("worker", "w");
    let pids = e2e::agent_pids(&log);
    assert_eq!(pids.len(), 2, "the instance was restarted\n{log}");
    assert!(log.contains(" orchestrator exited: exit code 1\n"), "{log}");
    // The other instance ran undisturbed in one process.
    assert_eq!(h.texts("worker", "calm"), ["other-instance"]);
    assert_eq!(e2e::agent_pids(&h.agent_log("worker", "calm")).len(), 1);
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// A `nack` with `retry: true` is delivered again as attempt 2, before the
/// next event, by the same process.
#[test]
fn a_retryable_nack_is_delivered_again_first() {
    let mut h = Harness::new();
    let events = h.write_events(
        "events.jsonl",
        &[
            event("user_message", "nack-retry-once", &[("chat_id", "n")], None),
            event("user_message", "next", &[("chat_id", "n")], None),
        ],
    );
    h.start(&AGENT_BUNDLE.replace("@EVENTS@", &events));
    let got = h.wait_received("worker", "n", 3);
    let seen: Vec<(&str, u64)> = got
        .iter()
        .map(|r| {
            (
                r["text"].as_str().expect("text"),
                r["attempt"].as_u64().expect("attempt"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("nack-retry-once", 1), ("nack-retry-once", 2), ("next", 1)],
        "{}",
        h.dump()
    );
    assert_eq!(got[0]["id"], got[1]["id"]);
    let log = h.agent_log("worker", "n");
    assert_eq!(
        e2e::agent_pids(&log).len(),
        1,
        "no restart for a nack\n{log}"
    );
    assert!(
        log.contains("nacked (attempt 1): nacking on purpose"),
        "the nack is logged\n{log}"
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}
