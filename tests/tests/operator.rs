//! The operator verbs on targets that do not exist: a clear failure, never
//! an empty answer that looks like success.

use e2e::{DEADLINE, Harness, feeder_bundle};

#[test]
fn logs_of_a_target_that_matches_nothing_fails() {
    let mut h = Harness::new();
    h.feed("feed.jsonl", &[]);
    h.start(&feeder_bundle(&h, "", ""));
    h.wait_process("ready", "connection/feed", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    for target in ["agent/nope", "agent/echo/nobody", "connection/nope"] {
        for follow in [false, true] {
            let mut args = vec!["logs", target];
            if follow {
                args.push("-f");
            }
            let out = h.cli(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("no process matches '{target}'")),
                "{args:?}: {stderr}"
            );
        }
    }
    // An Agent of the bundle with no instance yet is a fine target.
    let out = h.cli(&["logs", "agent/echo"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = h.cli(&["logs", "connection/feed"]);
    assert_eq!(out.status.code(), Some(0));
    let out = h.cli(&["logs", "nonsense"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed target is a usage error"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn status_shows_agents_without_instances_and_one_process_in_detail() {
    let mut h = Harness::new();
    h.feed("feed.jsonl", &[]);
    h.start(&feeder_bundle(&h, "", ""));
    h.wait_process("ready", "connection/feed", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let text = |args: &[&str]| {
        let out = h.cli(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = text(&["status"]);
    assert!(table.contains("agent/echo (no instances)"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&text(&["status", "--json"])).expect("json");
    assert_eq!(
        json["agents"],
        serde_json::json!([{"name": "echo", "instances": 0}])
    );

    h.feed("feed.jsonl", &[e2e::feed_msg("hi", "k")]);
    h.wait_received("echo", "k", 1);
    let row = h.wait_process("ready", "agent/echo/k", DEADLINE, |p| {
        e2e::state_of(p) == "ready"
    });
    let pid = row["pid"].as_u64().expect("pid") as i32;
    // SAFETY: kill(2) on the agent this test started; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    h.wait_process("restarted", "agent/echo/k", DEADLINE, |p| {
        p["restarts"].as_u64().unwrap_or(0) >= 1
    });
    let detail = text(&["status", "agent/echo/k"]);
    assert!(detail.starts_with("agent/echo/k\n"), "{detail}");
    for want in [
        "  restarts    1",
        "  last exit   killed by signal 9 (SIGKILL)",
        "  last error  killed by signal 9 (SIGKILL)",
        "  last crash record",
        "orchestrator crash record: killed by signal 9",
    ] {
        assert!(detail.contains(want), "{want:?} in\n{detail}");
    }
    let table = text(&["status"]);
    assert!(!table.contains("(no instances)"), "{table}");
    let out = h.cli(&["status", "connection/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no process matches 'connection/nope'"));
    assert!(h.stop().success(), "{}", h.dump());
}
