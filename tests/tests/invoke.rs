//! Operations end to end: a jsonl agent (`invoker.py`) invokes operations
//! of a Connection whose jsonl connector (`opconn.py`) performs them; the
//! orchestrator governs every call in between. One run walks the path:
//! policy, validation, deadlines, retries, redaction, truncation,
//! concurrency, a connector dying mid-call, a provider's 429, the audit log
//! and the counters in `status`.

use serde_json::{Value, json};

use e2e::{DEADLINE, Harness};

const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: opconn }
spec:
  entry: ./opconn.py
  protocol: jsonl
  events: [{ name: go }]
  restart: { backoff: { initial: 50ms, max: 200ms } }
  operations:
    - name: echo
      input: { type: object, required: [text], properties: { text: { type: string } }, additionalProperties: false }
      output: { type: object, required: [text] }
    - name: flaky
      retry: { maxRetries: 3, backoff: { initial: 20ms } }
    - name: slow
      timeout: 300ms
    - name: permanent
      retry: { maxRetries: 3, backoff: { initial: 20ms } }
    - name: limited
    - name: secretive
      redact: [/token]
    - name: big
      maxOutputBytes: 100
    - name: die
      timeout: 10s
      retry: { maxRetries: 2, backoff: { initial: 100ms } }
    - name: badout
      output: { type: object, required: [text] }
    - name: forbidden
    - name: notgranted
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: ops }
spec:
  connectorRef: Connector/opconn
  config: { STEPS: '$STEPS', CALLS: "$CALLS", ONCE: "$ONCE" }
  operations:
    allow: [echo, flaky, slow, permanent, limited, secretive, big, die, badout, notgranted]
    maxParallel: 1
    maxQueue: 0
    overflow: reject
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/invoker, agents: [Agent/invoker] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: invoker }
spec:
  entry: ./invoker.py
  invoke:
    - connection: ops
      operations: [echo, flaky, slow, permanent, limited, secretive, big, die, badout, forbidden]
"#;

fn step(label: &str, operation: &str, input: Value) -> Value {
    json!({"label": label, "connection": "ops", "operation": operation, "input": input})
}

/// `label` → the result the agent printed for it.
fn results(log: &str) -> std::collections::BTreeMap<String, Value> {
    log.lines()
        .filter_map(|l| l.split_once(" stderr result ").map(|(_, r)| r))
        .filter_map(|r| r.split_once(' '))
        .map(|(label, json)| (label.to_string(), serde_json::from_str(json).expect("json")))
        .collect()
}

