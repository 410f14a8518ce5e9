//! The journal's counters: atomics the writer updates after each commit.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Counts;
use super::tables::Sizes;

/// Counters the writer updates after each commit; read by `Journal::counts`.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub replayed: AtomicU64,
    pub commits: AtomicU64,
    pub durable_commits: AtomicU64,
    pub compactions: AtomicU64,
    pub pending: AtomicU64,
    pub retained: AtomicU64,
    pub dead: AtomicU64,
    pub dedupe_keys: AtomicU64,
}

impl Stats {
    /// Records the table sizes a commit left.
    pub fn set_sizes(&self, s: Sizes) {
        self.pending.store(s.pending, Ordering::Relaxed);
        self.retained.store(s.delivered, Ordering::Relaxed);
        self.dead.store(s.dead, Ordering::Relaxed);
        self.dedupe_keys.store(s.dedupe, Ordering::Relaxed);
    }

    /// A plain snapshot.
    pub fn snapshot(&self) -> Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            accepted: get(&self.accepted),
            duplicates: get(&self.duplicates),
            delivered: get(&self.delivered),
            dead_lettered: get(&self.dead_lettered),
            replayed: get(&self.replayed),
            pending: get(&self.pending),
            dead: get(&self.dead),
            retained: get(&self.retained),
            dedupe_keys: get(&self.dedupe_keys),
            commits: get(&self.commits),
            durable_commits: get(&self.durable_commits),
            compactions: get(&self.compactions),
        }
    }
}
