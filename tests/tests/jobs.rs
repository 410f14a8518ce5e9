//! Async operations end to end: a jsonl agent (`invoker.py`) invokes
//! `mode: async` operations of `opconn.py`; the invoke answers at once with
//! a job, and the job's outcome comes back to the instance as a `job.*`
//! event on the normal delivery path. Also `event.payload`, which the same
//! connector sends and the same agent asks for.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use e2e::{DEADLINE, Harness};

/// opconn with async operations, `maxPayloadBytes: 2Ki`, and the invoker.
fn bundle(h: &Harness, operations: &str, steps: &Value, big_payload: usize) -> String {
    h.copy_fixture("opconn.py");
    h.copy_fixture("invoker.py");
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: opconn }}
spec:
  entry: ./opconn.py
  protocol: jsonl
  maxPayloadBytes: 2Ki
  events: [{{ name: go }}]
  operations: {operations}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: ops }}
spec:
  connectorRef: Connector/opconn
  config: {{ STEPS: '{steps}', CALLS: "{calls}", ONCE: "{once}", BIG_PAYLOAD: "{big_payload}" }}
  operations: {{ allow: ["*"] }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/invoker, agents: [Agent/invoker] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: invoker }}
spec:
  entry: ./invoker.py
  invoke: [{{ connection: ops, operations: ["*"] }}]
"#,
        calls = h.path("calls.txt").display(),
        once = h.path("once").display(),
    )
    .replace(
        r#"allow: ["*"]"#,
        &format!("allow: [{}]", names(operations)),
    )
}

/// The operation names of a flow-sequence of `{ name: x, … }`.
fn names(operations: &str) -> String {
    operations
        .split("name: ")
        .skip(1)
        .filter_map(|s| s.split([',', ' ', '}']).next())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `label` → the result the agent printed for it.
fn results(log: &str) -> BTreeMap<String, Value> {
    log.lines()
        .filter_map(|l| l.split_once(" stderr result ").map(|(_, r)| r))
        .filter_map(|r| r.split_once(' '))
        .map(|(label, json)| (label.to_string(), serde_json::from_str(json).expect("json")))
        .collect()
}

/// Every event the agent printed, in order.
fn events(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| l.split_once(" stderr event ").map(|(_, r)| r))
        .filter_map(|r| r.split_once(' '))
        .map(|(_, json)| serde_json::from_str(json).expect("json"))
        .collect()
}

