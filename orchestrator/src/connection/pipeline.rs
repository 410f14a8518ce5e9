//! The emits between their journal write and their ack, oldest first:
//! commits complete in order, so the oldest is the one to wait on.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use futures::FutureExt;
use ipc_proto::DeliveredEvent;

use crate::journal::{Accepted, JournalError};
use crate::router::Slot;

/// Emits whose journal write is started but not yet acknowledged, at most.
pub const MAX_PIPELINE: usize = 4096;

pub(super) type Commit = Pin<Box<dyn Future<Output = Result<Accepted, JournalError>> + Send>>;

/// An emit on its way through the journal.
pub struct InFlight {
    pub(super) seq: u64,
    /// When the emit was taken in.
    pub(super) at: Instant,
    pub(super) commit: Commit,
    /// The reserved place in its instance's queue, and the event to put
    /// there (boxed: most events are handed over early, and the pipeline
    /// moves every entry in and out).
    pub(super) delivery: Option<Box<(Slot, DeliveredEvent)>>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("seq", &self.seq).finish()
    }
}

/// The emits in the pipeline, oldest first, and their `seq`s.
#[derive(Debug, Default)]
pub struct Pipeline {
    emits: VecDeque<InFlight>,
    seqs: HashSet<u64>,
    /// Emits in it whose event waits for its commit before it is handed over.
    holding: usize,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Emits in it.
    pub fn len(&self) -> usize {
        self.emits.len()
    }

    /// Nothing in it.
    pub fn is_empty(&self) -> bool {
        self.emits.is_empty()
    }

    /// An emit with this `seq` is in it (not yet acked or nacked).
    pub fn contains(&self, seq: u64) -> bool {
        self.seqs.contains(&seq)
    }

    pub(super) fn push_back(&mut self, emit: InFlight) {
        self.seqs.insert(emit.seq);
        self.holding += usize::from(emit.delivery.is_some());
        self.emits.push_back(emit);
    }

    /// Emits in it whose event waits for its commit before it is handed over.
    pub(super) fn holding(&self) -> usize {
        self.holding
    }

    /// The oldest emit's commit result, if it is done already.
    pub(super) fn front_ready(&mut self) -> Option<Result<Accepted, JournalError>> {
        let front = self.emits.front_mut()?;
        front.commit.as_mut().now_or_never()
    }

    /// Takes the oldest emit out.
    pub fn pop_front(&mut self) -> Option<InFlight> {
        let emit = self.emits.pop_front()?;
        self.seqs.remove(&emit.seq);
        self.holding -= usize::from(emit.delivery.is_some());
        Some(emit)
    }
}

/// Waits for the oldest commit in `pipeline` (pending forever when it is empty).
pub async fn oldest(pipeline: &mut Pipeline) -> Result<Accepted, JournalError> {
    match pipeline.emits.front_mut() {
        Some(front) => front.commit.as_mut().await,
        None => std::future::pending().await,
    }
}
