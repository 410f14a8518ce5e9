//! Helpers of the sandbox attack tests (`sandbox_escape.rs`,
//! `sandbox_users.rs`): a probe bundle, the outcome of a check, status rows.

#![allow(dead_code)] // each test crate uses some of them

use e2e::{DEADLINE, Harness};
use serde_json::Value;

pub const SECRET: &str = "an0ther-connections-s3cret";

/// A probe connection `p` with `sandbox` and `checks`, next to a
/// connection `other` with a secret the orchestrator holds in memory.
pub fn bundle(sandbox: &str, checks: &str) -> String {
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: probe }}
spec:
  entry: sandbox-probe
  events: [ {{ name: probe }} ]
  restart: {{ policy: never }}
  sandbox: {sandbox}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: p }}
spec:
  connectorRef: Connector/probe
  config: {{ CHECKS: "{checks}" }}
  ingress: {{ rules: [ {{ route: {{}} }} ] }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: other }}
spec:
  connectorRef: Connector/probe
  secrets: {{ TOKEN: {{ value: "{SECRET}" }} }}
  ingress: {{ rules: [ {{ route: {{}} }} ] }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/a, agents: [Agent/a] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: a }}
spec: {{ entry: test-agent, protocol: frames }}
"#
    )
}

/// Whether to run: as root; without root, a failure unless `E2E_SKIP_ROOT=1`.
pub fn root() -> bool {
    e2e::require_root()
}

pub fn checks_done(h: &Harness, connection: &str) -> String {
    h.wait_until("the probe to finish its checks", DEADLINE, || {
        h.connection_log(connection).contains("stdout checks done")
    });
    h.connection_log(connection)
}

/// The outcome of `check` (`ok …` or `err …`).
pub fn outcome<'a>(log: &'a str, check: &str) -> &'a str {
    let needle = format!("check {check}: ");
    log.lines()
        .find_map(|l| l.split_once(&needle).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no outcome for {check}\n{log}"))
}

pub fn refused(log: &str, check: &str) {
    let o = outcome(log, check);
    assert!(o.starts_with("err"), "{check} must fail: {o}\n{log}");
}

pub fn allowed(log: &str, check: &str) {
    let o = outcome(log, check);
    assert!(o.starts_with("ok"), "{check} must work: {o}\n{log}");
}

pub fn limit(row: &Value, name: &str) -> Value {
    row["sandbox"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["limit"] == name).cloned())
        .unwrap_or_else(|| panic!("no sandbox entry {name} in {row:#}"))
}

/// Tells the probe a pid, through a file it waits for.
pub fn tell_pid(h: &Harness, pid: u32) {
    let tmp = h.path("target.pid.tmp");
    std::fs::write(&tmp, pid.to_string()).expect("write pid");
    std::fs::rename(&tmp, h.path("target.pid")).expect("rename pid");
}

pub fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns the ABI.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    }
}

pub fn uid_of(pid: &Value) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |k: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(k)).expect(k);
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect(k)
    };
    (field("Uid:"), field("Gid:"))
}
