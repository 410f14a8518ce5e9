//! The sandbox: resource limits and network restriction per child.
//!
//! # Theory of operation
//!
//! Three steps, two processes:
//!
//! 1. **Probe, once** ([`capabilities`]): on the first sandboxed child the
//!    orchestrator finds out what this machine lets it do: root or not,
//!    network namespaces (tried in a forked child), user namespaces, the
//!    Landlock ABI, seccomp, and for each of the memory, pids and cpu
//!    controllers a cgroup directory it can write (v2 where the controller is
//!    enabled, else the v1 hierarchy), under its own cgroup:
//!    `<mount>/<own cgroup>/orchestrator/<pid>/`.
//! 2. **Plan, per program** ([`plan()`], pure): each limit of a `sandbox`
//!    section gets a mechanism (`cgroup-v1`, `cgroup-v2`, `rlimit`, `netns`,
//!    `userns+netns`, `netns+egress-proxy`, `pidns+mountns`, `landlock-abi-N`, `seccomp`,
//!    `setuid`, `capset`, `prctl`) or a reason it
//!    cannot be enforced here. In `enforce` mode a plan with a gap refuses to
//!    start the child (a permanent failure naming the limit and why);
//!    `bestEffort` starts it with a note in its log; `off` does nothing. The
//!    list is what `orchestrator status` shows under `sandbox`.
//! 3. **Apply, per start**: the orchestrator creates the child's cgroups
//!    (`…/orchestrator/<pid>/<child>/`, limits written), leases a uid for
//!    `user: dynamic`, adds the paths of this start (its state directory,
//!    the program, the bundle) and passes the [`ChildSteps`] to the shim as
//!    one JSON argument (`__shim --sandbox <json> -- program…`; it holds no
//!    secret). With a PID namespace the shim first starts that namespace's
//!    init (`init.rs`: mount namespace, fresh `/proc`, private `/tmp`, the
//!    state directory covered but for the child's own), which forks the
//!    program. The forked program applies the rest in this order right
//!    before `execvp`: unshare (net, or user+net) → uid/gid maps → `lo` up
//!    → the egress proxy's listener (handed to the orchestrator) → rlimits → join the cgroups → its state directory (0700, chowned)
//!    → bounding set → setgid/setgroups/setuid → capabilities →
//!    no_new_privs → Landlock (network, filesystem and scopes) → seccomp
//!    (sockets, then the deny list of `syscalls.rs`). The shim is
//!    single-threaded, so nothing there needs to be async-signal-safe. A
//!    failed step in `enforce` mode ends the child with
//!    [`SANDBOX_FAILED_EXIT`] and a line on stderr; in `bestEffort` it is
//!    reported and skipped.
//!
//! Every sandboxed child (mode other than `off`) gets the confinement of
//! `harden.rs` whatever its limits: see the README's Sandbox section.
//!
//! The IPC socket is an inherited `AF_UNIX` fd: no namespace, Landlock TCP
//! rule or address-family filter touches it, so the channel works in every
//! mode. The cgroups go when the run ends ([`CgroupGuard`]'s drop kills what
//! is left in them first); a child the kernel's OOM killer ended inside its
//! memory cgroup makes the shim exit with [`OOM_EXIT`], which the supervisor
//! reports as the exit cause `oom`.
//!
//! For tests only, `ORCHESTRATOR_SANDBOX_DISABLE` (a comma list of
//! `cgroup`, `netns`, `userns`, `pidns`, `landlock`, `seccomp`) makes the
//! probe treat those mechanisms as unavailable.

mod apply;
mod cgroup;
mod confine;
mod harden;
mod init;
mod net;
mod plan;
mod probe;
mod start;
mod syscalls;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_confine;
#[cfg(test)]
mod tests_egress;
mod uids;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use apply::apply;
pub use cgroup::{CgroupGuard, oom_kills};
pub use init::{is_namespace_init, read_report, spawn_init};
pub use plan::plan;
pub use probe::{Capabilities, CgroupHome, CgroupVersion, Controller, capabilities, cleanup};
pub use start::{
    Prepared, configure, grant_dir, hide_bundle_files, plan_for, prepare, secret_files,
};
pub use uids::{DEFAULT_UID_RANGE, UidRange};

/// Names mechanisms the probe must treat as missing (for tests).
pub const DISABLE_ENV: &str = "ORCHESTRATOR_SANDBOX_DISABLE";

