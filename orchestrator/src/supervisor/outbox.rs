//! The write half of a child's channel: messages encoded and written by
//! their senders, a task only while the channel is full, and the stall
//! that tells a child which does not read its input.

use std::borrow::Borrow;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ipc_proto::codec::{FrameCodec, JsonlCodec};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Messages waiting for a child to read them, at most. More than a
/// connection's emit pipeline can have acks for, so only a child that stops
/// reading its input fills it.
pub const OUTBOX: usize = 8192;

/// How long a child may leave its channel full (a write to it would block)
/// before it counts as not reading its input.
pub const WRITE_STALL: Duration = Duration::from_secs(60);

/// The writing end of a child's channel: a socket or a pipe, non-blocking.
pub trait ChildWrite: Send + Sync + 'static {
    /// Writes what it can now, without waiting.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Resolves once the channel may take more.
    fn writable(&self) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>>;
}

impl ChildWrite for tokio::net::unix::OwnedWriteHalf {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::unix::OwnedWriteHalf::try_write(self, buf)
    }
    fn writable(&self) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>> {
        Box::pin(tokio::net::unix::OwnedWriteHalf::writable(self))
    }
}

impl ChildWrite for tokio::net::unix::pipe::Sender {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::unix::pipe::Sender::try_write(self, buf)
    }
    fn writable(&self) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>> {
        Box::pin(tokio::net::unix::pipe::Sender::writable(self))
    }
}

/// Encodes a message to a child into bytes, leaving it to the caller.
pub trait EncodeRef<Out>: Send {
    /// Appends `msg`, encoded, to `dst`.
    fn encode_ref(&mut self, msg: &Out, dst: &mut BytesMut) -> io::Result<()>;
}

impl<In, Out: Serialize> EncodeRef<Out> for FrameCodec<In, Out> {
    fn encode_ref(&mut self, msg: &Out, dst: &mut BytesMut) -> io::Result<()> {
        FrameCodec::encode_ref(self, msg, dst)
    }
}

impl<In, Out: Serialize> EncodeRef<Out> for JsonlCodec<In, Out> {
    fn encode_ref(&mut self, msg: &Out, dst: &mut BytesMut) -> io::Result<()> {
        JsonlCodec::encode_ref(self, msg, dst)
    }
}

/// Encodes messages to a child into bytes.
pub type Encode<Out> = Box<dyn EncodeRef<Out>>;

/// The sending half: cloneable, and cheap to hold in many places.
///
/// Sending never waits and takes no other task: the message is encoded and
/// written to the channel by the sender, at once (a `write(2)` for what one
/// [`send_all`](Outbox::send_all) brings: the acks of many commits, the
/// deliveries of many events). Only when the channel is full does a task
/// wait for the child to take the rest, while later messages gather behind
/// it. A child that does not read what it is sent cannot hold up whoever
/// sends to it (the loop that reads from it, its health checks, its stop):
/// once `OUTBOX` (8,192) messages wait, or its channel has stayed full for
/// `WRITE_STALL` (60 s), the link is [stalled](Outbox::stalled) and the
/// supervisor kills the child as "not reading its input".
pub struct Outbox<Out> {
    shared: Arc<Shared<Out>>,
}

impl<Out> std::fmt::Debug for Outbox<Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl<Out> Clone for Outbox<Out> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// The channel's writing end and what waits to be written to it. The
/// descriptor closes (a jsonl child sees stdin's end) when the last handle
/// goes, after everything sent was written.
struct Shared<Out> {
    io: Box<dyn ChildWrite>,
    state: Mutex<WriteState<Out>>,
    stall: Stall,
}

struct WriteState<Out> {
    encode: Encode<Out>,
    /// Encoded, not yet written.
    buf: BytesMut,
    /// Messages sent since `buf` was last empty.
    waiting: usize,
    /// The channel is full: a task waits to write the rest.
    blocked: bool,
    /// A write failed: the child is gone, nothing more is written.
    failed: bool,
}

