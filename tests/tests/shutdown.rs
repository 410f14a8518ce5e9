//! SIGTERM/SIGINT stop the orchestrator gracefully: exit 0, and no child
//! process outlives it.

use std::time::Duration;

use e2e::{DEADLINE, Harness, event, pid_alive};

/// Two Connections (frames and jsonl connectors) and two agent instances.
const BUNDLE: &str = r#"
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
kind: Connector
metadata: { name: badline }
spec:
  entry: ./bad_line.py
  protocol: jsonl
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: frames-in }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@" }
  ingress:
    rules:
      - route: { instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: jsonl-in }
spec:
  connectorRef: Connector/badline
  config: { PROPERTIES: '{"chat_id":"b"}' }
  ingress:
    rules:
      - route: { instanceKeyProperty: chat_id }
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

fn start() -> Harness {
    let mut h = Harness::new();
    h.copy_fixture("bad_line.py");
    let events = h.write_events(
        "events.jsonl",
        &[event("user_message", "hi", &[("chat_id", "a")], None)],
    );
    h.start(&BUNDLE.replace("@EVENTS@", &events));
    h.wait_received("echo", "a", 1);
    h.wait_received("echo", "b", 1);
    h
}

fn stops_gracefully_on(signal: i32) {
    let mut h = start();
    let pids = h.child_pids();
    assert_eq!(
        pids.len(),
        4,
        "two connectors and two agent instances started: {pids:?}\n{}",
        h.dump()
    );
    for &pid in &pids {
        assert!(
            pid_alive(pid),
            "child {pid} runs before the stop\n{}",
            h.dump()
        );
    }

    h.signal(signal);
    let status = h.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status {status}\n{}", h.dump());
    h.wait_until("every child process to be gone", DEADLINE, || {
        pids.iter().all(|&p| !pid_alive(p))
    });
    assert!(
        !h.state().join("control.sock").exists(),
        "no stale control socket is left behind"
    );

    // Each child stopped on the protocol's `shutdown`, with no signal needed.
    for (path, text) in h.all_logs() {
        for escalation in [
            "no exit within the grace period",
            "SIGKILL",
            "killed by signal",
        ] {
            assert!(
                !text.contains(escalation),
                "{}: {escalation}\n{text}",
                path.display()
            );
        }
    }
    assert!(
        h.connection_log("frames-in").contains("shutdown received"),
        "{}",
        h.dump()
    );
    assert!(
        h.connection_log("jsonl-in").contains("got shutdown {"),
        "{}",
        h.dump()
    );
}

#[test]
fn sigterm_stops_gracefully_and_leaves_no_child() {
    stops_gracefully_on(libc::SIGTERM);
}

#[test]
fn sigint_stops_gracefully_and_leaves_no_child() {
    stops_gracefully_on(libc::SIGINT);
}

/// A connector that ignores `shutdown` and SIGTERM, with short stop timers.
const STUBBORN: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: stubborn }
spec:
  entry: ./stubborn.py
  protocol: jsonl
  events:
    - name: note
  restart: { stop: { grace: $GRACE, termGrace: $TERM_GRACE } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: stubborn }
spec:
  connectorRef: Connector/stubborn
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

fn start_stubborn(grace: &str, term_grace: &str) -> (Harness, u32) {
    let mut h = Harness::new();
    h.copy_fixture("stubborn.py");
    h.start(
        &STUBBORN
            .replace("$GRACE", grace)
            .replace("$TERM_GRACE", term_grace),
    );
    h.wait_until("the stubborn connector to be ready", DEADLINE, || {
        h.connection_log("stubborn").contains(" orchestrator ready")
    });
    let pids = h.child_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    (h, pids[0])
}

/// shutdown → grace → SIGTERM to the group → termGrace → SIGKILL.
#[test]
fn a_child_that_ignores_shutdown_and_sigterm_is_killed_after_the_grace_periods() {
    let (mut h, pid) = start_stubborn("300ms", "300ms");
    h.signal(libc::SIGTERM);
    let status = h.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}\n{}", h.dump());
    assert!(!pid_alive(pid), "the stubborn child is gone");
    let log = h.connection_log("stubborn");
    let steps = [
        " stderr got shutdown ",
        " orchestrator no exit within the grace period: SIGTERM",
        " stderr ignoring SIGTERM",
        " orchestrator no exit after SIGTERM: SIGKILL",
    ];
    let mut from = 0;
    for step in steps {
        let at = log[from..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} after byte {from}\n{log}"));
        from += at + step.len();
    }
}

/// A second signal does not wait for the grace period.
#[test]
fn a_second_signal_kills_at_once() {
    let (mut h, pid) = start_stubborn("60s", "60s");
    h.signal(libc::SIGTERM);
    h.wait_until(
        "the stubborn connector to get its shutdown",
        DEADLINE,
        || {
            h.connection_log("stubborn")
                .contains(" stderr got shutdown ")
        },
    );
    let t = std::time::Instant::now();
    h.signal(libc::SIGINT);
    let status = h.wait_exit(Duration::from_secs(10));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        status.code().is_some(),
        "exited by itself, not by a signal: {status}\n{}",
        h.dump()
    );
    h.wait_until("the stubborn child to be gone", DEADLINE, || {
        !pid_alive(pid)
    });
    assert!(
        !h.state().join("control.sock").exists(),
        "no stale control socket after a kill-now stop either"
    );
}

/// SIGHUP is not a stop (nor a crash): it applies the bundle again, and with
/// nothing changed the children keep running.
#[test]
fn sighup_with_an_unchanged_bundle_changes_nothing() {
    let mut h = start();
    let before = h.child_pids();
    h.signal(libc::SIGHUP);
    h.wait_until("the SIGHUP note", DEADLINE, || {
        h.stderr().contains("SIGHUP: no differences")
    });
    assert!(h.is_running(), "{}", h.dump());
    assert!(before.iter().all(|&p| pid_alive(p)), "children untouched");
    assert!(h.stop().success(), "{}", h.dump());
}
