//! End to end through the real orchestrator: a bundle made of
//! `connector.yaml`, a Connection with the webhook secret, and the Rust echo
//! agent. Every payload example is POSTed signed as GitHub signs it and must
//! reach an agent under its event name; forged, oversized and non-JSON
//! deliveries are refused, the forged ones with an `audit.log` line.

mod common;

use std::collections::BTreeMap;

use common::{connector_yaml_path, github_headers, post, samples, sign};
use connector_github::mapping;
use e2e::{DEADLINE, Harness};
use serde_json::Value;

const SECRET: &str = "It's a Secret to Everybody";

fn bundle() -> String {
    let connector = std::fs::read_to_string(connector_yaml_path()).unwrap();
    format!(
        r#"{connector}---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: gh }}
spec:
  connectorRef: Connector/github
  config:
    HOST: 127.0.0.1
    PORT: "0"
    MAX_BODY_BYTES: "65536"
  secrets:
    WEBHOOK_SECRET: {{ value: "{SECRET}" }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: gh }}
spec:
  entryAgent: Agent/echo
  agents: [Agent/echo]
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: echo }}
spec:
  entry: agent-echo
  protocol: frames
"#
    )
}

/// Starts the bundle and returns the connector's address once it is listening.
fn start(h: &mut Harness) -> String {
    h.start(&bundle());
    let file = h.state().join("state/connections/gh/address");
    h.wait_until(
        "the github connector to write its address",
        DEADLINE,
        || std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty()),
    );
    std::fs::read_to_string(&file).unwrap().trim().to_owned()
}

/// Every delivery any echo instance printed.
fn all_received(h: &Harness) -> Vec<Value> {
    h.agent_instances()
        .iter()
        .flat_map(|(agent, escaped)| {
            let log = h
                .state()
                .join("logs/agents")
                .join(agent)
                .join(format!("{escaped}.log"));
            e2e::parse_received(&std::fs::read_to_string(log).unwrap_or_default())
        })
        .collect()
}

