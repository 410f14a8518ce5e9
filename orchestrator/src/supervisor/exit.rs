//! Why a child stopped, and what the restart policy makes of it.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use super::StderrTail;
use crate::bundle::{RestartMode, RestartPolicy};
use crate::logs::LogSink;
use crate::status::ProcessStatus;

/// The cause of one child's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitCause {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
    /// The OOM killer of its memory cgroup killed it at `memoryMax` (the
    /// shim says so with [`crate::sandbox::OOM_EXIT`]).
    Oom,
    /// It could not be executed at all.
    ExecFailed(io::ErrorKind, String),
    /// It ran but never became ready.
    FailedStart(String),
    /// It stopped answering pings and was killed.
    Hung(u64),
    /// It stopped doing its work (a delivery timed out) and was killed.
    Unresponsive(String),
    /// It speaks another protocol version.
    Incompatible(String),
    /// It did not read what it was sent (its input stayed full) and was killed.
    NotReading(String),
}

impl ExitCause {
    /// From a wait status.
    pub fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(crate::sandbox::OOM_EXIT), _) => ExitCause::Oom,
            (Some(code), _) => ExitCause::Exited(code),
            (None, Some(sig)) => ExitCause::Signaled(sig),
            (None, None) => ExitCause::Exited(-1),
        }
    }

    /// A failure the child cannot recover from by being started again:
    /// a permanent exit code, or an executable that is missing or not executable.
    pub fn is_permanent(&self, policy: &RestartPolicy) -> bool {
        match self {
            ExitCause::Exited(code) => policy.permanent_exit_codes.contains(code),
            // Another protocol version does not change by starting it again.
            ExitCause::Incompatible(_) => true,
            ExitCause::ExecFailed(kind, _) => {
                matches!(
                    kind,
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                )
            }
            _ => false,
        }
    }

    /// Whether `mode` restarts after this cause.
    pub fn wants_restart(&self, mode: RestartMode) -> bool {
        match mode {
            RestartMode::Always => true,
            RestartMode::Never => false,
            RestartMode::OnFailure => *self != ExitCause::Exited(0),
        }
    }
}

impl fmt::Display for ExitCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitCause::Exited(code) => write!(f, "exit code {code}"),
            ExitCause::Signaled(sig) => {
                let name = nix::sys::signal::Signal::try_from(*sig)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                write!(f, "killed by signal {sig} ({name})")
            }
            ExitCause::Oom => write!(f, "oom: killed by the OOM killer at memoryMax"),
            ExitCause::ExecFailed(_, msg) => write!(f, "failed to execute: {msg}"),
            ExitCause::FailedStart(msg) => write!(f, "failed start: {msg}"),
            ExitCause::Hung(missed) => write!(f, "hung: {missed} pings unanswered, killed"),
            ExitCause::Unresponsive(why) => write!(f, "unresponsive: {why}, killed"),
            ExitCause::Incompatible(msg) => write!(f, "incompatible: {msg}"),
            ExitCause::NotReading(why) => write!(f, "not reading its input: {why}, killed"),
        }
    }
}

/// Logs how a run ended and keeps the cause in the status; for a failure,
/// a crash record with the last of its stderr.
pub(super) fn crash_record(
    log: &LogSink,
    status: &ProcessStatus,
    cause: &ExitCause,
    tail: &StderrTail,
) {
    log.note(&format!("exited: {cause}"));
    let lines = tail.lines();
    let last_line = lines.iter().rev().find(|l| !l.trim().is_empty()).cloned();
    let error = match cause {
        ExitCause::Exited(0) => None,
        // Why it never got ready is usually in its own last words (a port in use).
        ExitCause::FailedStart(reason) => Some(match &last_line {
            Some(line) => format!("{reason}: {line}"),
            None => reason.clone(),
        }),
        ExitCause::Incompatible(reason) => Some(reason.clone()),
        // It chose to exit: its last stderr line is usually why.
        ExitCause::Exited(_) => last_line.clone().or_else(|| Some(cause.to_string())),
        // Ended from outside (a signal, OOM, hung, …): whatever it last
        // printed is unrelated, the cause is the error.
        _ => Some(cause.to_string()),
    };
    status.set_exit(cause.to_string(), error);
    // 77: the program's shortcut for "my credentials were refused".
    if *cause == ExitCause::Exited(CREDENTIALS_REFUSED_EXIT) {
        status.set_credential_expired(Some(format!(
            "the program exited {CREDENTIALS_REFUSED_EXIT}: its credentials were refused"
        )));
    }
    if *cause == ExitCause::Exited(0) {
        return;
    }
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    log.note(&format!(
        "crash record: {cause}; last {bytes} bytes of stderr follow"
    ));
    for line in &lines {
        log.line("crash", line);
    }
    log.note("end of crash record");
}

/// The exit code a connector uses to say its credentials were refused
/// (EX_NOPERM): permanent by default, and `credential_expired` in `status`.
pub const CREDENTIALS_REFUSED_EXIT: i32 = 77;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let policy = RestartPolicy::default();
        let cases = [
            (ExitCause::Exited(0), RestartMode::OnFailure, false, false),
            (ExitCause::Exited(1), RestartMode::OnFailure, true, false),
            (ExitCause::Exited(0), RestartMode::Always, true, false),
            (ExitCause::Exited(1), RestartMode::Never, false, false),
            (ExitCause::Signaled(9), RestartMode::OnFailure, true, false),
            (ExitCause::Oom, RestartMode::OnFailure, true, false),
            (ExitCause::Exited(78), RestartMode::OnFailure, true, true),
            (
                ExitCause::FailedStart("x".into()),
                RestartMode::OnFailure,
                true,
                false,
            ),
            (
                ExitCause::ExecFailed(
                    io::ErrorKind::NotFound,
                    "No such file or directory (os error 2)".into(),
                ),
                RestartMode::Always,
                true,
                true,
            ),
            (
                ExitCause::ExecFailed(io::ErrorKind::Other, "fork failed".into()),
                RestartMode::Always,
                true,
                false,
            ),
        ];
        for (cause, mode, restart, permanent) in cases {
            assert_eq!(cause.wants_restart(mode), restart, "{cause} under {mode:?}");
            assert_eq!(cause.is_permanent(&policy), permanent, "{cause}");
        }
    }
}
