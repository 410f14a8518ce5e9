//! What an operator does with a running orchestrator: `status` (table and
//! JSON), `logs` (follow, per agent, last N), `restart`; agent instances
//! coming and going under `idleTimeout` and `maxInstances`; and no process
//! of the tree outliving the orchestrator, even after `kill -9`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::{
    DEADLINE, Harness, KillOnDrop, agent_pids, count_lines, gap, line_time, lines_with, pid_alive,
};
use serde_json::Value;

fn bundle(h: &Harness, agent_extra: &str, extra: &str) -> String {
    e2e::feeder_bundle(h, agent_extra, extra)
}

fn msg(text: &str, key: &str) -> Value {
    e2e::feed_msg(text, key)
}

fn state(p: &Value) -> &str {
    e2e::state_of(p)
}

fn pid(p: &Value) -> Option<u32> {
    p["pid"].as_u64().map(|p| p as u32)
}

fn wait_feeder(h: &Harness) {
    h.wait_process("ready", "connection/feed", DEADLINE, |p| {
        state(p) == "ready"
    });
}

/// (8a) `logs -f` shows an agent's line within a second of the event being sent.
#[test]
fn logs_follow_shows_a_new_line_promptly() {
    let mut h = Harness::new();
    h.start(&bundle(&h, "", ""));
    wait_feeder(&h);
    let mut follow = h.follow_logs(&["-f"]);

    for (text, what) in [
        ("follow-1", "new instance"),
        ("follow-2", "running instance"),
    ] {
        let sent = Instant::now();
        h.feed("feed.jsonl", &[msg(text, "f")]);
        let needle = format!("\"text\":\"{text}\"");
        let Some((at, line)) = follow.wait_line(Duration::from_secs(5), |l| {
            l.contains(" received {") && l.contains(&needle)
        }) else {
            panic!(
                "logs -f did not show {text} within 5s; it printed:\n{}\n{}",
                follow.seen.join("\n"),
                h.dump()
            );
        };
        let latency = at.duration_since(sent);
        eprintln!("logs -f: event sent → line shown in {latency:?} ({what})");
        assert!(line.starts_with("agent/echo/f"), "{line}");
        assert!(line.contains(" | "), "a prefix per process: {line}");
        // The issue asks for a second; CI machines get some slack in the assert.
        assert!(latency < Duration::from_secs(5), "{latency:?}");
    }
    drop(follow);
    assert!(h.stop().success(), "{}", h.dump());
}

