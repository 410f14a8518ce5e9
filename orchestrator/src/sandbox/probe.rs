//! What this machine lets the orchestrator enforce: probed once, on the
//! first sandboxed child.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::DISABLE_ENV;

/// A cgroup controller the sandbox uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// memoryMax.
    Memory,
    /// tasksMax.
    Pids,
    /// cpuQuota.
    Cpu,
}

impl Controller {
    /// The kernel's name of the controller.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// cgroup v1 (one hierarchy per controller) or v2 (unified).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// A v1 hierarchy.
    V1,
    /// The unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// `cgroup-v1` or `cgroup-v2`, as status names the mechanism.
    pub fn mechanism(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "cgroup-v1",
            CgroupVersion::V2 => "cgroup-v2",
        }
    }
}

/// The directory under which this orchestrator creates one cgroup per child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupHome {
    /// Which hierarchy.
    pub version: CgroupVersion,
    /// `<mount>/<own cgroup>/orchestrator/<our pid>`, created and writable.
    pub dir: PathBuf,
}

/// What the machine offers; each `Err` says why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Running as uid 0.
    pub root: bool,
    /// `unshare(CLONE_NEWNET)` works (as root).
    pub netns: Result<(), String>,
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNET)` works.
    pub userns: Result<(), String>,
    /// `unshare(CLONE_NEWPID | CLONE_NEWNS)` works (as root).
    pub pidns: Result<(), String>,
    /// The kernel's Landlock ABI.
    pub landlock_abi: Result<i32, String>,
    /// seccomp filters can be installed.
    pub seccomp: Result<(), String>,
    /// Where memory cgroups go.
    pub memory: Result<CgroupHome, String>,
    /// Where pids cgroups go.
    pub pids: Result<CgroupHome, String>,
    /// Where cpu cgroups go.
    pub cpu: Result<CgroupHome, String>,
}

impl Capabilities {
    /// The home of `controller`'s cgroups, or why there is none.
    pub fn cgroup(&self, controller: Controller) -> &Result<CgroupHome, String> {
        match controller {
            Controller::Memory => &self.memory,
            Controller::Pids => &self.pids,
            Controller::Cpu => &self.cpu,
        }
    }
}

static PROBED: OnceLock<Capabilities> = OnceLock::new();

/// This machine's capabilities, probed on the first call.
pub fn capabilities() -> &'static Capabilities {
    PROBED.get_or_init(|| {
        let caps = probe();
        tracing::info!(?caps, "sandbox capabilities");
        caps
    })
}

/// Removes this orchestrator's cgroup homes and lets go of the audit log
/// (at the end of a run).
pub fn cleanup() {
    // The egress proxies' hold on the audit log ends with the run.
    crate::egress::clear_audit();
    let Some(caps) = PROBED.get() else { return };
    let homes: Vec<&CgroupHome> = [&caps.memory, &caps.pids, &caps.cpu]
        .into_iter()
        .flatten()
        .collect();
    // Processes killed a moment ago may still be leaving their cgroups.
    let start = std::time::Instant::now();
    loop {
        for home in &homes {
            remove_tree(&home.dir);
        }
        let left = homes.iter().any(|h| h.dir.exists());
        if !left || start.elapsed() > std::time::Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for home in homes {
        if let Some(parent) = home.dir.parent() {
            // Only when no other orchestrator uses it.
            let _ = fs::remove_dir(parent);
        }
    }
}

const DISABLED: &str = "disabled by ORCHESTRATOR_SANDBOX_DISABLE";

fn probe() -> Capabilities {
    let disabled: BTreeSet<String> = std::env::var(DISABLE_ENV)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let off = |name: &str| disabled.contains(name);
    let root = nix::unistd::geteuid().is_root();
    let netns = if off("netns") {
        Err(DISABLED.to_string())
    } else if !root {
        Err("needs root (CAP_SYS_ADMIN)".to_string())
    } else {
        try_unshare(libc::CLONE_NEWNET)
    };
    let userns = if off("userns") {
        Err(DISABLED.to_string())
    } else {
        try_unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET)
    };
    let pidns = if off("pidns") {
        Err(DISABLED.to_string())
    } else if !root {
        Err("needs root (CAP_SYS_ADMIN)".to_string())
    } else {
        try_unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS)
    };
    let landlock_abi = if off("landlock") {
        Err(DISABLED.to_string())
    } else {
        landlock_abi()
    };
    // SAFETY: PR_GET_SECCOMP reads this process's seccomp mode.
    let seccomp = if off("seccomp") {
        Err(DISABLED.to_string())
    } else if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } < 0 {
        Err(format!(
            "seccomp unavailable: {}",
            std::io::Error::last_os_error()
        ))
    } else {
        Ok(())
    };
    let home = |c: Controller| {
        if off("cgroup") {
            Err(DISABLED.to_string())
        } else {
            cgroup_home(c)
        }
    };
    Capabilities {
        root,
        netns,
        userns,
        pidns,
        landlock_abi,
        seccomp,
        memory: home(Controller::Memory),
        pids: home(Controller::Pids),
        cpu: home(Controller::Cpu),
    }
}

/// Tries `unshare(flags)` in a forked child, which then exits.
fn try_unshare(flags: libc::c_int) -> Result<(), String> {
    // SAFETY: between fork and _exit the child calls only unshare and reads
    // errno, both async-signal-safe; the parent waits for exactly that pid.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            let rc = libc::unshare(flags);
            libc::_exit(if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            });
        }
        let mut status = 0;
        if libc::waitpid(pid, &mut status, 0) != pid {
            return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
        }
        match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
            Some(0) => Ok(()),
            Some(errno) => Err(format!(
                "unshare: {}",
                std::io::Error::from_raw_os_error(errno)
            )),
            None => Err("the probe child was killed".to_string()),
        }
    }
}

fn landlock_abi() -> Result<i32, String> {
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns the ABI.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    if v < 0 {
        return Err(format!(
            "Landlock unavailable: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(v as i32)
}

/// One line of `/proc/self/mountinfo` for a cgroup filesystem.
struct CgroupMount {
    /// Mount point.
    point: PathBuf,
    /// The hierarchy path mounted there.
    root: String,
    /// `cgroup` or `cgroup2`.
    fstype: String,
    /// Super options (v1 names its controllers there).
    options: Vec<String>,
}

fn cgroup_mounts() -> Vec<CgroupMount> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let fstype = (*right.first()?).to_string();
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(CgroupMount {
                point: PathBuf::from(*left.get(4)?),
                root: (*left.get(3)?).to_string(),
                fstype,
                options: right.get(2)?.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Our own cgroup in the hierarchy that has `controller` (v1), or the unified one (`None`).
fn own_cgroup(controller: Option<&str>) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            Some(c) => list.split(',').any(|x| x == c),
            None => list.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

/// `<mount point>/<own path relative to the mount's root>`.
fn own_dir(mount: &CgroupMount, own: &str) -> PathBuf {
    let rel = own.strip_prefix(&mount.root).unwrap_or(own);
    mount.point.join(rel.trim_start_matches('/'))
}

