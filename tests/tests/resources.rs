//! Shared resources a run holds do not grow with the keys it has seen: an
//! instance whose process stopped idle gives back its log's descriptor.

use std::time::Duration;

use e2e::{DEADLINE, Harness, event};

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(usize::MAX, |d| d.count())
}

#[test]
fn idle_instances_hold_no_descriptors() {
    let mut h = Harness::new();
    let feed = h.path("feed.jsonl");
    h.start(&format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: feeder }}
spec: {{ entry: test-feeder, protocol: frames, events: [{{ name: item }}] }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: feed }}
spec:
  connectorRef: Connector/feeder
  config: {{ FEED: "{}" }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/a, agents: [Agent/a] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: a }}
spec: {{ entry: agent-echo, protocol: frames, idleTimeout: 100ms, maxInstances: 20 }}
"#,
        feed.display()
    ));
    let keys = 300;
    let events: Vec<_> = (0..keys)
        .map(|i| event("item", "hi", &[], Some(&format!("k{i}"))))
        .collect();
    h.feed("feed.jsonl", &events);
    h.wait_until("every key delivered", Duration::from_secs(120), || {
        h.agent_instances().len() == keys
            && (0..keys).all(|i| !h.received("a", &format!("k{i}")).is_empty())
    });
    // Every instance is still in the table (instanceTtl is 10 minutes), its
    // process stopped: the orchestrator holds about what it held at start.
    let pid = h.pid();
    h.wait_until("descriptors given back", DEADLINE, || {
        let stopped = h
            .status()
            .iter()
            .filter(|p| p["kind"] == "agent" && p["state"] == "stopped")
            .count();
        let fds = open_fds(pid);
        stopped == keys && fds < 100
    });
}
