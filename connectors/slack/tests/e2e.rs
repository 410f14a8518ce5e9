//! End to end through the real orchestrator: `connector.yaml`, a Connection
//! with the signing secret, and the Rust echo agent. A signed app mention
//! reaches the agent of its channel; a stale request is refused and audited.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{crate_dir, post, slack_headers, testdata};
use e2e::{DEADLINE, Harness};
use serde_json::Value;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn bundle() -> String {
    let connector = std::fs::read_to_string(crate_dir().join("connector.yaml")).unwrap();
    format!(
        r#"{connector}---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: slack }}
spec:
  connectorRef: Connector/slack
  config: {{ PORT: "0" }}
  secrets:
    SIGNING_SECRET: {{ value: "{SECRET}" }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: slack }}
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn audit_lines(h: &Harness) -> Vec<Value> {
    std::fs::read_to_string(h.state().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_signed_mention_reaches_its_channels_agent_and_a_stale_one_is_audited() {
    let mut h = Harness::new();
    h.start(&bundle());
    let file = h.state().join("state/connections/slack/address");
    h.wait_until("the slack connector to write its address", DEADLINE, || {
        std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty())
    });
    let addr = std::fs::read_to_string(&file).unwrap().trim().to_owned();

    let check = std::fs::read(testdata("url_verification.json")).unwrap();
    let a = post(
        &addr,
        &slack_headers(SECRET, &now_secs().to_string(), &check, false),
        &check,
    );
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());
    assert_eq!(
        a.json()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let body = std::fs::read(testdata("events/app_mention.json")).unwrap();
    let a = post(
        &addr,
        &slack_headers(SECRET, &now_secs().to_string(), &body, false),
        &body,
    );
    assert_eq!(a.status, 200, "{}\n{}", a.body, h.dump());
    let r = h.wait_received("echo", "slack:T061EG9R6:C0LAN2Q65", 1);
    assert_eq!(r[0]["name"], "app_mention");
    assert_eq!(r[0]["connection"], "slack");
    assert_eq!(
        r[0]["text"],
        "<@U0LAN0Z89> is it everything a river should be?"
    );
    assert_eq!(
        r[0]["properties"],
        serde_json::json!({"team": "T061EG9R6", "channel": "C0LAN2Q65", "user": "U061F7AUR",
                           "ts": "1515449522.000016"})
    );

    // Signed correctly, ten minutes ago: a replay.
    let stale = (now_secs() - 600).to_string();
    let a = post(&addr, &slack_headers(SECRET, &stale, &body, false), &body);
    assert_eq!(a.status, 401, "{}", a.body);
    h.wait_until("an audit line", DEADLINE, || !audit_lines(&h).is_empty());
    let audit = audit_lines(&h);
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["kind"], "signature_rejected");
    assert_eq!(audit[0]["scheme"], "slack");
    assert_eq!(audit[0]["reason"], "timestamp_outside_window");
    assert_eq!(audit[0]["connection"], "slack");
    assert!(!audit[0].to_string().contains(SECRET));

    assert_eq!(
        h.agent_instances().len(),
        1,
        "only the fresh mention was delivered"
    );
    assert_eq!(h.received("echo", "slack:T061EG9R6:C0LAN2Q65").len(), 1);
    assert!(h.stop().success(), "{}", h.dump());
}
