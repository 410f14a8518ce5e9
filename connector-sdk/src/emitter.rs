//! Emit with ack: seq numbers, the window of emits in flight, the emits
//! waiting for room in it, and their answers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

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

/// How many emits may wait for their answer at once, unless
/// [`Emitter::set_window`] says otherwise.
pub const DEFAULT_EMIT_WINDOW: usize = 1024;

/// An emit waiting for room in the window: not sent, no seq yet.
struct Waiting {
    event: Event,
    dedupe_key: Option<String>,
    answer: Answer,
}

struct State {
    next_seq: u64,
    ready_sent: bool,
    closed: bool,
    /// The most emits in flight (sent, unanswered) at once.
    window: usize,
    in_flight: HashMap<u64, Answer>,
    /// Emits waiting for room, by ticket: the lowest ticket goes out first.
    waiting: BTreeMap<u64, Waiting>,
    next_ticket: u64,
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
                window: DEFAULT_EMIT_WINDOW,
                in_flight: HashMap::new(),
                waiting: BTreeMap::new(),
                next_ticket: 0,
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
                features: Vec::new(),
            });
        }
    }

    pub(crate) fn on_ack(self: &Arc<Self>, ack: EmitAck) {
        let answer = self.answered(ack.seq);
        match answer {
            Some(tx) => {
                let _ = tx.send(Ok(Accepted {
                    duplicate: ack.duplicate.unwrap_or(false),
                }));
            }
            None => eprintln!("connector-sdk: ack for unknown seq {}", ack.seq),
        }
    }

    pub(crate) fn on_nack(self: &Arc<Self>, nack: EmitNack) {
        let answer = self.answered(nack.seq);
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

    /// Takes `seq` out of the window and lets the next waiting emits in.
    fn answered(self: &Arc<Self>, seq: u64) -> Option<Answer> {
        let mut st = self.lock();
        let answer = st.in_flight.remove(&seq);
        self.admit_locked(&mut st);
        answer
    }

    /// Sends waiting emits, oldest first, while the window has room.
    fn admit_locked(self: &Arc<Self>, st: &mut State) {
        while st.in_flight.len() < st.window {
            let Some((_, w)) = st.waiting.pop_first() else {
                return;
            };
            self.send_locked(st, w);
        }
    }

    /// Gives `w` the next seq, files its answer and queues it. Under the
    /// lock, so the wire order is the seq order.
    fn send_locked(self: &Arc<Self>, st: &mut State, w: Waiting) {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.in_flight.insert(seq, w.answer);
        let emit = FromConnector::Emit(Emit {
            seq,
            event: w.event,
            dedupe_key: w.dedupe_key,
        });
        // The writer holds a weak handle to report an encoding failure.
        let weak = Arc::downgrade(self);
        let on_unsendable = Box::new(move |e: std::io::Error| {
            if let Some(shared) = weak.upgrade() {
                shared.fail(seq, EmitError::Unsendable(e.to_string()));
            }
        });
        if !self.outbox.send_or(emit, on_unsendable) {
            // The writer is gone: the channel closes and answers everything.
            if let Some(tx) = st.in_flight.remove(&seq) {
                let _ = tx.send(Err(EmitError::Closed));
            }
        }
    }

    /// The channel is gone: every emit in flight or waiting, and every later
    /// one, fails with `Closed`.
    pub(crate) fn close(&self) {
        let (in_flight, waiting): (Vec<_>, Vec<_>) = {
            let mut st = self.lock();
            st.closed = true;
            (
                st.in_flight.drain().map(|(_, tx)| tx).collect(),
                std::mem::take(&mut st.waiting)
                    .into_values()
                    .map(|w| w.answer)
                    .collect(),
            )
        };
        for tx in in_flight.into_iter().chain(waiting) {
            let _ = tx.send(Err(EmitError::Closed));
        }
    }

    /// A waiting emit whose future was dropped: it is never sent.
    fn withdraw(&self, ticket: u64) {
        self.lock().waiting.remove(&ticket);
    }

    fn fail(self: &Arc<Self>, seq: u64, e: EmitError) {
        if let Some(tx) = self.answered(seq) {
            let _ = tx.send(Err(e));
        }
    }
}

/// Sends events to the orchestrator; cheap to clone, usable from many tasks at once.
///
/// Emits are pipelined: many can be in flight without waiting for one
/// another, up to a window ([`DEFAULT_EMIT_WINDOW`], see
/// [`set_window`](Self::set_window)). Past it an emit waits for room (an
/// answer to an earlier one) before it is sent, so an orchestrator that holds
/// its acks (`overflow: wait`) slows the connector down instead of growing
/// its memory.
#[derive(Clone)]
pub struct Emitter {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("Emitter")
            .field("next_seq", &st.next_seq)
            .field("window", &st.window)
            .field("in_flight", &st.in_flight.len())
            .field("waiting", &st.waiting.len())
            .field("closed", &st.closed)
            .finish()
    }
}

/// Withdraws a waiting emit when its future is dropped before it was sent.
struct Ticket {
    shared: Weak<Shared>,
    ticket: Option<u64>,
}

impl Ticket {
    /// Answered: nothing left to withdraw.
    fn disarm(&mut self) {
        self.ticket = None;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let (Some(ticket), Some(shared)) = (self.ticket, self.shared.upgrade()) {
            shared.withdraw(ticket);
        }
    }
}

impl Emitter {
    /// Queues `event`; the future resolves on the orchestrator's ack or nack.
    ///
    /// With room in the window the event is queued for sending before this
    /// returns, and goes out even if the future is never awaited. Without
    /// room it waits its turn (first come, first sent) and goes out once an
    /// earlier emit is answered; dropping the future before then withdraws
    /// it unsent. Events are sent in the order `emit` is called (their seq
    /// numbers increase in that order). The first emit sends `ready` if it
    /// was not sent.
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

    /// How many emits were sent and wait for their answer (at most [`window`](Self::window)).
    pub fn in_flight(&self) -> usize {
        self.shared.lock().in_flight.len()
    }

    /// How many emits wait for room in the window, not sent yet.
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiting.len()
    }

    /// The most emits in flight at once.
    pub fn window(&self) -> usize {
        self.shared.lock().window
    }

    /// Sets the window for every clone of this emitter (at least 1); a larger
    /// one lets waiting emits go at once.
    pub fn set_window(&self, window: NonZeroUsize) {
        let mut st = self.shared.lock();
        st.window = window.get();
        self.shared.admit_locked(&mut st);
    }

    fn send(
        &self,
        event: Event,
        dedupe_key: Option<String>,
    ) -> impl Future<Output = Result<Accepted, EmitError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let mut ticket = Ticket {
            shared: Arc::downgrade(&self.shared),
            ticket: None,
        };
        let waiting = Waiting {
            event,
            dedupe_key,
            answer: tx,
        };
        {
            let mut st = self.shared.lock();
            if st.closed {
                let _ = waiting.answer.send(Err(EmitError::Closed));
            } else {
                self.shared.ready_locked(&mut st);
                if st.waiting.is_empty() && st.in_flight.len() < st.window {
                    self.shared.send_locked(&mut st, waiting);
                } else {
                    let n = st.next_ticket;
                    st.next_ticket += 1;
                    st.waiting.insert(n, waiting);
                    ticket.ticket = Some(n);
                }
            }
        }
        async move {
            let answer = rx.await.unwrap_or(Err(EmitError::Closed));
            ticket.disarm();
            answer
        }
    }
}
