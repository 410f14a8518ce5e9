//! Emit with ack: seq numbers, the table of emits in flight, and their answers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use ipc_proto::{Emit, EmitAck, EmitNack, Event, FromConnector, PROTOCOL_VERSION, Ready};
use tokio::sync::oneshot;

use crate::EmitError;
use crate::link::Outbox;

/// The orchestrator accepted an event: it is durable in its journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The dedupe key was seen before: the event will not be delivered again.
    pub duplicate: bool,
}

type Answer = oneshot::Sender<Result<Accepted, EmitError>>;

struct State {
    next_seq: u64,
    ready_sent: bool,
    closed: bool,
    in_flight: HashMap<u64, Answer>,
}

/// What every clone of an [`Emitter`] (and the reader pump) shares.
pub(crate) struct Shared {
    outbox: Outbox<FromConnector>,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(outbox: Outbox<FromConnector>) -> Arc<Self> {
        Arc::new(Shared {
            outbox,
            state: Mutex::new(State {
                next_seq: 1,
                ready_sent: false,
                closed: false,
                in_flight: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover the data if it ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn outbox(&self) -> &Outbox<FromConnector> {
        &self.outbox
    }

    /// Sends `ready` unless it was sent already.
    pub(crate) fn ready(&self) {
        let mut st = self.lock();
        self.ready_locked(&mut st);
    }

    fn ready_locked(&self, st: &mut State) {
        if !st.ready_sent {
            st.ready_sent = true;
            self.outbox.send(Ready {
                protocol: Some(PROTOCOL_VERSION),
            });
        }
    }

    pub(crate) fn on_ack(&self, ack: EmitAck) {
        let answer = self.lock().in_flight.remove(&ack.seq);
        match answer {
            Some(tx) => {
                let _ = tx.send(Ok(Accepted {
                    duplicate: ack.duplicate.unwrap_or(false),
                }));
            }
            None => eprintln!("connector-sdk: ack for unknown seq {}", ack.seq),
        }
    }

    pub(crate) fn on_nack(&self, nack: EmitNack) {
        let answer = self.lock().in_flight.remove(&nack.seq);
        match answer {
            Some(tx) => {
                let e = EmitError::Nacked {
                    kind: nack.error.kind,
                    message: nack.error.message,
                };
                let _ = tx.send(Err(e));
            }
            None => eprintln!("connector-sdk: nack for unknown seq {}", nack.seq),
        }
    }

    /// The channel is gone: every emit in flight, and every later one, fails with `Closed`.
    pub(crate) fn close(&self) {
        let drained: Vec<_> = {
            let mut st = self.lock();
            st.closed = true;
            st.in_flight.drain().collect()
        };
        for (_, tx) in drained {
            let _ = tx.send(Err(EmitError::Closed));
        }
    }

    fn fail(&self, seq: u64, e: EmitError) {
        if let Some(tx) = self.lock().in_flight.remove(&seq) {
            let _ = tx.send(Err(e));
        }
    }
}

/// Sends events to the orchestrator; cheap to clone, usable from many tasks at once.
///
/// Emits are pipelined: each call queues its event at once and returns a
/// future for the answer, so many can be in flight without waiting for one
/// another.
#[derive(Clone)]
pub struct Emitter {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("Emitter")
            .field("next_seq", &st.next_seq)
            .field("in_flight", &st.in_flight.len())
            .field("closed", &st.closed)
            .finish()
    }
}

impl Emitter {
    /// Queues `event` now; the future resolves on the orchestrator's ack or nack.
    ///
    /// Events are sent in the order `emit` is called (their seq numbers
    /// increase in that order), even when the futures are awaited in another
    /// order or not at all. The first emit sends `ready` if it was not sent.
    pub fn emit(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<Accepted, EmitError>> + Send + 'static {
        self.send(event, None)
    }

    /// Like [`emit`](Self::emit), with the source's delivery id as the dedupe key.
    pub fn emit_with_key(
        &self,
        event: Event,
        dedupe_key: impl Into<String>,
    ) -> impl Future<Output = Result<Accepted, EmitError>> + Send + 'static {
        self.send(event, Some(dedupe_key.into()))
    }

    /// How many emits wait for their answer.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().in_flight.len()
    }

    fn send(
        &self,
        event: Event,
        dedupe_key: Option<String>,
    ) -> impl Future<Output = Result<Accepted, EmitError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = {
            let mut st = self.shared.lock();
            if st.closed {
                false
            } else {
                self.shared.ready_locked(&mut st);
                let seq = st.next_seq;
                st.next_seq += 1;
                st.in_flight.insert(seq, tx);
                // Queued under the lock, so the wire order is the seq order.
                let weak = Arc::downgrade(&self.shared);
                let emit = FromConnector::Emit(Emit {
                    seq,
                    event,
                    dedupe_key,
                });
                let on_unsendable = Box::new(move |e: std::io::Error| {
                    if let Some(shared) = weak.upgrade() {
                        shared.fail(seq, EmitError::Unsendable(e.to_string()));
                    }
                });
                let ok = self.shared.outbox.send_or(emit, on_unsendable);
                if !ok {
                    st.in_flight.remove(&seq);
                }
                ok
            }
        };
        async move {
            if !queued {
                return Err(EmitError::Closed);
            }
            rx.await.unwrap_or(Err(EmitError::Closed))
        }
    }
}
