//! Time limits on one HTTP connection: how long a client may take to send a
//! request's headers, its body, and how long a kept-alive connection may sit
//! idle between requests.
//!
//! A connection is in one [`Phase`] at a time. It starts in `Head` (the
//! header clock runs from accept, so a client that connects and sends nothing
//! is closed like one that sends its headers a byte at a time); the service
//! being called means the headers are in (`Busy`: no read deadline, the body
//! has its own); the response body being dropped by hyper means the answer
//! is out (`Idle`); the first byte of the next request starts `Head` again.
//! [`Deadlined`] wraps the socket and fails a read that would wait past the
//! phase's deadline, which makes hyper close the connection. [`BodyDeadline`]
//! wraps a request body and fails it when the whole body has not arrived
//! within the body timeout of the headers (a total, not per-chunk, limit: a
//! body dripped a byte at a time is cut as surely as one that stops).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::listen::Limits;

/// Where a connection is between requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers, since then.
    Head(Instant),
    /// The headers are in: the request is being served.
    Busy,
    /// The last answer went out then; no byte of a next request yet.
    Idle(Instant),
}

/// The phase of one connection, shared by its socket, its service and its
/// responses (all polled by the connection's one task; the lock is never
/// contended).
#[derive(Debug)]
pub(crate) struct PhaseCell(Mutex<Shared>);

#[derive(Debug)]
struct Shared {
    phase: Phase,
    /// The task of a read left pending without a deadline (while `Busy`):
    /// hyper does not read again until woken, so going idle must wake it to
    /// arm the idle deadline.
    reader: Option<Waker>,
}

impl PhaseCell {
    /// A connection accepted now.
    pub(crate) fn accepted() -> Arc<Self> {
        Arc::new(PhaseCell(Mutex::new(Shared {
            phase: Phase::Head(Instant::now()),
            reader: None,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, to: impl FnOnce(Phase) -> Phase) {
        let mut s = self.lock();
        s.phase = to(s.phase);
    }

    fn get(&self) -> Phase {
        self.lock().phase
    }

    /// The service was called: the request's headers are complete.
    pub(crate) fn busy(&self) {
        self.set(|_| Phase::Busy);
    }

    /// The answer went out: the connection idles until the next request.
    pub(crate) fn idle(&self) {
        let reader = {
            let mut s = self.lock();
            s.phase = Phase::Idle(Instant::now());
            s.reader.take()
        };
        if let Some(w) = reader {
            w.wake();
        }
    }

    /// Remembers the task to wake when the phase gets a deadline.
    fn wake_on_idle(&self, waker: &Waker) {
        let mut s = self.lock();
        match &s.reader {
            Some(w) if w.will_wake(waker) => {}
            _ => s.reader = Some(waker.clone()),
        }
    }

    fn bytes_arrived(&self) {
        self.set(|p| match p {
            Phase::Idle(_) => Phase::Head(Instant::now()),
            other => other,
        });
    }

    /// When a read waiting for data must give up, and why.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        match self.get() {
            Phase::Head(since) => Some((
                since + limits.header_timeout,
                "request headers not complete within HEADER_TIMEOUT",
            )),
            Phase::Idle(since) => Some((
                since + limits.idle_timeout,
                "kept-alive connection idle for IDLE_TIMEOUT",
            )),
            Phase::Busy => None,
        }
    }
}

/// A socket whose reads fail once the connection's phase deadline passes.
#[derive(Debug)]
pub(crate) struct Deadlined<S> {
    inner: S,
    phase: Arc<PhaseCell>,
    limits: Limits,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl<S> Deadlined<S> {
    pub(crate) fn new(inner: S, phase: Arc<PhaseCell>, limits: Limits) -> Self {
        Deadlined {
            inner,
            phase,
            limits,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadlined<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.phase.bytes_arrived();
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        // Nothing to read now: wait no longer than the phase allows.
        let Some((deadline, why)) = this.phase.deadline(&this.limits) else {
            this.phase.wake_on_idle(cx.waker());
            return Poll::Pending;
        };
        if this.armed != Some(deadline) {
            this.sleep.as_mut().reset(deadline);
            this.armed = Some(deadline);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlined<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The request body did not arrive whole within `BODY_TIMEOUT`.
#[derive(Debug, thiserror::Error)]
#[error("request body not complete within BODY_TIMEOUT ({})", humantime::format_duration(*.0))]
pub struct BodyTimeout(pub Duration);

/// A request body that fails once its time is up.
#[derive(Debug)]
pub(crate) struct BodyDeadline<B> {
    inner: B,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl<B> BodyDeadline<B> {
    /// `inner`, due whole within `limit` from now.
    pub(crate) fn new(inner: B, limit: Duration) -> Self {
        BodyDeadline {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> Body for BodyDeadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => return Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {}
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that marks the connection idle when hyper is done with it.
#[derive(Debug)]
pub(crate) struct IdleWhenSent<B> {
    inner: B,
    phase: Arc<PhaseCell>,
}

impl<B> IdleWhenSent<B> {
    pub(crate) fn new(inner: B, phase: Arc<PhaseCell>) -> Self {
        IdleWhenSent { inner, phase }
    }
}

impl<B> Drop for IdleWhenSent<B> {
    fn drop(&mut self) {
        self.phase.idle();
    }
}

impl<B: Body + Unpin> Body for IdleWhenSent<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
