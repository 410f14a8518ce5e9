//! The agent side: a handler per delivery, answered with ack or nack.
//!
//! ```no_run
//! use connector_sdk::agent::{self, HandlerError};
//!
//! fn main() -> std::process::ExitCode {
//!     agent::run(|ctx, d| async move {
//!         let text = d.event.message.as_ref().and_then(|m| m.as_text());
//!         ctx.info(format!("got {:?}", text));
//!         if text == Some("boom") {
//!             return Err(HandlerError::fail("cannot handle boom"));
//!         }
//!         Ok(())
//!     })
//! }
//! ```

mod deliver;
mod invoke;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use ipc_proto::{Deliver, FromAgent, Log, LogLevel, PROTOCOL_VERSION, Ready, ToAgent};
use serde_json::Value;
use tokio_util::task::TaskTracker;

use crate::context::FINAL_FLUSH;
use crate::error::exit_code_of;
use crate::link::{AgentSide, INIT_TIMEOUT, Link, Outbox};
use crate::{BoxError, Clock, Transport};
use deliver::{Inline, handle};
use invoke::Pending;
pub use invoke::{InvokeFailure, InvokeRequest};
pub use ipc_proto::{FailureClass, InvokeResponse, Job, JobState, ResponseMetadata};

/// Who this agent process is, and its way to log.
#[derive(Clone)]
pub struct AgentContext {
    inner: Arc<Inner>,
    outbox: Outbox<FromAgent>,
    invokes: Arc<Pending>,
}

struct Inner {
    agent: String,
    instance_key: String,
    swarm: String,
    state_dir: PathBuf,
    clock: Clock,
    /// The Agent's own `spec.secrets`; its `Debug` shows names only.
    secrets: ipc_proto::Secrets,
}

impl fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentContext")
            .field("agent", &self.inner.agent)
            .field("instance_key", &self.inner.instance_key)
            .field("swarm", &self.inner.swarm)
            .field("state_dir", &self.inner.state_dir)
            .field("clock", &self.inner.clock)
            .field("secrets", &self.inner.secrets)
            .finish_non_exhaustive()
    }
}

impl AgentContext {
    /// The Agent resource's name.
    pub fn agent(&self) -> &str {
        &self.inner.agent
    }

    /// The instance key this process serves.
    pub fn instance_key(&self) -> &str {
        &self.inner.instance_key
    }

    /// The Agent's own secret `name` (its `spec.secrets`: an LLM API key,
    /// say). Keep it in memory; never log it.
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.inner.secrets.get(name)
    }

    /// The Swarm's name.
    pub fn swarm(&self) -> &str {
        &self.inner.swarm
    }

    /// A directory this instance may keep state in (it may not exist yet).
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// The clock handlers read the time from and sleep on: the system
    /// clock, unless one was injected ([`Agent::clock`]).
    pub fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    /// Invokes `operation` of the Connection `connection` with `input`;
    /// `.await` it for the response, or a failure with its class.
    ///
    /// Options go between: `ctx.invoke(c, op, input).idempotency_key(k).timeout(t).await`.
    /// Usable from any task, also while a delivery is handled (the usual
    /// pattern: invoke, then return `Ok` to ack the delivery); many may be
    /// in flight at once.
    pub fn invoke(
        &self,
        connection: impl Into<String>,
        operation: impl Into<String>,
        input: Value,
    ) -> InvokeRequest {
        InvokeRequest::new(
            self.invokes.clone(),
            connection.into(),
            operation.into(),
            input,
        )
    }

    /// Where the job `job_id` (of an async operation this Agent started) stands.
    pub fn job_get(
        &self,
        job_id: impl Into<String>,
    ) -> impl Future<Output = Result<Job, InvokeFailure>> + Send {
        invoke::job_request(self.invokes.clone(), job_id.into(), false)
    }

    /// Cancels the job `job_id` if it has not settled; resolves with the job
    /// as it then stands (`canceled`, or how it had settled).
    pub fn job_cancel(
        &self,
        job_id: impl Into<String>,
    ) -> impl Future<Output = Result<Job, InvokeFailure>> + Send {
        invoke::job_request(self.invokes.clone(), job_id.into(), true)
    }

    /// Sends a line to this instance's process log.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.outbox.send(Log {
            level,
            message: message.into(),
        });
    }

    /// [`log`](Self::log) at info level.
    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Info, message)
    }

    /// [`log`](Self::log) at warn level.
    pub fn warn(&self, message: impl Into<String>) {
        self.log(LogLevel::Warn, message)
    }

    /// [`log`](Self::log) at error level.
    pub fn error(&self, message: impl Into<String>) {
        self.log(LogLevel::Error, message)
    }
}

/// A delivery that failed: `retry` says whether another attempt may succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    /// Deliver again (until the Agent's `maxAttempts`), or dead-letter now.
    pub retry: bool,
    /// What went wrong; it lands in the nack and the dead-letter record.
    pub message: String,
}

impl HandlerError {
    /// A failure another attempt may fix (a timeout, a busy upstream).
    pub fn retry(message: impl Into<String>) -> Self {
        HandlerError {
            retry: true,
            message: message.into(),
        }
    }

