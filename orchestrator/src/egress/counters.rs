//! Per-child egress counters, for `status --json` and `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// What one child's proxy did (kept across its restarts).
#[derive(Debug, Default)]
pub struct Counters {
    /// Set once a proxy served this process (its plan has `egress`).
    enabled: AtomicBool,
    allowed: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    failed: Mutex<BTreeMap<&'static str, u64>>,
    sent: AtomicU64,
    received: AtomicU64,
}

/// The `egress` object of a status row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressSnapshot {
    /// Connections the proxy made for it.
    pub allowed: u64,
    /// Requests refused with 403, by reason (`host_not_allowed`,
    /// `port_not_allowed`, `literal_ip`, `<class>_address`, …).
    pub refused: BTreeMap<String, u64>,
    /// Allowed requests that failed upstream (502), by reason
    /// (`resolve_failed`, `connect_failed`).
    pub failed: BTreeMap<String, u64>,
    /// Bytes sent from the child to the hosts it reached.
    pub bytes_sent: u64,
    /// Bytes received from them.
    pub bytes_received: u64,
}

impl Counters {
    /// Marks the process as served by a proxy (so its row shows `egress`).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub(super) fn allowed(&self) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn refused(&self, reason: &'static str) {
        *self
            .refused
            .lock()
            .expect("egress lock")
            .entry(reason)
            .or_default() += 1;
    }

    pub(super) fn failed(&self, reason: &'static str) {
        *self
            .failed
            .lock()
            .expect("egress lock")
            .entry(reason)
            .or_default() += 1;
    }

    pub(super) fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counts, or `None` for a process without an egress proxy.
    pub fn snapshot(&self) -> Option<EgressSnapshot> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let names = |m: &Mutex<BTreeMap<&'static str, u64>>| {
            m.lock()
                .expect("egress lock")
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        };
        Some(EgressSnapshot {
            allowed: self.allowed.load(Ordering::Relaxed),
            refused: names(&self.refused),
            failed: names(&self.failed),
            bytes_sent: self.sent.load(Ordering::Relaxed),
            bytes_received: self.received.load(Ordering::Relaxed),
        })
    }
}
