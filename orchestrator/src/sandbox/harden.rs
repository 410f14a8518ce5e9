//! The confinement every sandboxed child gets, whatever its uid and its
//! limits: no new privileges, no capabilities (but those it keeps), its own
//! PID namespace and `/proc`, Landlock filesystem rules, the seccomp deny
//! list, and signals and ptrace only within its own processes. Planned here
//! (pure); the paths of one start are added by [`super::prepare`].

use super::plan::Builder;
use super::probe::Capabilities;
use super::syscalls::DENIED;
use super::{FsRules, Mounts};
use crate::bundle::Sandbox;
use crate::bundle::capability_number;

/// The first Landlock ABI with signal and abstract unix socket scopes.
const LANDLOCK_SCOPE_ABI: i32 = 6;

/// Adds the confinement rows and steps to `b`.
pub(super) fn harden(b: &mut Builder, sandbox: &Sandbox, caps: &Capabilities) {
    b.steps.no_new_privs = true;
    b.ok("noNewPrivs", "on", "prctl".into(), None);

    let keep: Vec<u32> = sandbox
        .capabilities
        .iter()
        .filter_map(|c| capability_number(c))
        .collect();
    let value = if sandbox.capabilities.is_empty() {
        "none kept".to_string()
    } else {
        format!("keeps {}", sandbox.capabilities.join(", "))
    };
    b.steps.capabilities = Some(keep);
    let note = "bounding, effective, permitted, inheritable and ambient sets";
    b.ok(
        "capabilities",
        &value,
        "capset".into(),
        Some(note.to_string()),
    );

    b.ok(
        "dumpable",
        "0 (the orchestrator and the shim)",
        "prctl".into(),
        Some("their memory, environ and fds are closed to same-uid processes".into()),
    );

    let own_proc = "own, with a fresh /proc";
    match &caps.pidns {
        Ok(()) => {
            b.steps.pid_ns = true;
            b.steps.mounts = Some(Mounts {
                private_tmp: true,
                ..Mounts::default()
            });
            let note = "a private /tmp; the orchestrator's state directory is covered, only its own state directory shows";
            b.ok(
                "pidNamespace",
                own_proc,
                "pidns+mountns".into(),
                Some(note.into()),
            );
        }
        Err(why) => b.gap("pidNamespace", own_proc, why.clone()),
    }

    let fs = &sandbox.filesystem;
    let mut value =
        "read-only: the program, the bundle, the system; read-write: its state directory, a temp directory"
            .to_string();
    if !fs.read_only.is_empty() || !fs.read_write.is_empty() {
        value.push_str(&format!(
            "; readOnly {:?} readWrite {:?}",
            fs.read_only, fs.read_write
        ));
    }
    match &caps.landlock_abi {
        Ok(abi) => {
            b.steps.filesystem = Some(FsRules {
                abi: *abi,
                read_only: fs.read_only.clone(),
                read_write: fs.read_write.clone(),
                hide: Vec::new(),
            });
            let (mechanism, note) = if b.steps.pid_ns {
                (
                    format!("landlock-abi-{abi}, mountns"),
                    "nothing of the orchestrator's state directory but its own state directory"
                        .to_string(),
                )
            } else {
                (
                    format!("landlock-abi-{abi}"),
                    "no mount namespace: the temp directory is TMPDIR=<stateDir>/tmp, and control.sock can still be connected to by path (Landlock does not govern unix socket connects)".to_string(),
                )
            };
            b.ok("filesystem", &value, mechanism, Some(note));
        }
        Err(why) => b.gap("filesystem", &value, why.clone()),
    }

    match &caps.seccomp {
        Ok(()) => {
            b.steps.deny_syscalls = true;
            b.ok(
                "syscalls",
                &format!("refused: {DENIED}"),
                "seccomp".into(),
                None,
            );
        }
        Err(why) => b.gap("syscalls", &format!("refused: {DENIED}"), why.clone()),
    }

    let mut mechanisms = Vec::new();
    if b.steps.pid_ns {
        mechanisms.push("pidns".to_string());
    }
    match &caps.landlock_abi {
        Ok(abi) if *abi >= LANDLOCK_SCOPE_ABI => {
            mechanisms.push(format!("landlock-abi-{abi} scope"));
        }
        Ok(abi) => mechanisms.push(format!("landlock-abi-{abi} (ptrace only)")),
        Err(_) => {}
    }
    let value = "signals and ptrace only within its own processes";
    let scoped = b.steps.pid_ns
        || caps
            .landlock_abi
            .as_ref()
            .is_ok_and(|a| *a >= LANDLOCK_SCOPE_ABI);
    if scoped {
        b.ok("signals", value, mechanisms.join(", "), None);
    } else {
        let why = match (&caps.pidns, &caps.landlock_abi) {
            (Err(p), Ok(abi)) => format!(
                "no PID namespace ({p}), and Landlock ABI {abi} has no signal scope (needs ≥ {LANDLOCK_SCOPE_ABI})"
            ),
            (Err(p), Err(l)) => format!("no PID namespace ({p}); {l}"),
            (Ok(()), _) => "no PID namespace".to_string(),
        };
        b.gap("signals", value, why);
    }
}
