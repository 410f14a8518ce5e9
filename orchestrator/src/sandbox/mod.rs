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
//!    `userns+netns`, `landlock-abi-N`, `seccomp`, `setuid`) or a reason it
//!    cannot be enforced here. In `enforce` mode a plan with a gap refuses to
//!    start the child (a permanent failure naming the limit and why);
//!    `bestEffort` starts it with a note in its log; `off` does nothing. The
//!    list is what `orchestrator status` shows under `sandbox`.
//! 3. **Apply, per start**: the orchestrator creates the child's cgroups
//!    (`…/orchestrator/<pid>/<child>/`, limits written) and passes the
//!    [`ChildSteps`] to the shim as one JSON argument (`__shim --sandbox
//!    <json> -- program…`; it holds no secret). The shim forks, and the
//!    forked child applies them in this order right before `execvp`:
//!    unshare (net, or user+net) → uid/gid maps → `lo` up → rlimits →
//!    join the cgroups → setgid/setgroups/setuid → Landlock → seccomp. The
//!    shim is single-threaded, so nothing there needs to be
//!    async-signal-safe. A failed step in `enforce` mode ends the child with
//!    [`SANDBOX_FAILED_EXIT`] and a line on stderr; in `bestEffort` it is
//!    reported and skipped.
//!
//! The IPC socket is an inherited `AF_UNIX` fd: no namespace, Landlock TCP
//! rule or address-family filter touches it, so the channel works in every
//! mode. The cgroups go when the run ends ([`CgroupGuard`]'s drop kills what
//! is left in them first); a child the kernel's OOM killer ended inside its
//! memory cgroup makes the shim exit with [`OOM_EXIT`], which the supervisor
//! reports as the exit cause `oom`.
//!
//! For tests only, `ORCHESTRATOR_SANDBOX_DISABLE` (a comma list of
//! `cgroup`, `netns`, `userns`, `landlock`, `seccomp`, `setuid`) makes the
//! probe treat those mechanisms as unavailable.

mod apply;
mod cgroup;
mod net;
mod plan;
mod probe;
mod start;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use apply::apply;
pub use cgroup::{CgroupGuard, oom_kills};
pub use plan::plan;
pub use probe::{Capabilities, CgroupHome, CgroupVersion, Controller, capabilities, cleanup};
pub use start::{Prepared, grant_dir, plan_for, prepare};

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
    /// `memoryMax`, `tasksMax`, `cpuQuota`, `nofile`, `core`, `network`, `user`.
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
    /// What the shim's forked child does before exec (cgroups filled per start).
    pub steps: ChildSteps,
}

impl SandboxPlan {
    /// The limits that cannot be enforced here, as `limit=value: why`.
    pub fn gaps(&self) -> Vec<String> {
        self.report
            .iter()
            .filter(|r| !r.enforced)
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
    /// A seccomp filter on `socket`/`socketpair` address families.
    pub seccomp: Option<Families>,
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
}

/// Which address families `socket(2)` may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Families {
    /// Only these (allowlist: unix, inet, inet6).
    Allow(Vec<i32>),
    /// All but these (network `none` without namespaces).
    Deny(Vec<i32>),
}
