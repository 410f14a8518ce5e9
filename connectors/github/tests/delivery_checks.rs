//! What the connector does with a verified delivery before an agent sees
//! it, end to end through the real orchestrator: a delivery the
//! orchestrator refuses as undeclared is answered 500 (GitHub retries it)
//! and audited, never 422; `MAX_DELIVERY_AGE` refuses a payload whose
//! timestamps are older, and lets fresh ones and ones without timestamps
//! through.

mod common;

use common::{connector_yaml_path, github_headers, post, samples, sign};
use e2e::{DEADLINE, Harness};
use serde_json::Value;

const SECRET: &str = "It's a Secret to Everybody";

fn bundle(connector: &str, config: &str) -> String {
    format!(
        r#"{connector}---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: gh }}
spec:
  connectorRef: Connector/github
  config: {{ HOST: 127.0.0.1, PORT: "0", {config} }}
  secrets:
    WEBHOOK_SECRET: {{ value: "{SECRET}" }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: gh }}
spec: {{ entryAgent: Agent/echo, agents: [Agent/echo] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: echo }}
spec: {{ entry: agent-echo, protocol: frames }}
"#
    )
}

fn start(h: &mut Harness, bundle: &str) -> String {
    h.start(bundle);
    let file = h.state().join("state/connections/gh/address");
    h.wait_until("the github connector's address", DEADLINE, || {
        std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty())
    });
    std::fs::read_to_string(&file).unwrap().trim().to_owned()
}

