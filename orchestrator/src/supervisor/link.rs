//! A live channel to one child: typed messages in, typed messages out,
//! whichever transport carries them.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};
use ipc_proto::DecodeError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::logs::LogSink;
use crate::status::ProcessStatus;

type Incoming<In> = Pin<Box<dyn Stream<Item = io::Result<Result<In, DecodeError>>> + Send>>;

/// Messages waiting for a child to read them, at most. More than a
/// connection's emit pipeline can have acks for, so only a child that stops
/// reading its input fills it.
pub const OUTBOX: usize = 8192;

/// How long writing one batch (at most 256 queued messages) to a child may
/// stay blocked before the child counts as not reading its input.
pub const WRITE_STALL: Duration = Duration::from_secs(60);

/// The sending half: cloneable, and cheap to hold in many places.
///
/// Sending never waits. A child that does not read what it is sent cannot
/// hold up whoever sends to it (the loop that reads from it, its health
/// checks, its stop): once its queue is full, or one write to it has been
/// blocked for `WRITE_STALL` (60 s), the link is [stalled](Outbox::stalled) and
/// the supervisor kills the child as "not reading its input".
#[derive(Debug)]
pub struct Outbox<Out> {
    /// Boxed: tokio allocates a channel's first block of 32 slots up front,
    /// which for a message type of ~300 bytes was 9 KiB per live child.
    tx: mpsc::Sender<Box<Out>>,
    stall: Stall,
}

impl<Out> Clone for Outbox<Out> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            stall: self.stall.clone(),
        }
    }
}

impl<Out: Send + 'static> Outbox<Out> {
    /// Queues a message for the child without waiting; false when the
    /// channel is gone or the child stopped reading (the message is dropped:
    /// the child is about to be killed).
    pub fn send(&self, msg: Out) -> bool {
        match self.tx.try_send(Box::new(msg)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stall
                    .trip(format!("{OUTBOX} messages to it are waiting to be written"));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Resolves once the child is found not reading its input, with what was seen.
    pub fn stalled(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        self.stall.clone().tripped()
    }
}

/// Set once, when a child is found not reading its input.
#[derive(Clone, Debug, Default)]
struct Stall {
    token: CancellationToken,
    why: Arc<OnceLock<String>>,
}

impl Stall {
    fn trip(&self, why: String) {
        let _ = self.why.set(why);
        self.token.cancel();
    }

    async fn tripped(self) -> String {
        self.token.cancelled().await;
        self.why.get().cloned().unwrap_or_default()
    }
}

/// Both halves of the channel to one child, and its protocol-error count.
pub struct Link<In, Out> {
    incoming: Incoming<In>,
    /// Where messages to the child go.
    pub outbox: Outbox<Out>,
    unit: &'static str,
    received: u64,
    errors: u32,
    max_errors: u32,
    make_error: fn(String) -> Out,
    make_reject: fn(u64, String) -> Option<Out>,
    log: LogSink,
    status: Arc<ProcessStatus>,
    pong: fn(&In) -> Option<u64>,
}

impl<In, Out> std::fmt::Debug for Link<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("received", &self.received)
            .field("errors", &self.errors)
            .finish()
    }
}

/// What a [`Link`] needs besides its two halves.
#[allow(missing_debug_implementations)] // holds a fn pointer and a sink handle; nothing worth printing
pub struct LinkOptions<Out> {
    /// "frame" or "line", for error messages.
    pub unit: &'static str,
    /// Bad messages tolerated before the link closes.
    pub max_errors: u32,
    /// Builds the `error` message sent back for a bad message.
    pub make_error: fn(String) -> Out,
    /// Builds the answer to a bad message whose `seq` could be read (a
    /// connector's nack for that seq), if this kind of child gets one.
    pub make_reject: fn(u64, String) -> Option<Out>,
    /// The child's log.
    pub log: LogSink,
    /// The child's status (protocol errors, pongs).
    pub status: Arc<ProcessStatus>,
}