/// (8b) `logs agent/<name>` interleaves its instances by time, each line
/// prefixed `agent/<name>/<key> | `; `logs -n 3 connection/<name>` prints
/// that file's last three lines.
#[test]
fn logs_interleave_instances_and_print_the_last_n_lines() {
    let mut h = Harness::new();
    h.start(&bundle(&h, "", ""));
    let keys = ["k1", "k2", "k3"];
    for round in 1..=2 {
        for key in keys {
            h.feed("feed.jsonl", &[msg(&format!("{key}-{round}"), key)]);
            h.wait_received("echo", key, round);
        }
    }

    let out = h.cli(&["logs", "agent/echo", "-n", "100"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut prefixes = BTreeSet::new();
    let mut last_time = None;
    let mut received = 0;
    for line in text.lines() {
        let (prefix, rest) = line
            .split_once(" | ")
            .unwrap_or_else(|| panic!("no prefix: {line:?}\n{text}"));
        assert!(
            keys.iter().any(|k| prefix == format!("agent/echo/{k}")),
            "{line}"
        );
        prefixes.insert(prefix.to_string());
        let t = line_time(rest).unwrap_or_else(|| panic!("no time: {line:?}"));
        assert!(last_time <= Some(t), "interleaved by time:\n{text}");
        last_time = Some(t);
        if rest.contains(" received {") {
            let key = &prefix["agent/echo/".len()..];
            assert!(rest.contains(&format!("\"text\":\"{key}-")), "{line}");
            received += 1;
        }
    }
    assert_eq!(prefixes.len(), 3, "every instance shows:\n{text}");
    assert_eq!(received, 6, "{text}");
    // Interleaved, not one file after another: k1's second delivery comes
    // after k3's first (when the clock tells them apart).
    let at = |needle: &str| {
        let i = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}\n{text}"));
        let line = text[..i].rsplit('\n').next().unwrap_or_default();
        (
            i,
            line_time(line.split_once(" | ").map_or(line, |(_, r)| r)),
        )
    };
    let (k3_first, k1_second) = (at("\"text\":\"k3-1\""), at("\"text\":\"k1-2\""));
    if k3_first.1 < k1_second.1 {
        assert!(k3_first.0 < k1_second.0, "{text}");
    }

    let out = h.cli(&["logs", "-n", "3", "connection/feed"]);
    assert!(out.status.success(), "{out:?}");
    let shown: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let file = h.connection_log("feed");
    let all: Vec<&str> = file.lines().collect();
    let last: Vec<String> = all[all.len().saturating_sub(3)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(shown, last, "the last 3 lines, unprefixed");
    assert!(h.stop().success(), "{}", h.dump());
}

/// `grandchild pid=<n>` lines of a `test-peer fork` log.
fn grandchildren(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.split_once(" stderr grandchild pid=").map(|(_, p)| p))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

const FORKER: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: forker }
spec:
  entry: test-peer
  args: [fork]
  events: [{ name: note }]
  restart: { stop: { grace: 2s, termGrace: 1s } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: forker }
spec: { connectorRef: Connector/forker }
"#;

/// Starts the forker and two agent instances; returns every pid of the
/// tree: programs, their process-group leaders (a shim, if any) and the grandchild.
fn start_tree(h: &mut Harness) -> Vec<(u32, u64)> {
    h.start(&bundle(h, "", FORKER));
    h.wait_process("ready", "connection/forker", DEADLINE, |p| {
        state(p) == "ready"
    });
    for key in ["a", "b"] {
        h.feed("feed.jsonl", &[msg("hello", key)]);
        h.wait_received("echo", key, 1);
    }
    h.wait_until("the grandchild's pid", DEADLINE, || {
        !grandchildren(&h.connection_log("forker")).is_empty()
    });
    let mut pids = grandchildren(&h.connection_log("forker"));
    for p in h.status() {
        for field in ["pid", "pgid"] {
            if let Some(n) = p[field].as_u64() {
                pids.push(n as u32);
            }
        }
    }
    pids.extend(h.child_pids());
    pids.sort_unstable();
    pids.dedup();
    for &p in &pids {
        assert!(pid_alive(p), "{p} runs before\n{}", h.dump());
    }
    // Each pid with its start time: a pid reused by another test's process
    // later is not one of ours still running.
    let pids: Vec<(u32, u64)> = pids
        .into_iter()
        .filter_map(|p| Some((p, e2e::start_time(p)?)))
        .collect();
    // 2 connections + 2 agents, and the grandchild.
    assert!(pids.len() >= 5, "{pids:?}");
    eprintln!("the tree: {pids:?}");
    pids
}

/// Waits up to 5 s for every process (pid, start time) to be gone; names the
/// survivors otherwise.
fn assert_all_gone(h: &Harness, pids: &[(u32, u64)], after: &str) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .filter(|&&(p, start)| e2e::same_process_alive(p, start))
            .map(|&(p, _)| p)
            .collect();
        if alive.is_empty() {
            return;
        }
        if Instant::now() > end {
            let who: Vec<String> = alive
                .iter()
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    format!("{p} ({})", cmd.trim())
                })
                .collect();
            panic!("still running 5s {after}: {}\n{}", who.join(", "), h.dump());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (9) `kill -9` of the orchestrator leaves no child and no grandchild.
#[test]
fn kill_9_of_the_orchestrator_leaves_no_child_or_grandchild() {
    let mut h = Harness::new();
    let pids = start_tree(&mut h);
    let _cleanup = KillOnDrop(pids.iter().map(|&(p, _)| p).collect());
    h.signal(libc::SIGKILL);
    let status = h.wait_exit(DEADLINE);
    assert_eq!(status.code(), None, "killed: {status}");
    assert_all_gone(&h, &pids, "after kill -9 of the orchestrator");
}

