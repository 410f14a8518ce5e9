//! Build connectors (and Rust agents) for the orchestrator.
//!
//! ```no_run
//! use connector_sdk::{Context, ipc_proto::{Event, Message}};
//!
//! fn main() -> std::process::ExitCode {
//!     connector_sdk::run(|ctx: Context| async move {
//!         ctx.ready().await;
//!         let event = Event {
//!             name: "user_message".into(),
//!             message: Some(Message::text("hello")),
//!             ..Event::default()
//!         };
//!         let accepted = ctx.emit(event).await?;
//!         ctx.info(format!("accepted, duplicate={}", accepted.duplicate));
//!         ctx.shutdown().await;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! # Theory of operation
//!
//! The SDK owns this process's end of the channel to the orchestrator
//! (docs/protocol.md). [`Transport::from_env`] finds it: the Unix socket whose fd
//! is in `ORCHESTRATOR_IPC_FD` (frames), else stdin/stdout (jsonl). The first
//! message must be `init`, within 30 s, with this SDK's protocol version;
//! otherwise the process exits (78 for a version mismatch, having sent
//! nothing). Then a reader pump task answers every `ping` with `pong`, turns
//! `shutdown` (or the channel closing) into a cancelled token, prints
//! `error` messages and undecodable input to stderr, and hands everything
//! else to its side. Everything sent goes through one outbox, in call
//! order: a send encodes the message into its buffer and, when no write is
//! under way, writes it to the channel at once, from the sender (no task
//! hop); only when the channel is full does a task wait to write the rest,
//! while later messages gather behind it and go out together. While the
//! pump handles messages that arrived together, the outbox holds writes
//! back, so what they cause (acks, pongs) leaves in one write before the
//! pump waits for more. The channel is the frames socket, or with jsonl
//! the stdout pipe (stdin and stdout are read and written without
//! blocking when they are pipes, as the orchestrator sets them up). jsonl
//! to anything else (a file, a terminal, any writer a test hands in) is
//! written by one writer task that takes everything queued at once.
//!
//! The life of one emit: [`Emitter::emit`] takes a lock, sends `ready` if
//! nobody has yet and, when the window of emits in flight has room
//! ([`DEFAULT_EMIT_WINDOW`], 1,024) and nobody waits before it, picks the
//! next `seq`, files a oneshot sender under it in the in-flight table and
//! queues the `emit` message, all before it returns, so the wire order is
//! the call order. Without room it files the event in a first-come queue;
//! each answer lets the oldest waiting emit in (seq picked then), and a
//! future dropped while waiting withdraws its event. So memory stays bounded
//! by the window plus what callers hold, however long the orchestrator holds
//! its acks. The returned future waits on the oneshot. The outbox writes
//! the message out; when the orchestrator's `ack`/`nack` for that seq comes
//! in, the pump removes the entry, answers it ([`Accepted`] or
//! [`EmitError::Nacked`]) and sends the oldest waiting emit. Answers may
//! come in any order. If the channel closes, every entry, in flight or
//! waiting, is answered [`EmitError::Closed`], as is every later emit.
//!
//! The agent side ([`agent`]) shares the handshake, pump and outbox; each
//! `deliver` runs the handler and is answered `ack` or `nack`: the pump
//! polls the handler's future once itself, and only one that is not done
//! then continues in a task of its own (see [`Agent::serve`](agent::Agent::serve)).
//!
//! # Operations
//!
//! Agents act on the world through connectors: an agent invokes an
//! operation of a Connection, the orchestrator governs it (policy, schema,
//! idempotency, circuit, rate limits, retries) and sends the connector a
//! `call`; the connector performs it with its credentials and answers
//! `callResult`; the agent gets `result`.
//!
//! A connector serves operations by name with
//! [`Context::operations`]`().`[`on`](Operations::on), before
//! [`ready`](Context::ready):
//!
//! ```no_run
//! use connector_sdk::{Context, OperationCall, OperationError, OperationOk};
//! use serde_json::json;
//!
//! # async fn f(ctx: Context) {
//! ctx.operations().on("sendMessage", |call: OperationCall| async move {
//!     let text = call.input["text"].as_str().unwrap_or_default().to_owned();
//!     if text.is_empty() {
//!         return Err(OperationError::permanent("input.text is empty"));
//!     }
//!     // call.deadline, call.attempt and call.idempotency_key are there too.
//!     Ok(OperationOk::new(json!({ "sent": text })).provider_status(200))
//! });
//! ctx.ready().await;
//! # }
//! ```
//!
//! The reader pump starts each `call` in its own task, so a slow handler
//! holds up no emit, ack or ping, and answers each with exactly one
//! `callResult`: the handler's [`OperationOk`] or classified
//! [`OperationError`] (`transient` is retried by the orchestrator as the
//! operation's `retry` says; [`OperationError::quota_exceeded`] holds the
//! Connection's calls for its `retry_after`); a name without a handler is
//! `unavailable`; a handler that panics is `transient`; a `cancel` aborts
//! the handler if it still runs and answers `canceled`. The SDK does not
//! enforce [`OperationCall::deadline`]: the orchestrator counts a late
//! answer as `timeout` and sends `cancel`. In tests,
//! [`TestRun::call`](testing::TestRun::call) calls a handler as the
//! orchestrator would.
//!
//! An agent invokes with [`AgentContext::invoke`](agent::AgentContext::invoke),
//! typically while handling a delivery, then acks it by returning `Ok`:
//!
//! ```no_run
//! # use connector_sdk::agent::{AgentContext, HandlerError};
//! # use connector_sdk::ipc_proto::Deliver;
//! # use serde_json::json;
//! # use std::time::Duration;
//! # async fn handler(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
//! let reply = ctx
//!     .invoke(&d.event.connection, "sendMessage", json!({ "text": "hi" }))
//!     .idempotency_key(format!("reply:{}", d.event.id)) // a redelivery does not send twice
//!     .timeout(Duration::from_secs(5))
//!     .await;
//! match reply {
//!     Ok(response) => ctx.info(format!("sent: {}", response.data.0)),
//!     Err(e) if e.class == connector_sdk::FailureClass::Transient => {
//!         return Err(HandlerError::retry(e.to_string()));
//!     }
//!     Err(e) => return Err(HandlerError::fail(e.to_string())),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Each invoke gets an id unique in the process and its `result` is matched
//! by that id, so many may be in flight at once. A failure is an
//! [`InvokeFailure`](agent::InvokeFailure) with its
//! [`FailureClass`], message, `retry_after_ms`, `provider_status` and
//! `attempts`; when the channel closes, waiting invokes fail `unavailable`
//! (whether the operation ran is then unknown). See
//! `examples/hello_operation.rs` and `examples/hello_invoke.rs`.
//!
//! Time comes from the context: [`Context::clock`] (and
//! [`AgentContext::clock`](agent::AgentContext::clock)) is the [`Clock`] a
//! connector reads and sleeps on. It is the system clock unless the caller
//! injected another ([`serve_with_clock`], [`Context::connect_with_clock`],
//! [`Agent::clock`](agent::Agent::clock)); tests inject a [`MockClock`]'s,
//! which moves only when the test says so.
//!
//! With jsonl the protocol owns stdin and stdout: the SDK moves them to
//! private fds and points fd 1 at stderr, so a `println!` reaches the
//! process log instead of corrupting the channel. [`testing`] is a fake
//! orchestrator for tests, in-process or around a real binary; its
//! [`run_connector`](testing::run_connector) runs a connector function on a
//! [`MockClock`] through that same injection.
//!
//! [`fs::write_atomic`] replaces a small state file (a cursor, a bound
//! address) whole and durably: temp file, `fsync`, rename, `fsync` of the
//! directory.
//!
//! [`verify`] checks webhook signatures (GitHub, Stripe, Slack, Standard
//! Webhooks, Notion, Discord, generic HMAC): pure functions of the headers,
//! the raw body and an injected clock, for connectors that take HTTP.
//!
//! The SDK never retries an emit, never buffers events on disk, never
//! decides what a nack means for the source (the connector does: a webhook
//! answers 503, a poller keeps its cursor), and never prints a secret: the
//! `Debug` of [`Context`] shows secrets as `<redacted>`.

