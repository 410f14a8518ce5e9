//! The connector side of operations: handlers registered by name, each
//! `call` run in its own task and answered with exactly one `callResult`.
//!
//! ```no_run
//! use connector_sdk::operations::{OperationCall, OperationError, OperationOk};
//! use connector_sdk::{BoxError, Context};
//! use serde_json::json;
//!
//! async fn connector(ctx: Context) -> Result<(), BoxError> {
//!     ctx.operations().on("sendMessage", |call: OperationCall| async move {
//!         let text = call.input["text"]
//!             .as_str()
//!             .ok_or_else(|| OperationError::validation("input.text must be a string"))?;
//!         if text.is_empty() {
//!             return Err(OperationError::permanent("nothing to send"));
//!         }
//!         Ok(OperationOk::new(json!({ "messageId": "991" })).provider_status(200))
//!     });
//!     ctx.ready().await;
//!     ctx.shutdown().await;
//!     Ok(())
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipc_proto::{Call, CallError, CallResult, CancelCall, FailureClass, FromConnector, Json};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::link::Outbox;

/// One call of an operation, as its handler sees it.
#[derive(Clone, Debug)]
pub struct OperationCall {
    /// The orchestrator's id of this call (a retry has a new one).
    pub id: String,
    /// The operation's name.
    pub operation: String,
    /// The input, already checked against the operation's schema by the orchestrator.
    pub input: Value,
    /// 1 for the first call of an invoke, higher for its retries.
    pub attempt: u32,
    /// After this instant an answer is too late: the orchestrator has
    /// counted a `timeout`. Use it with `tokio::time::timeout_at`.
    pub deadline: Instant,
    /// The invoke's idempotency key, to pass to a provider that takes one.
    pub idempotency_key: Option<String>,
}

impl OperationCall {
    /// Time left before the deadline (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The input as `T`; a mismatch is a `validation_error`.
    pub fn input_as<T: DeserializeOwned>(&self) -> Result<T, OperationError> {
        T::deserialize(&self.input).map_err(|e| {
            OperationError::validation(format!("input of {} does not fit: {e}", self.operation))
        })
    }
}

/// What a successful call returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperationOk {
    /// The operation's output.
    pub data: Value,
    /// The provider's status code, if there was one.
    pub provider_status: Option<u16>,
    /// Warnings the agent gets beside the data.
    pub warnings: Vec<String>,
}

impl OperationOk {
    /// Success with `data`.
    pub fn new(data: Value) -> Self {
        OperationOk {
            data,
            ..OperationOk::default()
        }
    }

    /// With the provider's status code.
    pub fn provider_status(mut self, status: u16) -> Self {
        self.provider_status = Some(status);
        self
    }

    /// With one more warning.
    pub fn warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

impl From<Value> for OperationOk {
    fn from(data: Value) -> Self {
        OperationOk::new(data)
    }
}

/// Why a call failed, classified: the orchestrator retries `transient` (and
/// `timeout`) as the operation's `retry` says, and nothing else.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct OperationError {
    /// Its class.
    pub class: FailureClass,
    /// What happened; it reaches the agent and the audit log, so no secrets.
    pub message: String,
    /// The provider asked to wait this long (a 429).
    pub retry_after: Option<Duration>,
    /// The provider's status code, if any.
    pub provider_status: Option<u16>,
}