/// (9b) A graceful stop leaves no grandchild either.
#[test]
fn a_graceful_stop_leaves_no_grandchild() {
    let mut h = Harness::new();
    let pids = start_tree(&mut h);
    let _cleanup = KillOnDrop(pids.iter().map(|&(p, _)| p).collect());
    assert!(h.stop().success(), "{}", h.dump());
    assert_all_gone(&h, &pids, "after a graceful stop");
}

/// (9c) A manual restart of a child takes its grandchild down with the old process.
#[test]
fn a_manual_restart_leaves_no_old_grandchild() {
    let mut h = Harness::new();
    let pids = start_tree(&mut h);
    let mut cleanup = KillOnDrop(pids.iter().map(|&(p, _)| p).collect());
    let old = grandchildren(&h.connection_log("forker"))[0];
    let old = (old, e2e::start_time(old).expect("the grandchild runs"));
    let out = h.cli(&["restart", "connection/forker"]);
    assert!(out.status.success(), "{out:?}");
    h.wait_until("a new grandchild", DEADLINE, || {
        grandchildren(&h.connection_log("forker")).len() >= 2
    });
    cleanup.0.extend(grandchildren(&h.connection_log("forker")));
    assert_all_gone(&h, &[old], "after `orchestrator restart connection/forker`");
    assert!(h.stop().success(), "{}", h.dump());
}

/// (10a) An instance idle for `idleTimeout` is stopped; its next event starts a new process.
#[test]
fn an_idle_instance_stops_and_the_next_event_starts_it_again() {
    let mut h = Harness::new();
    h.start(&bundle(&h, "idleTimeout: 500ms", ""));
    h.feed("feed.jsonl", &[msg("one", "i")]);
    h.wait_received("echo", "i", 1);
    let first = agent_pids(&h.agent_log("echo", "i"));
    assert_eq!(first.len(), 1);

    let p = h.wait_process("stopped when idle", "agent/echo/i", DEADLINE, |p| {
        state(p) == "stopped"
    });
    assert_eq!(pid(&p), None, "{p}");
    h.wait_until("the first process to be gone", DEADLINE, || {
        !pid_alive(first[0])
    });
    let log = h.agent_log("echo", "i");
    let received = lines_with(&log, " received {")[0].0;
    let idle = lines_with(&log, " orchestrator idle: stopped until the next event");
    assert_eq!(idle.len(), 1, "{log}");
    let waited = gap(received, idle[0].0);
    eprintln!("delivery → idle stop: {waited:?} (idleTimeout 500ms)");
    assert!(waited >= Duration::from_millis(490), "{waited:?}\n{log}");
    assert_eq!(
        count_lines(&log, " orchestrator exited"),
        0,
        "not a crash\n{log}"
    );

    h.feed("feed.jsonl", &[msg("two", "i")]);
    h.wait_received("echo", "i", 2);
    let pids = agent_pids(&h.agent_log("echo", "i"));
    assert_eq!(pids.len(), 2, "{}", h.agent_log("echo", "i"));
    assert_ne!(pids[0], pids[1]);
    let p = h.wait_process("ready again", "agent/echo/i", DEADLINE, |p| {
        state(p) == "ready"
    });
    assert_eq!(pid(&p), Some(pids[1]), "{p}");
    assert_eq!(h.texts("echo", "i"), ["one", "two"]);
    assert!(h.stop().success(), "{}", h.dump());
}

