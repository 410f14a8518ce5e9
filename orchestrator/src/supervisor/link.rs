//! A live channel to one child: typed messages in, typed messages out,
//! whichever transport carries them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{Sink, SinkExt, Stream, StreamExt};
use ipc_proto::DecodeError;
use tokio::sync::mpsc;

use crate::logs::LogSink;
use crate::status::ProcessStatus;

type Incoming<In> = Pin<Box<dyn Stream<Item = io::Result<Result<In, DecodeError>>> + Send>>;

/// Messages waiting for the writer task before senders wait.
const OUTBOX: usize = 1024;

/// The sending half: cloneable, and cheap to hold in many places.
#[derive(Debug)]
pub struct Outbox<Out> {
    tx: mpsc::Sender<Out>,
}

impl<Out> Clone for Outbox<Out> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<Out: Send + 'static> Outbox<Out> {
    /// Queues a message for the child; false when the channel is gone.
    pub async fn send(&self, msg: Out) -> bool {
        self.tx.send(msg).await.is_ok()
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
        tokio::spawn(write_loop(sink, rx));
        Self {
            incoming,
            outbox: Outbox { tx },
            unit: opts.unit,
            received: 0,
            errors: 0,
            max_errors: opts.max_errors,
            make_error: opts.make_error,
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
                    if !self.violation(text).await {
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
    pub async fn violation(&mut self, text: String) -> bool {
        self.errors += 1;
        self.status
            .counters
            .protocol_errors
            .fetch_add(1, Ordering::Relaxed);
        self.status.set_error(text.clone());
        self.log.note(&format!("protocol error: {text}"));
        tracing::warn!(log = %self.log.path().display(), "protocol error: {text}");
        self.outbox.send((self.make_error)(text)).await;
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

async fn write_loop<Out, S>(mut sink: S, mut rx: mpsc::Receiver<Out>)
where
    S: Sink<Out, Error = io::Error> + Unpin,
{
    let mut batch = Vec::with_capacity(256);
    // Feed everything that is queued, then flush once: many acks, one write.
    while rx.recv_many(&mut batch, 256).await > 0 {
        for msg in batch.drain(..) {
            if let Err(e) = sink.feed(msg).await {
                tracing::debug!("child channel write failed: {e}");
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    // Every sender is gone: closing tells a jsonl child (stdin EOF) we are done.
    let _ = sink.close().await;
}