/// The shim's exit code when a sandbox step failed in `enforce` mode.
pub const SANDBOX_FAILED_EXIT: i32 = 125;

/// The shim's exit code when the program was killed by the OOM killer of its
/// memory cgroup (a program that exits with it by itself is reported as OOM too).
pub const OOM_EXIT: i32 = 251;

/// One limit as `orchestrator status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitReport {
    /// `memoryMax`, `tasksMax`, `cpuQuota`, `nofile`, `core`, `network`,
    /// `user`, and the confinement every sandboxed child gets:
    /// `noNewPrivs`, `capabilities`, `dumpable`, `pidNamespace`,
    /// `filesystem`, `syscalls`, `signals`.
    pub limit: String,
    /// What was asked for, as written.
    pub value: String,
    /// Whether a mechanism enforces it.
    pub enforced: bool,
    /// The mechanism, or `not enforced: <why>`.
    pub mechanism: String,
    /// A caveat of the mechanism (what it does not cover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `sandbox.mode`, as the plan carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PlanMode {
    /// A gap refuses the start; a failed step ends the child.
    Enforce,
    /// A gap is noted; a failed step is reported and skipped.
    BestEffort,
    /// Nothing is applied.
    Off,
}

/// Everything decided for one program, before any child of it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxPlan {
    /// The mode.
    pub mode: PlanMode,
    /// Each limit with its mechanism or why not (for status).
    pub report: Vec<LimitReport>,
    /// The cgroup limits to write when a child starts.
    pub cgroups: Vec<CgroupLimit>,
    /// What the shim's forked child does before exec (cgroups, state
    /// directory, paths and a dynamic user filled per start).
    pub steps: ChildSteps,
    /// `user: dynamic`: each start gets a uid of its own from the range.
    pub dynamic_user: bool,
    /// Network mode `egress`: the policy its proxy serves (see [`crate::egress`]).
    pub egress: Option<std::sync::Arc<crate::egress::Policy>>,
}

/// Limits whose gap is reported but does not stop an `enforce` start: the
/// kernel (or an unprivileged orchestrator) may not allow them, and the
/// other layers still hold.
const ADVISORY: [&str; 1] = ["pidNamespace"];

impl SandboxPlan {
    /// The limits that cannot be enforced here, as `limit=value: why`.
    pub fn gaps(&self) -> Vec<String> {
        self.report
            .iter()
            .filter(|r| !r.enforced && !ADVISORY.contains(&r.limit.as_str()))
            .map(|r| format!("{}={}: {}", r.limit, r.value, r.mechanism))
            .collect()
    }

    /// Why an `enforce` plan must not start, or `None`.
    pub fn refusal(&self) -> Option<String> {
        let gaps = self.gaps();
        (self.mode == PlanMode::Enforce && !gaps.is_empty()).then(|| {
            format!(
                "sandbox (enforce) refuses to start: cannot apply {}",
                gaps.join("; ")
            )
        })
    }

    /// Whether the shim has anything to do.
    pub fn has_steps(&self) -> bool {
        let work = ChildSteps {
            strict: false,
            ..self.steps.clone()
        };
        work != ChildSteps::default() || !self.cgroups.is_empty()
    }
}

/// One controller's limit files, written into the child's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLimit {
    /// Which controller.
    pub controller: Controller,
    /// Where the orchestrator's cgroups of that controller live.
    pub home: CgroupHome,
    /// `(file, value)`, written in order; a file whose name starts with `?`
    /// is optional (missing or refused is fine).
    pub files: Vec<(String, String)>,
}