fn cgroup_home(c: Controller) -> Result<CgroupHome, String> {
    let mounts = cgroup_mounts();
    let v2 = mounts
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .ok_or_else(|| "no cgroup v2 mount".to_string())
        .and_then(|m| {
            let own = own_cgroup(None).ok_or("not in a cgroup v2")?;
            v2_home(&own_dir(m, &own), c)
        });
    let v2_why = match v2 {
        Ok(home) => return Ok(home),
        Err(why) => why,
    };
    let v1 = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.options.iter().any(|o| o == c.name()))
        .ok_or_else(|| format!("no cgroup v1 {} hierarchy", c.name()))
        .and_then(|m| {
            let own = own_cgroup(Some(c.name())).ok_or("not in a cgroup v1 of it")?;
            let home = make_home(&own_dir(m, &own))?;
            Ok(CgroupHome {
                version: CgroupVersion::V1,
                dir: home,
            })
        });
    v1.map_err(|v1_why| format!("cgroup v2: {v2_why}; v1: {v1_why}"))
}

/// A v2 home with `c` enabled for its children, or why not.
fn v2_home(own: &Path, c: Controller) -> Result<CgroupHome, String> {
    let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    if !available.split_whitespace().any(|x| x == c.name()) {
        return Err(format!("no {} controller in {}", c.name(), own.display()));
    }
    let home = make_home(own)?;
    let enable = format!("+{}", c.name());
    for dir in [own, home.parent().unwrap_or(own), &home] {
        let file = dir.join("cgroup.subtree_control");
        let now = fs::read_to_string(&file).unwrap_or_default();
        if !now.split_whitespace().any(|x| x == c.name()) {
            fs::write(&file, &enable)
                .map_err(|e| format!("cannot enable {} in {}: {e}", c.name(), file.display()))?;
        }
    }
    Ok(CgroupHome {
        version: CgroupVersion::V2,
        dir: home,
    })
}

/// Creates `<own>/orchestrator/<pid>`, first removing homes of orchestrators that are gone.
fn make_home(own: &Path) -> Result<PathBuf, String> {
    let parent = own.join("orchestrator");
    if let Ok(entries) = fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let stale = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                remove_tree(&entry.path());
            }
        }
    }
    let home = parent.join(std::process::id().to_string());
    fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    Ok(home)
}

/// rmdir of a cgroup directory and every cgroup below it, deepest first.
pub(crate) fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
