//! What a Connection's intake did with its connector's emits, and the
//! Connection's state as an operator asks about it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::ProcessState;

/// What a Connection did with the emits of its connector: every refusal is
/// a nack and one of these counts.
#[derive(Debug, Default)]
pub struct IntakeCounters {
    /// Emits accepted (durable, acked).
    pub accepted: AtomicU64,
    /// Emits nacked, any kind.
    pub nacked: AtomicU64,
    /// Accepted events no rule matched (routed to the entryAgent or dropped).
    pub unmatched: AtomicU64,
    /// Accepted events dropped by `unmatched: drop`.
    pub dropped: AtomicU64,
    /// Emits nacked `quota_exceeded` by the rate limit.
    pub quota_exceeded: AtomicU64,
    /// Emits nacked `overloaded`: a full instance queue or `--max-pending`.
    pub overloaded: AtomicU64,
    /// Emits acked as duplicates of an earlier dedupe key.
    pub duplicates: AtomicU64,
}

/// [`IntakeCounters`] as `status --json` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntakeSnapshot {
    /// Emits accepted.
    pub accepted: u64,
    /// Emits nacked, any kind.
    pub nacked: u64,
    /// Accepted events no rule matched.
    pub unmatched: u64,
    /// Accepted events dropped by `unmatched: drop`.
    pub dropped: u64,
    /// Emits nacked `quota_exceeded`.
    pub quota_exceeded: u64,
    /// Emits nacked `overloaded`.
    pub overloaded: u64,
    /// Emits acked as duplicates.
    pub duplicates: u64,
}

impl IntakeCounters {
    pub(super) fn snapshot(&self) -> IntakeSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IntakeSnapshot {
            accepted: get(&self.accepted),
            nacked: get(&self.nacked),
            unmatched: get(&self.unmatched),
            dropped: get(&self.dropped),
            quota_exceeded: get(&self.quota_exceeded),
            overloaded: get(&self.overloaded),
            duplicates: get(&self.duplicates),
        }
    }
}

/// A Connection's state from its process state (the circuit of its
/// operations may still make `active` into `degraded`: see `control`).
pub(super) fn connection_state(state: ProcessState, credential_expired: bool) -> &'static str {
    if credential_expired {
        return "credential_expired";
    }
    match state {
        ProcessState::Starting | ProcessState::Backoff => "provisioning",
        ProcessState::Ready => "active",
        ProcessState::Crashloop => "degraded",
        ProcessState::Failed => "error",
        ProcessState::Stopping | ProcessState::Stopped => "stopped",
    }
}
