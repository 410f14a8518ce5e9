//! A sandboxed child's own PID namespace.
//!
//! The shim unshares `CLONE_NEWPID`; its next child is pid 1 there: a tiny
//! init (this module, no exec) that makes its mount namespace (a fresh
//! `/proc`, a private `/tmp`, the orchestrator's state directory covered
//! but for the child's own), forks the program (pid 2), reaps whatever is
//! reparented to it, and when the program ends writes its raw wait status
//! to a pipe the shim reads, then exits, which kills anything left in the
//! namespace. The program is in the shim's process group, so the
//! orchestrator's group signals reach it directly (a pid 1 would ignore
//! the signals it has no handler for).

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, Pid, fork};

use super::{ChildSteps, Mounts, SANDBOX_FAILED_EXIT};

/// Forks the init of a new PID namespace, which runs `exec` (the program)
/// as its only child. Returns the init's pid and the pipe end its report
/// (the program's raw wait status) arrives on.
pub fn spawn_init(
    steps: &ChildSteps,
    exec: impl FnOnce() -> Infallible,
) -> Result<(Pid, OwnedFd), String> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: unshare only changes the PID namespace this (single-threaded)
    // process's next children are born in.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWPID): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the shim is single-threaded; the child runs `init`, which
    // never returns.
    match unsafe { fork() } {
        Err(e) => Err(format!("fork: {e}")),
        Ok(ForkResult::Parent { child }) => {
            drop(write);
            Ok((child, read))
        }
        Ok(ForkResult::Child) => {
            drop(read);
            init(steps, write, exec)
        }
    }
}

/// The program's raw wait status, as the init reported it.
pub fn read_report(pipe: OwnedFd) -> Option<i32> {
    let mut bytes = [0u8; 4];
    fs::File::from(pipe).read_exact(&mut bytes).ok()?;
    Some(i32::from_ne_bytes(bytes))
}

fn init(steps: &ChildSteps, report: OwnedFd, exec: impl FnOnce() -> Infallible) -> ! {
    // SAFETY: prctl only sets this process's parent-death signal: the
    // namespace goes with the shim.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if let Some(m) = &steps.mounts
        && let Err(why) = mounts(m)
    {
        eprintln!("orchestrator shim: sandbox: mount namespace: {why}");
        if steps.strict {
            std::process::exit(SANDBOX_FAILED_EXIT);
        }
    }
    // SAFETY: single-threaded; the child execs (or exits).
    let program = match unsafe { fork() } {
        Err(e) => {
            eprintln!("orchestrator shim: fork failed: {e}");
            std::process::exit(1)
        }
        Ok(ForkResult::Child) => match exec() {},
        Ok(ForkResult::Parent { child }) => child,
    };
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    loop {
        // SIGCHLD is blocked (the shim's mask): it waits here.
        let _ = chld.wait();
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own children, status written in place.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == program.as_raw() {
                let mut pipe = fs::File::from(report);
                let _ = pipe.write_all(&status.to_ne_bytes());
                std::process::exit(0);
            }
        }
    }
}

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{}: NUL in path", p.display()))
}

fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: Option<&str>| {
        s.map(|s| CString::new(s).map_err(|_| "NUL".to_string()))
            .transpose()
    };
    let (source, fstype, data) = (c(source)?, c(fstype)?, c(data)?);
    let target_c = cstr(target)?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn open_path(p: &Path) -> Result<OwnedFd, String> {
    let fd = nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", p.display()))?;
    Ok(fd)
}

/// Bind-mounts what `fd` is onto `target` (made first: a directory, or an
/// empty file).
fn bind(fd: &OwnedFd, target: &Path, dir: bool) -> Result<(), String> {
    let made = if dir {
        fs::create_dir_all(target)
    } else {
        target
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::File::create(target).map(drop))
    };
    made.map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(&source),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
}

/// The mount namespace: private propagation, then a private `/tmp` (the
/// kept paths under it bound back), the bundle's YAML and secret files
/// covered by `/dev/null`, the state directory covered by an empty tmpfs
/// with only the child's own bound back, and a fresh `/proc`.
fn mounts(m: &Mounts) -> Result<(), String> {
    // SAFETY: unshare only changes this (single-threaded) process's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    let flags = libc::MS_REC | libc::MS_PRIVATE;
    mount(None, Path::new("/"), None, flags, None)?;
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let cwd = std::env::current_dir().ok();
    // Everything is opened before anything is covered.
    let state = match &m.state_dir {
        Some(dir) => {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let dir = canonical(dir);
            Some((open_path(&dir)?, dir))
        }
        None => None,
    };
    let hide = m.hide.as_deref().map(canonical);
    let tmp = Path::new("/tmp");
    // (fd, path, a directory, writable), read-only first: a writable path
    // inside a read-only one is bound on top of it.
    let keep: Vec<(OwnedFd, PathBuf, bool, bool)> = if m.private_tmp {
        let ro = m.keep.iter().map(|p| (p, false));
        let rw = m.keep_writable.iter().map(|p| (p, true));
        ro.chain(rw)
            .map(|(p, w)| (canonical(p), w))
            .filter(|(p, _)| p.starts_with(tmp) && p != tmp)
            .filter_map(|(p, w)| {
                let dir = p.is_dir();
                open_path(&p).ok().map(|fd| (fd, p, dir, w))
            })
            .collect()
    } else {
        Vec::new()
    };
    let quiet = libc::MS_NOSUID | libc::MS_NODEV;
    if m.private_tmp {
        mount(Some("tmpfs"), tmp, Some("tmpfs"), quiet, Some("mode=1777"))?;
        for (fd, path, dir, writable) in &keep {
            bind(fd, path, *dir)?;
            if !writable {
                // /tmp is writable: what it keeps of the host's is not.
                let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | quiet;
                mount(None, path, None, ro, None)?;
            }
        }
    }
    // The bundle's YAML and secret files: other connections' secrets.
    for file in m.cover_files.iter().filter(|f| f.is_file()) {
        mount(Some("/dev/null"), file, None, libc::MS_BIND, None)?;
    }
    if let Some(hide) = &hide {
        fs::create_dir_all(hide).map_err(|e| format!("{}: {e}", hide.display()))?;
        let flags = quiet | libc::MS_NOEXEC;
        mount(Some("tmpfs"), hide, Some("tmpfs"), flags, Some("mode=0755"))?;
        if let Some((fd, dir)) = &state {
            bind(fd, dir, true)?;
        }
        // Nothing may be added to the cover (a failure leaves it writable by root only).
        let _ = mount(
            None,
            hide,
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | flags,
            None,
        );
    }
    let proc_flags = quiet | libc::MS_NOEXEC;
    mount(
        Some("proc"),
        Path::new("/proc"),
        Some("proc"),
        proc_flags,
        None,
    )?;
    if let Some(cwd) = cwd {
        // Through the new mounts (a kept bundle directory under /tmp).
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(())
}

/// Whether `pid` is the init of a PID namespace below ours (a sandboxed
/// child's; its program is its child).
pub fn is_namespace_init(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}
