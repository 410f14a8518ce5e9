//! A live channel to one child: typed messages in, typed messages out,
//! whichever transport carries them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{Stream, StreamExt};
use ipc_proto::DecodeError;

use super::outbox::{ChildWrite, Encode, Outbox};
use crate::logs::LogSink;
use crate::status::ProcessStatus;

type Incoming<In> = Pin<Box<dyn Stream<Item = io::Result<Result<In, DecodeError>>> + Send>>;

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
    /// Joins a decoded input stream and the channel's writing end, whose
    /// messages `encode` makes.
    pub fn new(
        incoming: Incoming<In>,
        io: Box<dyn ChildWrite>,
        encode: Encode<Out>,
        opts: LinkOptions<Out>,
        pong: fn(&In) -> Option<u64>,
    ) -> Self {
        Self {
            incoming,
            outbox: Outbox::new(io, encode),
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
