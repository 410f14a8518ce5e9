//! Smoke tests of the benchmark programs (`bench-throughput` only prints
//! figures; these prove its programs still do what it measures): the jsonl
//! connector and agent exchange events through the orchestrator, and the
//! relay baseline carries the same programs on both transports. No timing
//! is asserted.

use std::fs::File;
use std::process::Command;

use e2e::{DEADLINE, Harness, KillOnDrop, bin};
use serde_json::Value;

fn read_json(path: &std::path::Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[test]
fn jsonl_bench_programs_exchange_events_through_the_orchestrator() {
    let mut h = Harness::new();
    let warm = h.path("warm");
    h.start(&format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: bench }}
spec:
  entry: bench-jsonl-connector
  protocol: jsonl
  events:
    - name: item
      properties: {{ t: {{ type: number, optional: true }} }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: bench }}
spec:
  connectorRef: Connector/bench
  config: {{ COUNT: "100", KEYS: "2", WINDOW: "16", STAMP: "true", WARM_DIR: "{warm}" }}
  overflow: wait
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/sink, agents: [Agent/sink] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: sink }}
spec:
  entry: bench-jsonl-agent
  protocol: jsonl
  maxInFlight: 4
  env: {{ EXPECT: "50", WARM_DIR: "{warm}" }}
"#,
        warm = warm.display()
    ));
    let conn = h.state().join("state/connections/bench/result.json");
    let agent = |k: &str| h.state().join(format!("state/agents/sink/{k}"));
    h.wait_until("the connector's result and both agents'", DEADLINE, || {
        conn.exists()
            && ["k0", "k1"]
                .iter()
                .all(|k| agent(k).join("result.json").exists())
    });
    let c = read_json(&conn).expect("connector result");
    assert_eq!(c["acked"], 100, "{c}");
    assert_eq!(c["nacked"], 0, "{c}");
    for k in ["k0", "k1"] {
        let a = read_json(&agent(k).join("result.json")).expect("agent result");
        assert_eq!(a["key"], k, "{a}");
        assert_eq!(a["count"], 50, "{a}");
        let latencies = std::fs::read(agent(k).join("latency.bin")).expect("latency.bin");
        assert_eq!(latencies.len(), 50 * 8, "one send time per event");
        assert!(warm.join(k).exists(), "the warm event reached {k}");
    }
    h.stop();
}

#[test]
fn the_relay_carries_the_bench_programs_on_both_transports() {
    // (transport, connector, agent, extra args: WINDOW AGENTS [spin])
    for (transport, connector, agent, extra) in [
        (
            "jsonl",
            "bench-jsonl-connector",
            "bench-jsonl-agent",
            &[][..],
        ),
        ("frames", "bench-connector", "bench-agent", &[][..]),
        // A window of 1 on each of 4 agents (events spread over their keys).
        ("frames", "bench-connector", "bench-agent", &["1", "4"][..]),
        (
            "jsonl",
            "bench-jsonl-connector",
            "bench-jsonl-agent",
            &["1", "1", "spin"][..],
        ),
    ] {
        let h = Harness::new();
        let stdout_path = h.path("relay.stdout");
        let mut relay = Command::new(bin("bench-relay"))
            .arg(transport)
            .arg(bin(connector))
            .arg(bin(agent))
            .arg(h.dir())
            .args(["100", "0", "true"])
            .args(extra)
            .stdout(File::create(&stdout_path).expect("stdout file"))
            .spawn()
            .expect("spawn bench-relay");
        // The relay's children are in its process group only by inheritance:
        // a hung relay is killed here, they end at EOF of their channels.
        let _kill = KillOnDrop(vec![relay.id()]);
        let mut status = None;
        h.wait_until("the relay to finish", DEADLINE, || {
            status = relay.try_wait().expect("try_wait");
            status.is_some()
        });
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()),
            "{transport} {extra:?}: {status:?}\n{stdout}"
        );
        assert!(
            stdout.starts_with("acks=100 "),
            "{transport} {extra:?}: {stdout}"
        );
        let c = read_json(&h.path("connector/result.json")).expect("connector result");
        assert_eq!(c["acked"], 100, "{transport} {extra:?}: {c}");
        // Agent i's state dir is agents/k<i>; together they got every event.
        let agents: usize = extra.get(1).map_or(1, |n| n.parse().expect("AGENTS"));
        let counted: u64 = (0..agents)
            .map(|i| {
                let a =
                    read_json(&h.path(&format!("agents/k{i}/result.json"))).expect("agent result");
                a["count"].as_u64().expect("count")
            })
            .sum();
        assert_eq!(counted, 100, "{transport} {extra:?}");
    }
}