#[test]
fn operations_are_governed_from_policy_to_audit() {
    let mut h = Harness::new();
    h.copy_fixture("opconn.py");
    h.copy_fixture("invoker.py");
    let steps = json!([
        step("ok", "echo", json!({"text": "hi"})),
        step("not-granted", "notgranted", json!({})),
        step("not-allowed", "forbidden", json!({})),
        step("invalid", "echo", json!({"text": 5})),
        step("slow", "slow", json!({"ms": 3000})),
        step("flaky", "flaky", json!({})),
        step("permanent", "permanent", json!({})),
        step("redacted", "secretive", json!({})),
        step("big", "big", json!({})),
        step("bad-output", "badout", json!({})),
        {"parallel": [
            step("par-a", "slow", json!({"ms": 150})),
            step("par-b", "slow", json!({"ms": 150})),
        ]},
        step("died", "die", json!({})),
        step("limited", "limited", json!({})),
        step("held", "echo", json!({"text": "after 429"})),
    ]);
    let calls = h.path("calls.txt");
    let once = h.path("once");
    h.start(
        &BUNDLE
            .replace("$STEPS", &steps.to_string())
            .replace("$CALLS", &calls.display().to_string())
            .replace("$ONCE", &once.display().to_string()),
    );
    h.wait_until("every step's result", DEADLINE, || {
        results(&h.agent_log("invoker", "k")).contains_key("held")
    });
    let r = results(&h.agent_log("invoker", "k"));
    let class = |label: &str| {
        r[label]["error"]["class"]
            .as_str()
            .unwrap_or("ok")
            .to_string()
    };

    // Allowed: data and the normalized metadata.
    let ok = &r["ok"];
    assert_eq!(ok["ok"], true, "{ok}");
    let resp = &ok["response"];
    assert_eq!(resp["data"], json!({"text": "hi", "attempt": 1}), "{ok}");
    assert_eq!(resp["metadata"]["connection"], "ops");
    assert_eq!(resp["metadata"]["operation"], "echo");
    assert_eq!(resp["metadata"]["attempts"], 1);
    assert_eq!(resp["metadata"]["providerStatus"], 200);
    assert!(
        resp["metadata"]["correlationId"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "the delivery in flight is the correlation: {ok}"
    );
    // Refused before the connector.
    assert_eq!(
        class("not-granted"),
        "policy_denied",
        "{}",
        r["not-granted"]
    );
    assert_eq!(
        class("not-allowed"),
        "policy_denied",
        "{}",
        r["not-allowed"]
    );
    assert_eq!(class("invalid"), "validation_error", "{}", r["invalid"]);
    // Deadlines and retries.
    assert_eq!(class("slow"), "timeout", "{}", r["slow"]);
    assert_eq!(r["flaky"]["ok"], true, "{}", r["flaky"]);
    assert_eq!(r["flaky"]["response"]["metadata"]["attempts"], 3);
    assert_eq!(class("permanent"), "permanent");
    assert_eq!(r["permanent"]["error"]["attempts"], 1, "not retried");
    assert_eq!(r["permanent"]["error"]["providerStatus"], 422);
    // Redaction and truncation.
    let red = &r["redacted"]["response"];
    assert_eq!(red["data"]["token"], "<redacted>", "{red}");
    assert_eq!(red["data"]["user"], "ada");
    assert_eq!(red["redactionsApplied"], json!(["/token"]));
    // An output its schema refuses is not passed on.
    assert_eq!(
        class("bad-output"),
        "validation_error",
        "{}",
        r["bad-output"]
    );
    assert!(
        !r["bad-output"].to_string().contains("wrong"),
        "{}",
        r["bad-output"]
    );
    let big = &r["big"]["response"];
    assert_eq!(big["truncated"], true, "{big}");
    assert!(
        big["data"].as_str().is_some_and(|d| d.len() <= 100),
        "{big}"
    );
    // maxParallel 1, maxQueue 0: of two at once, one is overloaded.
    let mut par = [class("par-a"), class("par-b")];
    par.sort();
    assert_eq!(
        par,
        ["ok".to_string(), "overloaded".to_string()],
        "{} {}",
        r["par-a"],
        r["par-b"]
    );
    // The connector died mid-call: retried, and its restarted process answered.
    assert_eq!(r["died"]["ok"], true, "{}", r["died"]);
    assert_eq!(r["died"]["response"]["data"]["attempt"], 2);
    assert_eq!(r["died"]["response"]["metadata"]["attempts"], 2);
    // A provider's 429 holds the Connection's next call.
    assert_eq!(class("limited"), "quota_exceeded");
    assert_eq!(r["limited"]["error"]["providerStatus"], 429);
    assert_eq!(class("held"), "quota_exceeded", "{}", r["held"]);
    assert!(
        r["held"]["error"]["retryAfterMs"]
            .as_u64()
            .is_some_and(|ms| ms > 1000)
    );

    // What reached the connector: nothing refused before it, retries counted.
    let called = std::fs::read_to_string(&calls).expect("calls file");
    let count = |op: &str| {
        called
            .lines()
            .filter(|l| l.starts_with(&format!("{op} ")))
            .count()
    };
    assert_eq!(
        count("echo"),
        1,
        "only the valid echo, not the invalid or the held one:\n{called}"
    );
    assert_eq!(count("notgranted") + count("forbidden"), 0, "{called}");
    assert_eq!(count("flaky"), 3, "{called}");
    assert_eq!(count("permanent"), 1, "{called}");
    assert_eq!(count("die"), 2, "{called}");
    assert_eq!(
        count("slow"),
        2,
        "the timed-out call and one of the pair:\n{called}"
    );

    // One audit record per invoke, with every field.
    let audit = std::fs::read_to_string(h.state().join("audit.log")).expect("audit.log");
    let records: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "invoke")
        .collect();
    assert_eq!(records.len(), 15, "{audit}");
    for rec in &records {
        for field in [
            "requestId",
            "correlationId",
            "agent",
            "instanceKey",
            "connection",
            "connector",
            "operation",
            "mode",
            "outcome",
            "durationMs",
            "providerStatus",
            "retryCount",
        ] {
            assert!(rec.get(field).is_some(), "{field} in {rec}");
        }
        assert!(
            !rec.to_string().contains("s3cr3t"),
            "no output in the audit: {rec}"
        );
    }
    let outcomes: Vec<&str> = records
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"policy_denied") && outcomes.contains(&"timeout"),
        "{outcomes:?}"
    );

    // Counters per operation in status --json.
    let row = h.process("connection/ops").expect("row");
    let echo = &row["operations"]["echo"];
    assert_eq!(echo["invocations"], 3, "{row}");
    assert_eq!(echo["ok"], 1, "{row}");
    assert_eq!(echo["failed"]["validation_error"], 1, "{row}");
    assert_eq!(row["operations"]["flaky"]["retries"], 2, "{row}");
    assert!(echo["p50Ms"].is_number(), "{row}");
    let out = h.cli(&["status", "connection/ops"]);
    let detail = String::from_utf8_lossy(&out.stdout);
    assert!(detail.contains("  operations  active"), "{detail}");
    assert!(
        detail.contains("    echo: 3 invocations, 1 ok, 2 failed, 0 retries, 0 in flight, p50 "),
        "{detail}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// The Python examples answer through an operation: `reply.py` invokes
/// `respond` of the Connection each event came through, and `lines.py`
/// performs it (appends the text to its REPLIES file).
#[test]
fn the_python_examples_reply_through_an_operation() {
    let mut h = Harness::new();
    h.copy_example("connectors/lines.py");
    h.copy_example("agents/reply.py");
    let events = h.write_events(
        "events.jsonl",
        &[
            e2e::event("user_message", "one", &[], Some("a")),
            e2e::event("user_message", "two", &[], Some("b")),
        ],
    );
    let replies = h.path("replies.txt");
    h.start(&e2e::lines_reply_bundle(&events, &replies));
    h.wait_until("both replies written", DEADLINE, || {
        std::fs::read_to_string(&replies).is_ok_and(|r| r.lines().count() >= 2)
    });
    let mut written: Vec<String> = std::fs::read_to_string(&replies)
        .expect("replies")
        .lines()
        .map(str::to_owned)
        .collect();
    written.sort();
    assert_eq!(written, ["echo: one", "echo: two"]);
    h.wait_until("the agent's result lines", DEADLINE, || {
        h.agent_log("reply", "a").contains(" stderr result {")
    });
    let log = h.agent_log("reply", "a");
    assert!(log.contains(r#""ok":true"#), "{log}");
    assert!(h.stop().success(), "{}", h.dump());
}

/// `op-connector` (frames) as Connection `opc` emitting `words`, and
/// `op-agent` invoking its `respond` for each event.
fn frames_bundle(replies: &std::path::Path, words: &str) -> String {
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: opc }}
spec:
  entry: op-connector
  events: [{{ name: go }}]
  operations: [{{ name: respond, input: {{ type: object, required: [text] }} }}, {{ name: respondLater, mode: async }}, {{ name: unallowed }}]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: opc }}
