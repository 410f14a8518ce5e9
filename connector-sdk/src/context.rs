//! The connector side: [`Context`], [`run`], [`serve`] and [`serve_with_clock`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ipc_proto::{Audit, Log, LogLevel, Secrets, ToConnector};
use tokio_util::sync::CancellationToken;

use crate::emitter::{Accepted, Emitter, Shared};
use crate::error::exit_code_of;
use crate::link::{ConnectorSide, INIT_TIMEOUT, Link, Stop};
use crate::operations::Operations;
use crate::{BoxError, Clock, EmitError, Error, Transport};

/// How long to wait for queued messages (logs, a last emit) to be written before exiting.
pub(crate) const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// Everything a connector gets from the orchestrator, and its way to talk back.
///
/// Cheap to clone. Its `Debug` never shows a secret value.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
    emitter: Emitter,
    operations: Operations,
    stop: Stop,
}

struct Inner {
    connector: String,
    connection: String,
    config: BTreeMap<String, String>,
    secrets: Secrets,
    state_dir: PathBuf,
    clock: Clock,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("connector", &self.inner.connector)
            .field("connection", &self.inner.connection)
            .field("config", &self.inner.config)
            .field("secrets", &self.inner.secrets)
            .field("state_dir", &self.inner.state_dir)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Reads `init` from `transport` (at most 30 s), checks the protocol
    /// version and starts the channel's tasks. Nothing is sent yet: call
    /// [`ready`](Self::ready) or emit. Its [`clock`](Self::clock) is the system clock.
    pub async fn connect(transport: Transport) -> Result<Self, Error> {
        Self::connect_with_clock(transport, Clock::system()).await
    }

    /// [`connect`](Self::connect), with `clock` as the context's [`clock`](Self::clock)
    /// (a [`MockClock`](crate::MockClock)'s in tests).
    pub async fn connect_with_clock(transport: Transport, clock: Clock) -> Result<Self, Error> {
        let link = Link::<ConnectorSide>::open(transport, INIT_TIMEOUT).await?;
        let init = link.init.clone();
        let stop = link.stop.clone();
        let shared = Shared::new(link.outbox.clone());
        let pump_shared = shared.clone();
        let operations = Operations::new(link.outbox.clone());
        let pump_ops = operations.clone();
        link.pump(move |msg| match msg {
            ToConnector::Ack(a) => pump_shared.on_ack(a),
            ToConnector::Nack(n) => pump_shared.on_nack(n),
            ToConnector::Call(c) => pump_ops.on_call(c),
            ToConnector::Cancel(c) => pump_ops.on_cancel(c),
            // The pump handles every other kind.
            _ => {}
        });
        let closed_shared = shared.clone();
        let closed = stop.closed.clone();
        tokio::spawn(async move {
            closed.cancelled().await;
            closed_shared.close();
        });
        Ok(Context {
            inner: Arc::new(Inner {
                connector: init.connector,
                connection: init.connection,
                config: init.config,
                secrets: init.secrets,
                state_dir: PathBuf::from(init.state_dir),
                clock,
            }),
            emitter: Emitter { shared },
            operations,
            stop,
        })
    }

    /// The Connector resource's name.
    pub fn connector(&self) -> &str {
        &self.inner.connector
    }

    /// The Connection resource's name.
    pub fn connection(&self) -> &str {
        &self.inner.connection
    }

