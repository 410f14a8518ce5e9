//! What callers ask the writer thread ([`Cmd`]), and how their answers are
//! held until the batch that carries them commits ([`Done`]).

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::{Accepted, CompactStats, JournalError, JournaledEvent};

/// Where a caller's answer goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// One request to the writer.
pub(super) enum Cmd {
    Accept {
        id: Uuid,
        record: Option<Vec<u8>>,
        dedupe: Option<(String, String)>,
        reply: Reply<Accepted>,
    },
    /// Delivered marks are waiting in [`Marks`](super::Marks) (sent by the first one).
    Marks,
    Attempted(Uuid, u32),
    DeadLetter {
        id: Uuid,
        attempts: u32,
        error: String,
        reply: Reply<()>,
    },
    Replay(Uuid, Reply<JournaledEvent>),
    ReplayAll(Reply<Vec<JournaledEvent>>),
    DropDead(Uuid, Reply<()>),
    /// Keep an idempotent operation's first result for its key.
    Remember {
        key: (String, String, String),
        result: Vec<u8>,
        reply: Reply<()>,
    },
    /// Write a job's record (`settled`: it will not change again).
    PutJob {
        id: Uuid,
        settled: bool,
        record: Vec<u8>,
        reply: Reply<()>,
    },
    Compact(Reply<CompactStats>),
    Flush(Reply<()>),
    /// Commit what is queued before this durably, then exit.
    Stop,
}

/// An answer held until the batch commits; called with the batch's failure, if any.
pub(super) type Done = Box<dyn FnOnce(Option<&Arc<redb::Error>>) + Send>;

pub(super) fn done<T: Send + 'static>(reply: Reply<T>, result: Result<T, JournalError>) -> Done {
    Box::new(move |failed| {
        let result = match failed {
            Some(e) => Err(JournalError::Storage(e.clone())),
            None => result,
        };
        // A caller that stopped waiting does not care.
        let _ = reply.send(result);
    })
}

/// A storage failure of the whole batch.
pub(super) fn fatal(e: impl Into<redb::Error>) -> Arc<redb::Error> {
    Arc::new(e.into())
}

/// Holds `result` for the caller; a storage failure aborts the batch instead.
pub(super) fn finish<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, JournalError>,
    out: &mut Vec<Done>,
) -> Result<(), Arc<redb::Error>> {
    match result {
        Err(JournalError::Storage(e)) => {
            out.push(done(reply, Err(JournalError::Closed)));
            Err(e)
        }
        other => {
            out.push(done(reply, other));
            Ok(())
        }
    }
}

impl Cmd {
    /// Whether a caller waits on this command's durability.
    pub(super) fn durable(&self) -> bool {
        !matches!(self, Cmd::Marks | Cmd::Attempted(..))
    }

    /// The answer of a command the batch never reached (it fails with the batch).
    pub(super) fn unreached(self) -> Option<Done> {
        fn closed<T>() -> Result<T, JournalError> {
            Err(JournalError::Closed)
        }
        match self {
            Cmd::Accept { reply, .. } => Some(done(reply, closed())),
            Cmd::DeadLetter { reply, .. }
            | Cmd::DropDead(_, reply)
            | Cmd::Flush(reply)
            | Cmd::Remember { reply, .. }
            | Cmd::PutJob { reply, .. } => Some(done(reply, closed())),
            Cmd::Replay(_, reply) => Some(done(reply, closed())),
            Cmd::ReplayAll(reply) => Some(done(reply, closed())),
            Cmd::Compact(reply) => Some(done(reply, closed())),
            Cmd::Marks | Cmd::Attempted(..) | Cmd::Stop => None,
        }
    }
}

/// The ids of `marks` whose accept is among `cmds` (an event delivered
/// while its commit was under way), less any a dead-letter command of the
/// batch names: those go the usual way, pending first.
pub(super) fn marked_in_batch(cmds: &[Cmd], marks: &[Uuid]) -> HashSet<Uuid> {
    if marks.is_empty() {
        return HashSet::new();
    }
    let accepted: HashSet<Uuid> = cmds
        .iter()
        .filter_map(|c| match c {
            Cmd::Accept {
                id,
                record: Some(_),
                ..
            } => Some(*id),
            _ => None,
        })
        .collect();
    let mut marked: HashSet<Uuid> = marks
        .iter()
        .copied()
        .filter(|id| accepted.contains(id))
        .collect();
    for c in cmds {
        if let Cmd::DeadLetter { id, .. } = c {
            marked.remove(id);
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(id: Uuid, record: bool) -> Cmd {
        Cmd::Accept {
            id,
            record: record.then(|| b"{}".to_vec()),
            dedupe: None,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn only_marks_whose_accept_is_in_the_batch_are_written_delivered_at_once() {
        let [a, b, c, d] = std::array::from_fn(|_| Uuid::now_v7());
        let cmds = vec![
            accept(a, true),
            accept(b, false),
            accept(c, true),
            Cmd::DeadLetter {
                id: c,
                attempts: 1,
                error: "x".into(),
                reply: oneshot::channel().0,
            },
        ];
        // a: its accept is here; b: recorded nothing; c: dead-lettered in the
        // batch; d: accepted in an earlier batch.
        let marked = marked_in_batch(&cmds, &[a, b, c, d]);
        assert_eq!(marked, HashSet::from([a]));
        assert!(marked_in_batch(&cmds, &[]).is_empty());
    }
}
