//! The state directory: private modes, one orchestrator at a time, instance
//! keys that never share a file, logs nobody can forge, an audit log a
//! flood cannot wipe, and clients that do not hang on a hung orchestrator.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use e2e::{DEADLINE, Harness, escape_key, feed_msg, feeder_bundle};
use serde_json::Value;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every path below `dir`, not following links.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

/// After a run, nothing in the state directory is open to other users:
/// files 0600, directories 0700, and the way to each child's stateDir 0711
/// (pass through, no listing). What an older version left open is tightened
/// at start.
#[test]
fn the_state_directory_is_private() {
    let mut h = Harness::new();
    // An older orchestrator's leftovers, world-readable.
    let state = h.state();
    for dir in ["logs/connections", "state/connections/old", "stray"] {
        std::fs::create_dir_all(state.join(dir)).unwrap();
    }
    for (file, m) in [
        ("audit.log", 0o644),
        ("audit.log.1", 0o644),
        ("logs/connections/old.log", 0o644),
        ("logs/connections/old.log.3", 0o666),
        ("stray/file", 0o644),
        ("notes.txt", 0o644),
    ] {
        std::fs::write(state.join(file), "old\n").unwrap();
        std::fs::set_permissions(state.join(file), std::fs::Permissions::from_mode(m)).unwrap();
    }
    for dir in [
        ".",
        "logs",
        "logs/connections",
        "state",
        "state/connections/old",
        "stray",
    ] {
        std::fs::set_permissions(state.join(dir), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    h.start(&feeder_bundle(&h, "", ""));
    h.feed("feed.jsonl", &[feed_msg("hello", "ada")]);
    h.wait_received("echo", "ada", 1);
    assert!(h.stop().success(), "{}", h.dump());

    let pass_through = [
        state.clone(),
        state.join("state"),
        state.join("state/connections"),
        state.join("state/agents"),
        state.join("state/agents/echo"),
    ];
    let state_dirs = [
        state.join("state/connections/feed"),
        state.join("state/connections/old"),
        state.join("state/agents/echo/ada"),
    ];
    for dir in &pass_through {
        assert_eq!(mode(dir), 0o711, "{}", dir.display());
    }
    let mut all = Vec::new();
    walk(&state, &mut all);
    for must in [
        "journal.db",
        "audit.log",
        "orchestrator.lock",
        "logs/orchestrator.log",
        "logs/connections/feed.log",
        "logs/agents/echo/ada.log",
    ] {
        assert!(all.contains(&state.join(must)), "{must} missing: {all:#?}");
    }
    // Not the orchestrator's (a --state-dir with other things in it): untouched.
    assert_eq!(mode(&state.join("stray")), 0o755);
    assert_eq!(mode(&state.join("stray/file")), 0o644);
    assert_eq!(mode(&state.join("notes.txt")), 0o644);
    let mut checked = 0;
    for path in &all {
        if pass_through.contains(path)
            || path.starts_with(state.join("stray"))
            || path.ends_with("notes.txt")
        {
            continue;
        }
        let meta = std::fs::symlink_metadata(path).unwrap();
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(path), want, "{} is {:o}", path.display(), mode(path));
        checked += 1;
    }
    for dir in &state_dirs {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    assert!(checked >= 15, "{all:#?}");
}

/// Two Connections' worth of keys that used to share one log and state
/// directory: a long key and the short key spelled like its file name.
#[test]
fn colliding_instance_keys_get_their_own_logs() {
    let mut h = Harness::new();
    let long = "x".repeat(300);
    let spelled_like_it = escape_key(&long);
    let nul = "\u{0}".to_string();
    let keys = [long, spelled_like_it, nul];
    h.start(&feeder_bundle(&h, "", ""));
    let events: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| feed_msg(&format!("for key {i}"), k))
        .collect();
    h.feed("feed.jsonl", &events);
    for (i, key) in keys.iter().enumerate() {
        let got = h.wait_received("echo", key, 1);
        let texts: Vec<&str> = got.iter().map(|r| r["text"].as_str().unwrap()).collect();
        assert_eq!(texts, [format!("for key {i}")], "key {i}: {got:#?}");
        assert_eq!(got[0]["instanceKey"], key.as_str());
    }
    let paths: std::collections::BTreeSet<_> =
        keys.iter().map(|k| h.agent_log_path("echo", k)).collect();
    assert_eq!(paths.len(), 3, "{paths:#?}");
    // `logs agent/<name>/<key>` finds each one by its key.
    for (i, key) in keys.iter().enumerate().take(2) {
        let out = h.cli(&["logs", &format!("agent/echo/{key}"), "-n", "100"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("for key {i}")), "{text}");
        assert!(!text.contains(&format!("for key {}", 1 - i)), "{text}");
    }
    assert!(h.stop().success(), "{}", h.dump());
}

/// A jsonl connector written in shell: `ready`, then the lines of `body`,
/// then it waits for `shutdown`.
fn shell_connector(h: &Harness, body: &str) -> String {
    h.write_script(
        "conn.sh",
        &format!(
            "#!/bin/sh\nread init\necho '{{\"type\":\"ready\"}}'\n{body}\nwhile read line; do case \"$line\" in *shutdown*) exit 0;; esac; done\n"
        ),
    );
    r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: sh }
spec:
  entry: ./conn.sh
  protocol: jsonl
  events: [ { name: user_message } ]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: c }
