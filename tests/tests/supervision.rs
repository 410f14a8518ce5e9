//! Restart policy end to end (README.md, Restart policy; docs/protocol.md,
//! Lifecycle): crashes restart with the configured backoff, permanent exit
//! codes wait for a manual restart, a crash loop trips the circuit and is
//! probed after its cooldown, hung and never-ready children are killed and
//! retried, a flooding child is rate-limited without stopping anyone, and a
//! crash keeps a record of its stderr. Each case is read back through
//! `orchestrator status --json` and the child's log.

use std::time::{Duration, Instant};

use e2e::{DEADLINE, Harness, count_lines, gap, lines_with, peer_pids, pid_alive};
use serde_json::Value;

/// The feeder bundle (see [`e2e::feeder_bundle`]) plus `extra` documents:
/// the feeder's events are sentinels that the orchestrator keeps serving.
fn with_feeder(h: &Harness, extra: &str) -> String {
    e2e::feeder_bundle(h, "", extra)
}

fn msg(text: &str, key: &str) -> Value {
    e2e::feed_msg(text, key)
}

fn state(p: &Value) -> &str {
    e2e::state_of(p)
}

fn restarts(p: &Value) -> u64 {
    p["restarts"].as_u64().unwrap_or_default()
}

fn text<'a>(p: &'a Value, field: &str) -> &'a str {
    p[field].as_str().unwrap_or_default()
}

/// Sends one event through `feed` and waits for `echo/<key>` to have `n` deliveries.
fn sentinel(h: &Harness, key: &str, n: usize) {
    h.feed("feed.jsonl", &[msg(&format!("sentinel {n}"), key)]);
    h.wait_received("echo", key, n);
}

