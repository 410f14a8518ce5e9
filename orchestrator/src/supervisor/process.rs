//! A started child: its process (exit watched through a pidfd, reaped
//! once) and the tail of its stderr.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::process::Child;

/// A child process that leads its own process group.
///
/// Its exit is watched through a pidfd, which tells that it ended without
/// reaping it. Until it is reaped its pid, which is also its group's id,
/// cannot be given to another process, so the group is always signalled
/// before the reap ([`Process::reap`]) and never after: a later `kill(-pgid)`
/// could reach an unrelated group that got the number again.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pid: u32,
    exit: Option<AsyncFd<OwnedFd>>,
    reaped: Option<std::process::ExitStatus>,
}

impl Process {
    pub(super) fn new(child: Child) -> Self {
        let pid = child.id().unwrap_or_default();
        Self {
            exit: pidfd(pid),
            child,
            pid,
            reaped: None,
        }
    }

    /// Its pid, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves once the process has exited; does not reap it.
    pub async fn exited(&mut self) {
        if self.reaped.is_some() {
            return;
        }
        if let Some(fd) = &self.exit
            && fd.readable().await.is_ok()
        {
            return;
        }
        // No pidfd here: waiting reaps, so what is left of the group is
        // signalled first, as `reap` would.
        if let Ok(status) = self.child.wait().await {
            self.reaped = Some(status);
        }
    }

    /// SIGKILLs what is left of its process group, then reaps it (once).
    pub async fn reap(&mut self) -> io::Result<std::process::ExitStatus> {
        if let Some(status) = self.reaped {
            return Ok(status);
        }
        super::session::kill_group(self.pid);
        let status = self.child.wait().await?;
        self.reaped = Some(status);
        Ok(status)
    }
}

/// A pidfd for `pid` (readable once it exits), if the kernel has them.
fn pidfd(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
    // close-on-exec fd or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the fd was just returned to us by pidfd_open and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) };
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same fd
    // until the AsyncFd is dropped.
    unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.ok()
}

/// How much of a child's stderr a crash record keeps.
pub const STDERR_TAIL_BYTES: usize = 64 * 1024;

/// The last [`STDERR_TAIL_BYTES`] of a child's stderr, whole lines.
#[derive(Clone, Debug, Default)]
pub struct StderrTail {
    lines: Arc<Mutex<(VecDeque<String>, usize)>>,
}

impl StderrTail {
    pub(super) fn push(&self, line: &str) {
        let mut guard = self.lines.lock().expect("tail lock");
        let (lines, bytes) = &mut *guard;
        *bytes += line.len() + 1;
        lines.push_back(line.to_string());
        while *bytes > STDERR_TAIL_BYTES {
            match lines.pop_front() {
                Some(old) => *bytes -= old.len() + 1,
                None => break,
            }
        }
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("tail lock")
            .0
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Process;

    fn state_of(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) STATE …: the comm may hold spaces, so split after its ')'.
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    /// The leader's exit is seen without reaping it, so its pid (the group's
    /// id) stays taken until `reap`, which kills what is left of the group
    /// first: a group signal can never reach a group that got the number again.
    #[tokio::test]
    async fn the_group_is_killed_before_its_leader_is_reaped() {
        let mut cmd = tokio::process::Command::new("sh");
        // The leader starts a long sleeper in its group, says its pid, and exits.
        cmd.args(["-c", "sleep 1000 & echo $!"])
            .process_group(0)
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sh");
        let stdout = child.stdout.take().expect("stdout");
        let mut process = Process::new(child);
        assert!(process.exit.is_some(), "this kernel has pidfds");
        let leader = process.pid;
        let sleeper: u32 = {
            use tokio::io::AsyncBufReadExt;
            let mut line = String::new();
            tokio::io::BufReader::new(stdout)
                .read_line(&mut line)
                .await
                .expect("read pid");
            line.trim().parse().expect("a pid")
        };
        process.exited().await;
        assert_eq!(
            state_of(leader),
            Some('Z'),
            "exited, not reaped: its pid is still taken"
        );
        assert!(
            state_of(sleeper).is_some_and(|s| s != 'Z'),
            "the group lives on"
        );
        let status = process.reap().await.expect("reap");
        assert!(status.success(), "{status}");
        assert_eq!(state_of(leader), None, "reaped");
        // SIGKILLed before the reap; now a zombie of init's, or gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while state_of(sleeper).is_some_and(|s| s != 'Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "the sleeper was not killed"
            );
            tokio::task::yield_now().await;
        }
    }
}
