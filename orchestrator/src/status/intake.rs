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

/// What `status` shows of a Connection's declarations: which connector
/// version runs, which config schema its config was checked against, and
/// the limits it runs under.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetails {
    /// The Connector's `spec.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_version: Option<String>,
    /// `sha256:` and the first 12 hex digits of the Connector's config
    /// schema (canonical JSON): it changes exactly when the schema does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema_version: Option<String>,
    /// `spec.rateLimit` of events in, as `<perSecond>/s burst <burst>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// `spec.operations.rateLimit` of calls out, the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_rate_limit: Option<String>,
}

impl ConnectionDetails {
    /// `c`'s details as `connector` declares them.
    pub fn of(c: &crate::bundle::Connection, connector: &crate::bundle::Connector) -> Self {
        use sha2::Digest;
        let limit = |l: &crate::bundle::RateLimit| format!("{}/s burst {}", l.per_second, l.burst);
        Self {
            connector_version: connector.version.clone(),
            config_schema_version: connector.config_schema.as_ref().map(|schema| {
                let digest = sha2::Sha256::digest(schema.to_string().as_bytes());
                let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
                format!("sha256:{hex}")
            }),
            rate_limit: c.rate_limit.as_ref().map(limit),
            operations_rate_limit: c.operations.rate_limit.as_ref().map(limit),
        }
    }
}

/// A Connection's state from its process state (the circuit of its
/// operations may still make `active` into `degraded`: see `control`).
pub(super) fn connection_state(info: &super::Info) -> &'static str {
    if info.disabled {
        return "disabled";
    }
    if info.credential_expired.is_some() {
        return "credential_expired";
    }
    match info.state {
        ProcessState::Starting | ProcessState::Backoff => "provisioning",
        ProcessState::Ready => "active",
        ProcessState::Crashloop => "degraded",
        ProcessState::Failed => "error",
        ProcessState::Stopping | ProcessState::Stopped => "stopped",
    }
}
