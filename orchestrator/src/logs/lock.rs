//! One orchestrator per state directory: `orchestrator.lock`.
//!
//! `run` holds an exclusive `flock` on `<state>/orchestrator.lock` for its
//! whole life and writes its pid and role into it; a second `run` on the same
//! directory fails at once, naming the first one's pid. The `dlq` verbs take
//! the same lock while they open `journal.db` themselves (no orchestrator
//! answered on `control.sock`), for a moment; a `run` that finds one of those
//! waits it out (5 s at most) instead of failing. The kernel drops the lock
//! when its holder exits, however it exits, so a stale file never blocks a
//! start; the file itself stays.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// How long a short-lived holder (`dlq`) is waited for.
const PATIENCE: Duration = Duration::from_secs(5);

/// Who holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `orchestrator run`, for its whole life.
    Run,
    /// `orchestrator dlq …` on the journal file, for a moment.
    Dlq,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Dlq => "dlq",
        }
    }
}

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// An orchestrator runs there.
    #[error("another orchestrator (pid {pid}) runs with this state directory ({})", dir.display())]
    Running {
        /// Its pid, as it wrote it (`unknown` if it had not yet).
        pid: String,
        /// The state directory.
        dir: PathBuf,
    },
    /// A `dlq` command held it longer than we waited.
    #[error("`orchestrator dlq` (pid {pid}) is using this state directory ({}); try again", dir.display())]
    Dlq {
        /// Its pid.
        pid: String,
        /// The state directory.
        dir: PathBuf,
    },
    /// The lock file could not be opened or written.
    #[error("cannot lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why not.
        #[source]
        source: io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl StateLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Locks the state directory at `root` (creating it, 0700, if missing) for `role`.
pub fn lock(root: &Path, role: Role) -> Result<StateLock, LockError> {
    let path = root.join("orchestrator.lock");
    let io_error = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    super::private::create_dirs(root).map_err(io_error)?;
    let deadline = Instant::now() + PATIENCE;
    let mut file = open(&path).map_err(io_error)?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let holder = format!("{} {}\n", std::process::id(), role.as_str());
                locked
                    .set_len(0)
                    .and_then(|()| locked.rewind())
                    .and_then(|()| locked.write_all(holder.as_bytes()))
                    .map_err(io_error)?;
                return Ok(StateLock {
                    _file: locked,
                    path,
                });
            }
            Err((f, Errno::EWOULDBLOCK)) => file = f,
            Err((_, errno)) => return Err(io_error(errno.into())),
        }
        let (pid, holder) = holder(&mut file);
        // A dlq command lets go in a moment; a holder that has not written
        // its pid yet has only just started.
        let brief = holder.as_deref() == Some("dlq") || holder.is_none();
        if !brief || Instant::now() >= deadline {
            let dir = root.to_path_buf();
            return Err(match holder.as_deref() {
                Some("dlq") => LockError::Dlq { pid, dir },
                _ => LockError::Running { pid, dir },
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(super::private::FILE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The pid and role the holder wrote (`unknown`, `None` if nothing yet).
fn holder(file: &mut File) -> (String, Option<String>) {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(pid), role) => (pid.to_string(), role.map(str::to_string)),
        (None, _) => ("unknown".into(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let first = lock(&root, Role::Run).unwrap();
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(text, format!("{} run\n", std::process::id()));
        let started = Instant::now();
        let err = lock(&root, Role::Run).unwrap_err();
        assert!(
            started.elapsed() < PATIENCE,
            "a running holder fails at once"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "another orchestrator (pid {}) runs with this state directory ({})",
                std::process::id(),
                root.display()
            )
        );
        assert!(matches!(
            lock(&root, Role::Dlq),
            Err(LockError::Running { .. })
        ));
        drop(first);
        // Released: the next one gets it, and the old pid is replaced.
        let again = lock(&root, Role::Dlq).unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(text, format!("{} dlq\n", std::process::id()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(again.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A `dlq` command holds the lock only for a moment: `run` waits it out.
    #[test]
    fn run_waits_for_a_dlq_holder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let dlq = lock(&root, Role::Dlq).unwrap();
        let (held, release) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            // Let go a little later, while `run` is already waiting.
            let _ = release.recv_timeout(Duration::from_millis(200));
            drop(dlq);
        });
        let run = lock(&root, Role::Run);
        drop(held);
        holder.join().unwrap();
        let run = run.unwrap();
        let text = std::fs::read_to_string(run.path()).unwrap();
        assert_eq!(text, format!("{} run\n", std::process::id()));
    }
}
