//! `user: dynamic` and `capabilities` (issue 9, items 2, 4 and 5): each
//! child its own uid, its state directory its own, unable to read or signal
//! another; capabilities dropped but those kept; an ordinary program still
//! works confined.
//!
//! These tests need root (as CI runs them) and fail without it, unless
//! `E2E_SKIP_ROOT=1` says to skip them.

mod sandbox_common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

use e2e::{DEADLINE, Harness};
use sandbox_common::*;

#[test]
fn dynamic_users_are_distinct_and_cannot_touch_each_other() {
    if !root() {
        return;
    }
    let mut h = Harness::new();
    // The bundle directory must be readable by the children's uids.
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = bundle("{ user: dynamic }", "self state").replace(
        "connectorRef: Connector/probe\n  secrets",
        "connectorRef: Connector/probe\n  config: { CHECKS: \"self state\" }\n  secrets",
    );
    h.start(&text);
    let (log_p, log_o) = (checks_done(&h, "p"), checks_done(&h, "other"));
    allowed(&log_p, "state");
    allowed(&log_o, "state");
    let p = h.process("connection/p").expect("status row");
    let o = h.process("connection/other").expect("status row");
    let (uid_p, gid_p) = uid_of(&p["pid"]);
    let (uid_o, gid_o) = uid_of(&o["pid"]);
    assert_ne!(uid_p, uid_o, "each child its own uid");
    for (uid, gid) in [(uid_p, gid_p), (uid_o, gid_o)] {
        assert!((61_000..=61_999).contains(&uid), "{uid} from --uid-range");
        assert_eq!(uid, gid);
    }
    assert!(
        limit(&p, "user")["note"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("uid {uid_p}")),
        "{p:#}"
    );
    // Each state directory: its uid's, 0700, with what it wrote.
    for (name, uid) in [("p", uid_p), ("other", uid_o)] {
        let dir = h.state().join("state/connections").join(name);
        let meta = std::fs::metadata(&dir).expect("state dir");
        assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700), "{name}");
        let file = std::fs::metadata(dir.join("probe")).expect("written");
        assert_eq!(file.uid(), uid, "{name}");
    }
    // As p's uid, go after other's process.
    let target = o["pid"].to_string();
    let attacks: Vec<String> = ["mem", "environ", "ptrace", "kill"]
        .iter()
        .map(|a| format!("{a}:{target}"))
        .collect();
    let out = std::process::Command::new(e2e::bin("sandbox-probe"))
        .arg("attack")
        .args(&attacks)
        .uid(uid_p)
        .gid(gid_p)
        .output()
        .expect("run the attack");
    let text = String::from_utf8_lossy(&out.stdout);
    for attack in &attacks {
        refused(&text, attack);
    }
    // Released when it stops: restarted, p gets its uid back (held, the
    // next free one would be another).
    let before = p["pid"].as_u64();
    let out = h.cli(&["restart", "connection/p"]);
    assert!(out.status.success(), "{out:?}");
    let again = h.wait_process("p restarted", "connection/p", DEADLINE, |r| {
        r["state"] == "ready" && r["pid"].as_u64().is_some() && r["pid"].as_u64() != before
    });
    assert_eq!(uid_of(&again["pid"]).0, uid_p, "{again:#}");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn capabilities_are_dropped_but_those_the_bundle_keeps() {
    if !root() {
        return;
    }
    // Root without capabilities cannot even bind a privileged port.
    let mut h = Harness::new();
    h.start(&bundle("{ network: { mode: loopback } }", "bind:80 self"));
    let log = checks_done(&h, "p");
    refused(&log, "bind:80");
    assert!(
        outcome(&log, "self").contains("capbnd=0000000000000000"),
        "{log}"
    );
    assert!(h.stop().success(), "{}", h.dump());

    // A dynamic user keeps what it is given, and nothing else.
    let mut h = Harness::new();
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sandbox =
        "{ user: dynamic, network: { mode: loopback }, capabilities: [NET_BIND_SERVICE] }";
    h.start(&bundle(sandbox, "bind:80 self"));
    let log = checks_done(&h, "p");
    allowed(&log, "bind:80");
    let me = outcome(&log, "self");
    for want in [
        "capeff=0000000000000400",
        "capprm=0000000000000400",
        "capbnd=0000000000000400",
        "nnp=1",
    ] {
        assert!(me.contains(want), "{want}: {me}");
    }
    assert!(!me.contains("uid=0 "), "{me}");
    let row = h.process("connection/p").expect("status row");
    assert_eq!(
        limit(&row, "capabilities")["value"],
        "keeps CAP_NET_BIND_SERVICE"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// The confinement leaves an ordinary program working: the Python example
/// agent, as a dynamic user with no network, answers its deliveries.
#[test]
fn a_python_agent_runs_confined_as_a_dynamic_user() {
    if !root() {
        return;
    }
    let mut h = Harness::new();
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.copy_example("agents/echo.py");
    let bundle = e2e::feeder_bundle(
        &h,
        "sandbox: { user: dynamic, network: { mode: none }, resources: { nofile: 256 } }",
        "",
    )
    .replace(
        "entry: agent-echo\n  protocol: frames",
        "entry: ./echo.py\n  protocol: jsonl",
    );
    h.start(&bundle);
    h.feed("feed.jsonl", &[e2e::feed_msg("hello", "k")]);
    let got = h.wait_received("echo", "k", 1);
    assert_eq!(got[0]["text"], "hello", "{got:?}");
    let row = h.process("agent/echo/k").expect("status row");
    let (uid, _) = uid_of(&row["pid"]);
    assert!((61_000..=61_999).contains(&uid), "{row:#}");
    assert_eq!(limit(&row, "filesystem")["enforced"], true, "{row:#}");
    assert!(h.stop().success(), "{}", h.dump());
}
