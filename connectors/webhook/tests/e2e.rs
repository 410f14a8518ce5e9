//! End to end through the real orchestrator: the webhook connector on
//! Standard Webhooks signatures. A signed request reaches the agent; a
//! tampered and a late one are refused with `audit.log` lines.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::{DEADLINE, Harness};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: webhook }
spec:
  entry: connector-webhook
  events:
    - name: invoice.paid
      properties:
        customer: { type: string }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: billing }
spec:
  connectorRef: Connector/webhook
  config:
    PORT: "0"
    SIGNATURE: standard-webhooks
    EVENT_POINTER: /type
    INSTANCE_KEY_POINTER: /data/customer
    TEXT_POINTER: /data/note
    PROPERTIES: customer=/data/customer
  secrets:
    WEBHOOK_SECRET: { value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: billing }
spec:
  entryAgent: Agent/echo
  agents: [Agent/echo]
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec:
  entry: agent-echo
  protocol: frames
"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A Standard Webhooks POST of `body`, signed over `signed_body` at `ts`; returns the status.
fn post(addr: &str, id: &str, ts: u64, signed_body: &[u8], body: &[u8]) -> u16 {
    let key = STANDARD.decode(&SECRET["whsec_".len()..]).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(signed_body);
    let sig = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let ts = ts.to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("webhook-id", id),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    e2e::http_post(addr, "/hooks", &headers, body).status
}

fn audit_lines(h: &Harness) -> Vec<Value> {
    std::fs::read_to_string(h.state().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn signed_requests_reach_the_agent_and_forged_or_late_ones_are_audited() {
    let mut h = Harness::new();
    h.start(BUNDLE);
    let file = h.state().join("state/connections/billing/address");
    h.wait_until(
        "the webhook connector to write its address",
        DEADLINE,
        || std::fs::read_to_string(&file).is_ok_and(|a| !a.trim().is_empty()),
    );
    let addr = std::fs::read_to_string(&file).unwrap();

    let body = br#"{"type":"invoice.paid","data":{"customer":"cus_1","note":"paid in full"}}"#;
    assert_eq!(post(&addr, "msg_1", now(), body, body), 200, "{}", h.dump());
    let r = h.wait_received("echo", "cus_1", 1);
    assert_eq!(r[0]["name"], "invoice.paid");
    assert_eq!(r[0]["text"], "paid in full");
    assert_eq!(r[0]["properties"]["customer"], "cus_1");

    let mut tampered = body.to_vec();
    let at = tampered.len() - 5;
    tampered[at] = b'X';
    assert_eq!(post(&addr, "msg_2", now(), body, &tampered), 401);
    assert_eq!(post(&addr, "msg_3", now() - 3600, body, body), 401);
    h.wait_until("two audit lines", DEADLINE, || audit_lines(&h).len() >= 2);
    let reasons: Vec<Value> = audit_lines(&h)
        .iter()
        .map(|l| l["reason"].clone())
        .collect();
    assert_eq!(reasons, ["bad_signature", "timestamp_outside_window"]);
    for line in audit_lines(&h) {
        assert_eq!(line["kind"], "signature_rejected");
        assert_eq!(line["scheme"], "standard-webhooks");
        assert_eq!(line["connection"], "billing");
    }
    assert_eq!(
        h.received("echo", "cus_1").len(),
        1,
        "only the genuine request"
    );
    assert!(h.stop().success(), "{}", h.dump());
}
