//! `spec.sandbox`: each limit holds inside a real child (`sandbox-probe`
//! tries what it should not be able to do and prints the outcome), the IPC
//! socket keeps working, and `status` names each limit's mechanism.
//!
//! These tests run as root (as CI does), where the orchestrator uses network
//! namespaces and cgroup v1. The unprivileged half runs the orchestrator as
//! `nobody` (user namespaces, rlimit fallbacks). Without root they fail,
//! unless `E2E_SKIP_ROOT=1` says to skip them knowingly.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::time::{Duration, Instant};

use e2e::{DEADLINE, Harness};
use serde_json::Value;

const SECRET: &str = "s3cr3t-value-that-must-not-leak";

/// A probe connection with `sandbox` (YAML flow mapping) and `CHECKS`; its
/// events go to a test-agent (with `agent_sandbox`, if any).
fn bundle(sandbox: &str, checks: &str, agent_sandbox: &str) -> String {
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
spec: {{ entry: test-agent, protocol: frames {agent_sandbox} }}
"#
    )
}

/// Whether the test can run (as root): without root it fails, unless
/// `E2E_SKIP_ROOT=1` says to skip it knowingly.
fn root_or_skip() -> bool {
    e2e::require_root()
}

/// Waits for the probe to finish its checks; returns its log.
fn checks_done(h: &Harness) -> String {
    h.wait_until("the probe to finish its checks", DEADLINE, || {
        h.connection_log("p").contains("stdout checks done")
    });
    h.connection_log("p")
}

/// The outcome line of `check` (`ok …` or `err …`).
fn outcome<'a>(log: &'a str, check: &str) -> &'a str {
    let needle = format!(" check {check}: ");
    log.lines()
        .find_map(|l| l.split_once(&needle).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no outcome for {check}\n{log}"))
}

/// The number at the end of an `ok <word> N` outcome.
fn count(log: &str, check: &str) -> u64 {
    let o = outcome(log, check);
    o.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{check}: {o}\n{log}"))
}

/// The sandbox entry of `limit` in a status row.
fn limit(row: &Value, name: &str) -> Value {
    row["sandbox"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["limit"] == name).cloned())
        .unwrap_or_else(|| panic!("no sandbox entry {name} in {row:#}"))
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

