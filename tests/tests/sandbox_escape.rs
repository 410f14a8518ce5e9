//! Attacks from inside a sandbox (issue 9, items 2, 3 and 5): a sandboxed
//! child running as root (no `user:`) tries to reach the orchestrator, its
//! state and other processes; an `allowlist` child tries MPTCP, raw and UDP
//! sockets; a same-uid process tries the orchestrator and the shim.
//! `sandbox-probe` makes each attempt and prints the outcome.
//!
//! These tests need root (as CI runs them) and fail without it, unless
//! `E2E_SKIP_ROOT=1` says to skip them.

mod sandbox_common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use e2e::{DEADLINE, Harness};
use sandbox_common::*;

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
        // Owned by root, so writable by uid 0 without any capability, but
        // for Landlock (only opened for appending: nothing is written).
        "write:/etc/passwd".to_string(),
        "write:/proc/sys/kernel/core_pattern".to_string(),
        format!("write:{}", e2e::bin("sandbox-probe").display()),
    ];
    let yaml = format!("read:{}", h.path("bundle.yaml").display());
    // Another connection's secret in a file a Secret reads.
    let token = h.write("secrets/token", SECRET);
    let file = format!("read:{}", token.display());
    let checks = format!("{} {yaml} {file} procs self tmp state", attacks.join(" "));
    let vault = "\n---\napiVersion: goondan.ai/v1\nkind: Secret\nmetadata: { name: vault }\nspec: { data: { T: { valueFrom: { file: secrets/token } } } }\n";
    let text = bundle("{ network: { mode: none } }", &checks).replace(
        "secrets: { TOKEN: {",
        "secrets: { FROM_FILE: { valueFrom: { secretRef: { ref: Secret/vault, key: T } } }, TOKEN: {",
    );
    assert!(text.contains("FROM_FILE"), "{text}");
    h.start(&format!("{text}{vault}"));
    tell_pid(&h, h.pid());
    let log = checks_done(&h, "p");
    for attack in &attacks {
        refused(&log, attack);
    }
    allowed(&log, "state");
    // The bundle (with another connection's inline secret) reads as empty.
    assert_eq!(outcome(&log, &yaml), "ok read 0 bytes", "{log}");
    assert_eq!(outcome(&log, &file), "ok read 0 bytes", "{log}");
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
        format!("read:{}", h.path("bundle.yaml").display()),
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