fn audit(h: &Harness) -> Vec<Value> {
    std::fs::read_to_string(h.state().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sample(folder: &str, file: &str) -> Vec<u8> {
    samples()
        .into_iter()
        .find(|s| s.folder == folder && s.file == file)
        .unwrap_or_else(|| panic!("{folder}/{file}"))
        .bytes
}

fn deliver(addr: &str, event: &str, id: &str, body: &[u8]) -> e2e::HttpAnswer {
    let sig = sign(SECRET, body);
    post(addr, "/", &github_headers(event, id, &sig), body)
}

#[test]
fn a_code_scanning_alert_without_sender_is_delivered() {
    let mut h = Harness::new();
    let connector = std::fs::read_to_string(connector_yaml_path()).unwrap();
    let addr = start(&mut h, &bundle(&connector, ""));
    let body = sample("code_scanning_alert", "created.without-sender.payload.json");
    let a = deliver(&addr, "code_scanning_alert", "cs-1", &body);
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());
    let got = h.wait_received("echo", "github:Codertocat/Hello-World", 1);
    assert_eq!(got[0]["name"], "code_scanning_alert.created");
    assert!(got[0]["properties"].get("sender").is_none(), "{}", got[0]);
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn an_event_the_orchestrator_refuses_is_answered_500_and_audited() {
    let mut h = Harness::new();
    // A Connector that (wrongly) requires `sender` on code scanning alerts.
    let connector = std::fs::read_to_string(connector_yaml_path()).unwrap();
    let at = connector
        .find("    - name: code_scanning_alert.created\n")
        .unwrap();
    let (head, tail) = connector.split_at(at);
    let strict = format!(
        "{head}{}",
        tail.replacen(
            "sender: { type: string, optional: true }",
            "sender: { type: string }",
            1
        )
    );
    assert_ne!(strict, connector);
    let addr = start(&mut h, &bundle(&strict, ""));
    let body = sample("code_scanning_alert", "created.without-sender.payload.json");
    let a = deliver(&addr, "code_scanning_alert", "cs-2", &body);
    assert_eq!(a.status, 500, "{}", a.body);
    assert!(a.body.contains("undeclared"), "{}", a.body);
    h.wait_until("the refusal in audit.log", DEADLINE, || {
        !audit(&h).is_empty()
    });
    let records = audit(&h);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["kind"], "delivery_refused");
    assert_eq!(records[0]["connection"], "gh");
    assert!(
        records[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("validation_error: "),
        "{}",
        records[0]
    );
    // A delivery the declaration fits still goes through.
    let body = sample("code_scanning_alert", "created.payload.json");
    let a = deliver(&addr, "code_scanning_alert", "cs-3", &body);
    assert_eq!(a.status, 200, "{}", a.body);
    let got = h.wait_received("echo", "github:Codertocat/Hello-World", 1);
    assert_eq!(got.len(), 1);
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn max_delivery_age_refuses_old_payloads_only() {
    let mut h = Harness::new();
    let connector = std::fs::read_to_string(connector_yaml_path()).unwrap();
    let addr = start(&mut h, &bundle(&connector, "MAX_DELIVERY_AGE: 1h"));

    // The example push is from 2019: a replay, whatever its delivery id.
    let old = sample("push", "with-new-branch.payload.json");
    let a = deliver(&addr, "push", "fresh-id-1", &old);
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("MAX_DELIVERY_AGE"), "{}", a.body);
    h.wait_until("the refusal in audit.log", DEADLINE, || {
        !audit(&h).is_empty()
    });
    let records = audit(&h);
    assert_eq!(records[0]["kind"], "delivery_rejected", "{records:?}");
    assert_eq!(records[0]["reason"], "stale", "{records:?}");

    // The same push, committed a minute ago.
    let mut push: Value = serde_json::from_slice(&old).unwrap();
    let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    push["head_commit"]["timestamp"] = humantime::format_rfc3339_seconds(minute_ago)
        .to_string()
        .into();
    let fresh = serde_json::to_vec(&push).unwrap();
    let a = deliver(&addr, "push", "fresh-id-2", &fresh);
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());
    // A payload with no timestamp to judge by (a star) goes through.
    let star = sample("watch", "started.payload.json");
    let a = deliver(&addr, "watch", "fresh-id-3", &star);
    assert_eq!(a.status, 200, "{}", a.body);

    h.wait_until("two events delivered", DEADLINE, || {
        h.agent_instances().len() >= 2
    });
    let pushes = h.wait_received("echo", "github:Codertocat/Hello-World@refs/heads/master", 1);
    assert_eq!(pushes.len(), 1, "only the fresh push: {pushes:?}");
    assert_eq!(audit(&h).len(), 1);
    assert!(h.stop().success(), "{}", h.dump());
}

/// A jsonl agent that asks for `event.payload` and writes each event's
/// name and payload to the file OUT (a log line is capped at 16 KiB).
const PAYLOAD_AGENT: &str = r#"#!/usr/bin/env python3
import json, sys
OUT = "@OUT@"
for line in sys.stdin:
    msg = json.loads(line)
    kind = msg.get("type")
    if kind == "init":
        print(json.dumps({"type": "ready", "protocol": 1, "features": ["payload"]}), flush=True)
    elif kind == "deliver":
        event = msg["event"]
        with open(OUT, "w") as f:
            json.dump({"name": event["name"], "payload": event.get("payload")}, f)
        print(json.dumps({"type": "ack", "id": msg["id"]}), flush=True)
    elif kind == "ping":
        print(json.dumps({"type": "pong", "nonce": msg["nonce"]}), flush=True)
    elif kind == "shutdown":
        break
"#;

#[test]
fn the_whole_delivery_reaches_an_agent_as_event_payload() {
    let mut h = Harness::new();
    let out = h.path("payload.json");
    let agent = PAYLOAD_AGENT.replace("@OUT@", out.to_str().unwrap());
    h.write_script("payload_agent.py", &agent);
    let connector = std::fs::read_to_string(connector_yaml_path()).unwrap();
    let text = bundle(&connector, "").replace(
        "spec: { entry: agent-echo, protocol: frames }",
        "spec: { entry: ./payload_agent.py, protocol: jsonl }",
    );
    let addr = start(&mut h, &text);
    let s = samples()
        .into_iter()
        .find(|s| s.folder == "pull_request" && s.file == "opened.payload.json")
        .unwrap();
    let a = deliver(&addr, "pull_request", "p-1", &s.bytes);
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());
    h.wait_until("the agent to write the payload", DEADLINE, || {
        std::fs::read(&out).is_ok_and(|b| serde_json::from_slice::<Value>(&b).is_ok())
    });
    let got: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(got["name"], "pull_request.opened");
    // Whole and unchanged, its `null` members included.
    assert_eq!(
        first_difference("", &got["payload"], &s.json),
        None,
        "the delivery, whole"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// The first JSON pointer where `a` and `b` differ, with both values there.
fn first_difference(at: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if x.contains_key(k) != y.contains_key(k) {
                    return Some(format!("{at}/{k}: present on one side only"));
                }
                if let Some(d) = first_difference(&format!("{at}/{k}"), va, vb) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&format!("{at}/{i}"), va, vb)),
        _ if a == b => None,
        _ => Some(format!("{at}: {a} != {b}")),
    }
}
