//! `Agent.spec.secrets`: an agent's own credentials reach its instances in
//! `init` only — not in argv, the environment, a log line or `status` — and
//! never a Connection's.

use e2e::{DEADLINE, Harness};

fn sha256_hex(s: &str) -> String {
    // The orchestrator's own hashing (the one `pin` uses), over a file.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v");
    std::fs::write(&path, s).expect("write");
    orchestrator::supervisor::sha256_file(&path).expect("hash")
}

#[test]
fn an_agent_gets_its_own_secrets_in_init_and_nowhere_else() {
    const AGENT_KEY: &str = "sk-agent-0123456789abcdef";
    const VAULT_KEY: &str = "vault-value-fedcba9876543210";
    const CONN_TOKEN: &str = "conn-token-5555555555555555";
    let mut h = Harness::new();
    h.copy_example("connectors/lines.py");
    h.copy_fixture("secret_agent.py");
    std::fs::create_dir_all(h.path("secrets")).expect("mkdir");
    std::fs::write(h.path("secrets/vault"), VAULT_KEY).expect("vault");
    let out = h.path("seen.txt");
    let events = h.write_events(
        "events.jsonl",
        &[e2e::event(
            "user_message",
            &out.display().to_string(),
            &[],
            Some("k"),
        )],
    );
    h.start(&format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: lines }}
spec: {{ entry: ./lines.py, protocol: jsonl, events: [{{ name: user_message }}] }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: lines }}
spec:
  connectorRef: Connector/lines
  config: {{ FILE: "{events}" }}
  secrets: {{ TOKEN: {{ value: "{CONN_TOKEN}" }} }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/sa, agents: [Agent/sa] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: sa }}
spec:
  entry: ./secret_agent.py
  secrets:
    LLM_KEY: {{ value: "{AGENT_KEY}" }}
    FROM_VAULT: {{ valueFrom: {{ secretRef: {{ ref: Secret/vault, key: V }} }} }}
---
apiVersion: goondan.ai/v1
kind: Secret
metadata: {{ name: vault }}
spec: {{ data: {{ V: {{ valueFrom: {{ file: secrets/vault }} }} }} }}
"#
    ));
    h.wait_until("the agent's report", DEADLINE, || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.lines().count() == 2)
    });
    let seen = std::fs::read_to_string(&out).expect("report");
    assert_eq!(
        seen,
        format!(
            "FROM_VAULT sha256={}\nLLM_KEY sha256={}\n",
            sha256_hex(VAULT_KEY),
            sha256_hex(AGENT_KEY)
        ),
        "exactly its own secrets, not the Connection's TOKEN"
    );
    // Not in its argv or environment.
    let row = h.process("agent/sa/k").expect("row");
    let pid = row["pid"].as_u64().expect("pid");
    for what in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(AGENT_KEY) && !text.contains(VAULT_KEY),
            "{what}: {text}"
        );
    }
    // Not in status, and not in any file of the state directory.
    let status = h.cli(&["status", "--json"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains(AGENT_KEY), "{status}");
    assert!(h.stop().success(), "{}", h.dump());
    for entry in walk(&h.state()) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).to_string();
        assert!(
            !text.contains(AGENT_KEY) && !text.contains(VAULT_KEY),
            "{} holds a secret",
            entry.display()
        );
    }
}

#[test]
fn a_secret_ref_of_an_agent_is_validated_with_its_place() {
    let h = Harness::new();
    h.write(
        "bundle.yaml",
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: c }
spec: { entry: ./c.py, protocol: jsonl, events: [{ name: e }] }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: c }
spec: { connectorRef: Connector/c }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/a, agents: [Agent/a] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: a }
spec:
  entry: ./a.py
  secrets:
    K: { valueFrom: { secretRef: { ref: Secret/nope, key: X } } }
"#,
    );
    let out = h.validate("bundle.yaml");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bundle.yaml:23:41:") && err.contains("no Secret named `nope`"),
        "{err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
