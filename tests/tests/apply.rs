//! `orchestrator diff` and `apply` (and SIGHUP) against a running
//! orchestrator: only what changed restarts, routing and limits change in
//! place, an invalid bundle changes nothing, disabled children stop and
//! come back, rotated secrets restart only their Connection.

use std::time::Duration;

use e2e::{DEADLINE, Harness, event};

/// Connection `feed` (test-feeder following `feed.jsonl`), routing every
/// event to `route_to`; Agents `a` and `b` (agent-echo), `a` with `A_MODE`
/// in its env. `conn_extra` and `a_extra` are extra spec lines.
fn bundle(h: &Harness, route_to: &str, a_mode: &str, conn_extra: &str) -> String {
    let feed = h.path("feed.jsonl");
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: feeder }}
spec:
  entry: test-feeder
  protocol: frames
  events: [{{ name: item }}]
  restart: {{ backoff: {{ initial: 100ms, max: 1s }} }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: feed }}
spec:
  connectorRef: Connector/feeder
  config: {{ FEED: "{feed}" }}
  ingress:
    rules:
      - route: {{ agentRef: Agent/{route_to} }}
{conn_extra}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/a, agents: [Agent/a, Agent/b] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: a }}
spec:
  entry: agent-echo
  protocol: frames
  env: {{ A_MODE: "{a_mode}" }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: b }}
spec: {{ entry: agent-echo, protocol: frames }}
"#,
        feed = feed.display()
    )
}

/// The program pid of `target` once it is ready.
fn ready_pid(h: &Harness, target: &str) -> u32 {
    let row = h.wait_process("ready with a pid", target, DEADLINE, |p| {
        p["state"] == "ready" && p["pid"].as_u64().is_some()
    });
    row["pid"].as_u64().expect("pid") as u32
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `bundle.yaml` and runs `orchestrator <verb> bundle.yaml`.
fn verb(h: &Harness, verb: &str, yaml: &str) -> std::process::Output {
    let path = h.write("bundle.yaml", yaml);
    h.cli(&[verb, path.to_str().expect("utf-8 path")])
}

#[test]
fn apply_restarts_only_what_changed() {
    let mut h = Harness::new();
    let first = bundle(&h, "a", "one", "");
    h.start(&first);
    h.feed("feed.jsonl", &[event("item", "first", &[], Some("k"))]);
    h.wait_received("a", "k", 1);
    let conn_pid = ready_pid(&h, "connection/feed");
    let a_pid = ready_pid(&h, "agent/a/k");

    // The same bundle: nothing differs, exit 0.
    let out = verb(&h, "diff", &first);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("no differences"), "{stdout}");

    // A changed rule: diff says so (exit 1) and apply changes it in place.
    let rerouted = bundle(&h, "b", "one", "");
    let out = verb(&h, "diff", &rerouted);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("Connection/feed: changed (spec.ingress.rules)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("connection/feed: changed in place (no restart)"),
        "{stdout}"
    );
    assert!(stdout.contains("agent/a: left alone"), "{stdout}");
    let out = verb(&h, "apply", &rerouted);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    h.feed("feed.jsonl", &[event("item", "second", &[], Some("k"))]);
    h.wait_received("b", "k", 1);
    assert_eq!(h.texts("b", "k"), ["second"]);
    assert_eq!(
        ready_pid(&h, "connection/feed"),
        conn_pid,
        "the connector kept its pid"
    );
    assert_eq!(ready_pid(&h, "agent/a/k"), a_pid, "agent a kept its pid");
    assert_eq!(h.received("a", "k").len(), 1, "a got nothing new");

    // A changed Agent: only its instances restart.
    let b_pid = ready_pid(&h, "agent/b/k");
    let changed = bundle(&h, "b", "two", "");
    let out = verb(&h, "apply", &changed);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("agent/a: restarted"), "{stdout}");
    assert!(stdout.contains("spec.env.A_MODE"), "{stdout}");
    h.wait_until("agent a's instance is gone or restarted", DEADLINE, || {
        h.process("agent/a/k")
            .is_none_or(|p| p["pid"].as_u64() != Some(u64::from(a_pid)))
    });
    assert!(!e2e::pid_alive(a_pid), "the old agent a process is gone");
    assert_eq!(ready_pid(&h, "connection/feed"), conn_pid);
    assert_eq!(ready_pid(&h, "agent/b/k"), b_pid, "agent b kept its pid");

    // An invalid bundle is refused whole: exit 3, the error with its place, nothing changes.
    let invalid = changed.replace(
        "protocol: frames\n  env:",
        "protocol: frames\n  colour: red\n  env:",
    );
    let out = verb(&h, "apply", &invalid);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stderr.contains("bundle.yaml:"), "{stderr}");
    assert!(stderr.contains("unknown field `colour`"), "{stderr}");
    assert!(stderr.contains("nothing changed"), "{stderr}");
    assert_eq!(ready_pid(&h, "connection/feed"), conn_pid);
    assert_eq!(ready_pid(&h, "agent/b/k"), b_pid);

    // Every apply is audited, with what changed and who asked.
    let audit = std::fs::read_to_string(h.state().join("audit.log")).unwrap_or_default();
    let applies: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &serde_json::Value| r["kind"] == "apply")
        .collect();
    assert_eq!(applies.len(), 2, "{audit}");
    assert_eq!(applies[0]["by"], "control socket");
    assert_eq!(applies[0]["changes"][0]["name"], "feed");
}