impl<Out: Send + 'static> Outbox<Out> {
    /// An outbox writing to `io` what `encode` makes of each message.
    pub(super) fn new(io: Box<dyn ChildWrite>, encode: Encode<Out>) -> Self {
        let state = WriteState {
            encode,
            buf: BytesMut::new(),
            waiting: 0,
            blocked: false,
            failed: false,
        };
        let shared = Shared {
            io,
            state: Mutex::new(state),
            stall: Stall::default(),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Sends a message to the child without waiting; false when the channel
    /// is gone or the child stopped reading (the message is dropped: the
    /// child is about to be killed).
    pub fn send(&self, msg: Out) -> bool {
        self.send_all(std::iter::once(msg))
    }

    /// Sends messages to the child, in order, in one write when it has room.
    /// They are encoded before it returns: a caller may lend them.
    pub fn send_all<M: Borrow<Out>>(&self, msgs: impl IntoIterator<Item = M>) -> bool {
        let shared = &self.shared;
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.failed {
            return false;
        }
        let st = &mut *st;
        for msg in msgs {
            if st.waiting >= OUTBOX {
                shared
                    .stall
                    .trip(format!("{OUTBOX} messages to it are waiting to be written"));
                return false;
            }
            let start = st.buf.len();
            if let Err(e) = st.encode.encode_ref(msg.borrow(), &mut st.buf) {
                st.buf.truncate(start);
                tracing::warn!("a message to a child could not be encoded: {e}");
                continue;
            }
            st.waiting += 1;
        }
        if !st.blocked && !st.buf.is_empty() && self.write_now(st) {
            // Full: the rest is written once the child takes more.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    st.blocked = true;
                    runtime.spawn(finish(self.shared.clone()));
                }
                Err(_) => {
                    fail(st, io::Error::other("no runtime to finish the write on"));
                    return false;
                }
            }
        }
        true
    }

    /// Writes what waits until it is all written (false) or the channel is
    /// full (true).
    fn write_now(&self, st: &mut WriteState<Out>) -> bool {
        write_out(&*self.shared.io, st)
    }

    /// Resolves once the child is found not reading its input, with what was seen.
    pub fn stalled(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        self.shared.stall.clone().tripped()
    }
}

/// Writes what waits in `st`; true when the channel is full and some is left.
fn write_out<Out>(io: &dyn ChildWrite, st: &mut WriteState<Out>) -> bool {
    while !st.buf.is_empty() {
        match io.try_write(&st.buf) {
            Ok(0) => return fail(st, io::ErrorKind::WriteZero.into()),
            Ok(n) => st.buf.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return fail(st, e),
        }
    }
    st.waiting = 0;
    if st.buf.capacity() > MAX_KEPT {
        // A burst is over: do not keep its buffer for the life of the child.
        st.buf = BytesMut::new();
    }
    false
}

/// A write buffer larger than this is let go once it is empty.
const MAX_KEPT: usize = 256 * 1024;

fn fail<Out>(st: &mut WriteState<Out>, e: io::Error) -> bool {
    tracing::debug!("child channel write failed: {e}");
    st.failed = true;
    st.buf = BytesMut::new();
    false
}

/// Writes the rest once the child takes more; trips the stall if it does
/// not for `WRITE_STALL`.
async fn finish<Out>(shared: Arc<Shared<Out>>) {
    loop {
        match tokio::time::timeout(WRITE_STALL, shared.io.writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                fail(&mut st, e);
                st.blocked = false;
                return;
            }
            Err(_) => {
                shared.stall.trip(format!(
                    "a write to it has been blocked for {}",
                    humantime::format_duration(WRITE_STALL)
                ));
                let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                fail(&mut st, io::ErrorKind::TimedOut.into());
                st.blocked = false;
                return;
            }
        }
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if !write_out(&*shared.io, &mut st) {
            st.blocked = false;
            return;
        }
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

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