impl<In: Send + 'static, Out: Send + 'static> Link<In, Out> {
    /// Joins a decoded input stream and an output sink; spawns the writer task.
    pub fn new<S>(
        incoming: Incoming<In>,
        sink: S,
        opts: LinkOptions<Out>,
        pong: fn(&In) -> Option<u64>,
    ) -> Self
    where
        S: Sink<Out, Error = io::Error> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(OUTBOX);
        let stall = Stall::default();
        tokio::spawn(write_loop(sink, rx, stall.clone()));
        Self {
            incoming,
            outbox: Outbox { tx, stall },
            unit: opts.unit,
            received: 0,
            errors: 0,
            max_errors: opts.max_errors,
            make_error: opts.make_error,
            make_reject: opts.make_reject,
            log: opts.log,
            status: opts.status,
            pong,
        }
    }

    /// The next message from the child; `None` once the channel is closed, or
    /// closed by us after more than `max_errors` bad messages. A bad message is
    /// answered with an `error`, logged, counted and skipped.
    pub async fn recv(&mut self) -> Option<In> {
        loop {
            let item = self.incoming.next().await?;
            self.received += 1;
            match item {
                Ok(Ok(msg)) => {
                    if let Some(nonce) = (self.pong)(&msg) {
                        self.status
                            .counters
                            .last_pong
                            .store(nonce, Ordering::Relaxed);
                        self.status.health_checked();
                    }
                    return Some(msg);
                }
                Ok(Err(e)) => {
                    let text = format!("{} {}: {e}", self.unit, self.received);
                    // An emit whose seq is readable is answered for that seq,
                    // so the connector is never left waiting for its ack.
                    let reply = match e.seq() {
                        Some(seq) => (self.make_reject)(seq, text.clone()),
                        None => None,
                    };
                    let reply = reply.unwrap_or_else(|| (self.make_error)(text.clone()));
                    if !self.report(text, reply) {
                        return None;
                    }
                }
                Err(e) => {
                    self.log.note(&format!("channel read failed: {e}"));
                    return None;
                }
            }
        }
    }

    /// Reports a message the child may not send (or could not be decoded):
    /// answers `error`, logs and counts it. False when the limit is passed and
    /// the link should be closed.
    pub fn violation(&mut self, text: String) -> bool {
        let reply = (self.make_error)(text.clone());
        self.report(text, reply)
    }

    /// Counts and logs a bad message and sends `reply`; false past the limit.
    fn report(&mut self, text: String, reply: Out) -> bool {
        self.errors += 1;
        self.status
            .counters
            .protocol_errors
            .fetch_add(1, Ordering::Relaxed);
        self.status.set_error(text.clone());
        self.log.note(&format!("protocol error: {text}"));
        tracing::warn!(log = %self.log.path().display(), "protocol error: {text}");
        self.outbox.send(reply);
        if self.errors > self.max_errors {
            self.log.note(&format!(
                "closing the channel: more than {} bad messages",
                self.max_errors
            ));
            return false;
        }
        true
    }
}

async fn write_loop<Out, S>(mut sink: S, mut rx: mpsc::Receiver<Box<Out>>, stall: Stall)
where
    S: Sink<Out, Error = io::Error> + Unpin,
{
    let stalled = |stall: &Stall| {
        stall.trip(format!(
            "a write to it has been blocked for {}",
            humantime::format_duration(WRITE_STALL)
        ));
    };
    let mut batch = Vec::with_capacity(256);
    // Feed everything that is queued, then flush once: many acks, one write.
    // One deadline for the whole batch: a timer per message costs more than
    // the message.
    while rx.recv_many(&mut batch, 256).await > 0 {
        let write = async {
            for msg in batch.drain(..) {
                sink.feed(*msg).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(WRITE_STALL, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("child channel write failed: {e}");
                return;
            }
            Err(_) => return stalled(&stall),
        }
    }
    // Every sender is gone: closing tells a jsonl child (stdin EOF) we are done.
    let _ = sink.close().await;
}
