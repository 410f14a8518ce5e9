//! Attacks from inside a sandbox (issue 9, items 2–5): a sandboxed child
//! running as root (no `user:`) tries to reach the orchestrator, its state
//! and other processes; an `allowlist` child tries MPTCP, raw and UDP
//! sockets; two `user: dynamic` children try each other. `sandbox-probe`
//! makes each attempt and prints the outcome.
//!
//! These tests need root (as CI runs them) and fail without it, unless
//! `E2E_SKIP_ROOT=1` says to skip them.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use e2e::{DEADLINE, Harness};
use serde_json::Value;

const SECRET: &str = "an0ther-connections-s3cret";

/// A probe connection `p` with `sandbox` and `checks`, next to a
/// connection `other` with a secret the orchestrator holds in memory.
fn bundle(sandbox: &str, checks: &str) -> String {
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
  ingress: {{ rules: [ {{ route: {{}} }} ] }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: other }}
spec:
  connectorRef: Connector/probe
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
spec: {{ entry: test-agent, protocol: frames }}
"#
    )
}

/// Whether to run: as root; without root, a failure unless `E2E_SKIP_ROOT` is set.
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("E2E_SKIP_ROOT").is_some(),
        "these attacks need root (set E2E_SKIP_ROOT=1 to skip them knowingly)"
    );
    eprintln!("skipped: not root, and E2E_SKIP_ROOT is set");
    false
}

fn checks_done(h: &Harness, connection: &str) -> String {
    h.wait_until("the probe to finish its checks", DEADLINE, || {
        h.connection_log(connection).contains("stdout checks done")
    });
    h.connection_log(connection)
}

/// The outcome of `check` (`ok …` or `err …`).
fn outcome<'a>(log: &'a str, check: &str) -> &'a str {
    let needle = format!("check {check}: ");
    log.lines()
        .find_map(|l| l.split_once(&needle).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no outcome for {check}\n{log}"))
}

fn refused(log: &str, check: &str) {
    let o = outcome(log, check);
    assert!(o.starts_with("err"), "{check} must fail: {o}\n{log}");
}

fn allowed(log: &str, check: &str) {
    let o = outcome(log, check);
    assert!(o.starts_with("ok"), "{check} must work: {o}\n{log}");
}

fn limit(row: &Value, name: &str) -> Value {
    row["sandbox"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["limit"] == name).cloned())
        .unwrap_or_else(|| panic!("no sandbox entry {name} in {row:#}"))
}

/// Tells the probe a pid, through a file it waits for.
fn tell_pid(h: &Harness, pid: u32) {
    let tmp = h.path("target.pid.tmp");
    std::fs::write(&tmp, pid.to_string()).expect("write pid");
    std::fs::rename(&tmp, h.path("target.pid")).expect("rename pid");
}

#[test]
fn a_root_child_cannot_reach_the_orchestrator_its_state_or_other_processes() {
    if !root() {
        return;
    }
    let mut h = Harness::new();
    let state = h.state();
    let pid = format!("@{}", h.path("target.pid").display());
    let attacks = [
        format!("unix:{}", state.join("control.sock").display()),
        format!("read:{}", state.join("journal.db").display()),
        format!("write:{}", state.join("journal.db").display()),
        format!("read:{}", state.join("logs/orchestrator.log").display()),
        format!("environ:{pid}"),
        format!("mem:{pid}"),
        format!("ptrace:{pid}"),
        format!("kill:{pid}"),
        "inet".to_string(),
        "unshare".to_string(),
    ];
    let checks = format!("{} procs self tmp state", attacks.join(" "));
    h.start(&bundle("{ network: { mode: none } }", &checks));
    tell_pid(&h, h.pid());
    let log = checks_done(&h, "p");
    for attack in &attacks {
        refused(&log, attack);
    }
    allowed(&log, "state");
    assert!(log.contains("stdout ack 1"), "the IPC socket works\n{log}");
    // Its own PID namespace: only its init and itself.
    let procs = outcome(&log, "procs");
    let n: u32 = procs
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(99);
    assert!(n <= 2, "{procs}\n{log}");
    // Root, but with no capability and no way to gain one.
    let me = outcome(&log, "self");
    for want in [
        "uid=0",
        "capeff=0000000000000000",
        "capprm=0000000000000000",
        "capbnd=0000000000000000",
        "capamb=0000000000000000",
        "nnp=1",
    ] {
        assert!(me.contains(want), "{want}: {me}");
    }
    // A private /tmp: what it wrote there is not in ours.
    let tmp = outcome(&log, "tmp");
    let file = tmp
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("tmp: {tmp}\n{log}"));
    assert!(
        !Path::new(file).exists(),
        "{file} leaked into the host's /tmp"
    );

    let row = h.process("connection/p").expect("status row");
    for (name, mechanism) in [
        ("noNewPrivs", "prctl"),
        ("capabilities", "capset"),
        ("dumpable", "prctl"),
        ("pidNamespace", "pidns+mountns"),
        ("filesystem", "landlock-abi-"),
        ("syscalls", "seccomp"),
        ("signals", "pidns, landlock-abi-"),
        ("network", "netns, seccomp"),
    ] {
        let l = limit(&row, name);
        assert_eq!(l["enforced"], true, "{l}");
        let m = l["mechanism"].as_str().unwrap_or_default();
        assert!(m.starts_with(mechanism), "{name}: {m}");
    }
    let table = h.cli(&["status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("sandbox syscalls=refused: ptrace, process_vm_readv"),
        "{table}"
    );
    assert!(table.contains("sandbox pidNamespace=own"), "{table}");
    // Its state directory is its own only.
    let dir = state.join("state/connections/p");
    let mode = std::fs::metadata(&dir).expect("state dir").mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn allowlist_refuses_mptcp_raw_and_udp_sockets() {
    if !root() {
        return;
    }
    let allowed_l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let other_l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let ok_port = allowed_l.local_addr().expect("addr").port();
    let other = other_l.local_addr().expect("addr").port();
    let mut h = Harness::new();
    let sandbox = format!("{{ network: {{ mode: allowlist, connectTcp: [{ok_port}] }} }}");
    let checks =
        format!("mptcp:{other} mptcp:{ok_port} raw udp nonblock connect:{ok_port} connect:{other}");
    h.start(&bundle(&sandbox, &checks));
    let log = checks_done(&h, "p");
    for check in [
        format!("mptcp:{other}"),
        format!("mptcp:{ok_port}"),
        "raw".into(),
        "udp".into(),
        format!("connect:{other}"),
    ] {
        refused(&log, &check);
    }
    assert!(
        outcome(&log, &format!("mptcp:{other}")).contains("Protocol not supported"),
        "the socket itself is refused\n{log}"
    );
    allowed(&log, "nonblock");
    allowed(&log, &format!("connect:{ok_port}"));
    let row = h.process("connection/p").expect("status row");
    let note = limit(&row, "network")["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("MPTCP"), "{note}");
    assert!(h.stop().success(), "{}", h.dump());
}

#[test]
fn udp_ports_cannot_be_enforced_below_landlock_abi_10() {
    if !root() {
        return;
    }
    let abi = landlock_abi();
    if abi >= 10 {
        eprintln!("skipped: Landlock ABI {abi} enforces UDP ports");
        return;
    }
    let mut h = Harness::new();
    let network = "network: { mode: allowlist, connectTcp: [443], connectUdp: [53] }";
    h.start(&bundle(&format!("{{ {network} }}"), "udp"));
    let row = h.wait_process("refused", "connection/p", DEADLINE, |p| {
        p["state"] == "failed"
    });
    let error = row["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("UDP ports cannot be enforced"), "{row:#}");
    h.stop();

    let mut h = Harness::new();
    h.start(&bundle(
        &format!("{{ mode: bestEffort, {network} }}"),
        "udp raw",
    ));
    let log = checks_done(&h, "p");
    allowed(&log, "udp");
    refused(&log, "raw");
    let row = h.process("connection/p").expect("status row");
    assert_eq!(limit(&row, "udp")["enforced"], false, "{row:#}");
    assert!(h.stop().success(), "{}", h.dump());
}

fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns the ABI.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    }
}

fn uid_of(pid: &Value) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |k: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(k)).expect(k);
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect(k)
    };
    (field("Uid:"), field("Gid:"))
}

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

