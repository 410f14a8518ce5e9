//! The sending half of the channel: every message this process sends goes
//! through one [`Outbox`], in the order its senders call it.
//!
//! A send encodes the message into the outbox's buffer under its lock and,
//! when no write is pending, writes the buffer to the channel at once, from
//! the sender (one `write(2)`, no task hop): the frames socket, or the
//! stdout pipe of jsonl. Only when the channel is full does a task wait for
//! it to take the rest, while later messages gather behind in the buffer
//! and go out together. Anything else (jsonl to a stdout that is a file or
//! a terminal, any `AsyncWrite` a test hands in) is written by one writer
//! task, which takes everything queued at each turn.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::link::Stop;
use crate::transport::{Direct, Encoder, Sink};

/// Called when one message could not be encoded (it was not sent), on a
/// task of its own, so it may take locks its sender held.
pub(crate) type OnUnsendable = Box<dyn FnOnce(io::Error) + Send>;

/// A write buffer larger than this is let go once it is empty.
const MAX_KEPT: usize = 256 * 1024;

/// The sending half; cheap to clone. Sending never waits.
pub(crate) struct Outbox<Out> {
    shared: Arc<Shared<Out>>,
}

impl<Out> Clone for Outbox<Out> {
    fn clone(&self) -> Self {
        Outbox {
            shared: self.shared.clone(),
        }
    }
}

impl<Out> fmt::Debug for Outbox<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Outbox")
    }
}

struct Shared<Out> {
    state: Mutex<State<Out>>,
    /// The socket or pipe, when the sender writes it.
    direct: Option<Direct>,
    /// Wakes the writer task of a `Stream`.
    writer: Arc<Handoff>,
    /// Wakes `flush` callers when bytes were written or the channel failed.
    progress: Notify,
    /// `flush` callers waiting for `progress` (senders wake them only then).
    flushers: AtomicUsize,
    stop: Stop,
    runtime: Handle,
}

struct State<Out> {
    encoder: Encoder<Out>,
    /// Encoded, not yet written.
    buf: BytesMut,
    /// Bytes ever queued, and ever written: a flush waits for the one to reach the other.
    queued: u64,
    written: u64,
    /// A task owns the writing now (the channel was full, or a `Stream`'s writer runs).
    busy: bool,
    /// Writes are held back until `uncork`.
    corked: bool,
    /// A write failed: the channel is gone, nothing more is written.
    failed: bool,
}

/// Between the senders and the writer task of a `Stream`.
#[derive(Default)]
struct Handoff {
    /// Bytes wait, or the last sender is gone.
    wake: Notify,
    /// What was still unwritten when the last sender went.
    last: Mutex<Option<BytesMut>>,
}

impl<Out> Drop for Shared<Out> {
    fn drop(&mut self) {
        // The writer task of a `Stream` holds only a weak handle: it writes
        // what is left and ends, closing the stream, as the last sender goes.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !st.failed && !st.buf.is_empty() {
            let left = std::mem::take(&mut st.buf);
            *self.writer.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(left);
        }
        self.writer.wake.notify_one();
    }
}