fn audit_lines(h: &Harness) -> Vec<Value> {
    std::fs::read_to_string(h.state().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn every_payload_example_reaches_an_agent_under_its_event_name() {
    let mut h = Harness::new();
    let addr = start(&mut h);
    let samples = samples();
    // (event name, instance key) → how many deliveries to expect.
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        let delivery = format!("00000000-0000-4000-8000-{i:012}");
        let signature = sign(SECRET, &s.bytes);
        let answer = post(
            &addr,
            "/github",
            &github_headers(&s.folder, &delivery, &signature),
            &s.bytes,
        );
        assert_eq!(
            answer.status,
            200,
            "{}: {}\n{}",
            s.label(),
            answer.body,
            h.dump()
        );
        let want_body = if s.folder == "ping" {
            serde_json::json!({"pong": true})
        } else {
            serde_json::json!({"accepted": true, "duplicate": false})
        };
        assert_eq!(answer.json(), want_body, "{}", s.label());
        let event = mapping::map(&s.folder, &s.json);
        assert_eq!(event.name, s.expected_name());
        let key = event.instance_key.unwrap();
        *want.entry((event.name, key)).or_default() += 1;
    }
    let total: usize = want.values().sum();
    h.wait_until("every payload delivered to an agent", DEADLINE, || {
        all_received(&h).len() >= total
    });
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in all_received(&h) {
        assert_eq!(r["connection"], "gh");
        let name = r["name"].as_str().unwrap().to_owned();
        assert_eq!(
            r["properties"]["event"],
            name.split('.').next().unwrap(),
            "{r}"
        );
        let key = r["instanceKey"].as_str().unwrap().to_owned();
        *got.entry((name, key)).or_default() += 1;
    }
    assert_eq!(got, want, "deliveries by (event, instanceKey)");

    // A pull request's event as an agent sees it.
    let pr = h.received("echo", "github:Codertocat/Hello-World#2");
    let opened = pr
        .iter()
        .find(|r| r["name"] == "pull_request.opened")
        .expect("pull_request.opened reached github:Codertocat/Hello-World#2");
    assert_eq!(opened["properties"]["repository"], "Codertocat/Hello-World");
    assert_eq!(opened["properties"]["sender"], "Codertocat");
    assert_eq!(opened["properties"]["number"], "2");
    assert_eq!(
        opened["text"],
        "Codertocat opened pull request #2: Update the README with new information."
    );
    assert!(audit_lines(&h).is_empty(), "nothing was rejected");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn forged_oversized_and_malformed_deliveries_are_refused() {
    let mut h = Harness::new();
    let addr = start(&mut h);
    let s = samples()
        .into_iter()
        .find(|s| s.folder == "issues" && s.file == "opened.payload.json")
        .unwrap();
    let good = sign(SECRET, &s.bytes);

    // One byte changed after signing.
    let mut tampered = s.bytes.clone();
    let at = tampered.iter().position(|b| *b == b'C').unwrap();
    tampered[at] = b'D';
    let a = post(
        &addr,
        "/",
        &github_headers("issues", "t-1", &good),
        &tampered,
    );
    assert_eq!(a.status, 401, "{}", a.body);
    // Signed with another secret.
    let wrong = sign("not the secret", &s.bytes);
    let a = post(
        &addr,
        "/",
        &github_headers("issues", "t-2", &wrong),
        &s.bytes,
    );
    assert_eq!(a.status, 401, "{}", a.body);
    // No signature at all.
    let unsigned = [("X-GitHub-Event", "issues"), ("X-GitHub-Delivery", "t-3")];
    let a = post(&addr, "/", &unsigned, &s.bytes);
    assert_eq!(a.status, 401, "{}", a.body);

    h.wait_until("three audit lines", DEADLINE, || audit_lines(&h).len() >= 3);
    let audit = audit_lines(&h);
    let reasons: Vec<&str> = audit
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["bad_signature", "bad_signature", "missing_header"]
    );
    for line in &audit {
        assert_eq!(line["kind"], "signature_rejected", "{line}");
        assert_eq!(line["scheme"], "github", "{line}");
        assert_eq!(line["connection"], "gh", "{line}");
        let text = line.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains(&good[7..]),
            "{text}"
        );
    }
    // The log has its own writer thread: wait for the line, not the audit.
    h.wait_until("the third rejection in the log", DEADLINE, || {
        h.connection_log("gh").contains("(3 rejected since start)")
    });

    // Signed, but over MAX_BODY_BYTES (64 KiB).
    let big = format!(r#"{{"zen":"{}"}}"#, "x".repeat(70_000));
    let sig = sign(SECRET, big.as_bytes());
    let a = post(
        &addr,
        "/",
        &github_headers("ping", "t-4", &sig),
        big.as_bytes(),
    );
    assert_eq!(a.status, 413, "{}", a.body);
    // Signed, but not JSON.
    let text = b"zen=not json";
    let sig = sign(SECRET, text);
    let a = post(&addr, "/", &github_headers("ping", "t-5", &sig), text);
    assert_eq!(a.status, 400, "{}", a.body);
    // Signed JSON without X-GitHub-Event.
    let sig = sign(SECRET, &s.bytes);
    let no_event = [
        ("X-GitHub-Delivery", "t-6"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    let a = post(&addr, "/", &no_event, &s.bytes);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("X-GitHub-Event"), "{}", a.body);

    // The genuine delivery still goes through, and nothing refused reached an agent.
    let a = post(
        &addr,
        "/",
        &github_headers("issues", "t-7", &good),
        &s.bytes,
    );
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());
    let received = h.wait_received("echo", "github:Codertocat/Hello-World#1", 1);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["name"], "issues.opened");
    assert_eq!(
        h.agent_instances().len(),
        1,
        "only the genuine delivery was routed"
    );
    assert_eq!(
        audit_lines(&h).len(),
        3,
        "size and format errors are not audited"
    );
    assert!(h.stop().success(), "{}", h.dump());
}