pub mod agent;
pub mod clock;
mod context;
mod emitter;
mod error;
pub mod fs;
mod link;
pub mod operations;
mod outbox;
pub mod testing;
mod transport;
pub mod verify;

use std::future::Future;
use std::process::ExitCode;

pub use clock::{Clock, MockClock};
pub use context::{Context, run, serve, serve_with_clock};
pub use emitter::{Accepted, DEFAULT_EMIT_WINDOW, Emitter};
pub use error::{BoxError, ConfigError, EXIT_CONFIG, EmitError, Error};
pub use ipc_proto;
pub use ipc_proto::{Audit, Event, FailureClass, LogLevel, Message, NackKind, Secrets};
pub use operations::{OperationCall, OperationError, OperationOk, Operations};
pub use tokio_util::sync::CancellationToken;
pub use transport::Transport;

/// Runs `fut` on a fresh multi-threaded runtime and returns its exit code.
fn block_on(fut: impl Future<Output = ExitCode>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("connector-sdk: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(fut);
    // A blocking read (stdin) must not keep the process alive.
    rt.shutdown_background();
    code
}

/// Prints a setup error to stderr and returns its exit code.
fn report(e: &Error) -> ExitCode {
    let mut msg = format!("connector-sdk: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("{msg}");
    e.exit_code()
}