impl OperationError {
    /// A failure of class `class`.
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        OperationError {
            class,
            message: message.into(),
            retry_after: None,
            provider_status: None,
        }
    }

    /// May work on a retry (a 5xx, a reset connection).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Transient, message)
    }

    /// Will not change on a retry (a 4xx).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Permanent, message)
    }

    /// The provider's quota (a 429): the orchestrator holds this
    /// Connection's calls for `retry_after`.
    pub fn quota_exceeded(message: impl Into<String>, retry_after: Duration) -> Self {
        let mut e = Self::new(FailureClass::QuotaExceeded, message);
        e.retry_after = Some(retry_after);
        e
    }

    /// The input does not make sense to the provider.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(FailureClass::ValidationError, message)
    }

    /// With the provider's status code.
    pub fn provider_status(mut self, status: u16) -> Self {
        self.provider_status = Some(status);
        self
    }

    fn into_result(self, id: String) -> CallResult {
        CallResult {
            id,
            ok: false,
            data: None,
            provider_status: self.provider_status,
            warnings: Vec::new(),
            error: Some(CallError {
                class: self.class,
                message: self.message,
                retry_after_ms: self
                    .retry_after
                    .map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
                provider_status: self.provider_status,
            }),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<OperationOk, OperationError>> + Send>>;
type Handler = Arc<dyn Fn(OperationCall) -> BoxFuture + Send + Sync>;

/// The operation handlers of a connector: [`Context::operations`](crate::Context::operations).
///
/// Cheap to clone; every clone registers into the same table.
#[derive(Clone)]
pub struct Operations {
    shared: Arc<Shared>,
}

struct Shared {
    outbox: Outbox<FromConnector>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    handlers: HashMap<String, Handler>,
    /// Calls whose handler runs, by call id.
    running: HashMap<String, AbortHandle>,
}

impl fmt::Debug for Operations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        let mut names: Vec<_> = state.handlers.keys().collect();
        names.sort();
        f.debug_struct("Operations")
            .field("handlers", &names)
            .field("running", &state.running.len())
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover the data if it ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Operations {
    pub(crate) fn new(outbox: Outbox<FromConnector>) -> Self {
        Operations {
            shared: Arc::new(Shared {
                outbox,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Serves the operation `name` with `handler`, replacing an earlier one.
    ///
    /// Register before [`ready`](crate::Context::ready): a call for a name
    /// without a handler is answered `unavailable`. Each call runs in its own
    /// task, so a slow handler holds up nothing else; a handler that panics
    /// is answered `transient`.
    pub fn on<F, Fut>(&self, name: impl Into<String>, handler: F) -> &Self
    where
        F: Fn(OperationCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<OperationOk, OperationError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |call| Box::pin(handler(call)));
        self.shared.lock().handlers.insert(name.into(), handler);
        self
    }

    /// The names served, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.shared.lock().handlers.keys().cloned().collect();
        names.sort();
        names
    }

    /// Starts the handler of `call` (called by the reader pump, in arrival order).
    pub(crate) fn on_call(&self, call: Call) {
        let handler = self.shared.lock().handlers.get(&call.operation).cloned();
        let Some(handler) = handler else {
            let e = OperationError::new(
                FailureClass::Unavailable,
                format!("this connector has no operation {:?}", call.operation),
            );
            self.answer(e.into_result(call.id));
            return;
        };
        let id = call.id.clone();
        let task = tokio::spawn(handler(OperationCall {
            id: call.id,
            operation: call.operation,
            input: call.input.0,
            attempt: call.attempt,
            deadline: Instant::now() + Duration::from_millis(call.deadline_ms),
            idempotency_key: call.idempotency_key,
        }));
        // Filed before the next message is read, so a cancel always finds it.
        self.shared
            .lock()
            .running
            .insert(id.clone(), task.abort_handle());
        let ops = self.clone();
        tokio::spawn(async move {
            let joined = task.await;
            // Gone from the table: a cancel took it.
            let canceled = ops.shared.lock().running.remove(&id).is_none();
            let outcome = match joined {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(OperationError::transient("the handler panicked")),
                Err(_) if canceled => Err(OperationError::new(
                    FailureClass::Canceled,
                    "canceled by the orchestrator",
                )),
                Err(_) => Err(OperationError::transient("the handler was dropped")),
            };
            ops.answer(match outcome {
                Ok(ok) => CallResult {
                    id,
                    ok: true,
                    data: Some(Json(ok.data)),
                    provider_status: ok.provider_status,
                    warnings: ok.warnings,
                    error: None,
                },
                Err(e) => e.into_result(id),
            });
        });
    }

    /// Aborts the handler of call `cancel.id` if it still runs (answered `canceled`).
    pub(crate) fn on_cancel(&self, cancel: CancelCall) {
        if let Some(task) = self.shared.lock().running.remove(&cancel.id) {
            task.abort();
        }
    }

    /// Sends `result`; if it cannot be encoded (too large), sends a
    /// `validation_error` in its place, so every call gets one answer.
    fn answer(&self, result: CallResult) {
        let id = result.id.clone();
        let outbox = self.shared.outbox.clone();
        self.shared.outbox.send_or(
            FromConnector::CallResult(result),
            Box::new(move |e| {
                let e = OperationError::validation(format!("the result could not be sent: {e}"));
                outbox.send(FromConnector::CallResult(e.into_result(id)));
            }),
        );
    }
}