/// (10b) With `maxInstances: 2`, three busy keys never have more than two
/// processes running at once, and every event is delivered, in order.
#[test]
fn max_instances_bounds_the_running_processes_and_delivers_everything() {
    let mut h = Harness::new();
    h.start(&bundle(&h, "maxInstances: 2", ""));
    wait_feeder(&h);
    let keys = ["a", "b", "c"];
    let rounds = 8;
    let (mut polls, mut most, mut most_listed) = (0, 0, 0);
    let mut listed_too_many = None;
    for round in 1..=rounds {
        let batch: Vec<Value> = keys
            .iter()
            .map(|k| msg(&format!("{k}{round}"), k))
            .collect();
        h.feed("feed.jsonl", &batch);
        h.wait_until("the round to be delivered", DEADLINE, || {
            let rows = h.status();
            let agents = rows.iter().filter(|p| p["name"] == "echo");
            // Processes that exist: the hard bound.
            let running: Vec<&Value> = agents.clone().filter(|p| pid(p).is_some()).collect();
            polls += 1;
            most = most.max(running.len());
            assert!(
                running.len() <= 2,
                "more than maxInstances running: {running:#?}\n{}",
                h.dump()
            );
            // What status calls running or starting.
            let listed: Vec<&Value> = agents
                .filter(|p| matches!(state(p), "ready" | "starting"))
                .collect();
            most_listed = most_listed.max(listed.len());
            if listed.len() > 2 && listed_too_many.is_none() {
                listed_too_many = Some(format!("{listed:#?}"));
            }
            keys.iter().all(|k| h.received("echo", k).len() >= round)
        });
    }
    eprintln!(
        "maxInstances 2: at most {most} processes ({most_listed} ready/starting rows) over {polls} polls"
    );
    for k in keys {
        let want: Vec<String> = (1..=rounds).map(|r| format!("{k}{r}")).collect();
        assert_eq!(h.texts("echo", k), want, "{k}\n{}", h.dump());
    }
    let evictions: usize = keys
        .iter()
        .map(|k| count_lines(&h.agent_log("echo", k), "making room for another instance"))
        .sum();
    assert!(evictions > 0, "idle instances made room\n{}", h.dump());
    assert!(h.stop().success(), "{}", h.dump());
    // `starting` means spawned and waiting for `ready` (status.rs); an
    // instance waiting for a slot has no process and should not say so.
    if let Some(rows) = listed_too_many {
        panic!("status showed more than maxInstances ready/starting rows: {rows}");
    }
}

