//! What tests/tests/cluster_ops.rs builds on: its bundles (an operation
//! connector and agent; a dead-lettering agent), the operator's CLI verbs on
//! a node (`invoke`, `jobs`, `dlq`), and what the peers recorded.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{JOIN, Node, wait_for};

const POLL: Duration = Duration::from_millis(100);

/// Connector `opc` (`op-connector`: `respond` is idempotent, `respondLater`
/// async) as Connection `opc` emitting `words` (instance key `k`) with
/// `placement`, and Agent `worker` (`op-agent`), which invokes `respond`
/// for each event (`respondLater` for a `job:` word).
pub fn ops_bundle(words: &str, placement: &str) -> String {
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: opc }}
spec:
  entry: op-connector
  events: [{{ name: go }}]
  operations:
    - {{ name: respond, idempotent: true, input: {{ type: object, required: [text] }} }}
    - {{ name: respondLater, mode: async }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: opc }}
spec:
  connectorRef: Connector/opc
  config: {{ WORDS: "{words}", REPLIES: replies.txt }}
  operations: {{ allow: [respond, respondLater], idempotencyTtl: 1h }}
  placement: {placement}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/worker, agents: [Agent/worker] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: worker }}
spec:
  entry: op-agent
  protocol: frames
  invoke: [{{ connection: opc, operations: ["*"] }}]
"#
    )
}

/// What `op-connector` performed on `node`: its `replies.txt`, one line per call.
pub fn performed(node: &Node) -> Vec<String> {
    std::fs::read_to_string(node.h.path("replies.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `orchestrator invoke opc OP --input INPUT --json [extra]` on `node`:
/// the exit code and the JSON it printed.
pub fn invoke(node: &Node, op: &str, input: &Value, extra: &[&str]) -> (Option<i32>, Value) {
    let input = input.to_string();
    let mut args = vec!["invoke", "opc", op, "--input", &input, "--json"];
    args.extend_from_slice(extra);
    let out = node.h.cli(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "invoke on node {} printed no JSON ({e}): {out:?}\n{}",
            node.name,
            node.h.dump()
        )
    });
    (out.status.code(), json)
}

/// `orchestrator <args> --json` on `node`, which must succeed: its JSON.
pub fn cli_json(node: &Node, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = node.h.cli(&all);
    assert!(
        out.status.success(),
        "{args:?} on node {} failed: {out:?}\n{}",
        node.name,
        node.h.dump()
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} on node {}: not JSON ({e}): {out:?}", node.name))
}

/// The nodes `status --json` on `viewer` shows running `target` (ready).
pub fn ready_on(viewer: &Node, target: &str) -> Vec<String> {
    viewer
        .h
        .try_status()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["target"] == target && r["state"] == "ready")
        .filter_map(|r| r["node"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `status` on `viewer` shows `target` ready on exactly `nodes`.
pub fn wait_ready_on(viewer: &Node, target: &str, nodes: &[&str], dump: impl Fn() -> String) {
    let mut want: Vec<String> = nodes.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    wait_for(
        &format!(
            "status on {} to show {target} ready on {nodes:?}",
            viewer.name
        ),
        JOIN,
        POLL,
        || {
            let mut on = ready_on(viewer, target);
            on.sort();
            on == want
        },
        dump,
    );
}

/// The `result …` lines `op-agent` printed in `log`, in order.
pub fn agent_results(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once(" stdout result ").map(|(_, r)| r.to_owned()))
        .collect()
}

/// Connection `feed` (`delivery-connector` emitting `events`) and Agent
/// `worker` (`delivery-agent` recording in `records`, fixed once `fixed`
/// exists) with `maxAttempts: 3`.
pub fn dlq_bundle(events: &Path, records: &Path, fixed: &Path) -> String {
    super::bundle_with_agent(
        records,
        "feed",
        &format!("{{ EVENTS: \"{}\", WINDOW: \"1\" }}", events.display()),
        "",
        &format!("    FIXED_MARKER: \"{}\"", fixed.display()),
        "  maxAttempts: 3",
    )
}

/// `dlq list --json` on `node`: the dead letters.
pub fn dlq_list(node: &Node) -> Vec<Value> {
    let list = cli_json(node, &["dlq", "list"]);
    list["deadLetters"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no deadLetters array in {list}"))
}

/// `dlq VERB ID` on `node`: succeeds, printing `WORD ID`.
pub fn dlq_verb(node: &Node, verb: &str, id: &str, word: &str) {
    let out = node.h.cli(&["dlq", verb, id]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("{word} {id}")),
        "dlq {verb} {id} on node {}: {out:?}\n{}",
        node.name,
        node.h.dump()
    );
}

/// Connector `opconn` (`opconn.py`, jsonl) with `operations` (YAML flow
/// list), as Connection `opc` allowing `allow` with `placement`, and the
/// `invoker.py` agent (whose steps are none: `STEPS: "[]"`).
pub fn opconn_bundle(operations: &str, allow: &str, placement: &str) -> String {
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: opconn }}
spec:
  entry: {fixtures}/opconn.py
  protocol: jsonl
  events: [{{ name: go }}]
  operations: {operations}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: opc }}
spec:
  connectorRef: Connector/opconn
  config: {{ STEPS: "[]", CALLS: calls.txt, ONCE: once }}
  operations: {{ allow: {allow}, idempotencyTtl: 1h }}
  placement: {placement}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/invoker, agents: [Agent/invoker] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: invoker }}
spec: {{ entry: {fixtures}/invoker.py }}
"#,
        fixtures = e2e::fixtures_dir().display()
    )
}

/// `opconn_bundle` with one idempotent operation `slow`, on every node.
pub fn slow_bundle() -> String {
    opconn_bundle("[{ name: slow, idempotent: true }]", "[slow]", "every")
}

/// The calls `opconn.py` made on `node` (its `calls.txt`).
pub fn calls(node: &Node) -> Vec<String> {
    std::fs::read_to_string(node.h.path("calls.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