/// A process of the orchestrator's own uid (an orchestrator run as
/// `nobody`, and another `nobody` process: same uid, same capabilities) may
/// read a dumpable process's environ, but not the orchestrator's or a
/// shim's: they are not dumpable.
#[test]
fn the_orchestrator_and_the_shim_are_not_dumpable() {
    const NOBODY: u32 = 65534;
    if !root() {
        return;
    }
    let h = Harness::new();
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    h.write("bundle.yaml", &bundle("{ mode: bestEffort }", ""));
    let mut run = h
        .command()
        .args(["run", "bundle.yaml", "--state-dir"])
        .arg(h.state())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .expect("spawn the orchestrator");
    checks_done(&h, "p");
    let row = h.process("connection/p").expect("status row");
    let (program, shim) = (row["pid"].to_string(), row["pgid"].to_string());
    let orchestrator = run.id().to_string();
    let checks = [
        format!("environ:{orchestrator}"),
        format!("mem:{orchestrator}"),
        format!("environ:{shim}"),
        format!("environ:{program}"),
    ];
    let out = std::process::Command::new(e2e::bin("sandbox-probe"))
        .arg("attack")
        .args(&checks)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run the attack");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let _ = run.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    refused(&text, &checks[0]);
    refused(&text, &checks[1]);
    refused(&text, &checks[2]);
    // The program itself is dumpable: the same attacker reads that.
    allowed(&text, &checks[3]);
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

/// Without root there is no PID or mount namespace; Landlock still keeps a
/// child out of the state directory, away from the orchestrator's memory
/// and from signalling it. `control.sock` stays reachable, and status says so.
#[test]
fn an_unprivileged_orchestrators_child_is_kept_out_by_landlock() {
    const NOBODY: u32 = 65534;
    if !root() {
        return;
    }
    let h = Harness::new();
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let state = h.state();
    let pid = format!("@{}", h.path("target.pid").display());
    let attacks = [
        format!("read:{}", state.join("journal.db").display()),
        format!("write:{}", state.join("journal.db").display()),
        format!("read:{}", state.join("logs/orchestrator.log").display()),
        format!("environ:{pid}"),
        format!("mem:{pid}"),
        format!("ptrace:{pid}"),
        format!("kill:{pid}"),
    ];
    let checks = format!("{} state", attacks.join(" "));
    h.write(
        "bundle.yaml",
        &bundle("{ network: { mode: none } }", &checks),
    );
    let mut run = h
        .command()
        .args(["run", "bundle.yaml", "--state-dir"])
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .expect("spawn the orchestrator");
    tell_pid(&h, run.id());
    let log = checks_done(&h, "p");
    let row = h.process("connection/p").expect("status row");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let _ = run.wait();
    for attack in &attacks {
        refused(&log, attack);
    }
    allowed(&log, "state");
    let pidns = limit(&row, "pidNamespace");
    assert_eq!(pidns["enforced"], false, "{pidns}");
    let fs = limit(&row, "filesystem");
    assert_eq!(fs["enforced"], true, "{fs}");
    assert!(
        fs["note"]
            .as_str()
            .unwrap_or_default()
            .contains("control.sock"),
        "{fs}"
    );
}