impl<Out: Serialize + Send + 'static> Outbox<Out> {
    /// An outbox writing to `sink`; inside a tokio runtime.
    pub(crate) fn new(sink: Sink, encoder: Encoder<Out>, stop: Stop) -> Self {
        let (direct, stream) = match sink {
            Sink::Direct(d) => (Some(d), None),
            Sink::Stream(s) => (None, Some(s)),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                encoder,
                buf: BytesMut::new(),
                queued: 0,
                written: 0,
                busy: false,
                corked: false,
                failed: false,
            }),
            direct,
            writer: Arc::new(Handoff::default()),
            progress: Notify::new(),
            flushers: AtomicUsize::new(0),
            stop,
            runtime: Handle::current(),
        });
        if let Some(stream) = stream {
            let (weak, handoff) = (Arc::downgrade(&shared), shared.writer.clone());
            shared.runtime.spawn(write_stream(weak, handoff, stream));
        }
        Outbox { shared }
    }

    /// Sends `msg`; false when the channel is gone.
    pub(crate) fn send(&self, msg: impl Into<Out>) -> bool {
        self.enqueue(&msg.into(), None)
    }

    /// Sends `msg`, with a callback for when it cannot be encoded.
    pub(crate) fn send_or(&self, msg: Out, on_unsendable: OnUnsendable) -> bool {
        self.enqueue(&msg, Some(on_unsendable))
    }

    fn enqueue(&self, msg: &Out, on_unsendable: Option<OnUnsendable>) -> bool {
        let shared = &*self.shared;
        let mut st = shared.lock();
        if st.failed {
            return false;
        }
        let st = &mut *st;
        let start = st.buf.len();
        if let Err(e) = st.encoder.encode(msg, &mut st.buf) {
            // The codecs check size and encode before adding a byte, so an
            // encode error concerns this message only.
            st.buf.truncate(start);
            eprintln!("connector-sdk: a message was not sent: {e}");
            if let Some(f) = on_unsendable {
                shared.runtime.spawn(async move { f(e) });
            }
            return true;
        }
        st.queued += (st.buf.len() - start) as u64;
        shared.kick(st, &self.shared)
    }

    /// Holds writes back (they gather in the buffer) until [`uncork`](Self::uncork):
    /// the reader pump corks while it handles messages that arrived together,
    /// so what it and the handlers it polls send goes out in one write.
    pub(crate) fn cork(&self) {
        self.shared.lock().corked = true;
    }

    /// Writes what gathered while corked; false when the channel is gone.
    pub(crate) fn uncork(&self) -> bool {
        let shared = &*self.shared;
        let mut st = shared.lock();
        st.corked = false;
        if st.failed {
            return false;
        }
        shared.kick(&mut st, &self.shared)
    }

    /// Waits until everything sent so far is written (or the channel is
    /// gone), at most `limit`.
    pub(crate) async fn flush(&self, limit: Duration) {
        let shared = &*self.shared;
        let target = shared.lock().queued;
        shared.flushers.fetch_add(1, Ordering::SeqCst);
        let _counted = Flusher(&shared.flushers);
        let wait = async {
            loop {
                let progressed = shared.progress.notified();
                tokio::pin!(progressed);
                {
                    let st = shared.lock();
                    if st.failed || st.written >= target {
                        return;
                    }
                    progressed.as_mut().enable();
                }
                progressed.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

/// Counts one `flush` caller while it lives.
struct Flusher<'a>(&'a AtomicUsize);

impl Drop for Flusher<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<Out: Send + 'static> Shared<Out> {
    /// Starts writing what waits, unless a write is under way or held back:
    /// from here when the channel takes it, else by a task. False when the
    /// channel failed.
    fn kick(&self, st: &mut State<Out>, this: &Arc<Self>) -> bool {
        if st.busy || st.corked || st.buf.is_empty() {
            // A task writes it with what is before it, or the pump will.
            return true;
        }
        match &self.direct {
            Some(direct) => match write_out(direct, st) {
                Written::All => {
                    if self.flushers.load(Ordering::SeqCst) > 0 {
                        self.progress.notify_waiters();
                    }
                }
                Written::Full => {
                    st.busy = true;
                    self.runtime.spawn(finish(this.clone()));
                }
                Written::Failed(e) => {
                    self.failed(st, e);
                    return false;
                }
            },
            None => {
                st.busy = true;
                self.writer.wake.notify_one();
            }
        }
        true
    }
}

impl<Out> Shared<Out> {
    fn lock(&self) -> MutexGuard<'_, State<Out>> {
        // No code panics while holding the lock; recover the data if it ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The channel failed: drop what waits, and tell everyone.
    fn failed(&self, st: &mut State<Out>, e: io::Error) {
        eprintln!("connector-sdk: writing to the orchestrator failed: {e}");
        st.failed = true;
        st.busy = false;
        st.buf = BytesMut::new();
        self.progress.notify_waiters();
        self.stop.closed.cancel();
        self.stop.token.cancel();
    }
}

enum Written {
    All,
    /// The channel is full; some is left.
    Full,
    Failed(io::Error),
}

/// Writes what waits in `st` to `direct` without waiting.
fn write_out<Out>(direct: &Direct, st: &mut State<Out>) -> Written {
    while !st.buf.is_empty() {
        match direct.try_write(&st.buf) {
            Ok(0) => return Written::Failed(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                st.buf.advance(n);
                st.written += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Written::Full,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Written::Failed(e),
        }
    }
    if st.buf.capacity() > MAX_KEPT {
        // A burst is over: do not keep its buffer for the life of the process.
        st.buf = BytesMut::new();
    }
    Written::All
}

/// Writes the rest to the channel as it takes more, then hands writing back to senders.
async fn finish<Out>(shared: Arc<Shared<Out>>) {
    let Some(direct) = &shared.direct else {
        return;
    };
    loop {
        let ready = direct.writable().await;
        let mut st = shared.lock();
        let st = &mut *st;
        let outcome = match ready {
            Ok(()) => write_out(direct, st),
            Err(e) => Written::Failed(e),
        };
        match outcome {
            Written::Full => shared.progress.notify_waiters(),
            Written::All => {
                st.busy = false;
                shared.progress.notify_waiters();
                return;
            }
            Written::Failed(e) => return shared.failed(st, e),
        }
    }
}

/// The writer of a `Stream`: writes everything queued at each turn, in one
/// `write_all` and one flush, until the stream fails or the last sender goes.
async fn write_stream<Out>(
    shared: Weak<Shared<Out>>,
    handoff: Arc<Handoff>,
    mut stream: Box<dyn AsyncWrite + Send + Unpin>,
) {
    let mut out = BytesMut::new();
    loop {
        handoff.wake.notified().await;
        loop {
            let Some(shared) = shared.upgrade() else {
                let last = handoff
                    .last
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(last) = last
                    && stream.write_all(&last).await.is_ok()
                {
                    let _ = stream.flush().await;
                }
                return;
            };
            {
                let mut st = shared.lock();
                if st.failed {
                    return;
                }
                if st.buf.is_empty() {
                    st.busy = false;
                    break;
                }
                std::mem::swap(&mut out, &mut st.buf);
            }
            let n = out.len() as u64;
            let result = match stream.write_all(&out).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            out.clear();
            if out.capacity() > MAX_KEPT {
                out = BytesMut::new();
            }
            let mut st = shared.lock();
            match result {
                Ok(()) => {
                    st.written += n;
                    shared.progress.notify_waiters();
                }
                Err(e) => return shared.failed(&mut st, e),
            }
        }
    }
}
