//! Pinned programs: `entry: {path, sha256}` is checked at every spawn; a
//! program that does not match is refused (`failed`, both hashes in the
//! error, an audit record); `orchestrator pin` prints the hashes to paste.

use serde_json::Value;

use e2e::{DEADLINE, Harness};

const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: lines }
spec:
  entry: { path: ./lines.py, sha256: $LINES }
  protocol: jsonl
  events: [{ name: user_message }]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: lines }
spec:
  connectorRef: Connector/lines
  config: { FILE: "$EVENTS" }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/echo, agents: [Agent/echo] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec:
  entry: { path: ./echo.py, sha256: $ECHO }
  protocol: jsonl
"#;

/// `orchestrator pin`'s hash for `kind/name`.
fn pinned(out: &str, what: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(&format!("{what}: ")))
        .and_then(|l| l.split("sha256: ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no hash for {what} in {out}"))
        .to_string()
}

#[test]
fn a_program_that_does_not_match_its_pin_is_refused_and_audited() {
    let mut h = Harness::new();
    h.copy_example("connectors/lines.py");
    h.copy_example("agents/echo.py");
    let events = h.write_events(
        "events.jsonl",
        &[e2e::event("user_message", "hi", &[], Some("ada"))],
    );
    let zeros = "0".repeat(64);
    let bundle = BUNDLE
        .replace("$EVENTS", &events)
        .replace("$LINES", &zeros)
        .replace("$ECHO", &zeros);
    h.write("bundle.yaml", &bundle);

    // `pin` prints every program's hash, and says which pins are wrong.
    let out = h
        .command()
        .args(["pin", "bundle.yaml"])
        .output()
        .expect("pin");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("DOES NOT MATCH"), "{text}");
    let (lines, echo) = (
        pinned(&text, "Connector/lines"),
        pinned(&text, "Agent/echo"),
    );
    assert_eq!(lines.len(), 64);

    // The connector pinned right, the agent pinned to another program's hash.
    h.start(
        &BUNDLE
            .replace("$EVENTS", &events)
            .replace("$LINES", &lines)
            .replace("$ECHO", &lines),
    );
    h.wait_process("ready", "connection/lines", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let agent = h.wait_process("failed", "agent/echo/ada", DEADLINE, |p| {
        e2e::state_of(p) == "failed"
    });
    let error = agent["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("does not match its pin"), "{agent}");
    assert!(
        error.contains(&echo) && error.contains(&lines),
        "both hashes: {agent}"
    );
    h.wait_until("the audit record", DEADLINE, || {
        std::fs::read_to_string(h.state().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| {
                r["kind"] == "program_rejected"
                    && r["process"] == "agent/echo/ada"
                    && r["actual"] == echo.as_str()
                    && r["expected"] == lines.as_str()
            })
    });
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn a_malformed_pin_is_a_validation_error_with_its_place() {
    let h = Harness::new();
    h.write(
        "bundle.yaml",
        &BUNDLE
            .replace("$EVENTS", "e.jsonl")
            .replace("$LINES", "abc")
            .replace("$ECHO", &"0".repeat(64)),
    );
    let out = h.validate("bundle.yaml");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bundle.yaml:6:") && err.contains("64 hex digits"),
        "{err}"
    );
}
