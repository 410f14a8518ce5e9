//! The orchestrator side of starting one sandboxed child: refuse, warn, or
//! prepare its cgroups and the shim's `--sandbox` argument.

use std::io;
use std::path::Path;

use super::{CgroupGuard, PlanMode, SandboxPlan};
use crate::logs::LogSink;
use crate::status::ProcessStatus;

/// What a child starts with: the shim's `--sandbox` argument and its cgroups.
#[derive(Debug)]
pub struct Prepared {
    /// [`super::ChildSteps`] as JSON.
    pub steps_json: String,
    /// Its cgroups, removed when dropped (after the child is gone).
    pub cgroups: Option<CgroupGuard>,
}

/// Prepares one start of `program` under `plan`, through a shim if `shim`.
///
/// Records the plan's report in `status`. An `enforce` plan with a gap (or
/// without a shim to apply it) is refused with `PermissionDenied`, a
/// permanent failure, logged here and in the orchestrator log; a
/// `bestEffort` plan notes each gap in `log` and starts.
pub fn prepare(
    plan: &SandboxPlan,
    program: &Path,
    shim: bool,
    log: &LogSink,
    status: &ProcessStatus,
) -> io::Result<Option<Prepared>> {
    status.set_sandbox(plan.report.clone());
    if plan.mode == PlanMode::Off {
        return Ok(None);
    }
    let mut refusal = plan.refusal();
    if refusal.is_none() && !shim && plan.has_steps() && plan.mode == PlanMode::Enforce {
        refusal = Some("sandbox (enforce) refuses to start: no shim to apply it".into());
    }
    if let Some(why) = refusal {
        tracing::error!("{}: {why}", status.target());
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
    }
    for gap in plan.gaps() {
        log.note(&format!("sandbox (bestEffort): {gap}"));
    }
    if !shim {
        if plan.has_steps() {
            log.note("sandbox (bestEffort): no shim: nothing is applied");
        }
        return Ok(None);
    }
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut steps = plan.steps.clone();
    let mut cgroups = None;
    if !plan.cgroups.is_empty() {
        match CgroupGuard::create(&plan.cgroups, &name, log) {
            Ok(guard) => {
                steps.cgroups = guard.dirs().to_vec();
                steps.memory_cgroup = guard.memory();
                cgroups = Some(guard);
            }
            Err(why) if plan.mode == PlanMode::Enforce => {
                tracing::error!("{}: sandbox: {why}", status.target());
                return Err(io::Error::other(format!("sandbox: {why}")));
            }
            Err(why) => log.note(&format!("sandbox (bestEffort): no cgroup: {why}")),
        }
    }
    let steps_json = serde_json::to_string(&steps).map_err(io::Error::other)?;
    Ok(Some(Prepared {
        steps_json,
        cgroups,
    }))
}

/// Gives the plan's `user` the directory the child must write (its state
/// directory), creating it; when that fails, says so in `log` and `status`.
pub fn grant_dir(plan: &SandboxPlan, dir: &Path, log: &LogSink, status: &ProcessStatus) {
    let Some(ids) = plan.steps.user else {
        return;
    };
    let granted = std::fs::create_dir_all(dir)
        .and_then(|()| std::os::unix::fs::chown(dir, Some(ids.uid), Some(ids.gid)));
    if let Err(e) = granted {
        let why = format!(
            "sandbox: the state directory {} stays unusable for uid {}: {e}",
            dir.display(),
            ids.uid
        );
        log.note(&why);
        status.set_error(why);
    }
}

/// The plan for a program's `sandbox` section on this machine (probing it
/// on the first call), or `None` without one.
pub fn plan_for(sandbox: Option<&crate::bundle::Sandbox>) -> Option<std::sync::Arc<SandboxPlan>> {
    let sandbox = sandbox?;
    let plan = super::plan(sandbox, super::capabilities(), &resolve_user);
    Some(std::sync::Arc::new(plan))
}

/// A user name (or numeric uid) to its uid and primary gid.
fn resolve_user(name: &str) -> Result<super::UserIds, String> {
    use nix::unistd::{Uid, User};
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    match found {
        Ok(Some(u)) => Ok(super::UserIds {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }),
        Ok(None) => Err(format!("no user `{name}` on this machine")),
        Err(e) => Err(format!("cannot look up user `{name}`: {e}")),
    }
}
