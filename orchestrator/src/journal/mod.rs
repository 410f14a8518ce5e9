//! The event journal: accepted → delivered / dead-lettered, durably.
//!
//! # Theory of operation
//!
//! **What it owns.** One redb database (`journal.db` in the state directory)
//! and the one thread that writes to it. Everything an orchestrator has
//! acknowledged to a connector is in it until an agent acknowledges it or it
//! is dead-lettered, so a restart — even after SIGKILL — delivers it again.
//!
//! **The life of one event.**
//! 1. [`Journal::accept`] encodes the record on the caller's thread and queues
//!    it *at call time*; the returned future only waits. Callers pipeline:
//!    they accept many events before awaiting any.
//! 2. The writer thread takes everything queued — accepts from every
//!    connection, delivered marks, dead letters — into one write transaction,
//!    commits it with a single fsync (group commit) and then resolves every
//!    future of the batch. Only now may the connector be acked.
//!    A `dedupe_key` seen for the same connection within `dedupe_ttl`
//!    resolves as [`Accepted::Duplicate`] and stores nothing.
//! 3. [`Journal::delivered`] (the agent's ack) is fire-and-forget. The writer
//!    moves the event's id from the pending set to the retention index in the
//!    next batch (its record, written once at accept, stays put); a batch
//!    of marks alone commits with `Durability::None` (no fsync). Marks become
//!    durable with the next durable commit: the next accept, or at the latest
//!    `mark_sync_interval` later, or on close. A crash can therefore forget
//!    the last marks — those events are delivered again (at-least-once), never
//!    lost.
//! 4. After too many attempts the router calls [`Journal::dead_letter`]; an
//!    operator may [`replay`](Journal::replay) it (pending again, attempts
//!    reset) or [`drop`](Journal::drop_dead) it.
//! 5. On start-up, [`Journal::pending`] lists what is still owed, in
//!    acceptance order, with the route recorded at accept time — so a changed
//!    bundle does not silently re-route old events.
//! 6. Compaction, run by the writer every `compact_every_commits` commits or
//!    `compact_interval`, deletes delivered events older than `retention` and
//!    dedupe keys older than `dedupe_ttl`, so the file stays bounded.
//!
//! **What it never does.** It never routes, delivers or retries (the router
//! does); it never drops a pending or dead event on its own; it never writes
//! from any thread but its writer; and it never blocks an async caller on
//! I/O except in [`Journal::pending`] / [`Journal::dead_letters`] (short
//! reads, meant for start-up and control verbs) and on close.
//!
//! [`Journal::memory`] runs the same code on a file that lives only in memory
//! (`memfd_create(2)`): NOT durable, for tests and benchmarks. (redb's own
//! in-memory backend keeps the database in one `Vec` that is reallocated
//! and copied whenever the database grows: a third of the writer's time on
//! a long run. A memory file grows in place.)

mod cmd;
mod error;
mod linger;
mod migrate;
mod open;
mod ops;
mod reads;
mod records;
mod stats;
mod tables;
#[cfg(test)]
mod tests;
mod types;
mod writer;

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

use cmd::{Cmd, Reply};
pub use error::JournalError;
use records::{EventRecord, encode, parse_id};
use stats::Stats;
pub use types::{
    Accepted, Clock, CompactStats, Counts, DeadLetter, JournalOptions, JournaledEvent, NewEvent,
    RouteRecord,
};

