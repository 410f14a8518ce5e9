//! The process shim: `orchestrator __shim [--sandbox JSON] -- PROGRAM [ARGS…]`.
//!
//! # Theory of operation
//!
//! `PR_SET_PDEATHSIG` takes only the direct child down with the orchestrator;
//! a grandchild would be orphaned, and a `kill -9` of the orchestrator would
//! leave it running. So every child is started through this shim, a tiny
//! re-exec of the orchestrator binary that stays between the orchestrator and
//! the program:
//!
//! - The shim leads the child's process group; the program and everything it
//!   forks are in that group (unless they leave it on purpose).
//! - Its parent-death signal is SIGUSR1, which it catches: when the
//!   orchestrator dies, however it dies, the shim SIGKILLs the whole group.
//! - The program's parent-death signal is SIGKILL, so killing the shim kills
//!   the program too.
//! - It is a child subreaper: orphaned grandchildren are reparented to it and
//!   reaped, not to init.
//! - It passes everything else through untouched: stdin, stdout, stderr, the
//!   inherited IPC fd (and, in network mode `egress`, the handoff socket at
//!   fd 4, which the forked child uses and closes before exec: see
//!   [`crate::egress`]), the environment. It writes only to stderr, and only
//!   when it cannot start the program.
//! - With `--sandbox`, the forked child applies those [`ChildSteps`]
//!   (namespaces, rlimits, cgroups, user, Landlock, seccomp: see
//!   [`crate::sandbox`]) right before `execvp`. A step that fails in
//!   `enforce` mode ends it with exit code [`SANDBOX_FAILED_EXIT`] (125) and
//!   an `orchestrator shim: sandbox: …` line on stderr.
//! - It exits as the program did: the same code, or the same signal; except
//!   that a program the OOM killer of its memory cgroup ended makes it exit
//!   with [`OOM_EXIT`] (251), which the supervisor reports as `oom`.
//!
//! - It is not dumpable (`PR_SET_DUMPABLE` 0), like the orchestrator: no
//!   same-uid process reads its memory or fds or attaches to it.
//! - With a sandbox whose plan has a PID namespace, the shim's child is the
//!   init of that namespace (see `sandbox/init.rs`), which runs the program
//!   as its own child and reports how it ended through a pipe.
//!
//! The orchestrator's own signals go to the group: the program gets them
//! directly, and the shim (which has them blocked) just keeps waiting.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, raise, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, execvp, fork, getpgrp, getpid, getppid};

use crate::sandbox::{ChildSteps, OOM_EXIT, SANDBOX_FAILED_EXIT, oom_kills};

/// The first argument that makes the orchestrator binary act as the shim.
pub const SHIM_ARG: &str = "__shim";

/// The parent-death signal the orchestrator gives the shim.
pub const SHIM_DEATH_SIGNAL: i32 = libc::SIGUSR1;

const HANDLED: [Signal; 6] = [
    Signal::SIGUSR1,
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The option that carries the sandbox steps, as JSON.
pub const SANDBOX_OPT: &str = "--sandbox";

/// Runs the shim with `args` (what follows `__shim`); never returns.
pub fn main(args: Vec<OsString>) -> ! {
    // The orchestrator's umask (077) keeps its own files private; a program
    // and the mount points made for it get the usual 022 (its state dir is
    // private by its own mode and owner).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let (steps, args) = match args.first() {
        Some(a) if a == SANDBOX_OPT => {
            let Some(json) = args.get(1).and_then(|j| j.to_str()) else {
                fail("--sandbox needs a JSON argument", 2)
            };
            match serde_json::from_str::<ChildSteps>(json) {
                Ok(steps) => (Some(steps), args[2..].to_vec()),
                Err(e) => fail(&format!("bad --sandbox: {e}"), 2),
            }
        }
        _ => (None, args),
    };
    let args: Vec<OsString> = match args.first() {
        Some(a) if a == "--" => args[1..].to_vec(),
        _ => args,
    };
    let Some(program) = args.first() else {
        fail("usage: orchestrator __shim -- PROGRAM [ARGS…]", 2)
    };
    let argv: Vec<CString> = match args.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => fail("an argument contains a NUL byte", 2),
    };
    let program = match CString::new(program.as_bytes()) {
        Ok(p) => p,
        Err(_) => fail("the program name contains a NUL byte", 2),
    };

    let mut set = SigSet::empty();
    for s in HANDLED {
        set.add(s);
    }
    // Block before anything else, so no handled signal can kill us with its
    // default action; sigwait takes them one by one below.
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        fail("cannot block signals", 1);
    }
    // SAFETY: prctl with these arguments only changes this process's attributes.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
    }
    let me = getpid();
    // The orchestrator: when it is gone, nothing of this group may outlive us.
    let orchestrator = nix::unistd::getppid();

    let in_namespace = match steps.as_ref().filter(|s| s.pid_ns) {
        Some(s) => {
            // The program is the init's child: its parent is pid 1 there.
            let exec = || -> std::convert::Infallible {
                exec_program(&program, &argv, &set, Pid::from_raw(1), steps.as_ref())
            };
            match crate::sandbox::spawn_init(s, exec) {
                Ok(started) => Some(started),
                Err(why) if !s.strict => {
                    eprintln!(
                        "orchestrator shim: sandbox (bestEffort): pid namespace: {why}; going on"
                    );
                    None
                }
                Err(why) => fail(
                    &format!("sandbox: pid namespace: {why}"),
                    SANDBOX_FAILED_EXIT,
                ),
            }
        }
        None => None,
    };
    let (child, report) = match in_namespace {
        Some((init, report)) => (init, Some(report)),
        // SAFETY: the shim is single-threaded (it runs before any runtime
        // starts), so the child may do anything until exec.
        None => match unsafe { fork() } {
            Err(e) => fail(&format!("fork failed: {e}"), 1),
            Ok(ForkResult::Child) => exec_program(&program, &argv, &set, me, steps.as_ref()),
            Ok(ForkResult::Parent { child }) => (child, None),
        },
    };
    let mut report = report;

    loop {
        let Ok(signal) = set.wait() else { continue };
        match signal {
            Signal::SIGUSR1 => {
                // The orchestrator is gone: take the whole group with us.
                let _ = kill(Pid::from_raw(-getpgrp().as_raw()), Signal::SIGKILL);
                std::process::exit(137);
            }
            Signal::SIGCHLD => {
                if let Some(mut status) = reap(child) {
                    if nix::unistd::getppid() != orchestrator || exiting(orchestrator) {
                        // The orchestrator died and the program ended first
                        // (its channel closed) before our parent-death signal
                        // was taken: the group goes down all the same, or a
                        // grandchild in it would outlive everyone. The
                        // orchestrator closes its files before it is gone
                        // as a parent: in between, it is marked exiting.
                        let _ = kill(Pid::from_raw(-getpgrp().as_raw()), Signal::SIGKILL);
                        std::process::exit(137);
                    }
                    // Through an init: how the program itself ended.
                    if let Some(raw) = report.take().and_then(crate::sandbox::read_report)
                        && let Ok(program) = WaitStatus::from_raw(child, raw)
                    {
                        status = program;
                    }
                    if let Some(report) = oom_killed(status, steps.as_ref()) {
                        fail(&report, OOM_EXIT);
                    }
                    exit_like(status);
                }
            }
            // Group signals reach the program directly; the shim outlives
            // them so it can report how the program ended.
            _ => {}
        }
    }
}