#[test]
fn disabled_connection_stops_and_sighup_brings_it_back() {
    let mut h = Harness::new();
    let on = bundle(&h, "a", "one", "");
    h.start(&on);
    let conn_pid = ready_pid(&h, "connection/feed");

    // enabled: false stops it and keeps its row, `disabled`.
    let off = bundle(&h, "a", "one", "  enabled: false");
    let out = verb(&h, "apply", &off);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("connection/feed: disabled"), "{stdout}");
    let row = h.wait_process("disabled", "connection/feed", DEADLINE, |p| {
        p["connectionState"] == "disabled"
    });
    assert!(row["pid"].is_null(), "{row}");
    h.wait_until("the connector process is gone", DEADLINE, || {
        !e2e::pid_alive(conn_pid)
    });

    // SIGHUP re-reads the bundle the run started with: enabled again.
    h.write("bundle.yaml", &on);
    h.signal(libc::SIGHUP);
    let new_pid = ready_pid(&h, "connection/feed");
    assert_ne!(new_pid, conn_pid);
    h.feed("feed.jsonl", &[event("item", "after", &[], Some("k"))]);
    h.wait_received("a", "k", 1);
    assert!(h.is_running(), "SIGHUP does not stop the run");
}

#[test]
fn rotated_secret_restarts_only_its_connection() {
    let mut h = Harness::new();
    h.write("one.secret", "first-token-value");
    h.write("two.secret", "other-token-value");
    let with_secrets = |h: &Harness| {
        let mut b = bundle(
            h,
            "a",
            "one",
            "  secrets: { TOKEN: { valueFrom: { secretRef: { ref: Secret/one, key: token } } } }",
        );
        b.push_str(&format!(
            r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: other }}
spec:
  connectorRef: Connector/feeder
  config: {{ FEED: "{}" }}
  secrets: {{ TOKEN: {{ valueFrom: {{ secretRef: {{ ref: Secret/two, key: token }} }} }} }}
---
apiVersion: goondan.ai/v1
kind: Secret
metadata: {{ name: one }}
spec: {{ data: {{ token: {{ valueFrom: {{ file: ./one.secret }} }} }} }}
---
apiVersion: goondan.ai/v1
kind: Secret
metadata: {{ name: two }}
spec: {{ data: {{ token: {{ valueFrom: {{ file: ./two.secret }} }} }} }}
"#,
            h.path("other.jsonl").display()
        ));
        b
    };
    let yaml = with_secrets(&h);
    h.start(&yaml);
    let feed_pid = ready_pid(&h, "connection/feed");
    let other_pid = ready_pid(&h, "connection/other");

    h.write("one.secret", "rotated-token-value");
    let out = verb(&h, "diff", &yaml);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("connection/feed: restarted: secrets rotated: TOKEN"),
        "{stdout}"
    );
    assert!(stdout.contains("connection/other: left alone"), "{stdout}");
    let out = verb(&h, "apply", &yaml);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    h.wait_until("connection/feed restarted", DEADLINE, || {
        h.process("connection/feed").is_some_and(|p| {
            p["state"] == "ready"
                && p["pid"]
                    .as_u64()
                    .is_some_and(|pid| pid != u64::from(feed_pid))
        })
    });
    assert_eq!(
        ready_pid(&h, "connection/other"),
        other_pid,
        "the other Connection kept its pid"
    );
    let audit = std::fs::read_to_string(h.state().join("audit.log")).unwrap_or_default();
    let rotated: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &serde_json::Value| r["kind"] == "credential_rotated")
        .collect();
    assert_eq!(rotated.len(), 1, "{audit}");
    assert_eq!(rotated[0]["connection"], "feed");
    assert_eq!(rotated[0]["key"], "TOKEN");
    assert!(!audit.contains("rotated-token-value") && !audit.contains("first-token-value"));
}

#[test]
fn removed_connection_under_load_loses_no_acked_event() {
    let mut h = Harness::new();
    let yaml = bundle(&h, "a", "one", "");
    h.start(&yaml);
    ready_pid(&h, "connection/feed");
    let events: Vec<serde_json::Value> = (0..2000)
        .map(|i| event("item", &format!("n{i}"), &[], Some(&format!("k{}", i % 4))))
        .collect();
    h.feed("feed.jsonl", &events);
    // Remove the Connection while its events are still coming in.
    h.wait_until("some events delivered", DEADLINE, || {
        !h.received("a", "k0").is_empty()
    });
    let without: String = yaml
        .split("\n---\n")
        .filter(|doc| !doc.contains("kind: Connection\n"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let out = verb(&h, "apply", &without);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("connection/feed: stopped"), "{stdout}");
    assert!(h.process("connection/feed").is_none(), "its row is gone");

    // Every event the connector saw acked reaches agent a.
    let log = h.connection_log("feed");
    let acked: std::collections::BTreeSet<String> = log
        .lines()
        .filter_map(|l| l.split_once(" ack ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert!(!acked.is_empty(), "{log}");
    let received = || -> std::collections::BTreeSet<String> {
        (0..4)
            .flat_map(|k| h.texts("a", &format!("k{k}")))
            .collect()
    };
    h.wait_until(
        "every acked event delivered",
        Duration::from_secs(60),
        || acked.is_subset(&received()),
    );
}
