//! The child side: applies [`ChildSteps`] to the calling process, which is
//! the shim's freshly forked, single-threaded child, right before `execvp`.

use std::fs;

use landlock::{
    AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus,
};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{Gid, Uid, getegid, geteuid, getpid, setgid, setgroups, setuid};

use super::confine;
use super::net::{deny_setns, loopback_up};
use super::syscalls::{deny_filters, install, socket_filters};
use super::{ChildSteps, LandlockNet, Rlimit, RlimitKind, UserIds};

/// Applies `steps` in the documented order: unshare → uid/gid maps → `lo` up
/// → rlimits → cgroups → state directory → bounding set → user →
/// capabilities → no_new_privs → Landlock → seccomp. With `steps.strict`
/// the first failure is returned (`step: why`); otherwise each failure is
/// reported on stderr and the rest still applied.
pub fn apply(steps: &ChildSteps) -> Result<(), String> {
    let check = |step: &str, result: Result<(), String>| -> Result<(), String> {
        match result {
            Ok(()) => Ok(()),
            Err(why) if steps.strict => Err(format!("{step}: {why}")),
            Err(why) => {
                eprintln!("orchestrator shim: sandbox (bestEffort): {step}: {why}; going on");
                Ok(())
            }
        }
    };
    if steps.new_userns {
        // The shim is not dumpable, and so would be this process's
        // /proc/self/uid_map; nothing here is secret (exec resets it anyway).
        // SAFETY: prctl only sets this process's dumpable flag.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    }
    if steps.new_netns {
        check("network namespace", namespaces(steps.new_userns))?;
    }
    if steps.loopback_up {
        check("loopback up", loopback_up().map_err(|e| e.to_string()))?;
    }
    if let Some(fd) = steps.egress_fd {
        check("egress proxy", egress_proxy(fd))?;
    }
    for limit in &steps.rlimits {
        check(&format!("{:?}", limit.resource), rlimit(limit))?;
    }
    let me = getpid().to_string();
    for dir in &steps.cgroups {
        let procs = dir.join("cgroup.procs");
        let joined = fs::write(&procs, &me).map_err(|e| format!("{}: {e}", procs.display()));
        check("cgroup", joined)?;
    }
    if let Some(dir) = &steps.state_dir {
        let owned = confine::own_state_dir(dir, steps.user, steps.tmpdir.as_deref());
        check("state directory", owned)?;
    }
    if let Some(tmp) = &steps.tmpdir {
        // SAFETY: this process is single-threaded (the shim's forked child).
        unsafe { std::env::set_var("TMPDIR", tmp) };
    }
    if let Some(keep) = &steps.capabilities {
        check("capabilities", confine::drop_bounding(keep))?;
        if !keep.is_empty() && steps.user.is_some() {
            // SAFETY: prctl only sets a flag of this process: keep the
            // permitted set across the switch to the user below.
            unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
        }
    }
    if let Some(ids) = steps.user {
        check("user", switch_user(ids))?;
    }
    if let Some(keep) = &steps.capabilities {
        check("capabilities", confine::set_capabilities(keep))?;
    }
    if steps.no_new_privs {
        check("no_new_privs", confine::no_new_privs())?;
    }
    if let Some(rules) = &steps.landlock {
        check("landlock", landlock(rules))?;
    }
    if let Some(rules) = &steps.filesystem {
        let confined = confine::landlock_fs(rules, steps.state_dir.as_deref());
        check("landlock filesystem", confined)?;
    }
    if let Some(families) = &steps.seccomp {
        let installed = socket_filters(families).and_then(|f| install(&f));
        check("seccomp", installed)?;
    }
    if steps.deny_syscalls {
        check("seccomp", deny_filters().and_then(|f| install(&f)))?;
    } else if steps.new_netns {
        // Hardening beyond the listed limits: where seccomp is missing this
        // is said on stderr and the child still starts.
        let sealed = deny_setns().and_then(|f| install(&[f]));
        if let Err(why) = sealed {
            eprintln!("orchestrator shim: sandbox: setns stays allowed: {why}");
        }
    }
    Ok(())
}

/// Hands the proxy's listener to the orchestrator and points the proxy
/// variables at it; `NO_PROXY` goes.
fn egress_proxy(fd: i32) -> Result<(), String> {
    let port = crate::egress::hand_over(fd)?;
    let url = format!("http://127.0.0.1:{port}");
    for key in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
        // SAFETY: this process is single-threaded (the shim's forked child).
        unsafe {
            std::env::set_var(key, &url);
            std::env::set_var(key.to_ascii_lowercase(), &url);
        }
    }
    for key in ["NO_PROXY", "no_proxy"] {
        // SAFETY: as above.
        unsafe { std::env::remove_var(key) };
    }
    Ok(())
}