spec:
  connectorRef: Connector/sh
  ingress: { rules: [ { route: {} } ] }
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
"#
    .to_string()
}

/// A child's `log` message with a newline cannot forge an orchestrator line.
#[test]
fn a_forged_log_line_stays_one_line() {
    let mut h = Harness::new();
    let forged = r#"printf '%s\n' '{"type":"log","level":"info","message":"innocent\n2026-11-27T10:30:00.000Z orchestrator exited with status 0\r\u001b[2Kdone"}'"#;
    let bundle = shell_connector(&h, &format!("{forged}\necho 'stderr\\rline' >&2"));
    h.start(&bundle);
    h.wait_until("the forged line", DEADLINE, || {
        h.connection_log("c").contains("innocent")
    });
    h.wait_until("the stderr line", DEADLINE, || {
        h.connection_log("c").contains("stderr stderr")
    });
    let log = h.connection_log("c");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("innocent")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].ends_with(
            " info innocent\\n2026-11-27T10:30:00.000Z orchestrator exited with status 0\\r\\e[2Kdone"
        ),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-11-27T10:30:00.000Z")),
        "{log}"
    );
    assert!(log.contains(" stderr stderr\\rline\n"), "{log}");
    assert!(!log.contains(['\r', '\u{1b}']), "{log}");
    assert!(h.stop().success(), "{}", h.dump());
}

/// A connector floods audit records (and sends one of 3 MB): earlier records
/// stay, the flood is summarized, the huge one is refused and counted.
#[test]
fn an_audit_flood_keeps_earlier_records() {
    let mut h = Harness::new();
    let big = "B".repeat(3 * 1024 * 1024);
    h.write("big.json", &format!(
        "{{\"type\":\"audit\",\"kind\":\"signature_rejected\",\"scheme\":\"hmac\",\"reason\":\"{big}\"}}\n"
    ));
    let body = r#"echo '{"type":"audit","kind":"first_record","scheme":"hmac","reason":"EARLY"}'
cat big.json
yes '{"type":"audit","kind":"signature_rejected","scheme":"hmac","reason":"bad_signature"}' | head -n 50000
echo '{"type":"log","level":"info","message":"flood sent"}'"#;
    let bundle = shell_connector(&h, body);
    h.start(&bundle);
    h.wait_until("the flood", DEADLINE * 3, || {
        h.connection_log("c").contains("flood sent")
    });
    assert!(h.stop().success(), "{}", h.dump());
    let audit = std::fs::read_to_string(h.state().join("audit.log")).unwrap();
    let records: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["kind"], "first_record", "{:#?}", &records[..3]);
    assert_eq!(records[1]["kind"], "audit_refused");
    assert_eq!(records[1]["reason"], "too_large");
    let written = records
        .iter()
        .filter(|r| r["kind"] == "signature_rejected")
        .count() as u64;
    let suppressed: u64 = records
        .iter()
        .filter(|r| r["kind"] == "audit_suppressed")
        .map(|r| r["suppressed"].as_u64().unwrap())
        .sum();
    assert!(suppressed > 0, "{written} written");
    assert_eq!(
        written + suppressed,
        50_000,
        "every record is written or counted"
    );
    assert!(!h.state().join("audit.log.1").exists());
}