/// What the shim's forked child applies before exec (serialized for the shim).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildSteps {
    /// Fail on the first step that does not work (enforce), or go on (bestEffort).
    pub strict: bool,
    /// `unshare(CLONE_NEWNET)`.
    pub new_netns: bool,
    /// Together with it, `CLONE_NEWUSER` and a map of our own uid/gid (non-root).
    pub new_userns: bool,
    /// Bring `lo` up in the new network namespace.
    pub loopback_up: bool,
    /// Network mode `egress`: bind the proxy's listener in the new
    /// namespace, hand it to the orchestrator over this fd, and set the
    /// proxy variables (see [`crate::egress`]).
    #[serde(default)]
    pub egress_fd: Option<i32>,
    /// `setrlimit` calls.
    pub rlimits: Vec<Rlimit>,
    /// Cgroup directories to join (filled when the child starts).
    pub cgroups: Vec<PathBuf>,
    /// The memory cgroup, whose OOM kills the shim reports.
    pub memory_cgroup: Option<(CgroupVersion, PathBuf)>,
    /// Switch to this uid/gid.
    pub user: Option<UserIds>,
    /// Landlock network rules.
    pub landlock: Option<LandlockNet>,
    /// A seccomp filter on `socket`/`socketpair` arguments.
    pub seccomp: Option<Families>,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Drop every capability but these (numbers), from every set.
    pub capabilities: Option<Vec<u32>>,
    /// Start the program in a PID namespace of its own, under an init that
    /// mounts a fresh `/proc` (and the [`Mounts`]) in a mount namespace.
    pub pid_ns: bool,
    /// What that mount namespace hides and keeps.
    pub mounts: Option<Mounts>,
    /// Landlock filesystem rules (and scopes).
    pub filesystem: Option<FsRules>,
    /// A seccomp filter refusing the syscalls that reach other processes or
    /// the kernel (`ptrace`, `mount`, `setns`, `bpf`, …).
    pub deny_syscalls: bool,
    /// Its state directory: made 0700 (and chowned, with all it holds, to
    /// `user`) before the user switch.
    pub state_dir: Option<PathBuf>,
    /// `TMPDIR` to create and set (where there is no private `/tmp`).
    pub tmpdir: Option<PathBuf>,
}

/// The mount namespace of a child in its own PID namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mounts {
    /// A fresh tmpfs on `/tmp`.
    pub private_tmp: bool,
    /// The orchestrator's state directory: covered by an empty tmpfs…
    pub hide: Option<PathBuf>,
    /// …in which only the child's own state directory is bound back.
    pub state_dir: Option<PathBuf>,
    /// Paths under `/tmp` bound back, read-only, after the private `/tmp`
    /// covered them (the program, the bundle, `readOnly` paths).
    pub keep: Vec<PathBuf>,
    /// Paths under `/tmp` bound back writable (`readWrite` paths).
    #[serde(default)]
    pub keep_writable: Vec<PathBuf>,
    /// Files covered with `/dev/null` (the bundle's YAML and secret files:
    /// other connections' secrets), their directories still listable.
    #[serde(default)]
    pub cover_files: Vec<PathBuf>,
}

/// Landlock filesystem access: nothing outside these paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsRules {
    /// The kernel's Landlock ABI.
    pub abi: i32,
    /// Read and execute.
    pub read_only: Vec<PathBuf>,
    /// Everything.
    pub read_write: Vec<PathBuf>,
    /// Never granted: a path that contains one is granted entry by entry
    /// around it (where no mount namespace covers them: the orchestrator's
    /// state directory, the bundle's YAML and secret files).
    #[serde(default)]
    pub hide: Vec<PathBuf>,
}

/// One `setrlimit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// Which one.
    pub resource: RlimitKind,
    /// Soft and hard value.
    pub value: u64,
}

/// The rlimits the sandbox sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RlimitKind {
    /// `RLIMIT_NOFILE`.
    Nofile,
    /// `RLIMIT_CORE`.
    Core,
    /// `RLIMIT_AS` (memoryMax without a memory cgroup).
    As,
    /// `RLIMIT_NPROC` (tasksMax under a dedicated uid without a pids cgroup).
    Nproc,
}

/// A resolved `sandbox.user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIds {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid (also the only supplementary group).
    pub gid: u32,
}

/// Landlock TCP port rules (and UDP denied where the ABI covers it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LandlockNet {
    /// The kernel's ABI the plan was made for.
    pub abi: i32,
    /// Ports it may bind.
    pub bind_tcp: Vec<u16>,
    /// Ports it may connect to.
    pub connect_tcp: Vec<u16>,
    /// UDP ports it may bind (ABI ≥ 10).
    #[serde(default)]
    pub bind_udp: Vec<u16>,
    /// UDP ports it may send to (ABI ≥ 10).
    #[serde(default)]
    pub connect_udp: Vec<u16>,
}

/// Which sockets `socket(2)` may create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Families {
    /// `allowlist`: unix sockets, and inet/inet6 TCP streams (protocol 0 or
    /// TCP: no raw, no MPTCP, no SCTP); UDP datagrams only with `udp`.
    Allowlist {
        /// UDP (protocol 0 or UDP) datagram sockets are allowed too.
        udp: bool,
    },
    /// All but these families (network `none`).
    Deny(Vec<i32>),
}
