//! `orchestrator diff` and `apply` (and SIGHUP) against a running
//! orchestrator: only what changed restarts, routing and limits change in
//! place, an invalid bundle changes nothing, disabled children stop and
//! come back, rotated secrets restart only their Connection.

use std::time::Duration;

mod sandbox_common;

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
  version: 1.2.0
  config: {{ type: object, properties: {{ FEED: {{ type: string }} }} }}
  events: [{{ name: item }}]
  restart: {{ backoff: {{ initial: 100ms, max: 1s }} }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: feed }}
spec:
  connectorRef: Connector/feeder
  config: {{ FEED: "{feed}" }}
  rateLimit: {{ perSecond: 5000, burst: 5000 }}
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
    // What it runs, and under which limits, shows whatever its state.
    assert_eq!(row["connectorVersion"], "1.2.0", "{row}");
    assert!(
        row["configSchemaVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("sha256:")),
        "{row}"
    );
    assert_eq!(row["rateLimit"], "5000/s burst 5000", "{row}");
    let human = String::from_utf8_lossy(&h.cli(&["status"]).stdout).into_owned();
    assert!(human.contains("disabled"), "{human}");
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
    // apply answers once the restarted connector is ready.
    let row = h.process("connection/feed").expect("its row");
    assert_eq!(row["state"], "ready", "{row}");
    assert_ne!(row["pid"].as_u64(), Some(u64::from(feed_pid)), "{row}");
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
    // Events keep coming while the Connection is removed.
    let feed = h.path("feed.jsonl");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut text = String::new();
                for _ in 0..10 {
                    let e = event("item", &format!("n{n}"), &[], Some(&format!("k{}", n % 4)));
                    text.push_str(&format!("{e}\n"));
                    n += 1;
                }
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&feed)
                    .expect("open feed");
                f.write_all(text.as_bytes()).expect("append");
                // Paced (about 500 events/s): the connector's log, where
                // its acks are read from, keeps every line below 2,000/s.
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    h.wait_until("200 events delivered", DEADLINE, || {
        (0..4)
            .map(|k| h.received("a", &format!("k{k}")).len())
            .sum::<usize>()
            >= 200
    });
    let without: String = yaml
        .split("\n---\n")
        .filter(|doc| !doc.contains("kind: Connection\n"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let out = verb(&h, "apply", &without);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let fed = feeder.join().expect("feeder thread");
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
    eprintln!(
        "{fed} events fed, {} acked before the Connection stopped",
        acked.len()
    );
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

/// Agent `worker` (delivery-agent, which leaves `block…` events unanswered)
/// takes every event of Connection `feed`; `keep_worker: false` removes it
/// and routes to `a` instead.
fn worker_bundle(h: &Harness, keep_worker: bool, max_attempts: u32) -> String {
    let route_to = if keep_worker { "worker" } else { "a" };
    let mut yaml = bundle(h, route_to, "one", "");
    yaml = yaml.replace(
        "agents: [Agent/a, Agent/b]",
        if keep_worker {
            "agents: [Agent/a, Agent/b, Agent/worker]"
        } else {
            "agents: [Agent/a, Agent/b]"
        },
    );
    if keep_worker {
        yaml.push_str(&format!(
            r#"
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: worker }}
spec:
  entry: delivery-agent
  protocol: frames
  maxAttempts: {max_attempts}
  env: {{ RECORD_DIR: "{records}", UNBLOCK_FILE: "{unblock}" }}
  restart: {{ stop: {{ grace: 200ms, termGrace: 200ms }} }}
"#,
            records = h.path("records").display(),
            unblock = h.path("unblock").display(),
        ));
    }
    yaml
}

