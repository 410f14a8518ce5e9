//! Running one delivery: its handler polled once by the reader pump, a task
//! of its own only if it waits, a panic caught as a retryable nack.

use std::any::Any;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use futures::FutureExt;
use ipc_proto::{Deliver, DeliveryAck, DeliveryNack};
use tokio_util::task::TaskTracker;

use super::{AgentContext, HandlerError};

/// A first poll longer than this turns inline polling off for the process.
const INLINE_LIMIT: Duration = Duration::from_millis(20);

/// How the pump starts deliveries: polled once inline, until a handler is
/// seen to hold the thread ([`INLINE_LIMIT`]); from then on each gets its own task.
#[derive(Default)]
pub(super) struct Inline {
    off: bool,
}

impl Inline {
    /// Polls a delivery's future once, here on the reader's task; only if it
    /// is not done yet does it get a task of its own (tracked for shutdown).
    /// A handler that answers without waiting so costs no task and no hop.
    pub(super) fn start(
        &mut self,
        tracker: &TaskTracker,
        fut: impl Future<Output = ()> + Send + 'static,
        agent: &str,
    ) {
        if self.off {
            tracker.spawn(fut);
            return;
        }
        let mut fut = Box::pin(fut);
        let mut cx = Context::from_waker(Waker::noop());
        let began = Instant::now();
        let ready = fut.as_mut().poll(&mut cx).is_ready();
        if began.elapsed() > INLINE_LIMIT {
            // It blocks the thread: keep the pump (pings, other deliveries) free of it.
            self.off = true;
            eprintln!(
                "{agent}: a delivery's handler held the thread for {:?} before its first wait; \
                 handlers run in their own tasks from now on (move blocking work to \
                 tokio::task::spawn_blocking)",
                began.elapsed()
            );
        }
        if !ready {
            // The task polls it again at once, registering its own waker.
            tracker.spawn(fut);
        }
    }
}

/// Runs one delivery and answers it; a panicking handler is a retryable failure.
pub(super) async fn handle<H, Fut>(handler: Arc<H>, ctx: AgentContext, d: Deliver)
where
    H: Fn(AgentContext, Deliver) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let id = d.id.clone();
    let outbox = ctx.outbox.clone();
    // The handler runs unwind-caught where it is polled: a panic, in the
    // call or in the future, is a nack with retry, as a failed task was.
    let result = match panic::catch_unwind(AssertUnwindSafe(|| handler(ctx, d))) {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    let result = result.unwrap_or_else(|panic| {
        Err(HandlerError::retry(format!(
            "handler failed: it panicked: {}",
            panic_message(&*panic)
        )))
    });
    match result {
        Ok(()) => outbox.send(DeliveryAck { id }),
        Err(e) => outbox.send(DeliveryNack {
            id,
            retry: e.retry,
            error: e.message,
        }),
    };
}

/// The text a panic was raised with, if it was a string.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    match panic.downcast_ref::<&'static str>() {
        Some(s) => s,
        None => panic
            .downcast_ref::<String>()
            .map_or("(not a string)", String::as_str),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The switch itself: a delivery that is done at its first poll takes no
    /// task; one that waits gets one; after a first poll that held the
    /// thread over `INLINE_LIMIT`, every later delivery gets its own task,
    /// even one that would be done at once.
    #[tokio::test]
    async fn a_first_poll_that_holds_the_thread_turns_inline_polling_off() {
        let tracker = TaskTracker::new();
        let mut inline = Inline::default();
        // Current-thread runtime: a spawned task does not run before this
        // test yields, so `tracker.len()` counts what was spawned.
        inline.start(&tracker, async {}, "t");
        assert_eq!(tracker.len(), 0, "done at once: polled inline, no task");
        inline.start(&tracker, std::future::pending(), "t");
        assert_eq!(tracker.len(), 1, "it waits: it gets a task");
        assert!(!inline.off);

        inline.start(
            &tracker,
            async {
                // The behaviour under test: a handler that blocks its thread.
                std::thread::sleep(INLINE_LIMIT + Duration::from_millis(5));
            },
            "t",
        );
        assert!(
            inline.off,
            "a first poll over {INLINE_LIMIT:?} turns it off"
        );
        assert_eq!(tracker.len(), 1, "the blocking one was done when polled");
        inline.start(&tracker, async {}, "t");
        assert_eq!(tracker.len(), 2, "from now on each delivery gets a task");
    }
}