/// Whether process `pid` has begun to exit (`PF_EXITING` in the flags of
/// `/proc/PID/stat`, set before its files are closed). Unreadable: no
/// (a process that is gone is no longer our parent anyway).
fn exiting(pid: Pid) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // After the command (in parentheses, and it may hold any byte): state,
    // ppid, pgrp, session, tty_nr, tpgid, flags.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

fn exec_program(
    program: &CString,
    argv: &[CString],
    set: &SigSet,
    parent: Pid,
    steps: Option<&ChildSteps>,
) -> ! {
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(set), None);
    // SAFETY: prctl/getppid only touch this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if getppid() != parent {
        std::process::exit(1);
    }
    if let Some(steps) = steps
        && let Err(why) = crate::sandbox::apply(steps)
    {
        fail(&format!("sandbox: {why}"), SANDBOX_FAILED_EXIT);
    }
    let err = execvp(program, argv).unwrap_err();
    let code = if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    };
    fail(
        &format!("cannot execute {}: {err}", program.to_string_lossy()),
        code,
    )
}

/// Reaps every exited child (grandchildren included, as the subreaper); the
/// program's status once it has exited.
fn reap(program: Pid) -> Option<WaitStatus> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(status) => {
                if status.pid() == Some(program)
                    && matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..))
                {
                    result = Some(status);
                }
            }
        }
    }
}

/// What to report when the program died of SIGKILL and its memory cgroup
/// counted an OOM kill.
fn oom_killed(status: WaitStatus, steps: Option<&ChildSteps>) -> Option<String> {
    let (version, dir) = steps?.memory_cgroup.as_ref()?;
    if !matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)) {
        return None;
    }
    let kills = oom_kills(*version, dir);
    (kills > 0).then(|| {
        format!(
            "killed by the OOM killer at memoryMax ({} {})",
            version.mechanism(),
            dir.display()
        )
    })
}

fn exit_like(status: WaitStatus) -> ! {
    match status {
        WaitStatus::Exited(_, code) => std::process::exit(code),
        WaitStatus::Signaled(_, signal, _) => {
            // Die of the same signal, so the orchestrator sees what the program saw.
            // SAFETY: restoring the default action of one signal.
            unsafe {
                libc::signal(signal as i32, libc::SIG_DFL);
            }
            let mut only = SigSet::empty();
            only.add(signal);
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
            let _ = raise(signal);
            std::process::exit(128 + signal as i32)
        }
        _ => std::process::exit(1),
    }
}

fn fail(message: &str, code: i32) -> ! {
    eprintln!("orchestrator shim: {message}");
    std::process::exit(code)
}

#[cfg(test)]
mod exiting_tests {
    use super::*;

    #[test]
    fn a_live_process_is_not_exiting() {
        assert!(!exiting(getpid()));
        assert!(!exiting(Pid::from_raw(i32::MAX)), "no such process");
    }
}
