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
