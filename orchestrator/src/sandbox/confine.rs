//! The child side of the confinement (see `harden.rs`): its state
//! directory, its capabilities, and its Landlock filesystem rules. Runs in
//! the shim's forked, single-threaded child before `execvp`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};

use super::{FsRules, UserIds};

/// Read-only for every sandboxed child (where they exist): the system.
const SYSTEM: [&str; 12] = [
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/opt",
    "/nix/store",
    "/proc",
    "/sys",
];

/// Read-write devices every program expects.
const DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Makes `dir` (and `tmpdir`, if any) exist, its mode 0700, and with a
/// `user` everything in it owned by that user. Files with more than one
/// link are left alone (a link a former owner made to a file elsewhere
/// must not be given away), and symbolic links are never followed.
pub fn own_state_dir(
    dir: &Path,
    user: Option<UserIds>,
    tmpdir: Option<&Path>,
) -> Result<(), String> {
    let io = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    if let Some(tmp) = tmpdir {
        fs::create_dir_all(tmp).map_err(|e| io("cannot create", tmp, e))?;
    }
    if let Some(ids) = user {
        chown_tree(dir, ids)?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| io("cannot chmod", dir, e))
}

fn chown_tree(path: &Path, ids: UserIds) -> Result<(), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let owned = meta.uid() == ids.uid && meta.gid() == ids.gid;
    if meta.is_dir() {
        if !owned {
            std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
        }
        let entries = fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in entries.flatten() {
            chown_tree(&entry.path(), ids)?;
        }
    } else if !owned && (meta.nlink() <= 1 || meta.file_type().is_symlink()) {
        std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))
            .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    }
    Ok(())
}

fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn has_cap(keep: &[u32], cap: u32) -> bool {
    keep.contains(&cap)
}

/// Empties the bounding set but for `keep` (needs `CAP_SETPCAP`: before
/// the user switch) and clears the ambient set. A process that holds no
/// capability at all (an unprivileged orchestrator's child) has nothing to
/// drop, so `EPERM` there is fine.
pub fn drop_bounding(keep: &[u32]) -> Result<(), String> {
    // SAFETY: prctl with these arguments only changes this process's capability sets.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    for cap in 0..=last_cap() {
        if has_cap(keep, cap) {
            continue;
        }
        // SAFETY: as above.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EPERM) && permitted()? == 0 {
                return Ok(());
            }
            return Err(format!("bounding set, capability {cap}: {err}"));
        }
    }
    Ok(())
}

fn capget() -> Result<[CapData; 2], String> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills two CapData for version 3, as given.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    Ok(data)
}

fn permitted() -> Result<u64, String> {
    let d = capget()?;
    Ok(u64::from(d[0].permitted) | (u64::from(d[1].permitted) << 32))
}

/// Effective, permitted and inheritable to exactly `keep` (what this
/// process still holds of it), and `keep` raised in the ambient set so a
/// non-root program keeps it across `execve`.
pub fn set_capabilities(keep: &[u32]) -> Result<(), String> {
    let held = permitted()?;
    let mask: u64 = keep
        .iter()
        .filter(|c| **c < 64)
        .fold(0, |m, c| m | (1u64 << c))
        & held;
    let lo = mask as u32;
    let hi = (mask >> 32) as u32;
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: lo,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: hi,
        },
    ];
    // SAFETY: capset reads the header and two CapData for version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    for cap in keep
        .iter()
        .filter(|c| **c < 64 && mask & (1u64 << **c) != 0)
    {
        // SAFETY: as in drop_bounding.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                *cap as libc::c_ulong,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(format!(
                "ambient capability {cap}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// `PR_SET_NO_NEW_PRIVS`: no setuid bit or file capability works after exec.
pub fn no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with these arguments only sets a flag of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(())
}

/// `path`, or, when it holds something of `hide`, every entry of it but
/// the way there (recursively); nothing at or below a hidden path but what
/// is at or below `allow` (its own state directory).
pub fn carve(path: &Path, hide: &[PathBuf], allow: Option<&Path>) -> Vec<PathBuf> {
    if hide.iter().any(|h| path.starts_with(h)) {
        let allowed = allow.is_some_and(|a| path.starts_with(a));
        return if allowed {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    if !hide.iter().any(|h| h.starts_with(path)) {
        return vec![path.to_path_buf()];
    }
    let Ok(entries) = fs::read_dir(path) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| carve(&e.path(), hide, allow))
        .collect()
}

fn canonical(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Restricts this process (and what it executes) to `rules`, the system
/// paths and the devices, and, where the ABI has scopes, its signals and
/// abstract unix sockets to its own Landlock domain.
pub fn landlock_fs(rules: &FsRules, state_dir: Option<&Path>) -> Result<(), String> {
    let err = |e: landlock::RulesetError| e.to_string();
    let abi = landlock::ABI::from(rules.abi);
    let hide: Vec<PathBuf> = rules.hide.iter().map(|p| canonical(p)).collect();
    let allow = state_dir.map(canonical);
    let expand = |paths: &mut dyn Iterator<Item = PathBuf>| -> Vec<PathBuf> {
        paths
            .map(|p| canonical(&p))
            .flat_map(|p| carve(&p, &hide, allow.as_deref()))
            .collect()
    };
    let read_only = expand(
        &mut SYSTEM
            .iter()
            .map(PathBuf::from)
            .chain(rules.read_only.iter().cloned()),
    );
    let read_write = expand(
        &mut DEVICES
            .iter()
            .map(PathBuf::from)
            .chain(rules.read_write.iter().cloned()),
    );
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?;
    if rules.abi >= 6 {
        ruleset = ruleset
            .scope(Scope::Signal | Scope::AbstractUnixSocket)
            .map_err(err)?;
    }
    let status = ruleset
        .create()
        .map_err(err)?
        .set_compatibility(CompatLevel::BestEffort)
        .add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi)))
        .map_err(err)?
        .add_rules(path_beneath_rules(&read_write, AccessFs::from_all(abi)))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("the filesystem ruleset is not enforced".into());
    }
    Ok(())
}