fn net_ns(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn sandbox_none_has_no_network_but_its_ipc_socket_works() {
    if !root_or_skip() {
        return;
    }
    let (_host, port) = listener();
    let mut h = Harness::new();
    h.start(&bundle(
        "{ network: { mode: none } }",
        &format!("connect:{port} loop:0 secret:TOKEN setns"),
        "",
    ));
    let log = checks_done(&h);
    // Refused by seccomp, or already opening the namespace of a process
    // outside its own (Landlock, not dumpable).
    assert!(
        outcome(&log, "setns").starts_with("err"),
        "it cannot join the host's network namespace\n{log}"
    );
    assert!(
        outcome(&log, &format!("connect:{port}")).starts_with("err"),
        "{log}"
    );
    assert!(
        outcome(&log, "loop:0").starts_with("err"),
        "no lo either\n{log}"
    );
    assert!(outcome(&log, "secret:TOKEN").starts_with("ok"), "{log}");
    assert!(log.contains("stdout ack 1"), "the IPC socket works\n{log}");
    let row = h.process("connection/p").expect("status row");
    let pid = row["pid"].to_string();
    assert_ne!(net_ns(&pid), net_ns("self"), "its own network namespace");
    assert_eq!(
        limit(&row, "network")["mechanism"],
        "netns, seccomp",
        "{row:#}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn sandbox_loopback_reaches_its_own_lo_but_not_the_host() {
    if !root_or_skip() {
        return;
    }
    let (_host, port) = listener();
    let mut h = Harness::new();
    h.start(&bundle(
        "{ network: { mode: loopback } }",
        &format!("loop:0 connect:{port}"),
        "",
    ));
    let log = checks_done(&h);
    assert!(outcome(&log, "loop:0").starts_with("ok"), "{log}");
    assert!(
        outcome(&log, &format!("connect:{port}")).starts_with("err"),
        "{log}"
    );
    assert!(log.contains("stdout ack 1"), "{log}");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn sandbox_allowlist_allows_only_its_ports() {
    if !root_or_skip() {
        return;
    }
    let (_allowed, allowed) = listener();
    let (_other, other) = listener();
    let (bind_ok, bind_no) = (free_port(), free_port());
    let mut h = Harness::new();
    let sandbox = format!(
        "{{ network: {{ mode: allowlist, bindTcp: [{bind_ok}], connectTcp: [{allowed}, {bind_ok}] }} }}"
    );
    let checks = format!(
        "bind:{bind_ok} bind:{bind_no} connect:{allowed} connect:{other} loop:{bind_ok} netlink"
    );
    h.start(&bundle(&sandbox, &checks, ""));
    let log = checks_done(&h);
    for (check, ok) in [
        (format!("bind:{bind_ok}"), true),
        (format!("bind:{bind_no}"), false),
        (format!("connect:{allowed}"), true),
        (format!("connect:{other}"), false),
        (format!("loop:{bind_ok}"), true),
        ("netlink".to_string(), false),
    ] {
        let o = outcome(&log, &check);
        assert_eq!(o.starts_with("ok"), ok, "{check}: {o}\n{log}");
    }
    assert!(log.contains("stdout ack 1"), "{log}");
    let row = h.process("connection/p").expect("status row");
    let net = limit(&row, "network");
    let mechanism = net["mechanism"].as_str().unwrap_or_default();
    assert!(
        mechanism.starts_with("landlock-abi-") && mechanism.ends_with(", seccomp"),
        "{net}"
    );
    assert!(
        net["note"].as_str().unwrap_or_default().contains("UDP"),
        "{net}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn sandbox_memory_hog_is_killed_at_memory_max_as_oom() {
    if !root_or_skip() {
        return;
    }
    let mut h = Harness::new();
    h.start(&bundle("{ resources: { memoryMax: 64Mi } }", "hog:512", ""));
    let row = h.wait_process("ended", "connection/p", DEADLINE, |p| {
        p["lastExit"].is_string()
    });
    assert_eq!(
        row["lastExit"], "oom: killed by the OOM killer at memoryMax",
        "{row:#}"
    );
    assert_eq!(
        limit(&row, "memoryMax")["mechanism"],
        "cgroup-v1",
        "{row:#}"
    );
    // The log is written by its own thread: wait for the line, not the status.
    h.wait_until("the OOM note in the log", DEADLINE, || {
        h.connection_log("p").contains("OOM killer")
    });
    let log = h.connection_log("p");
    assert!(!log.contains("ok survived"), "{log}");
    h.stop();
}

#[test]
fn sandbox_fork_bomb_stops_at_tasks_max() {
    if !root_or_skip() {
        return;
    }
    let mut h = Harness::new();
    h.start(&bundle(
        "{ resources: { tasksMax: 16, cpuQuota: 50% } }",
        "fork:200",
        "",
    ));
    let log = checks_done(&h);
    let forked = count(&log, "fork:200");
    assert!(forked > 0 && forked < 16, "forked {forked}\n{log}");
    // Its own cgroups, with the limits written.
    let row = h.process("connection/p").expect("status row");
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", row["pid"])).unwrap();
    for (controller, file, value) in [
        ("pids", "pids.max", "16"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
    ] {
        let path = cgroups
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
                list.split(',')
                    .any(|c| c == controller)
                    .then(|| path.to_string())
            })
            .unwrap_or_else(|| panic!("no {controller} cgroup in {cgroups}"));
        assert!(path.contains("/orchestrator/"), "{controller}: {path}");
        let written = std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}{path}/{file}"));
        assert_eq!(
            written.unwrap_or_default().trim(),
            value,
            "{controller}: {path}"
        );
    }
    assert_eq!(limit(&row, "cpuQuota")["mechanism"], "cgroup-v1", "{row:#}");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn sandbox_nofile_holds() {
    if !root_or_skip() {
        return;
    }
    let mut h = Harness::new();
    h.start(&bundle(
        "{ resources: { nofile: 32, core: 0 } }",
        "nofile:200",
        "",
    ));
    let log = checks_done(&h);
    let opened = count(&log, "nofile:200");
    assert!(opened > 0 && opened < 32, "opened {opened}\n{log}");
    let row = h.process("connection/p").expect("status row");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", row["pid"])).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("32"), "{limits}");
    assert_eq!(limit(&row, "nofile")["mechanism"], "rlimit");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn sandbox_child_environ_and_cmdline_hold_no_secret() {
    if !root_or_skip() {
        return;
    }
    let mut h = Harness::new();
    h.start(&bundle(
        "{ network: { mode: none }, resources: { memoryMax: 256Mi } }",
        "secret:TOKEN",
        "",
    ));
    let log = checks_done(&h);
    assert!(
        outcome(&log, "secret:TOKEN").starts_with("ok"),
        "it did get it\n{log}"
    );
    let row = h.process("connection/p").expect("status row");
    // The program and the shim above it.
    for pid in [&row["pid"], &row["pgid"]] {
        for file in ["environ", "cmdline"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(SECRET), "/proc/{pid}/{file}: {text}");
            assert!(!text.contains("TOKEN"), "/proc/{pid}/{file}: {text}");
        }
    }
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn sandbox_user_runs_the_child_as_that_user_with_a_usable_state_dir() {
    if !root_or_skip() {
        return;
    }
    let mut h = Harness::new();
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.start(&bundle(
        "{ user: nobody, resources: { tasksMax: 32 } }",
        "state fork:4",
        "",
    ));
    let log = checks_done(&h);
    assert!(outcome(&log, "state").starts_with("ok"), "{log}");
    let row = h.process("connection/p").expect("status row");
    let status = std::fs::read_to_string(format!("/proc/{}/status", row["pid"])).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some("65534"), "{status}");
    assert_eq!(limit(&row, "user")["mechanism"], "setuid");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn sandbox_of_an_agent_applies_to_each_instance() {
    if !root_or_skip() {
        return;
    }
    let mut h = Harness::new();
    h.start(&bundle(
        "{ mode: off }",
        "",
        ", sandbox: { network: { mode: none }, resources: { nofile: 48 } }",
    ));
    let pid = h.wait_process("an agent instance ready", "agent/a/probe", DEADLINE, |p| {
        p["state"] == "ready"
    })["pid"]
        .to_string();
    assert_ne!(net_ns(&pid), net_ns("self"));
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 48 ")),
        "{limits}"
    );
    h.wait_received("a", "probe", 1);
    let row = h.process("connection/p").expect("status row");
    assert!(
        row["sandbox"].as_array().is_some_and(Vec::is_empty),
        "mode off: {row:#}"
    );
    assert!(h.stop().success(), "{}", h.dump());
}

/// An orchestrator started with extra environment and maybe another uid;
/// stopped with SIGTERM when dropped.
struct Custom(Child);

impl Custom {
    fn start(h: &Harness, env: &[(&str, &str)], uid: Option<u32>) -> Self {
        let stdout = File::create(h.path("orchestrator.stdout")).expect("stdout file");
        let stderr = File::create(h.path("orchestrator.stderr")).expect("stderr file");
        let mut cmd = h.command();
        cmd.args(["run", "bundle.yaml", "--state-dir"])
            .arg(h.state())
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        Custom(cmd.spawn().expect("spawn orchestrator"))
    }
}

impl Drop for Custom {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sandbox_enforce_refuses_a_limit_it_cannot_apply() {
    if !root_or_skip() {
        return;
    }
    let h = Harness::new();
    h.write(
        "bundle.yaml",
        &bundle("{ resources: { tasksMax: 16, nofile: 64 } }", "", ""),
    );
    let _run = Custom::start(&h, &[("ORCHESTRATOR_SANDBOX_DISABLE", "cgroup")], None);
    let row = h.wait_process("failed", "connection/p", DEADLINE, |p| {
        p["state"] == "failed"
    });
    let error = row["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("sandbox (enforce) refuses to start"),
        "{row:#}"
    );
    assert!(
        error.contains("tasksMax=16: not enforced: no pids cgroup"),
        "{row:#}"
    );
    assert_eq!(limit(&row, "tasksMax")["enforced"], false);
    assert_eq!(limit(&row, "nofile")["enforced"], true);
    assert!(row["pid"].is_null(), "never started: {row:#}");
    assert!(
        h.connection_log("p").contains("tasksMax=16: not enforced"),
        "{}",
        h.dump()
    );
    h.wait_until("the refusal in the orchestrator log", DEADLINE, || {
        h.orchestrator_log().contains("refuses to start")
    });
}

#[test]
fn sandbox_best_effort_starts_and_shows_the_gap() {
    if !root_or_skip() {
        return;
    }
    let h = Harness::new();
    let sandbox = "{ mode: bestEffort, resources: { tasksMax: 16, memoryMax: 128Mi } }";
    h.write("bundle.yaml", &bundle(sandbox, "", ""));
    let _run = Custom::start(&h, &[("ORCHESTRATOR_SANDBOX_DISABLE", "cgroup")], None);
    let log = checks_done(&h);
    assert!(
        log.contains("sandbox (bestEffort): tasksMax=16: not enforced"),
        "{log}"
    );
    let row = h.process("connection/p").expect("status row");
    assert_eq!(limit(&row, "tasksMax")["enforced"], false, "{row:#}");
    assert_eq!(limit(&row, "memoryMax")["mechanism"], "rlimit", "{row:#}");
    let table = h.cli(&["status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("sandbox tasksMax=16: not enforced: no pids cgroup"),
        "{table}"
    );
    assert!(table.contains("sandbox memoryMax=128Mi: rlimit"), "{table}");
}

/// Runs the probe with `sandbox` and `checks` under an orchestrator running
/// as `nobody`; its log and status row once the checks are done, or `None`
/// (printed) where the orchestrator cannot run as nobody.
fn as_nobody(sandbox: &str, checks: &str) -> Option<(Harness, Custom, String, Value)> {
    const NOBODY: u32 = 65534;
    if !root_or_skip() {
        return None;
    }
    let h = Harness::new();
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    h.write("bundle.yaml", &bundle(sandbox, checks, ""));
    let run = Custom::start(&h, &[], Some(NOBODY));
    h.wait_until(
        "the probe's checks, or the orchestrator's end",
        DEADLINE,
        || h.connection_log("p").contains("checks done") || !e2e::pid_alive(run.0.id()),
    );
    let log = h.connection_log("p");
    if log.is_empty() {
        eprintln!(
            "skipped: the orchestrator cannot run as nobody here:\n{}",
            h.dump()
        );
        return None;
    }
    let row = h.process("connection/p").expect("status row");
    Some((h, run, log, row))
}

#[test]
fn sandbox_unprivileged_loopback_and_rlimits() {
    let (_port_holder, port) = listener();
    let sandbox = "{ network: { mode: loopback }, resources: { memoryMax: 128Mi, nofile: 64 } }";
    let checks = format!("loop:0 connect:{port} hog:512 nofile:200");
    let Some((_h, _run, log, row)) = as_nobody(sandbox, &checks) else {
        return;
    };
    assert!(outcome(&log, "loop:0").starts_with("ok"), "{log}");
    assert!(
        outcome(&log, &format!("connect:{port}")).starts_with("err"),
        "{log}"
    );
    assert!(
        outcome(&log, "hog:512").contains("allocation failed"),
        "{log}"
    );
    assert!(count(&log, "nofile:200") < 64, "{log}");
    assert!(log.contains("stdout ack 1"), "{log}");
    assert_eq!(
        limit(&row, "network")["mechanism"],
        "userns+netns",
        "{row:#}"
    );
    assert_eq!(limit(&row, "memoryMax")["mechanism"], "rlimit", "{row:#}");
}

#[test]
fn sandbox_unprivileged_none_and_allowlist() {
    let (_host, port) = listener();
    let Some((_h, _run, log, row)) = as_nobody(
        "{ network: { mode: none } }",
        &format!("connect:{port} loop:0"),
    ) else {
        return;
    };
    assert!(
        outcome(&log, &format!("connect:{port}")).starts_with("err"),
        "{log}"
    );
    assert!(outcome(&log, "loop:0").starts_with("err"), "{log}");
    assert!(log.contains("stdout ack 1"), "{log}");
    assert_eq!(
        limit(&row, "network")["mechanism"],
        "userns+netns, seccomp",
        "{row:#}"
    );

    let (_other, other) = listener();
    let bind = free_port();
    let sandbox =
        format!("{{ network: {{ mode: allowlist, bindTcp: [{bind}], connectTcp: [{port}] }} }}");
    let checks = format!("bind:{bind} connect:{port} connect:{other}");
    let Some((_h, _run, log, _)) = as_nobody(&sandbox, &checks) else {
        return;
    };
    assert!(
        outcome(&log, &format!("bind:{bind}")).starts_with("ok"),
        "{log}"
    );
    assert!(
        outcome(&log, &format!("connect:{port}")).starts_with("ok"),
        "{log}"
    );
    assert!(
        outcome(&log, &format!("connect:{other}")).starts_with("err"),
        "{log}"
    );
    assert!(log.contains("stdout ack 1"), "{log}");
}

#[test]
fn sandbox_unprivileged_enforce_refuses_tasks_max_without_a_user() {
    const NOBODY: u32 = 65534;
    if !root_or_skip() {
        return;
    }
    let h = Harness::new();
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    h.write(
        "bundle.yaml",
        &bundle("{ resources: { tasksMax: 8 } }", "", ""),
    );
    let _run = Custom::start(&h, &[], Some(NOBODY));
    let row = h.wait_process("failed", "connection/p", DEADLINE, |p| {
        p["state"] == "failed"
    });
    let error = row["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("tasksMax=8: not enforced"), "{row:#}");
}

#[test]
fn sandbox_validate_rejects_impossible_values() {
    let h = Harness::new();
    let bad = bundle(
        "{ mode: strict, network: { mode: none, bindTcp: [80] }, resources: { memoryMax: 12Qb, nofile: 0 } }",
        "",
        ", sandbox: { network: { mode: allowlist, connectTcp: [70000] } }",
    );
    h.write("bad.yaml", &bad);
    let out = h.validate("bad.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for needle in [
        "strict",
        "only allowed with network mode allowlist",
        "12Qb",
        "70000",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}
