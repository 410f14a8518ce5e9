//! The event journal: accepted → delivered / dead-lettered.
//!
//! This is the in-memory journal of the walking core: it counts every event
//! through its states and keeps dead letters, but it is NOT durable — an
//! orchestrator restart forgets undelivered events. The durable, group-committed
//! store (redb) replaces it behind the same calls.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ipc_proto::DeliveredEvent;

/// One dead letter: the event, how many attempts it had and the last error.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The event.
    pub event: DeliveredEvent,
    /// The agent it was routed to.
    pub agent: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was given up.
    pub error: String,
}

/// Counts of events by state.
#[derive(Debug, Default)]
pub struct JournalCounts {
    /// Accepted (acked to a connector).
    pub accepted: AtomicU64,
    /// Acked by an agent.
    pub delivered: AtomicU64,
    /// Given up on.
    pub dead_lettered: AtomicU64,
}

/// The journal shared by every connection and agent instance.
#[derive(Debug, Default)]
pub struct Journal {
    counts: JournalCounts,
    dead: Mutex<Vec<DeadLetter>>,
}

impl Journal {
    /// An empty in-memory journal.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Records an accepted event; after this the connector may be acked.
    pub fn accepted(&self, _event: &DeliveredEvent) {
        self.counts.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that an agent acked the event with this id.
    pub fn delivered(&self, _id: &str) {
        self.counts.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves an event to the dead-letter queue.
    pub fn dead_letter(&self, letter: DeadLetter) {
        self.counts.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.dead.lock().expect("journal lock").push(letter);
    }

    /// The counts so far.
    pub fn counts(&self) -> &JournalCounts {
        &self.counts
    }

    /// A copy of the dead letters.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.lock().expect("journal lock").clone()
    }
}
