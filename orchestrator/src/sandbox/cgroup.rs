//! One cgroup per child, per controller: created with its limits before the
//! child starts, emptied and removed after it ends.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::CgroupLimit;
use super::probe::{CgroupVersion, Controller, remove_tree};
use crate::logs::LogSink;

/// Tells the cgroups of successive children apart.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// How long a removal waits for killed processes to leave a cgroup.
const REMOVE_PATIENCE: Duration = Duration::from_secs(5);

/// The cgroups of one child. Dropping it kills whatever is still in them
/// (a grandchild that left the process group) and removes them.
#[derive(Debug)]
pub struct CgroupGuard {
    dirs: Vec<PathBuf>,
    memory: Option<(CgroupVersion, PathBuf)>,
    log: LogSink,
    /// A `user: dynamic` uid, released (after the cgroups are emptied) with the guard.
    uid: Option<super::uids::UidLease>,
}

impl CgroupGuard {
    /// Creates a cgroup named after `program` under each limit's home and
    /// writes the limits; on failure nothing is left behind.
    pub fn create(limits: &[CgroupLimit], program: &str, log: &LogSink) -> Result<Self, String> {
        let name: String = program
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut guard = CgroupGuard::empty(log);
        for limit in limits {
            let dir = limit.home.dir.join(&name);
            fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            guard.dirs.push(dir.clone());
            for (file, value) in &limit.files {
                let (optional, file) = match file.strip_prefix('?') {
                    Some(f) => (true, f),
                    None => (false, file.as_str()),
                };
                let path = dir.join(file);
                if let Err(e) = fs::write(&path, value)
                    && !optional
                {
                    return Err(format!("cannot write {value} to {}: {e}", path.display()));
                }
            }
            if limit.controller == Controller::Memory {
                guard.memory = Some((limit.home.version, dir));
            }
        }
        Ok(guard)
    }

    /// A guard of no cgroup (that may hold a uid).
    pub fn empty(log: &LogSink) -> Self {
        CgroupGuard {
            dirs: Vec::new(),
            memory: None,
            log: log.clone(),
            uid: None,
        }
    }

    /// Holds `lease` until the child is gone.
    pub(super) fn hold_uid(&mut self, lease: super::uids::UidLease) {
        self.uid = Some(lease);
    }

    /// The directories the child joins.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The memory cgroup, if there is one.
    pub fn memory(&self) -> Option<(CgroupVersion, PathBuf)> {
        self.memory.clone()
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some((version, dir)) = &self.memory {
            let kills = oom_kills(*version, dir);
            if kills > 0 {
                self.log.note(&format!(
                    "memory cgroup: the OOM killer ended {kills} process(es) at memoryMax"
                ));
            }
        }
        let dirs = std::mem::take(&mut self.dirs);
        for dir in &dirs {
            kill_all(dir);
        }
        // Killed processes leave their cgroups a moment later; don't hold up
        // the supervisor for that.
        if !dirs.iter().all(|d| try_remove(d)) {
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                while start.elapsed() < REMOVE_PATIENCE {
                    std::thread::sleep(Duration::from_millis(20));
                    if dirs.iter().all(|d| try_remove(d)) {
                        return;
                    }
                }
                tracing::warn!(?dirs, "could not remove cgroups");
            });
        }
    }
}

/// SIGKILL to every process in the cgroup `dir` (and below).
fn kill_all(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                kill_all(&entry.path());
            }
        }
    }
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) on a pid listed in our own child's cgroup.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

fn try_remove(dir: &Path) -> bool {
    remove_tree(dir);
    !dir.exists()
}

/// How many processes the OOM killer ended in the memory cgroup `dir`.
pub fn oom_kills(version: CgroupVersion, dir: &Path) -> u64 {
    let file = match version {
        CgroupVersion::V1 => "memory.oom_control",
        CgroupVersion::V2 => "memory.events",
    };
    fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}
