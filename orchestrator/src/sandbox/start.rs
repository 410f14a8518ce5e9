//! The orchestrator side of starting one sandboxed child: refuse, warn, or
//! prepare its cgroups and the shim's `--sandbox` argument.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::uids::{self, UidRange};
use super::{CgroupGuard, PlanMode, SandboxPlan, UserIds};
use crate::logs::{LogSink, StateDir};
use crate::status::{ProcessKind, ProcessStatus};

/// The orchestrator's state directory (absolute), set once per run.
static STATE_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// The bundle's own files (YAML, secret files): set at the start of a run,
/// and grown by each apply (a file once a secret stays hidden).
static BUNDLE_FILES: std::sync::RwLock<Vec<PathBuf>> = std::sync::RwLock::new(Vec::new());

/// Tells the sandbox where the orchestrator's state directory is (what a
/// child must not reach but for its own state directory), which files of
/// the bundle hold configuration and secrets (`bundle`: the bundle file or
/// directory; `secret_files`: what Secrets read), and which uids `user:
/// dynamic` hands out. Called once, at the start of a run.
pub fn configure(
    state_root: &Path,
    bundle: &Path,
    secret_files: Vec<PathBuf>,
    uid_range: UidRange,
) {
    let _ = STATE_ROOT.set(canonical(state_root));
    hide_bundle_files(bundle, secret_files);
    uids::set_range(uid_range);
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Adds a bundle's files (its YAML and what its Secrets read) to what no
/// child may reach: at the start of a run, and at each apply (a file once
/// part of a bundle stays hidden).
pub fn hide_bundle_files(bundle: &Path, secret_files: Vec<PathBuf>) {
    let yaml = |p: &Path| p.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let mut files: Vec<PathBuf> = if bundle.is_dir() {
        std::fs::read_dir(bundle)
            .map(|entries| {
                let paths = entries.flatten().map(|e| e.path());
                paths.filter(|p| p.is_file() && yaml(p)).collect()
            })
            .unwrap_or_default()
    } else {
        vec![bundle.to_path_buf()]
    };
    files.extend(secret_files);
    let files = files.iter().filter(|p| p.is_file()).map(|p| canonical(p));
    let mut known = BUNDLE_FILES.write().unwrap_or_else(|e| e.into_inner());
    for file in files {
        if !known.contains(&file) {
            known.push(file);
        }
    }
}

/// The state directory of the child `status` is about (absolute).
fn state_dir_of(status: &ProcessStatus) -> Option<PathBuf> {
    let state = StateDir::at(STATE_ROOT.get()?);
    Some(match (&status.kind, &status.instance_key) {
        (ProcessKind::Agent, Some(key)) => state.agent_state(&status.name, key),
        (ProcessKind::Agent, None) => return None,
        (ProcessKind::Connection, _) => state.connection_state(&status.name),
    })
}

/// What a child starts with: the shim's `--sandbox` argument and its cgroups.
#[derive(Debug)]
pub struct Prepared {
    /// [`super::ChildSteps`] as JSON.
    pub steps_json: String,
    /// Its cgroups, removed when dropped (after the child is gone).
    pub cgroups: Option<CgroupGuard>,
    /// Network mode `egress`: the policy of the proxy to serve it (the
    /// child gets the other end of a [`crate::egress::Handoff`] at
    /// [`crate::egress::EGRESS_FD`]).
    pub egress: Option<std::sync::Arc<crate::egress::Policy>>,
}

/// Prepares one start of `program` (started in `cwd`) under `plan`,
/// through a shim if `shim`: its paths, its dynamic uid, its cgroups.
///
/// Records the plan's report in `status`. An `enforce` plan with a gap (or
/// without a shim to apply it) is refused with `PermissionDenied`, a
/// permanent failure, logged here and in the orchestrator log; a
/// `bestEffort` plan notes each gap in `log` and starts.
pub fn prepare(
    plan: &SandboxPlan,
    program: &Path,
    cwd: &Path,
    shim: bool,
    log: &LogSink,
    status: &ProcessStatus,
) -> io::Result<Option<Prepared>> {
    let mut report = plan.report.clone();
    if plan.mode == PlanMode::Off {
        status.set_sandbox(report);
        return Ok(None);
    }
    let mut refusal = plan.refusal();
    if refusal.is_none() && !shim && plan.has_steps() && plan.mode == PlanMode::Enforce {
        refusal = Some("sandbox (enforce) refuses to start: no shim to apply it".into());
    }
    if let Some(why) = refusal {
        status.set_sandbox(report);
        tracing::error!("{}: {why}", status.target());
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
    }
    for gap in plan.gaps() {
        log.note(&format!("sandbox (bestEffort): {gap}"));
    }
    if !shim {
        status.set_sandbox(report);
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
                status.set_sandbox(report);
                tracing::error!("{}: sandbox: {why}", status.target());
                return Err(io::Error::other(format!("sandbox: {why}")));
            }
            Err(why) => log.note(&format!("sandbox (bestEffort): no cgroup: {why}")),
        }
    }
    if plan.dynamic_user {
        match uids::lease(&status.target()) {
            Ok(lease) => {
                let uid = lease.uid();
                steps.user = Some(UserIds { uid, gid: uid });
                for r in report.iter_mut().filter(|r| r.limit == "user") {
                    r.note = Some(format!(
                        "uid {uid} gid {uid}, its own while it runs (--uid-range); its state directory is chowned to it (0700), the bundle directory must be readable by it"
                    ));
                }
                cgroups
                    .get_or_insert_with(|| CgroupGuard::empty(log))
                    .hold_uid(lease);
            }
            Err(why) => {
                // Not permanent: a uid comes free when another child stops.
                status.set_sandbox(report);
                tracing::error!("{}: sandbox: {why}", status.target());
                return Err(io::Error::other(why));
            }
        }
    }
    status.set_sandbox(report);
    add_paths(&mut steps, program, cwd, state_dir_of(status));
    let steps_json = serde_json::to_string(&steps).map_err(io::Error::other)?;
    Ok(Some(Prepared {
        steps_json,
        cgroups,
        egress: plan.egress.clone(),
    }))
}