    /// A directory this connection may keep state in (it may not exist yet).
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// The clock this connector reads the time from and sleeps on: the
    /// system clock, unless one was injected ([`serve_with_clock`]).
    pub fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    /// The Connection's `spec.config`.
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.inner.config
    }

    /// One config value.
    pub fn config_value(&self, key: &str) -> Option<&str> {
        self.inner.config.get(key).map(String::as_str)
    }

    /// The Connection's resolved secrets.
    pub fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }

    /// Tells the orchestrator this connector is up (for example after binding
    /// its port). Idempotent; the first emit sends it too.
    pub async fn ready(&self) {
        self.emitter.shared.ready();
    }

    /// A handle to emit events from any task.
    pub fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    /// Shorthand for `self.emitter().emit(event)`.
    pub fn emit(
        &self,
        event: ipc_proto::Event,
    ) -> impl Future<Output = Result<Accepted, EmitError>> + Send + 'static {
        self.emitter.emit(event)
    }

    /// The operations this connector serves: register a handler per name
    /// with [`Operations::on`], before [`ready`](Self::ready).
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// Sends a line to this connection's process log.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.emitter.shared.outbox().send(Log {
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

    /// Records a security-relevant decision in the orchestrator's audit log.
    pub fn audit(&self, audit: Audit) {
        self.emitter.shared.outbox().send(audit);
    }

    /// Tells the orchestrator the provider refused this connector's
    /// credentials: its Connection shows `credential_expired` in `status`
    /// (and `audit.log` says so) until [`credentials_ok`](Self::credentials_ok)
    /// or a restart. Exiting with code 77 says the same and stops for good.
    pub fn credential_expired(&self, message: impl Into<String>) {
        self.emitter
            .shared
            .outbox()
            .send(ipc_proto::ConnectorStatus {
                state: ipc_proto::STATE_CREDENTIAL_EXPIRED.into(),
                message: Some(message.into()),
            });
    }

    /// The credentials work again (after [`credential_expired`](Self::credential_expired)).
    pub fn credentials_ok(&self) {
        self.emitter
            .shared
            .outbox()
            .send(ipc_proto::ConnectorStatus {
                state: ipc_proto::STATE_ACTIVE.into(),
                message: None,
            });
    }

    /// Resolves when `shutdown` arrives or the channel to the orchestrator closes.
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stop.token.clone().cancelled_owned()
    }

    /// The token behind [`shutdown`](Self::shutdown), for `select!` and child tokens.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.stop.token.clone()
    }

    /// The grace period `shutdown` granted (5 s before one arrives).
    pub fn grace(&self) -> Duration {
        self.stop.grace()
    }

    /// Waits until the messages queued so far are written, at most `limit`.
    pub async fn flush(&self, limit: Duration) {
        self.emitter.shared.outbox().flush(limit).await
    }
}

/// Runs a connector: builds a tokio runtime, connects to the orchestrator
/// ([`Transport::from_env`]) and runs `f` to completion.
///
/// Exit codes: 0 when `f` returns `Ok` (or does not return within the grace
/// period after `shutdown`); 1 when it fails; 78 when it fails with a
/// [`ConfigError`](crate::ConfigError) or the handshake finds a protocol mismatch.
pub fn run<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    crate::block_on(async move {
        match Transport::from_env() {
            Ok(transport) => serve(transport, f).await,
            Err(e) => crate::report(&e),
        }
    })
}

/// The body of [`run`] on a given transport, inside the caller's runtime.
pub async fn serve<F, Fut>(transport: Transport, f: F) -> ExitCode
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    serve_with_clock(transport, Clock::system(), f).await
}

/// [`serve`], with `clock` as the context's [`clock`](Context::clock): how a
/// test runs a connector on a [`MockClock`](crate::MockClock).
pub async fn serve_with_clock<F, Fut>(transport: Transport, clock: Clock, f: F) -> ExitCode
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let ctx = match Context::connect_with_clock(transport, clock).await {
        Ok(ctx) => ctx,
        Err(e) => return crate::report(&e),
    };
    let mut task = tokio::spawn(f(ctx.clone()));
    let outcome = tokio::select! {
        r = &mut task => Some(r),
        () = ctx.shutdown() => tokio::time::timeout(ctx.grace(), &mut task).await.ok(),
    };
    let code = match outcome {
        Some(Ok(Ok(()))) => ExitCode::SUCCESS,
        Some(Ok(Err(e))) => {
            eprintln!("{}: {e}", ctx.connection());
            exit_code_of(&e)
        }
        Some(Err(join)) => {
            eprintln!("{}: connector task failed: {join}", ctx.connection());
            ExitCode::FAILURE
        }
        None => {
            eprintln!(
                "{}: did not stop within the grace period; exiting",
                ctx.connection()
            );
            task.abort();
            ExitCode::SUCCESS
        }
    };
    ctx.flush(FINAL_FLUSH).await;
    code
}
