//! The journal's public data: options, what goes in, what comes out.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipc_proto::DeliveredEvent;
use serde::{Deserialize, Serialize};

/// Where the journal's wall-clock time comes from (injected in tests).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(SystemTime::now))
    }

    /// A clock that asks `now`.
    pub fn new(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    /// The time now.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// How long things are kept, and how often the writer tidies up.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// A dedupe key repeated within this long is a duplicate (default 24h).
    pub dedupe_ttl: Duration,
    /// Delivered events are kept this long after delivery (default 1h).
    pub retention: Duration,
    /// Compact after this many commits… (default 1000)
    pub compact_every_commits: u64,
    /// …or this long since the last compaction, whichever first (default 60s).
    pub compact_interval: Duration,
    /// Longest a delivered mark stays non-durable (default 1s).
    pub mark_sync_interval: Duration,
    /// Wall-clock time for dedupe, retention and dead-letter timestamps.
    pub clock: Clock,
    /// Idempotency records are kept this long (the longest `idempotencyTtl`; default 24h).
    pub idempotency_ttl: Duration,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            dedupe_ttl: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(600),
            compact_every_commits: 1000,
            compact_interval: Duration::from_secs(60),
            mark_sync_interval: Duration::from_secs(1),
            clock: Clock::system(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where ingress routed an event when it was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// The agent.
    pub agent: String,
    /// The swarm the agent belongs to. The instance key is `event.instance_key`.
    pub swarm: String,
}

/// An event to accept.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The event; `event.id` must be a UUID (v7, so ids sort by acceptance).
    pub event: DeliveredEvent,
    /// Its route; `None` when `unmatched: drop` dropped it (nothing becomes pending).
    pub route: Option<RouteRecord>,
    /// The connector's idempotency key, scoped to `event.connection`.
    pub dedupe_key: Option<String>,
}

/// The outcome of an accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored durably.
    New,
    /// The dedupe key was seen within the TTL; nothing was stored.
    Duplicate {
        /// The id of the event first accepted with the key.
        original_id: String,
    },
}

/// A pending event, as recovery or a replay hands it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournaledEvent {
    /// The event.
    pub event: DeliveredEvent,
    /// Its route at accept time.
    pub route: RouteRecord,
    /// Attempts made so far, as recorded by
    /// [`Journal::attempted`](super::Journal::attempted); 0 if never tried.
    pub attempts: u32,
}

/// One dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event.
    pub event: DeliveredEvent,
    /// Its route at accept time.
    pub route: RouteRecord,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was given up on.
    pub error: String,
    /// When.
    pub dead_at: SystemTime,
}

/// What a compaction removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Delivered events past retention.
    pub delivered_removed: u64,
    /// Dedupe keys past their TTL.
    pub dedupe_removed: u64,
}

/// A snapshot of the journal's counters. Totals count since open; sizes are
/// table sizes as of the last commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events accepted as new.
    pub accepted: u64,
    /// Accepts that were duplicates.
    pub duplicates: u64,
    /// Pending events marked delivered.
    pub delivered: u64,
    /// Events dead-lettered.
    pub dead_lettered: u64,
    /// Dead letters replayed.
    pub replayed: u64,
    /// Events pending now.
    pub pending: u64,
    /// Dead letters now.
    pub dead: u64,
    /// Delivered events still retained.
    pub retained: u64,
    /// Dedupe keys held.
    pub dedupe_keys: u64,
    /// Write transactions committed.
    pub commits: u64,
    /// Of those, the durable (fsynced) ones.
    pub durable_commits: u64,
    /// Compactions run.
    pub compactions: u64,
}