const CRASH_AFTER: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: emitter }
spec:
  entry: test-emitter
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
  restart: { backoff: { initial: 200ms, max: 1s, jitter: 0 } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: crashy }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@", CRASH_AFTER: "2" }
  ingress:
    rules:
      - route: { instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/echo, agents: [Agent/echo] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec: { entry: agent-echo, protocol: frames }
"#;

/// (1) A connector that exits 1 after two events is restarted after the
/// configured 200 ms, counted in `restarts`, its cause in `lastExit`, and
/// is `ready` again.
#[test]
fn a_crash_after_n_events_restarts_with_the_configured_backoff() {
    let mut h = Harness::new();
    let events = h.write_events(
        "events.jsonl",
        &[msg("e1", "c"), msg("e2", "c"), msg("e3", "c")],
    );
    h.start(&CRASH_AFTER.replace("@EVENTS@", &events));

    let p = h.wait_process(
        "ready again after a restart",
        "connection/crashy",
        DEADLINE,
        |p| state(p) == "ready" && restarts(p) >= 1,
    );
    assert_eq!(restarts(&p), 1, "it crashed once: {p}\n{}", h.dump());
    assert_eq!(text(&p, "lastExit"), "exit code 1", "{p}");
    assert!(
        p["pid"].as_u64().is_some(),
        "a ready process has a pid: {p}"
    );
    h.wait_received("echo", "c", 3);

    let log = h.connection_log("crashy");
    assert_eq!(
        count_lines(&log, " orchestrator started "),
        2,
        "started twice\n{log}"
    );
    let pid = p["pid"].as_u64().expect("pid") as u32;
    assert!(pid_alive(pid), "the ready process runs: {p}");
    assert!(log.contains(" orchestrator restarting in 200ms\n"), "{log}");
    let exited = lines_with(&log, " orchestrator exited: exit code 1");
    let started = lines_with(&log, " orchestrator started ");
    assert_eq!(exited.len(), 1, "{log}");
    let waited = gap(exited[0].0, started[1].0);
    eprintln!("crash → restart took {waited:?} (backoff 200ms)");
    // Log times are cut to the millisecond.
    assert!(
        waited >= Duration::from_millis(199),
        "restarted after {waited:?}, before the 200ms backoff\n{log}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// (2) Exit code 78 (EX_CONFIG) is permanent: `failed`, not restarted, while
/// everything else keeps working; `orchestrator restart` starts it again.
#[test]
fn exit_78_fails_without_restarts_until_a_manual_restart() {
    let mut h = Harness::new();
    h.write_script(
        "broken.sh",
        "#!/bin/sh\necho \"broken.sh: config FOO is missing\" >&2\nexit 78\n",
    );
    let bundle = with_feeder(
        &h,
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: broken }
spec:
  entry: ./broken.sh
  events: [{ name: note }]
  restart: { backoff: { initial: 10ms, max: 10ms } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: broken }
spec: { connectorRef: Connector/broken }
"#,
    );
    h.start(&bundle);
    let p = h.wait_process("failed", "connection/broken", DEADLINE, |p| {
        state(p) == "failed"
    });
    assert_eq!(text(&p, "lastExit"), "exit code 78", "{p}");
    assert_eq!(
        text(&p, "lastError"),
        "broken.sh: config FOO is missing",
        "{p}"
    );
    assert!(p["pid"].is_null(), "{p}");
    h.wait_until("the failed note", DEADLINE, || {
        h.connection_log("broken")
            .contains(" orchestrator failed: ")
    });

    // With a 10ms backoff, a restart would have happened long before another
    // connection's event makes it to an agent and back.
    sentinel(&h, "s", 1);
    sentinel(&h, "s", 2);
    let log = h.connection_log("broken");
    assert_eq!(count_lines(&log, " orchestrator started "), 1, "{log}");
    let p = h.process("connection/broken").expect("row");
    assert_eq!((state(&p), restarts(&p)), ("failed", 0), "{p}");

    let out = h.cli(&["restart", "connection/broken"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "restarting connection/broken\n"
    );
    h.wait_until("a second start, failed again", DEADLINE, || {
        let log = h.connection_log("broken");
        count_lines(&log, " orchestrator started ") == 2
            && count_lines(&log, " orchestrator failed: ") == 2
    });
    let log = h.connection_log("broken");
    assert!(log.contains(" orchestrator manual restart\n"), "{log}");
    let p = h.wait_process("failed again", "connection/broken", DEADLINE, |p| {
        state(p) == "failed"
    });
    assert_eq!(restarts(&p), 1, "{p}");
    sentinel(&h, "s", 3);
    assert_eq!(
        count_lines(&h.connection_log("broken"), " orchestrator started "),
        2
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// (3) Always exit 1: three failures within the window trip the circuit into
/// `crashloop`, and after the 2 s cooldown it is probed again (and, failing,
/// trips again at once).
#[test]
fn a_crash_loop_trips_the_circuit_and_is_probed_after_the_cooldown() {
    let mut h = Harness::new();
    h.write_script(
        "dies.sh",
        "#!/bin/sh\necho \"dies.sh: giving up\" >&2\nexit 1\n",
    );
    let bundle = with_feeder(
        &h,
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: dies }
spec:
  entry: ./dies.sh
  events: [{ name: note }]
  restart:
    backoff: { initial: 50ms, jitter: 0 }
    circuit: { failures: 3, window: 1m, cooldown: 2s }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: dies }
spec: { connectorRef: Connector/dies }
"#,
    );
    h.start(&bundle);
    let p = h.wait_process("in crashloop", "connection/dies", DEADLINE, |p| {
        state(p) == "crashloop"
    });
    assert!(
        text(&p, "lastError").starts_with("crash loop: 3 failures within 1m"),
        "{p}"
    );
    assert_eq!(text(&p, "lastExit"), "exit code 1", "{p}");
    assert!(p["pid"].is_null(), "{p}");

    let what = "a probe after the cooldown, and the circuit tripping again";
    h.wait_until(what, DEADLINE, || {
        count_lines(&h.connection_log("dies"), " orchestrator crash loop: ") >= 2
    });
    let log = h.connection_log("dies");
    let trips = lines_with(&log, " orchestrator crash loop: ");
    let starts = lines_with(&log, " orchestrator started ");
    let before: Vec<_> = starts.iter().filter(|s| s.0 <= trips[0].0).collect();
    assert_eq!(before.len(), 3, "three runs trip it\n{log}");
    assert!(
        trips[0]
            .1
            .ends_with("crash loop: 3 failures within 1m; next probe in 2s"),
        "{log}"
    );
    let probe = starts
        .iter()
        .find(|s| s.0 > trips[0].0)
        .unwrap_or_else(|| panic!("no start after the trip\n{log}"));
    let cooled = gap(trips[0].0, probe.0);
    eprintln!("crash loop → probe took {cooled:?} (cooldown 2s)");
    assert!(
        cooled >= Duration::from_millis(1990),
        "probed after {cooled:?}, before the 2s cooldown\n{log}"
    );
    assert!(
        trips[1].1.contains("crash loop: 4 failures within 1m"),
        "the failed probe trips it again\n{log}"
    );
    // Still only four runs: it does not spin between probes.
    assert_eq!(starts.len(), 4, "{log}");
    h.wait_process("in crashloop again", "connection/dies", DEADLINE, |p| {
        state(p) == "crashloop"
    });
    sentinel(&h, "s", 1);
    assert!(h.stop().success(), "{}", h.dump());
}

/// (4) A frames child that stops answering pings is killed as hung after
/// three missed pings, and restarted.
#[test]
fn a_child_that_stops_answering_pings_is_killed_and_restarted() {
    let mut h = Harness::new();
    let bundle = with_feeder(
        &h,
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: hangs }
spec:
  entry: test-peer
  args: [hang]
  healthInterval: 200ms
  events: [{ name: note }]
  restart: { backoff: { initial: 100ms, jitter: 0 } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: hangs }
spec: { connectorRef: Connector/hangs }
"#,
    );
    h.start(&bundle);
    let p = h.wait_process(
        "killed as hung and restarted",
        "connection/hangs",
        DEADLINE,
        |p| restarts(p) >= 1 && text(p, "lastExit").starts_with("hung"),
    );
    assert_eq!(
        text(&p, "lastExit"),
        "hung: 3 pings unanswered, killed",
        "{p}"
    );

    h.wait_until("a second run", DEADLINE, || {
        peer_pids(&h.connection_log("hangs")).len() >= 2
    });
    let log = h.connection_log("hangs");
    let pids = peer_pids(&log);
    assert_ne!(pids[0], pids[1], "{log}");
    h.wait_until("the hung process to be gone", DEADLINE, || {
        !pid_alive(pids[0])
    });
    let second = log
        .match_indices(" orchestrator started ")
        .nth(1)
        .expect("second start")
        .0;
    let first = &log[..second];
    for step in [
        " stderr ignoring ping 1\n",
        " stderr ignoring ping 3\n",
        " orchestrator hung: 3 pings unanswered; killing the process group\n",
        " orchestrator exited: hung: 3 pings unanswered, killed\n",
    ] {
        assert!(first.contains(step), "{step:?} in the first run\n{log}");
    }
    let ready = lines_with(first, " orchestrator ready")[0].0;
    let hung = lines_with(first, " orchestrator hung: ")[0].0;
    let took = gap(ready, hung);
    eprintln!("ready → killed as hung: {took:?} (healthInterval 200ms)");
    assert!(took >= Duration::from_millis(590), "{took:?}\n{log}");
    sentinel(&h, "s", 1);
    assert!(h.stop().success(), "{}", h.dump());
}

/// (5) A child that never sends `ready` is killed at `startTimeout` as a
/// failed start, and retried.
#[test]
fn a_child_that_never_gets_ready_is_a_failed_start_and_is_retried() {
    let mut h = Harness::new();
    let bundle = with_feeder(
        &h,
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: mute }
spec:
  entry: test-peer
  args: [never-ready]
  events: [{ name: note }]
  restart: { startTimeout: 300ms, backoff: { initial: 100ms, jitter: 0 } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: mute }
spec: { connectorRef: Connector/mute }
"#,
    );
    h.start(&bundle);
    let p = h.wait_process(
        "a failed start, retried",
        "connection/mute",
        DEADLINE,
        |p| restarts(p) >= 1 && text(p, "lastExit").contains("no ready within"),
    );
    assert_eq!(
        text(&p, "lastExit"),
        "failed start: no ready within 300ms",
        "{p}"
    );
    // The cause, then the child's own last stderr line.
    assert!(
        text(&p, "lastError").starts_with("no ready within 300ms: test-peer pid="),
        "{p}"
    );
    h.wait_until("a second run", DEADLINE, || {
        peer_pids(&h.connection_log("mute")).len() >= 2
    });
    let log = h.connection_log("mute");
    let pids = peer_pids(&log);
    assert_ne!(pids[0], pids[1], "{log}");
    h.wait_until("the first process to be gone", DEADLINE, || {
        !pid_alive(pids[0])
    });
    assert!(!log.contains(" orchestrator ready"), "{log}");
    let started = lines_with(&log, " orchestrator started ")[0].0;
    let failed = lines_with(&log, " orchestrator exited: failed start")[0].0;
    let took = gap(started, failed);
    eprintln!("start → failed start: {took:?} (startTimeout 300ms)");
    assert!(took >= Duration::from_millis(299), "{took:?}\n{log}");
    sentinel(&h, "s", 1);
    assert!(h.stop().success(), "{}", h.dump());
}

/// Flood lines in every file of `connection/flood`'s log (current and
/// rotated), the sum of its `N lines dropped` markers, and the files' sizes.
fn flood_accounting(h: &Harness) -> (u64, u64, Vec<(String, u64)>) {
    let dir = h.state().join("logs/connections");
    let (mut kept, mut dropped, mut files) = (0, 0, Vec::new());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("logs dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("flood.log"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let bytes = std::fs::read(e.path()).expect("read log");
        files.push((
            e.file_name().to_string_lossy().into_owned(),
            bytes.len() as u64,
        ));
        for line in String::from_utf8_lossy(&bytes).lines() {
            if line.contains(" stderr flood ") && !line.contains(" stderr flood done: ") {
                kept += 1;
            } else if let Some(n) = line
                .strip_suffix(" lines dropped")
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
            {
                dropped += n;
            }
        }
    }
    (kept, dropped, files)
}

/// (6) A child flooding stderr does not slow anyone else down; what the flood
/// limit refuses is counted in `N lines dropped` markers (every line is
/// either kept or counted), and the file rotates by size.
#[test]
fn a_stderr_flood_is_rate_limited_counted_and_rotated() {
    let mut h = Harness::new();
    let bundle = with_feeder(
        &h,
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: flood }
spec:
  entry: test-peer
  args: [flood, "3", "2000"]
  events: [{ name: note }]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: flood }
spec: { connectorRef: Connector/flood }
"#,
    );
    h.start(&bundle);
    h.wait_until(
        "the flood to start and the feeder to be ready",
        DEADLINE,
        || {
            h.connection_log("flood").contains(" stdout flood starting")
                && h.connection_log("feed").contains("following")
        },
    );
    let sent = Instant::now();
    h.feed("feed.jsonl", &[msg("during the flood", "f")]);
    h.wait_until("delivery during the flood", Duration::from_secs(5), || {
        !h.received("echo", "f").is_empty()
    });
    let latency = sent.elapsed();
    let still_flooding = !h.connection_log("flood").contains("flood done:");
    eprintln!("event delivered {latency:?} after sending (flood still running: {still_flooding})");

    h.wait_until("the flood to end", DEADLINE, || {
        h.connection_log("flood").contains(" stderr flood done: ")
    });
    let log = h.connection_log("flood");
    let total: u64 = log
        .lines()
        .find_map(|l| l.split(" stderr flood done: ").nth(1))
        .and_then(|rest| rest.strip_suffix(" lines"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in the flood done line"));
    // The last drops are reported with the next line that gets through
    // (the helper keeps printing `flood done` every 100 ms).
    let mut accounted = (0, 0, vec![]);
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        accounted = flood_accounting(&h);
        if accounted.0 + accounted.1 >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (kept, dropped, files) = accounted;
    eprintln!(
        "flood: {total} lines written, {kept} kept, {dropped} reported dropped; files {files:?}"
    );
    assert!(dropped > 0, "the flood limit dropped lines\n{files:?}");
    // Every line is either in the log or counted as dropped (a `flood done`
    // line right after the flood may be among the dropped).
    assert!(
        (total..=total + 3).contains(&(kept + dropped)),
        "{kept} kept + {dropped} dropped != {total} written"
    );
    // Default limits: 10,000 lines of burst, then 2,000/s; 3 s of flood.
    assert!(kept <= 10_000 + 2_000 * 10, "{kept} lines kept");
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"flood.log.1"), "rotated by size: {names:?}");
    assert!(!names.contains(&"flood.log.6"), "at most 5 kept: {names:?}");
    for (name, size) in &files {
        assert!(*size <= 10 * 1024 * 1024 + 4096, "{name} is {size} bytes");
    }
    // The orchestrator and its other children were not held up.
    assert!(
        latency < Duration::from_secs(5),
        "a delivery took {latency:?} during the flood"
    );
    sentinel(&h, "s", 1);
    assert!(h.stop().success(), "{}", h.dump());
}