spec:
  connectorRef: Connector/opc
  config: {{ WORDS: "{words}", REPLIES: "{replies}" }}
  operations: {{ allow: [respond, respondLater] }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/opa, agents: [Agent/opa] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: opa }}
spec:
  entry: op-agent
  protocol: frames
  invoke: [{{ connection: opc, operations: ["*"] }}]
"#,
        replies = replies.display()
    )
}

/// The same over frames, with the Rust SDK on both sides (`op-connector`
/// serves `respond`, `op-agent` invokes it for every event).
#[test]
fn the_rust_sdk_replies_through_an_operation_over_frames() {
    let mut h = Harness::new();
    let replies = h.path("replies.txt");
    h.start(&frames_bundle(&replies, "alpha beta"));
    h.wait_until("both results", DEADLINE, || {
        e2e::count_lines(&h.agent_log("opa", "k"), " stdout result ") >= 2
    });
    let log = h.agent_log("opa", "k");
    assert_eq!(
        e2e::count_lines(&log, r#" stdout result ok {"attempt":1,"written":true}"#),
        2,
        "{log}"
    );
    let written = std::fs::read_to_string(&replies).expect("replies");
    assert_eq!(written, "echo: alpha\necho: beta\n");
    // Payloads travel both ways over frames (the connector's emit, the delivery).
    assert_eq!(
        e2e::count_lines(&log, r#" stdout payload {"word":"alpha"}"#),
        1,
        "{log}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// An async operation over frames: the Rust agent gets its job at once, then
/// the outcome as a `job.succeeded` event with the response as payload.
#[test]
fn an_async_job_over_frames_comes_back_as_an_event() {
    let mut h = Harness::new();
    let replies = h.path("replies.txt");
    h.start(&frames_bundle(&replies, "job:gamma"));
    h.wait_until("the job event", DEADLINE, || {
        h.agent_log("opa", "k")
            .contains(" stdout job event job.succeeded ")
    });
    let log = h.agent_log("opa", "k");
    assert_eq!(
        e2e::count_lines(&log, " stdout job started pending"),
        1,
        "{log}"
    );
    let event = log
        .lines()
        .find_map(|l| {
            l.split_once(" stdout job event job.succeeded ")
                .map(|(_, p)| p)
        })
        .expect("event");
    let payload: serde_json::Value = serde_json::from_str(event).expect("json");
    assert_eq!(payload["data"]["written"], true, "{payload}");
    assert_eq!(
        payload["metadata"]["operation"], "respondLater",
        "{payload}"
    );
    let written = std::fs::read_to_string(&replies).expect("replies");
    assert_eq!(written, "echo: job:gamma\n");
    assert!(h.stop().success(), "{}", h.dump());
}

/// `orchestrator invoke`: the operator runs an operation through the same
/// governed path (allowed what the Connection allows), audited as `operator`.
#[test]
fn the_operator_invokes_an_operation_from_the_cli() {
    let mut h = Harness::new();
    let replies = h.path("replies.txt");
    h.start(&frames_bundle(&replies, ""));
    h.wait_process("ready", "connection/opc", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let out = h.cli(&[
        "invoke",
        "opc",
        "respond",
        "--input",
        r#"{"text":"by hand"}"#,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let result: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["response"]["data"]["written"], true, "{result}");
    assert_eq!(
        std::fs::read_to_string(&replies).expect("replies"),
        "by hand\n"
    );

    // Declared but not allowed by the Connection: refused, never called.
    let out = h.cli(&["invoke", "opc", "unallowed"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("policy_denied"),
        "{out:?}"
    );
    // Input against the schema.
    let out = h.cli(&["invoke", "opc", "respond", "--input", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("validation_error"),
        "{out:?}"
    );

    // The audit log is written by its own thread: wait for the records.
    let audit = h.state().join("audit.log");
    let by_operator = || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["kind"] == "invoke" && r["agent"] == "operator")
            .count()
    };
    h.wait_until("three operator records", DEADLINE, || by_operator() >= 3);
    assert!(h.stop().success(), "{}", h.dump());
    assert_eq!(by_operator(), 3, "one record per invoke");
}

/// `opconn.py` (jsonl) declaring `operations` as Connection `ops` with
/// spec.operations `connection_ops` (YAML flow mappings), and an invoker
/// agent that runs no steps: for tests that invoke from the CLI. The
/// connector writes its calls to `calls.txt` and is healthy while `healthy`
/// exists, both in the temp dir.
fn opconn_bundle(h: &Harness, operations: &str, connection_ops: &str) -> String {
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
  events: [{{ name: go }}]
  operations: {operations}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: ops }}
spec:
  connectorRef: Connector/opconn
  config: {{ STEPS: "[]", CALLS: "{calls}", ONCE: "{once}", HEALTHY: "{healthy}" }}
  operations: {connection_ops}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/invoker, agents: [Agent/invoker] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: invoker }}
spec: {{ entry: ./invoker.py }}
"#,
        calls = h.path("calls.txt").display(),
        once = h.path("once").display(),
        healthy = h.path("healthy").display(),
    )
}

/// A Connection whose calls fail trips its circuit: `degraded` in status
/// while the process stays ready, calls fail `unavailable` without reaching
/// the connector, and after the cooldown a probe (its `health` operation)
/// either re-opens it or brings it back to `active`.
#[test]
fn failing_calls_trip_the_circuit_and_a_health_probe_closes_it() {
    let mut h = Harness::new();
    let calls = h.path("calls.txt");
    let healthy = h.path("healthy");
    h.start(&opconn_bundle(
        &h,
        "[{ name: echo }, { name: broken }, { name: health }]",
        "{ allow: [echo, broken, health], circuit: { failures: 2, window: 1m, cooldown: 300ms } }",
    ));
    h.wait_process("ready", "connection/ops", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let invoke = |op: &str| -> Value {
        let out = h.cli(&["invoke", "ops", op, "--input", r#"{"text":"x"}"#, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let class = |r: &Value| r["error"]["class"].as_str().unwrap_or("ok").to_string();
    let calls_of = |op: &str| {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&format!("{op} ")))
            .count()
    };
    assert_eq!(class(&invoke("broken")), "transient");
    assert_eq!(class(&invoke("broken")), "transient");
    // Tripped: fails fast, the connector never sees it.
    let fast = invoke("echo");
    assert_eq!(class(&fast), "unavailable", "{fast}");
    assert!(
        fast["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("degraded")),
        "{fast}"
    );
    assert_eq!(calls_of("echo"), 0);
    let row = h.process("connection/ops").expect("row");
    assert_eq!(row["operationsState"], "degraded", "{row}");
    assert_eq!(row["state"], "ready", "the process itself is fine: {row}");
    assert_eq!(row["circuitTrips"], 1, "{row}");

    // After the cooldown the probe is the health operation: unhealthy, it re-opens.
    h.wait_until("a failed health probe", DEADLINE, || {
        let r = invoke("echo");
        class(&r) == "unavailable" && calls_of("health") >= 1
    });
    assert_eq!(calls_of("echo"), 0, "no echo got through an open circuit");
    // Healthy: the next probe closes it and the call goes through.
    std::fs::write(&healthy, "ok").expect("healthy");
    h.wait_until("a call through a closed circuit", DEADLINE, || {
        class(&invoke("echo")) == "ok"
    });
    let row = h.process("connection/ops").expect("row");
    assert_eq!(row["operationsState"], "active", "{row}");
    assert!(h.stop().success(), "{}", h.dump());
}

/// An agent cannot pile up unbounded work in the orchestrator: past 1,024
/// invokes of one instance in flight, the next ones are `overloaded` at once.
#[test]
fn one_instance_has_at_most_1024_invokes_in_flight() {
    let mut h = Harness::new();
    h.copy_fixture("opconn.py");
    h.copy_fixture("invoker.py");
    let burst: Vec<Value> = (0..1030)
        .map(|i| {
            let mut s = step(&format!("p{i}"), "slow", json!({"ms": 3000}));
            s["timeoutMs"] = json!(2000);
            s
        })
        .collect();
    let steps = json!([{ "parallel": burst }]);
    h.start(
        &BUNDLE
            .replace("maxQueue: 0", "maxQueue: 5000")
            // Nothing finishes before every invoke is in: the one call lasts
            // until the invokes' 2 s deadline, the rest wait for its slot.
            .replace("timeout: 300ms", "timeout: 10s")
            .replace("$STEPS", &steps.to_string())
            .replace("$CALLS", &h.path("calls.txt").display().to_string())
            .replace("$ONCE", &h.path("once").display().to_string()),
    );
    h.wait_until("every result", DEADLINE, || {
        results(&h.agent_log("invoker", "k")).len() >= 1030
    });
    let r = results(&h.agent_log("invoker", "k"));
    let refused = r
        .values()
        .filter(|v| {
            v["error"]["class"] == "overloaded"
                && v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("invokes of this instance are in flight"))
        })
        .count();
    assert_eq!(refused, 6, "1,030 at once, 1,024 governed");
    assert!(h.stop().success(), "{}", h.dump());
}

/// An idempotent operation: a repeat of a key gets the first result without
/// a call, also after the orchestrator is killed (-9) and started again; a
/// repeat while the first runs waits for it; another key calls again.
#[test]
fn a_repeated_idempotency_key_calls_the_connector_once_across_a_kill_9() {
    let mut h = Harness::new();
    let calls = h.path("calls.txt");
    h.start(&opconn_bundle(
        &h,
        "[{ name: echo, idempotent: true, mutating: true }, { name: slow, idempotent: true }]",
        "{ allow: [echo, slow], idempotencyTtl: 1h }",
    ));
    h.wait_process("ready", "connection/ops", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let invoke = |h: &Harness, op: &str, text: &str, key: &str| -> Value {
        let input = json!({"text": text, "ms": 300}).to_string();
        let out = h.cli(&[
            "invoke",
            "ops",
            op,
            "--input",
            &input,
            "--idempotency-key",
            key,
            "--json",
        ]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let calls_of = |op: &str| {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&format!("{op} ")))
            .count()
    };
    let first = invoke(&h, "echo", "first", "k-1");
    assert_eq!(first["response"]["data"]["text"], "first", "{first}");
    // The same key with other input: the first result, no call.
    let again = invoke(&h, "echo", "second", "k-1");
    assert_eq!(again["response"]["data"]["text"], "first", "{again}");
    assert_eq!(again["response"]["metadata"]["attempts"], 0, "{again}");
    assert_eq!(calls_of("echo"), 1);
    // A mutating idempotent operation without a key is refused before any call.
    let out = h.cli(&["invoke", "ops", "echo", "--input", r#"{"text":"no key"}"#]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("validation_error"),
        "{out:?}"
    );
    assert_eq!(calls_of("echo"), 1);
    // Another key calls again.
    let other = invoke(&h, "echo", "other", "k-2");
    assert_eq!(other["response"]["data"]["text"], "other");
    assert_eq!(calls_of("echo"), 2);

    // Two at once with one key: one call; the second waits for the first.
    std::thread::scope(|s| {
        let a = s.spawn(|| invoke(&h, "slow", "", "k-3"));
        let b = s.spawn(|| invoke(&h, "slow", "", "k-3"));
        let (a, b) = (a.join().expect("a"), b.join().expect("b"));
        assert_eq!(
            (&a["ok"], &b["ok"]),
            (&json!(true), &json!(true)),
            "{a} {b}"
        );
    });
    assert_eq!(calls_of("slow"), 1);

    // Across a kill -9: the record was durable before the first answer.
    h.signal(libc::SIGKILL);
    h.wait_exit(DEADLINE);
    h.start_again();
    h.wait_process("ready again", "connection/ops", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let after = invoke(&h, "echo", "third", "k-1");
    assert_eq!(after["response"]["data"]["text"], "first", "{after}");
    assert_eq!(calls_of("echo"), 2, "not called again after the restart");
    assert!(h.stop().success(), "{}", h.dump());
}

/// `--max-retries` caps every operation's retries; `--max-invocations-per-second`
/// holds every Connection's invokes to one budget.
#[test]
fn global_limits_cap_retries_and_invocations() {
    let mut h = Harness::new();
    h.copy_fixture("opconn.py");
    h.copy_fixture("invoker.py");
    let calls = h.path("calls.txt");
    h.start_with(
        &BUNDLE
            .replace("$STEPS", "[]")
            .replace("$CALLS", &calls.display().to_string())
            .replace("$ONCE", &h.path("once").display().to_string()),
        &["--max-retries", "1", "--max-invocations-per-second", "0.2"],
    );
    h.wait_process("ready", "connection/ops", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let invoke = |op: &str| -> Value {
        let out = h.cli(&["invoke", "ops", op, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    // flaky needs 3 calls and declares 3 retries; the cap allows 2 calls.
    let flaky = invoke("flaky");
    assert_eq!(flaky["error"]["class"], "transient", "{flaky}");
    assert_eq!(flaky["error"]["attempts"], 2, "{flaky}");
    // The one token of these five seconds is spent.
    let next = invoke("secretive");
    assert_eq!(next["error"]["class"], "quota_exceeded", "{next}");
    assert!(
        next["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--max-invocations-per-second")),
        "{next}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}