/// A new network namespace; without root, inside a new user namespace that
/// maps our own uid and gid (so files keep their owners).
fn namespaces(with_user: bool) -> Result<(), String> {
    let (uid, gid) = (geteuid(), getegid());
    let flags = if with_user {
        libc::CLONE_NEWNET | libc::CLONE_NEWUSER
    } else {
        libc::CLONE_NEWNET
    };
    // SAFETY: unshare only changes this (single-threaded) process's namespaces.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()));
    }
    if with_user {
        let write = |file: &str, text: String| {
            fs::write(format!("/proc/self/{file}"), text).map_err(|e| format!("{file}: {e}"))
        };
        write("setgroups", "deny".into())?;
        write("uid_map", format!("{uid} {uid} 1"))?;
        write("gid_map", format!("{gid} {gid} 1"))?;
    }
    Ok(())
}

/// Soft and hard limit to `value`, or to the current hard limit when that is lower.
fn rlimit(limit: &Rlimit) -> Result<(), String> {
    let resource = match limit.resource {
        RlimitKind::Nofile => Resource::RLIMIT_NOFILE,
        RlimitKind::Core => Resource::RLIMIT_CORE,
        RlimitKind::As => Resource::RLIMIT_AS,
        RlimitKind::Nproc => Resource::RLIMIT_NPROC,
    };
    let (_, hard) = getrlimit(resource).map_err(|e| e.to_string())?;
    let value = limit.value.min(hard);
    setrlimit(resource, value, value).map_err(|e| e.to_string())
}

fn switch_user(ids: UserIds) -> Result<(), String> {
    let gid = Gid::from_raw(ids.gid);
    setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    setuid(Uid::from_raw(ids.uid)).map_err(|e| format!("setuid: {e}"))
}

fn landlock(rules: &LandlockNet) -> Result<(), String> {
    let err = |e: landlock::RulesetError| e.to_string();
    let mut access = AccessNet::BindTcp | AccessNet::ConnectTcp;
    if rules.abi >= 10 {
        // Handled: UDP only on the listed ports (none listed: no UDP).
        access |= AccessNet::BindUdp | AccessNet::ConnectSendUdp;
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(access)
        .map_err(err)?
        .create()
        .map_err(err)?;
    for port in &rules.bind_tcp {
        ruleset = ruleset
            .add_rule(NetPort::new(*port, AccessNet::BindTcp))
            .map_err(err)?;
    }
    for port in &rules.connect_tcp {
        ruleset = ruleset
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(err)?;
    }
    if rules.abi >= 10 {
        for port in &rules.bind_udp {
            ruleset = ruleset
                .add_rule(NetPort::new(*port, AccessNet::BindUdp))
                .map_err(err)?;
        }
        for port in &rules.connect_udp {
            ruleset = ruleset
                .add_rule(NetPort::new(*port, AccessNet::ConnectSendUdp))
                .map_err(err)?;
        }
    }
    let status = ruleset.restrict_self().map_err(err)?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(format!("ruleset only {:?}", status.ruleset));
    }
    Ok(())
}