/// (7) A crash keeps a record of the child's last stderr, under source
/// `crash`, and its last line becomes the status's `lastError`.
#[test]
fn a_crash_record_keeps_the_last_stderr_lines() {
    let mut h = Harness::new();
    h.write_script(
        "crash.py",
        r#"#!/usr/bin/env python3
import sys
sys.stdin.readline()
print('{"type":"ready"}', flush=True)
print("crash.py: step one", file=sys.stderr, flush=True)
print("crash.py: step two", file=sys.stderr, flush=True)
print("FATAL: the disk is on fire (marker 7f3a)", file=sys.stderr, flush=True)
sys.exit(1)
"#,
    );
    let bundle = with_feeder(
        &h,
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: crash }
spec:
  entry: ./crash.py
  protocol: jsonl
  events: [{ name: note }]
  restart: { backoff: { initial: 1h, max: 1h } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: crash }
spec: { connectorRef: Connector/crash }
"#,
    );
    h.start(&bundle);
    let p = h.wait_process(
        "crashed, waiting to restart",
        "connection/crash",
        DEADLINE,
        |p| state(p) == "backoff",
    );
    assert_eq!(text(&p, "lastExit"), "exit code 1", "{p}");
    assert_eq!(
        text(&p, "lastError"),
        "FATAL: the disk is on fire (marker 7f3a)",
        "{p}"
    );
    h.wait_until("the end of the crash record", DEADLINE, || {
        h.connection_log("crash")
            .contains(" orchestrator end of crash record")
    });
    let log = h.connection_log("crash");
    let record = &log[log
        .find(" orchestrator crash record: ")
        .expect("a crash record")..];
    let first = record.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(" orchestrator crash record: exit code 1; last "),
        "{log}"
    );
    let body: Vec<&str> = record
        .lines()
        .skip(1)
        .take_while(|l| !l.contains(" orchestrator end of crash record"))
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        body,
        [
            "crash crash.py: step one",
            "crash crash.py: step two",
            "crash FATAL: the disk is on fire (marker 7f3a)"
        ],
        "{log}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}