/// The journal shared by every connection and agent instance. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Cmd>,
    /// Delivered marks not yet taken by the writer (see [`Journal::delivered`]).
    marks: Arc<Marks>,
    writer: Mutex<Option<JoinHandle<()>>>,
    db: Arc<Database>,
    stats: Arc<Stats>,
    durable: bool,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Commits everything queued so far durably and stops the writer.
    fn stop(&self) {
        let handle = self.writer.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some(handle) = handle {
            let _ = self.tx.send(Cmd::Stop);
            if handle.join().is_err() {
                tracing::error!("the journal writer panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Delivered marks on their way to the writer, outside its channel.
///
/// Order: an event's accept is in the channel before it can be delivered,
/// so before its mark is here. The writer takes this list first and then
/// drains the channel, and applies the list after the channel's commands:
/// every mark it applies comes after its event's accept.
#[derive(Debug, Default)]
pub(crate) struct Marks(Mutex<Vec<uuid::Uuid>>);

impl Marks {
    /// Adds a mark; true when the list was empty (the writer must be told).
    fn push(&self, id: uuid::Uuid) -> bool {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        marks.push(id);
        marks.len() == 1
    }

    /// Takes every mark, leaving the list empty.
    pub(crate) fn take(&self) -> Vec<uuid::Uuid> {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *marks)
    }
}

/// An answer: known already, or to come from the writer.
enum Ticket<T> {
    Ready(Result<T, JournalError>),
    Wait(oneshot::Receiver<Result<T, JournalError>>),
}

impl<T> Ticket<T> {
    async fn wait(self) -> Result<T, JournalError> {
        match self {
            Ticket::Ready(result) => result,
            Ticket::Wait(rx) => rx.await.unwrap_or(Err(JournalError::Closed)),
        }
    }
}

impl Journal {
    /// Whether this journal survives a restart (false for [`Journal::memory`]).
    pub fn is_durable(&self) -> bool {
        self.inner.durable
    }

    fn request<T>(&self, cmd: impl FnOnce(Reply<T>) -> Cmd) -> Ticket<T> {
        let (tx, rx) = oneshot::channel();
        // A closed writer drops the command and with it `tx`: the wait says Closed.
        let _ = self.inner.tx.send(cmd(tx));
        Ticket::Wait(rx)
    }

    /// Accepts an event. It is queued now; the future resolves once the
    /// transaction holding it is durably committed (or it was a duplicate).
    pub fn accept(
        &self,
        rec: NewEvent,
    ) -> impl Future<Output = Result<Accepted, JournalError>> + Send + 'static {
        self.accept_ticket(&rec.event, rec.route, rec.dedupe_key)
            .wait()
    }

    /// [`Journal::accept`] of an event the caller keeps (to deliver it):
    /// its record is encoded from the reference, no copy of it is made.
    pub fn accept_ref(
        &self,
        event: &ipc_proto::DeliveredEvent,
        route: Option<RouteRecord>,
        dedupe_key: Option<String>,
    ) -> impl Future<Output = Result<Accepted, JournalError>> + Send + 'static {
        self.accept_ticket(event, route, dedupe_key).wait()
    }

    fn accept_ticket(
        &self,
        event: &ipc_proto::DeliveredEvent,
        route: Option<RouteRecord>,
        dedupe_key: Option<String>,
    ) -> Ticket<Accepted> {
        let id = match parse_id(&event.id) {
            Ok(id) => id,
            Err(e) => return Ticket::Ready(Err(e)),
        };
        let dedupe = dedupe_key.map(|key| (event.connection.clone(), key));
        let record = match route {
            Some(route) => match encode(&event.id, &EventRecord { event, route }) {
                Ok(bytes) => Some(bytes),
                Err(e) => return Ticket::Ready(Err(e)),
            },
            None => None,
        };
        if record.is_none() && dedupe.is_none() {
            // Dropped and not deduplicated: nothing to make durable.
            self.inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
            return Ticket::Ready(Ok(Accepted::New));
        }
        self.request(|reply| Cmd::Accept {
            id,
            record,
            dedupe,
            reply,
        })
    }

    /// Marks an event delivered (the agent acked it). Fire-and-forget; see
    /// the module doc for when it becomes durable.
    ///
    /// A mark does not wake the writer thread: it is added to a list the
    /// writer takes whole with its next batch, and only the first mark into
    /// an empty list tells the writer there are marks to take.
    pub fn delivered(&self, id: &str) {
        match parse_id(id) {
            Ok(id) => {
                if self.inner.marks.push(id) {
                    let _ = self.inner.tx.send(Cmd::Marks);
                }
            }
            Err(e) => tracing::warn!("journal: delivered: {e}"),
        }
    }

    /// Records that a pending event has had `attempts` delivery attempts, so a
    /// restart continues counting. Fire-and-forget, like [`Journal::delivered`].
    pub fn attempted(&self, id: &str, attempts: u32) {
        match parse_id(id) {
            Ok(id) => {
                let _ = self.inner.tx.send(Cmd::Attempted(id, attempts));
            }
            Err(e) => tracing::warn!("journal: attempted: {e}"),
        }
    }

    /// Moves a pending event to the dead-letter queue; resolves once durable.
    pub fn dead_letter(
        &self,
        id: &str,
        attempts: u32,
        error: &str,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let ticket = match parse_id(id) {
            Ok(id) => self.request(|reply| Cmd::DeadLetter {
                id,
                attempts,
                error: error.to_owned(),
                reply,
            }),
            Err(e) => Ticket::Ready(Err(e)),
        };
        ticket.wait()
    }

    /// Moves a dead letter back to pending with attempts reset, and returns
    /// it so the caller can dispatch it again.
    pub fn replay(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<JournaledEvent, JournalError>> + Send + 'static {
        let ticket = match parse_id(id) {
            Ok(id) => self.request(|reply| Cmd::Replay(id, reply)),
            Err(e) => Ticket::Ready(Err(e)),
        };
        ticket.wait()
    }

    /// Replays every dead letter, in acceptance order.
    pub fn replay_all(
        &self,
    ) -> impl Future<Output = Result<Vec<JournaledEvent>, JournalError>> + Send + 'static {
        self.request(Cmd::ReplayAll).wait()
    }

    /// Deletes a dead letter for good.
    pub fn drop_dead(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let ticket = match parse_id(id) {
            Ok(id) => self.request(|reply| Cmd::DropDead(id, reply)),
            Err(e) => Ticket::Ready(Err(e)),
        };
        ticket.wait()
    }

    /// Compacts now (the writer also does it periodically): deletes delivered
    /// events past `retention` and dedupe keys past `dedupe_ttl`, by the clock.
    pub fn compact(
        &self,
    ) -> impl Future<Output = Result<CompactStats, JournalError>> + Send + 'static {
        self.request(Cmd::Compact).wait()
    }

    /// Resolves once everything queued before it — marks included — is durable.
    pub fn flush(&self) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.request(Cmd::Flush).wait()
    }

    /// Every accepted, undelivered, not dead event, in acceptance order.
    /// Reflects what the writer has committed (see [`Journal::flush`]).
    pub fn pending(&self) -> Result<Vec<JournaledEvent>, JournalError> {
        let txn = self.inner.db.begin_read().map_err(JournalError::storage)?;
        reads::pending(&txn)
    }

    /// Every dead letter, in acceptance order.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, JournalError> {
        let txn = self.inner.db.begin_read().map_err(JournalError::storage)?;
        reads::dead_letters(&txn)
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        self.inner.stats.snapshot()
    }

    /// Commits everything queued so far durably and stops the writer; later
    /// calls on any clone fail with [`JournalError::Closed`]. Blocks for the
    /// final commit. Dropping the last clone does the same; the file is
    /// released when the last clone is gone.
    pub fn close(self) {
        self.inner.stop();
    }
}