/// (11) `restart agent/<name>` restarts every instance; an unknown target
/// and a missing orchestrator are clear errors.
#[test]
fn restart_an_agent_restarts_every_instance() {
    let mut h = Harness::new();
    h.start(&bundle(&h, "", ""));
    for key in ["x", "y"] {
        h.feed("feed.jsonl", &[msg("before", key)]);
        h.wait_received("echo", key, 1);
    }
    let before: Vec<(String, u32)> = ["x", "y"]
        .iter()
        .map(|k| {
            let target = format!("agent/echo/{k}");
            let p = h.wait_process("ready", &target, DEADLINE, |p| state(p) == "ready");
            (target, pid(&p).expect("pid"))
        })
        .collect();

    let out = h.cli(&["restart", "agent/echo"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "restarting agent/echo/x\nrestarting agent/echo/y\n"
    );
    for (target, old) in &before {
        let p = h.wait_process("ready in a new process", target, DEADLINE, |p| {
            state(p) == "ready" && pid(p).is_some_and(|p| p != *old)
        });
        assert!(p["restarts"].as_u64() >= Some(1), "{p}");
        h.wait_until("the old process to be gone", DEADLINE, || !pid_alive(*old));
    }
    for key in ["x", "y"] {
        let log = h.agent_log("echo", key);
        assert!(
            log.contains(" orchestrator manual restart: stopping the current process\n"),
            "{log}"
        );
        assert_eq!(agent_pids(&log).len(), 2, "{log}");
        h.feed("feed.jsonl", &[msg("after", key)]);
    }
    h.wait_received("echo", "x", 2);
    h.wait_received("echo", "y", 2);
    // The feeder was not touched.
    assert_eq!(h.process("connection/feed").expect("row")["restarts"], 0);

    let out = h.cli(&["restart", "agent/nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no process matches 'agent/nope'"), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(h.stop().success(), "{}", h.dump());

    // Nothing runs now: status and restart say where they looked.
    let socket = h.state().join("control.sock").display().to_string();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["restart", "agent/echo"],
    ] {
        let out = h.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&socket), "{args:?}: names the socket: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}

/// (12) The status table has one row per process: target, pid, state.
#[test]
fn the_status_table_lists_every_process() {
    let mut h = Harness::new();
    h.write_script("broken.sh", "#!/bin/sh\necho broken >&2\nexit 78\n");
    let extra = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: broken }
spec:
  entry: ./broken.sh
  events: [{ name: note }]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: broken }
spec: { connectorRef: Connector/broken }
"#;
    h.start(&bundle(&h, "", extra));
    for key in ["t1", "t2"] {
        h.feed("feed.jsonl", &[msg("hi", key)]);
        h.wait_received("echo", key, 1);
    }
    h.wait_process("failed", "connection/broken", DEADLINE, |p| {
        state(p) == "failed"
    });
    let rows = h.status();
    let targets: Vec<&str> = rows.iter().filter_map(|p| p["target"].as_str()).collect();
    assert_eq!(
        targets,
        [
            "connection/broken",
            "connection/feed",
            "agent/echo/t1",
            "agent/echo/t2"
        ],
        "connections first, then agents"
    );
    let out = h.cli(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        &header[..4],
        ["TARGET", "PID", "STATE", "RESTARTS"],
        "{table}"
    );
    let body: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(body.len(), rows.len(), "one row per process:\n{table}");
    for (cells, p) in body.iter().zip(&rows) {
        let pid = pid(p).map_or("-".to_string(), |p| p.to_string());
        assert_eq!(
            cells[..4],
            [
                p["target"].as_str().unwrap_or_default(),
                pid.as_str(),
                state(p),
                &p["restarts"].to_string()
            ],
            "{table}"
        );
    }
    assert!(
        table.contains("exit code 78"),
        "the last exit shows:\n{table}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// The issue's "done when": `kill -9` of an agent shows in `status` as a
/// restart with its cause, and `logs -f` shows the crash record.
#[test]
fn kill_9_of_an_agent_is_a_restart_with_its_cause_and_logs_f_shows_the_crash_record() {
    let mut h = Harness::new();
    h.start(&bundle(&h, "restart: { backoff: { initial: 100ms } }", ""));
    h.feed("feed.jsonl", &[msg("before", "k")]);
    h.wait_received("echo", "k", 1);
    let p = h.wait_process("ready", "agent/echo/k", DEADLINE, |p| state(p) == "ready");
    let old = pid(&p).expect("pid");
    let mut follow = h.follow_logs(&["-f", "-n", "1", "agent/echo/k"]);
    // Following once the last line is printed.
    assert!(follow.wait_line(Duration::from_secs(5), |_| true).is_some());
    // SAFETY: kill(2) on the agent's pid, as an operator would.
    assert_eq!(unsafe { libc::kill(old as libc::pid_t, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let Some((at, line)) = follow.wait_line(Duration::from_secs(5), |l| {
        l.contains(" orchestrator crash record: killed by signal 9")
    }) else {
        panic!(
            "logs -f showed no crash record:\n{}\n{}",
            follow.seen.join("\n"),
            h.dump()
        );
    };
    eprintln!(
        "kill -9 → crash record in logs -f: {:?}: {line}",
        at.duration_since(killed)
    );
    let p = h.wait_process("restarted", "agent/echo/k", DEADLINE, |p| {
        state(p) == "ready" && p["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(p["lastExit"], "killed by signal 9 (SIGKILL)", "{p}");
    // Killed from outside: the cause is the error, not its last stderr line.
    assert_eq!(p["lastError"], "killed by signal 9 (SIGKILL)", "{p}");
    assert_ne!(pid(&p), Some(old), "{p}");
    // It follows across the restart too.
    assert!(
        follow
            .wait_line(Duration::from_secs(5), |l| l
                .contains(" orchestrator ready"))
            .is_some(),
        "{}",
        follow.seen.join("\n")
    );
    drop(follow);
    h.feed("feed.jsonl", &[msg("after", "k")]);
    assert_eq!(h.wait_received("echo", "k", 2)[1]["text"], "after");
    assert!(h.stop().success(), "{}", h.dump());
}

/// `logs -f` of one file prints its lines the way `logs` does: without a
/// prefix, both the last lines it starts with and the lines that follow.
#[test]
fn logs_follow_of_one_file_prints_its_lines_unprefixed_throughout() {
    let mut h = Harness::new();
    h.start(&bundle(&h, "", ""));
    h.feed("feed.jsonl", &[msg("first", "u")]);
    h.wait_received("echo", "u", 1);
    let plain = h.cli(&["logs", "-n", "1", "agent/echo/u"]);
    let plain = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(
        !plain.contains(" | "),
        "`logs` of one file: no prefix: {plain}"
    );
    let mut follow = h.follow_logs(&["-f", "-n", "1", "agent/echo/u"]);
    let first = follow.wait_line(Duration::from_secs(5), |_| true);
    h.feed("feed.jsonl", &[msg("second", "u")]);
    let second = follow.wait_line(Duration::from_secs(5), |l| {
        l.contains("\"text\":\"second\"")
    });
    let (first, second) = (
        first.expect("a first line").1,
        second.expect("the new line").1,
    );
    assert!(!first.contains(" | "), "{first}");
    assert!(
        !second.contains(" | "),
        "a followed line is printed like the ones before it:\n{first}\n{second}"
    );
    drop(follow);
    assert!(h.stop().success(), "{}", h.dump());
}

/// `logs -f` follows a file across its rotations without losing a line:
/// 4,000 numbered 8 KB lines at 1,000 a second (below the flood limit) make
/// the file rotate three times while it is followed.
#[test]
fn logs_follow_loses_no_line_across_rotation() {
    let mut h = Harness::new();
    let trigger = h.path("go").display().to_string();
    let extra = format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: counter }}
spec:
  entry: test-peer
  args: [count, "1000", "4", "8000", "{trigger}"]
  events: [{{ name: note }}]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: counter }}
spec: {{ connectorRef: Connector/counter }}
"#
    );
    h.start(&bundle(&h, "", &extra));
    h.wait_process("ready", "connection/counter", DEADLINE, |p| {
        state(p) == "ready"
    });
    let mut follow = h.follow_logs(&["-f", "-n", "1", "connection/counter"]);
    assert!(follow.wait_line(Duration::from_secs(5), |_| true).is_some());
    h.write("go", "");
    let done = follow.wait_line(Duration::from_secs(30), |l| {
        l.contains(" stderr count done: ")
    });
    let number = |l: &str| -> Option<u64> {
        let rest = l.split_once(" stderr count ")?.1;
        rest.split_whitespace().next()?.parse().ok()
    };
    // What the files hold (current and rotated): every line, in order.
    let dir = h.state().join("logs/connections");
    let mut in_files = Vec::new();
    for name in [
        "counter.log.5",
        "counter.log.4",
        "counter.log.3",
        "counter.log.2",
        "counter.log.1",
        "counter.log",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        in_files.extend(text.lines().filter_map(number));
    }
    let want: Vec<u64> = (1..=4000).collect();
    assert_eq!(in_files, want, "the files hold every line");
    assert!(dir.join("counter.log.1").exists(), "the file rotated");
    assert!(
        done.is_some(),
        "logs -f did not show the end; {} lines seen",
        follow.seen.len()
    );
    let shown: Vec<u64> = follow.seen.iter().filter_map(|l| number(l)).collect();
    let missing: Vec<u64> = want
        .iter()
        .copied()
        .filter(|n| !shown.contains(n))
        .collect();
    // Missing lines as ranges, and where each rotated file ends, to compare.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &n in &missing {
        match ranges.last_mut() {
            Some(r) if r.1 + 1 == n => r.1 = n,
            _ => ranges.push((n, n)),
        }
    }
    let ends: Vec<u64> = (1..=5)
        .rev()
        .filter_map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("counter.log.{i}"))).ok()?;
            text.lines().filter_map(number).next_back()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "logs -f lost {} of 4000 lines across rotation: {ranges:?}; the rotated files end at lines {ends:?}",
        missing.len(),
    );
    assert_eq!(shown, want, "each line once, in order");
    drop(follow);
    assert!(h.stop().success(), "{}", h.dump());
}