    /// A failure no attempt will fix: the event goes to the dead-letter queue.
    pub fn fail(message: impl Into<String>) -> Self {
        HandlerError {
            retry: false,
            message: message.into(),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `?` on any error is a retryable failure: attempts are bounded by `maxAttempts`.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError::retry(e.to_string())
    }
}

type SetupFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type Setup = Box<dyn FnOnce(AgentContext) -> SetupFuture + Send>;

/// An agent program: a handler and an optional setup step. [`run`] covers the common case.
pub struct Agent<H> {
    handler: H,
    setup: Option<Setup>,
    clock: Clock,
}

impl<H> fmt::Debug for Agent<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("setup", &self.setup.is_some())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Runs an agent whose only job is `handler`; see [`Agent::run`].
pub fn run<H, Fut>(handler: H) -> ExitCode
where
    H: Fn(AgentContext, Deliver) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Agent::new(handler).run()
}

impl<H, Fut> Agent<H>
where
    H: Fn(AgentContext, Deliver) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    /// An agent that calls `handler` for each delivery: `Ok` acks it, `Err` nacks it.
    pub fn new(handler: H) -> Self {
        Agent {
            handler,
            setup: None,
            clock: Clock::system(),
        }
    }

    /// Gives [`AgentContext::clock`] `clock` instead of the system clock
    /// (a [`MockClock`](crate::MockClock)'s in tests).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs `setup` after `init` and before `ready`; if it fails the process exits
    /// (1, or 78 for a [`ConfigError`](crate::ConfigError)) without being ready.
    pub fn setup<S, SFut>(mut self, setup: S) -> Self
    where
        S: FnOnce(AgentContext) -> SFut + Send + 'static,
        SFut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.setup = Some(Box::new(move |ctx| Box::pin(setup(ctx))));
        self
    }

    /// Builds a tokio runtime, connects ([`Transport::from_env`]) and serves
    /// deliveries until `shutdown` or the channel closes; then exits 0.
    pub fn run(self) -> ExitCode {
        crate::block_on(async move {
            match Transport::from_env() {
                Ok(transport) => self.serve(transport).await,
                Err(e) => crate::report(&e),
            }
        })
    }

    /// The body of [`run`](Self::run) on a given transport, inside the caller's runtime.
    ///
    /// The reader pump polls each delivery's handler once itself; a handler
    /// that returns without waiting is answered at once, with no task of its
    /// own. One that waits (I/O, a timer, an invoke) continues in its own
    /// task, so several run at once when the orchestrator sends several (the
    /// Agent's `maxInFlight`). So the first stretch of a handler, up to its
    /// first `.await` that waits, holds up the pump: a handler that blocks
    /// the thread or computes for long should do that in
    /// `tokio::task::spawn_blocking` (as any async code should). Once a
    /// first stretch takes over 20 ms, the process says so on stderr and
    /// gives every later delivery its own task from the start. A handler
    /// that panics, in that first stretch or later, is a nack with retry. On
    /// `shutdown` no new delivery is started; running ones get the grace
    /// period to finish.
    pub async fn serve(self, transport: Transport) -> ExitCode {
        let link = match Link::<AgentSide>::open(transport, INIT_TIMEOUT).await {
            Ok(link) => link,
            Err(e) => return crate::report(&e),
        };
        let init = link.init.clone();
        let ctx = AgentContext {
            inner: Arc::new(Inner {
                agent: init.agent,
                instance_key: init.instance_key,
                swarm: init.swarm,
                state_dir: PathBuf::from(init.state_dir),
                clock: self.clock,
                secrets: init.secrets,
            }),
            outbox: link.outbox.clone(),
            invokes: Pending::new(link.outbox.clone()),
        };
        // Weak: this task must not keep the outbox (and so the channel) alive.
        let (closed, closed_invokes) = (link.stop.closed.clone(), Arc::downgrade(&ctx.invokes));
        tokio::spawn(async move {
            closed.cancelled().await;
            if let Some(invokes) = closed_invokes.upgrade() {
                invokes.close();
            }
        });
        if let Some(setup) = self.setup
            && let Err(e) = setup(ctx.clone()).await
        {
            eprintln!("{}: setup failed: {e}", ctx.agent());
            ctx.outbox.flush(FINAL_FLUSH).await;
            return exit_code_of(&e);
        }
        link.outbox.send(Ready {
            protocol: Some(PROTOCOL_VERSION),
            features: vec![ipc_proto::FEATURE_PAYLOAD.into()],
        });

        let stop = link.stop.clone();
        let tracker = TaskTracker::new();
        let handler = Arc::new(self.handler);
        let (pump_ctx, pump_tracker, pump_stop) = (ctx.clone(), tracker.clone(), stop.clone());
        let mut inline = Inline::default();
        link.pump(move |msg| match msg {
            ToAgent::Deliver(d) => {
                if pump_stop.token.is_cancelled() {
                    // Not acked: the orchestrator delivers it again later.
                    return;
                }
                let fut = handle(handler.clone(), pump_ctx.clone(), d);
                inline.start(&pump_tracker, fut, pump_ctx.agent());
            }
            ToAgent::Result(r) => pump_ctx.invokes.on_result(r),
            // The pump handles every other kind.
            _ => {}
        });

        stop.token.cancelled().await;
        tracker.close();
        if tokio::time::timeout(stop.grace(), tracker.wait())
            .await
            .is_err()
        {
            eprintln!(
                "{}: deliveries still running after the grace period; exiting",
                ctx.agent()
            );
        }
        ctx.outbox.flush(FINAL_FLUSH).await;
        ExitCode::SUCCESS
    }
}