fn calls_of(h: &Harness, op: &str) -> usize {
    std::fs::read_to_string(h.path("calls.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("{op} ")))
        .count()
}

fn job_id(r: &Value) -> String {
    r["job"]["jobId"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {r}"))
        .to_string()
}

/// An async invoke answers at once with a pending job; its outcome comes
/// back as `job.succeeded` with the response in `payload`; `jobGet` and
/// `jobCancel` work from the agent and `jobs get|list` from the CLI; an
/// invoke refused by validation is no job. The connector's payload reaches
/// the agent whole, and one over `maxPayloadBytes` is dropped and marked.
#[test]
fn an_async_jobs_outcome_arrives_as_an_event() {
    let mut h = Harness::new();
    let steps = json!([
        {"label": "a", "connection": "ops", "operation": "echo", "input": {"text": "hi"}, "thenGet": true},
        {"label": "bad", "connection": "ops", "operation": "echo", "input": {}},
        {"label": "c", "connection": "ops", "operation": "slow", "input": {"ms": 20000}, "thenCancel": true},
    ]);
    let ops = "[{ name: echo, mode: async, input: { type: object, required: [text] } }, { name: slow, mode: async, timeout: 30s }]";
    h.start(&bundle(&h, ops, &steps, 5000));
    let log = || h.agent_log("invoker", "k");
    h.wait_until("the job events", DEADLINE, || {
        let names: Vec<Value> = events(&log()).iter().map(|e| e["name"].clone()).collect();
        names.contains(&json!("job.succeeded")) && names.contains(&json!("job.canceled"))
    });
    let r = results(&log());
    let a = &r["a"];
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(
        a["job"]["state"], "pending",
        "answered before the call: {a}"
    );
    assert_eq!(a["job"]["operation"], "echo", "{a}");
    let get = &r["a.get"];
    assert_eq!(get["job"]["jobId"], a["job"]["jobId"], "{get}");
    assert_eq!(
        r["bad"]["error"]["class"], "validation_error",
        "{}",
        r["bad"]
    );
    assert!(r["bad"].get("job").is_none(), "a refused invoke is no job");
    let c = &r["c.cancel"];
    assert_eq!(c["job"]["state"], "canceled", "{c}");
    assert_eq!(c["job"]["error"]["class"], "canceled", "{c}");

    let evs = events(&log());
    let succeeded = evs
        .iter()
        .find(|e| e["name"] == "job.succeeded")
        .expect("job.succeeded");
    assert_eq!(succeeded["properties"]["jobId"], job_id(a), "{succeeded}");
    assert_eq!(succeeded["properties"]["operation"], "echo");
    assert_eq!(succeeded["connection"], "ops");
    assert_eq!(succeeded["payload"]["data"]["text"], "hi", "{succeeded}");
    let canceled = evs
        .iter()
        .find(|e| e["name"] == "job.canceled")
        .expect("job.canceled");
    assert_eq!(canceled["properties"]["jobId"], job_id(&r["c"]));
    assert_eq!(
        calls_of(&h, "echo"),
        1,
        "the refused invoke never reached the connector"
    );

    // The operator sees the same jobs.
    let out = h.cli(&["jobs", "get", &job_id(a), "--json"]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(got["state"], "succeeded", "{got}");
    assert_eq!(got["response"]["data"]["text"], "hi", "{got}");
    assert!(
        got.get("input").is_none(),
        "the CLI does not show inputs: {got}"
    );
    let out = h.cli(&["jobs", "list", "--json"]);
    let list: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let states: Vec<&Value> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|j| &j["state"])
        .collect();
    assert_eq!(states, [&json!("succeeded"), &json!("canceled")], "{list}");
    let out = h.cli(&["jobs", "get", "0194a000-0000-7000-8000-00000000dead"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no job"),
        "{out:?}"
    );

    // One audit record per job, mode async.
    let (a_id, c_id) = (job_id(a), job_id(&r["c"]));
    h.wait_until("the audit records", DEADLINE, || {
        let audit = std::fs::read_to_string(h.state().join("audit.log")).unwrap_or_default();
        let records: Vec<Value> = audit
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|r: &Value| r["kind"] == "invoke" && r["mode"] == "async")
            .collect();
        records
            .iter()
            .any(|x| x["requestId"] == a_id && x["outcome"] == "ok")
            && records
                .iter()
                .any(|x| x["requestId"] == c_id && x["outcome"] == "canceled")
    });

    // Payloads: the first `go` whole, the second over 2Ki dropped and marked.
    let gos: Vec<&Value> = evs.iter().filter(|e| e["name"] == "go").collect();
    assert_eq!(gos.len(), 2, "{gos:?}");
    assert_eq!(gos[0]["payload"]["steps"], steps.to_string(), "{}", gos[0]);
    assert!(gos[1].get("payload").is_none(), "{}", gos[1]);
    assert_eq!(
        gos[1]["properties"]["payloadTruncated"], "true",
        "{}",
        gos[1]
    );
    h.wait_until("the payload log line", DEADLINE, || {
        h.connection_log("ops").contains("over maxPayloadBytes")
    });
    assert!(h.stop().success(), "{}", h.dump());
}

/// A job outlives an orchestrator killed with -9: the idempotent one is
/// called again and succeeds; the other fails "interrupted by a restart",
/// reaches the agent as `job.failed`, and is a dead letter.
#[test]
fn a_job_survives_an_orchestrator_restart() {
    let mut h = Harness::new();
    let steps = json!([{"parallel": [
        {"label": "i", "connection": "ops", "operation": "slowi", "input": {"ms": 1500}},
        {"label": "n", "connection": "ops", "operation": "slown", "input": {"ms": 1500}},
    ]}]);
    let ops = "[{ name: slowi, mode: async, idempotent: true }, { name: slown, mode: async }]";
    h.start(&bundle(&h, ops, &steps, 0));
    // The connector may see the calls before the agent has logged the job
    // ids it was answered with: wait for both.
    h.wait_until(
        "both calls, and their job ids at the agent",
        DEADLINE,
        || {
            let r = results(&h.agent_log("invoker", "k"));
            calls_of(&h, "slowi") == 1
                && calls_of(&h, "slown") == 1
                && r.contains_key("i")
                && r.contains_key("n")
        },
    );
    let r = results(&h.agent_log("invoker", "k"));
    let (i, n) = (job_id(&r["i"]), job_id(&r["n"]));
    h.signal(libc::SIGKILL);
    h.wait_exit(DEADLINE);
    h.start_again();

    let log = || h.agent_log("invoker", "k");
    h.wait_until("both outcomes", DEADLINE, || {
        let evs = events(&log());
        evs.iter()
            .any(|e| e["name"] == "job.succeeded" && e["properties"]["jobId"] == i)
            && evs
                .iter()
                .any(|e| e["name"] == "job.failed" && e["properties"]["jobId"] == n)
    });
    assert_eq!(
        calls_of(&h, "slowi"),
        2,
        "the idempotent job was called again"
    );
    assert_eq!(calls_of(&h, "slown"), 1, "the other was not");
    let evs = events(&log());
    let failed = evs
        .iter()
        .find(|e| e["name"] == "job.failed")
        .expect("failed");
    assert_eq!(
        failed["payload"]["message"], "interrupted by a restart",
        "{failed}"
    );
    let out = h.cli(&["jobs", "get", &i, "--json"]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(got["state"], "succeeded", "{got}");
    assert_eq!(got["response"]["data"]["slept"], 1500, "{got}");

    let out = h.cli(&["dlq", "list", "--json"]);
    let dead: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let dead = dead["deadLetters"].as_array().expect("list");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let text = dead[0].to_string();
    assert!(text.contains("job.failed") && text.contains(&n), "{text}");
    assert!(h.stop().success(), "{}", h.dump());
}