#[test]
fn removed_agent_dead_letters_what_it_had_not_delivered() {
    let mut h = Harness::new();
    std::fs::create_dir_all(h.path("records")).expect("records dir");
    h.start(&worker_bundle(&h, true, 5));
    // One event in flight that is never answered, two queued behind it.
    h.feed(
        "feed.jsonl",
        &[
            event("item", "block-1", &[], Some("w")),
            event("item", "queued-2", &[], Some("w")),
            event("item", "queued-3", &[], Some("w")),
        ],
    );
    h.wait_until("block-1 reached the worker", DEADLINE, || {
        std::fs::read_to_string(h.path("records/w.jsonl")).is_ok_and(|r| r.contains("block-1"))
    });

    // Its limits change in place: the same process goes on.
    let worker_pid = ready_pid(&h, "agent/worker/w");
    let out = verb(&h, "apply", &worker_bundle(&h, true, 7));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("agent/worker: changed in place"),
        "{stdout}"
    );
    assert_eq!(ready_pid(&h, "agent/worker/w"), worker_pid);
    // The running instance took the new limit up.
    h.wait_until("the instance took maxAttempts 7 up", DEADLINE, || {
        h.agent_log("worker", "w").contains("maxAttempts 7")
    });

    let out = verb(&h, "apply", &worker_bundle(&h, false, 7));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("agent/worker: stopped"), "{stdout}");
    assert!(!e2e::pid_alive(worker_pid), "the worker process is gone");
    let out = h.cli(&["dlq", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dlq list --json");
    let letters = list["deadLetters"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = letters.iter().filter_map(|l| l["text"].as_str()).collect();
    assert_eq!(texts, ["block-1", "queued-2", "queued-3"], "{list}");
    for l in &letters {
        assert_eq!(l["error"], "agent 'worker' removed by an apply", "{l}");
    }
}

#[test]
fn disabled_agent_keeps_its_events_until_enabled_again() {
    let mut h = Harness::new();
    std::fs::create_dir_all(h.path("records")).expect("records dir");
    let on = worker_bundle(&h, true, 5);
    h.start(&on);
    h.feed(
        "feed.jsonl",
        &[
            event("item", "block-1", &[], Some("w")),
            event("item", "queued-2", &[], Some("w")),
        ],
    );
    let records = || std::fs::read_to_string(h.path("records/w.jsonl")).unwrap_or_default();
    h.wait_until("block-1 reached the worker", DEADLINE, || {
        records().contains("block-1")
    });
    let off = on.replacen("  maxAttempts: 5", "  maxAttempts: 5\n  enabled: false", 1);
    let out = verb(&h, "apply", &off);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("agent/worker: disabled"), "{stdout}");
    let human = String::from_utf8_lossy(&h.cli(&["status"]).stdout).into_owned();
    assert!(human.contains("agent/worker (disabled)"), "{human}");

    // New events for it are refused while it is disabled.
    h.feed("feed.jsonl", &[event("item", "refused-3", &[], Some("w"))]);
    h.wait_until("refused-3 nacked", DEADLINE, || {
        h.connection_log("feed")
            .contains("agent 'worker' is disabled")
    });

    // Enabled again: what the journal kept is delivered (block-1 answered now).
    h.write("unblock", "");
    let out = verb(&h, "apply", &on);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    h.wait_until("the kept events delivered", DEADLINE, || {
        let r = records();
        r.matches("block-1").count() >= 2 && r.contains("queued-2")
    });
    assert!(!records().contains("refused-3"), "{}", records());
}

/// A Secret file that only a later apply names is hidden from sandboxed
/// children like the first bundle's: an apply is no way around the sandbox.
#[test]
fn files_an_apply_adds_are_hidden_from_sandboxed_children() {
    if !sandbox_common::root() {
        return;
    }
    let mut h = Harness::new();
    let token = h.write("secrets/new", sandbox_common::SECRET);
    let check = format!("read:{}", token.display());
    let first = sandbox_common::bundle("{ network: { mode: none } }", &check);
    h.start(&first);
    h.wait_until("the first probe run", DEADLINE, || {
        h.connection_log("p").matches("stdout checks done").count() == 1
    });
    // Not part of the bundle yet: readable (the sandbox hides bundle files only).
    let last = |log: &str| -> String {
        let needle = format!("check {check}: ");
        log.lines()
            .rev()
            .find_map(|l| l.split_once(&needle).map(|(_, rest)| rest.to_string()))
            .unwrap_or_default()
    };
    assert!(
        last(&h.connection_log("p")).starts_with("ok read"),
        "{}",
        h.connection_log("p")
    );

    // The apply names it (Connection `other` reads it) and restarts `p` (its CHECKS changed).
    let vault = "\n---\napiVersion: goondan.ai/v1\nkind: Secret\nmetadata: { name: vault }\nspec: { data: { T: { valueFrom: { file: secrets/new } } } }\n";
    let second = sandbox_common::bundle("{ network: { mode: none } }", &format!("{check} {check}"))
        .replace(
            "secrets: { TOKEN: {",
            "secrets: { FROM_FILE: { valueFrom: { secretRef: { ref: Secret/vault, key: T } } }, TOKEN: {",
        );
    let out = verb(&h, "apply", &format!("{second}{vault}"));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("connection/p: restarted"), "{stdout}");
    h.wait_until("the second probe run", DEADLINE, || {
        h.connection_log("p").matches("stdout checks done").count() == 2
    });
    let log = h.connection_log("p");
    assert_eq!(last(&log), "ok read 0 bytes", "{log}");
}