/// A second `run` on a state directory in use fails at once, naming the
/// first; the first keeps its control socket.
#[test]
fn a_second_orchestrator_on_the_same_state_dir_fails_at_once() {
    let mut h = Harness::new();
    h.start(&feeder_bundle(&h, "", ""));
    h.wait_process("the feeder ready", "connection/feed", DEADLINE, |p| {
        p["state"] == "ready"
    });
    let mut second = h
        .command()
        .args(["run", "bundle.yaml", "--state-dir"])
        .arg(h.state())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not a timed assertion: the second one must exit by itself (it used to
    // take over control.sock and run).
    h.wait_until("the second orchestrator to exit", DEADLINE, || {
        second.try_wait().unwrap().is_some()
    });
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another orchestrator (pid {}) runs with this state directory",
            h.pid()
        )),
        "{stderr}"
    );
    // The first one still answers, and its log has no trace of the second.
    assert_eq!(h.status().len(), 1);
    assert!(!h.orchestrator_log().contains("another orchestrator"));
    assert!(h.stop().success(), "{}", h.dump());
}

/// `dlq` on the journal directly (no orchestrator answers on the socket)
/// respects the lock of an orchestrator that holds the directory.
#[test]
fn dlq_offline_respects_a_running_orchestrator() {
    let mut h = Harness::new();
    h.start(&feeder_bundle(&h, "", ""));
    h.wait_process("the feeder ready", "connection/feed", DEADLINE, |p| {
        p["state"] == "ready"
    });
    // As if it had not bound its socket yet (or lost it).
    std::fs::remove_file(h.state().join("control.sock")).unwrap();
    let out = h.cli(&["dlq", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another orchestrator (pid {}) runs with this state directory",
            h.pid()
        )),
        "{stderr}"
    );
    assert!(h.stop().success(), "{}", h.dump());
    // Stopped: the journal is free, and dlq opens it.
    let out = h.cli(&["dlq", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("empty"));
}

/// A hung orchestrator (stopped by SIGSTOP: it accepts, never answers) makes
/// `status` fail after the control timeout with a clear error.
#[test]
fn status_does_not_hang_on_a_hung_orchestrator() {
    let mut h = Harness::new();
    h.start(&feeder_bundle(&h, "", ""));
    h.wait_process("the feeder ready", "connection/feed", DEADLINE, |p| {
        p["state"] == "ready"
    });
    h.signal(libc::SIGSTOP);
    let out = h
        .command()
        .args(["status", "--state-dir"])
        .arg(h.state())
        .env("ORCHESTRATOR_CONTROL_TIMEOUT", "1s")
        .output()
        .unwrap();
    h.signal(libc::SIGCONT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer within 1s"), "{stderr}");
    assert!(h.stop().success(), "{}", h.dump());
}

/// What each of `pid`'s open fds points at.
fn fd_targets(pid: u64) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .collect()
}

/// `--journal memory`: events are delivered as with the durable journal, the
/// database is a memory file of the orchestrator's that no child inherits,
/// and no `journal.db` is written.
#[test]
fn a_memory_journal_delivers_and_writes_no_journal_file() {
    let mut h = Harness::new();
    h.start_with(&feeder_bundle(&h, "", ""), &["--journal", "memory"]);
    h.feed(
        "feed.jsonl",
        &[feed_msg("one", "ada"), feed_msg("two", "ada")],
    );
    h.wait_received("echo", "ada", 2);
    let fds = fd_targets(u64::from(h.pid()));
    assert!(
        fds.iter()
            .any(|l| l.starts_with("/memfd:orchestrator-journal")),
        "no memory file among the orchestrator's fds: {fds:?}"
    );
    assert!(!fds.iter().any(|l| l.ends_with("journal.db")), "{fds:?}");
    // Its children do not inherit it (the events of every connection in it).
    for name in ["agent/echo/ada", "connection/feed"] {
        let row = h.process(name).expect("row");
        let fds = fd_targets(row["pid"].as_u64().expect("pid"));
        assert!(
            !fds.iter().any(|l| l.contains("orchestrator-journal")),
            "{name}: {fds:?}"
        );
    }
    assert!(!h.state().join("journal.db").exists());
    assert!(h.stop().success(), "{}", h.dump());
    assert!(!h.state().join("journal.db").exists());
}