/// Fills in the paths of one start: its state directory (0700, its
/// user's), what Landlock lets it read and write, what its mount namespace
/// hides and keeps, and its temp directory.
fn add_paths(steps: &mut super::ChildSteps, program: &Path, cwd: &Path, state: Option<PathBuf>) {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let program_dir = absolute(program).parent().map(Path::to_path_buf);
    let cwd = absolute(cwd);
    let root = STATE_ROOT.get().cloned();
    let private_tmp = steps.mounts.as_ref().is_some_and(|m| m.private_tmp);
    if steps.filesystem.is_some() || steps.pid_ns {
        steps.state_dir = state.clone();
    }
    if !private_tmp && steps.filesystem.is_some() {
        steps.tmpdir = state.as_ref().map(|s| s.join("tmp"));
    }
    let bundle_files = BUNDLE_FILES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(rules) = &mut steps.filesystem {
        rules.read_only.extend(program_dir);
        rules.read_only.push(cwd);
        rules.read_write.extend(state.iter().cloned());
        if private_tmp {
            rules.read_write.push(PathBuf::from("/tmp"));
        } else {
            // Nothing covers them: Landlock must go around them.
            rules.hide = root.iter().cloned().chain(bundle_files.clone()).collect();
        }
    }
    let (read_only, read_write) = steps
        .filesystem
        .as_ref()
        .map(|r| (r.read_only.clone(), r.read_write.clone()))
        .unwrap_or_default();
    if let Some(mounts) = &mut steps.mounts {
        mounts.hide = root;
        mounts.state_dir = state.clone();
        mounts.keep = read_only;
        mounts.cover_files = bundle_files;
        mounts.keep_writable = read_write
            .into_iter()
            .filter(|p| Some(p) != state.as_ref())
            .collect();
    }
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

/// The files the bundle's Secrets read (`valueFrom: {file: …}`).
pub fn secret_files(bundle: &crate::bundle::Bundle) -> Vec<PathBuf> {
    bundle
        .secrets
        .values()
        .flat_map(|s| s.data.values())
        .filter_map(|source| match source {
            crate::bundle::SecretSource::File(file) => Some(bundle.root.join(file)),
            crate::bundle::SecretSource::Env(_) => None,
        })
        .collect()
}
