//! What a hostile or broken child cannot do to the orchestrator, and what the
//! orchestrator does not keep forever: a connector that never reads its acks
//! is killed instead of wedging everything, and agent instances that have
//! been stopped long enough are forgotten.

use std::time::Duration;

use e2e::{DEADLINE, Harness, feed_msg, feeder_bundle};

/// A jsonl connector written the wrong way: it emits `$COUNT` events and
/// never reads its input, so the acks pile up in front of it.
const DEAF: &str = r#"#!/usr/bin/env python3
import json, sys, time
sys.stdin.readline()  # init: the last thing it ever reads
out = sys.stdout
out.write('{"type":"ready"}\n')
for seq in range(1, $COUNT + 1):
    out.write(json.dumps({"type": "emit", "seq": seq, "event": {"name": "tick"}}) + "\n")
out.flush()
print("deaf: all emitted", file=sys.stderr, flush=True)
time.sleep(3600)
"#;

const DEAF_BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: deaf }
spec:
  entry: ./deaf.py
  protocol: jsonl
  events: [{ name: tick }]
  restart: { backoff: { initial: 200ms, max: 1s } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: deaf }
spec:
  connectorRef: Connector/deaf
  ingress: { unmatched: drop }
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

/// The acks for 20,000 emits do not fit in the pipe and the outgoing queue:
/// the connector is killed as "not reading its input" (a protocol error),
/// restarted by policy, and meanwhile the orchestrator answers `status` and
/// stops on the first signal.
#[test]
fn a_connector_that_never_reads_its_acks_is_killed_not_waited_for() {
    let mut h = Harness::new();
    h.write_script("deaf.py", &DEAF.replace("$COUNT", "20000"));
    h.start(DEAF_BUNDLE);
    h.wait_until("the deaf connector to be killed", DEADLINE, || {
        h.connection_log("deaf")
            .contains(" orchestrator not reading its input (")
    });
    let row = h.wait_process("restarted", "connection/deaf", DEADLINE, |p| {
        p["restarts"].as_u64().unwrap_or(0) >= 1
    });
    assert!(
        row["lastExit"]
            .as_str()
            .is_some_and(|e| e.starts_with("not reading its input")),
        "{row}"
    );
    assert!(row["protocolErrors"].as_u64().unwrap_or(0) >= 1, "{row}");
    // The second run is as deaf as the first; the orchestrator stops anyway.
    h.signal(libc::SIGTERM);
    let status = h.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status}\n{}", h.dump());
}

/// The orchestrator's open file descriptors, from /proc.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// 40 instance keys, each stopped when idle and then expired: no status
/// row, no open log, no slot is left of them, and a key seen again starts
/// a new instance that gets its event.
#[test]
fn instances_stopped_for_instance_ttl_are_removed() {
    const KEYS: usize = 40;
    let mut h = Harness::new();
    let bundle = feeder_bundle(&h, "idleTimeout: 200ms\n  instanceTtl: 300ms", "");
    h.feed("feed.jsonl", &[]);
    h.start(&bundle);
    h.wait_process("ready", "connection/feed", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let baseline = open_fds(h.pid());

    let events: Vec<_> = (0..KEYS)
        .map(|i| feed_msg(&format!("hello {i}"), &format!("k{i}")))
        .collect();
    h.feed("feed.jsonl", &events);
    for i in 0..KEYS {
        h.wait_received("echo", &format!("k{i}"), 1);
    }
    h.wait_until("every instance to be removed", DEADLINE, || {
        h.status().iter().all(|p| p["kind"] != "agent")
    });
    let log = h.agent_log("echo", "k0");
    assert!(
        log.contains("(instanceTtl): removed"),
        "the instance says why it went\n{log}"
    );
    // Each live instance held at least its log file open.
    h.wait_until("their descriptors to be closed", DEADLINE, || {
        open_fds(h.pid()) <= baseline + 2
    });

    h.feed("feed.jsonl", &[feed_msg("again", "k0")]);
    let received = h.wait_received("echo", "k0", 2);
    assert_eq!(received[1]["text"], "again");
    assert!(
        h.process("agent/echo/k0").is_some(),
        "a new instance is in the status"
    );
    assert!(h.stop().success(), "{}", h.dump());
}
