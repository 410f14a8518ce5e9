//! A connector whose credentials are refused says so (`status`
//! `credential_expired`, or exit code 77): its Connection shows
//! `credential_expired` in `status` beside its process state, and the
//! refusal is in `audit.log`.

use serde_json::Value;

use e2e::{DEADLINE, Harness};

#[test]
fn refused_credentials_show_as_credential_expired() {
    let mut h = Harness::new();
    h.copy_fixture("expiring.py");
    h.copy_example("agents/echo.py");
    let connection = |name: &str, mode: &str| {
        format!(
            "---\napiVersion: goondan.ai/v1\nkind: Connection\nmetadata: {{ name: {name} }}\nspec: {{ connectorRef: Connector/expiring, config: {{ MODE: {mode} }} }}\n"
        )
    };
    h.start(&format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: expiring }}
spec: {{ entry: ./expiring.py, protocol: jsonl, events: [{{ name: e }}], restart: {{ backoff: {{ initial: 50ms }} }} }}
{}{}---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/echo, agents: [Agent/echo] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: echo }}
spec: {{ entry: ./echo.py }}
"#,
        connection("says", "say"),
        connection("exits", "exit")
    ));
    // Says so while running: the process is fine, the Connection is not.
    let says = h.wait_process("credential_expired", "connection/says", DEADLINE, |p| {
        p["connectionState"] == "credential_expired"
    });
    assert_eq!(says["state"], "ready", "{says}");
    // Exits 77: permanent, failed, and credential_expired.
    let exits = h.wait_process("failed", "connection/exits", DEADLINE, |p| {
        p["state"] == "failed"
    });
    assert_eq!(exits["connectionState"], "credential_expired", "{exits}");
    assert_eq!(exits["restarts"], 0, "77 is not restarted: {exits}");
    let text = String::from_utf8_lossy(&h.cli(&["status"]).stdout).to_string();
    assert!(text.contains("ready, credential_expired"), "{text}");
    let detail =
        String::from_utf8_lossy(&h.cli(&["status", "connection/exits"]).stdout).to_string();
    assert!(
        detail.contains("connection  credential_expired"),
        "{detail}"
    );
    h.wait_until("the audit record", DEADLINE, || {
        std::fs::read_to_string(h.state().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| r["kind"] == "credential_expired" && r["connection"] == "says")
    });
    assert!(h.stop().success(), "{}", h.dump());
}
