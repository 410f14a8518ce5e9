//! Invoking an operation of a Connection: [`AgentContext::invoke`](super::AgentContext::invoke).

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipc_proto::{
    FailureClass, FromAgent, Invoke, InvokeError, InvokeResponse, InvokeResult, Job, JobCancel,
    JobGet, Json,
};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::link::Outbox;

/// Why an invoke failed: its class, as the orchestrator (or the connector) decided.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} of {connection} failed ({class}): {message}")]
pub struct InvokeFailure {
    /// The Connection invoked.
    pub connection: String,
    /// The operation invoked.
    pub operation: String,
    /// Its class: `transient` and `timeout` may work later, `quota_exceeded`
    /// after [`retry_after`](Self::retry_after), the others will not change.
    pub class: FailureClass,
    /// What happened.
    pub message: String,
    /// When to try again, if known (a provider's 429).
    pub retry_after_ms: Option<u64>,
    /// The provider's status code, if any.
    pub provider_status: Option<u16>,
    /// Calls made to the connector (0 when refused before any).
    pub attempts: u32,
}

impl InvokeFailure {
    /// [`retry_after_ms`](Self::retry_after_ms) as a duration.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }

    fn local(req: &Invoke, class: FailureClass, message: impl Into<String>) -> Self {
        InvokeFailure {
            connection: req.connection.clone(),
            operation: req.operation.clone(),
            class,
            message: message.into(),
            retry_after_ms: None,
            provider_status: None,
            attempts: 0,
        }
    }

    fn from_error(req: &Invoke, e: InvokeError) -> Self {
        InvokeFailure {
            connection: req.connection.clone(),
            operation: req.operation.clone(),
            class: e.class,
            message: e.message,
            retry_after_ms: e.retry_after_ms,
            provider_status: e.provider_status,
            attempts: e.attempts,
        }
    }
}

type Answer = oneshot::Sender<Result<InvokeResult, InvokeFailure>>;

/// The invokes of one agent process waiting for their `result`, by id.
pub(crate) struct Pending {
    outbox: Outbox<FromAgent>,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    waiting: HashMap<String, Answer>,
}

impl Pending {
    pub(crate) fn new(outbox: Outbox<FromAgent>) -> Arc<Self> {
        Arc::new(Pending {
            outbox,
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover the data if it ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers the invoke `result.id` (called by the reader pump).
    pub(crate) fn on_result(&self, result: InvokeResult) {
        match self.lock().waiting.remove(&result.id) {
            Some(answer) => {
                let _ = answer.send(Ok(result));
            }
            None => eprintln!(
                "connector-sdk: ignored a result for {:?}, which nobody waits for",
                result.id
            ),
        }
    }

    /// The channel is gone: every waiting invoke, and every later one, fails.
    pub(crate) fn close(&self) {
        let waiting = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.waiting)
        };
        // Dropping the senders answers each waiter with "closed".
        drop(waiting);
    }
}

/// An invoke about to be sent: set options, then `.await` it.
///
/// Made by [`AgentContext::invoke`](super::AgentContext::invoke). Awaiting
/// sends the `invoke` and waits for its `result`, as long as the
/// orchestrator takes (it answers every invoke, within the operation's
/// timeout and retries) or until the channel closes; dropping the future
/// stops the wait (the operation may still run). An [`InvokeFailure`] is an
/// error, so `?` in a delivery handler nacks the delivery for a retry.
#[must_use = "an invoke is sent when awaited"]
pub struct InvokeRequest {
    pending: Arc<Pending>,
    invoke: Invoke,
}

impl fmt::Debug for InvokeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The input may hold anything; it is not shown.
        f.debug_struct("InvokeRequest")
            .field("connection", &self.invoke.connection)
            .field("operation", &self.invoke.operation)
            .field("timeout_ms", &self.invoke.timeout_ms)
            .field("correlation_id", &self.invoke.correlation_id)
            .finish_non_exhaustive()
    }
}

impl InvokeRequest {
    pub(crate) fn new(
        pending: Arc<Pending>,
        connection: String,
        operation: String,
        input: Value,
    ) -> Self {
        InvokeRequest {
            pending,
            invoke: Invoke {
                id: String::new(),
                connection,
                operation,
                input: Json(input),
                idempotency_key: None,
                timeout_ms: None,
                correlation_id: None,
            },
        }
    }

    /// A repeat with the same key within the Connection's `idempotencyTtl`
    /// gets the first result, without calling the connector again.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.invoke.idempotency_key = Some(key.into());
        self
    }

    /// The most to wait; the operation's own `timeout` caps it further.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.invoke.timeout_ms = Some(timeout.as_millis().try_into().unwrap_or(u64::MAX));
        self
    }

    /// The event this invoke is made for (by default the one delivery in
    /// flight, when there is exactly one).
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.invoke.correlation_id = Some(id.into());
        self
    }
}

impl InvokeRequest {
    /// For a `mode: async` operation: sends the invoke and resolves with the
    /// job it started (`state: pending`). Its outcome arrives later as a
    /// `job.succeeded` / `job.failed` / `job.canceled` event.
    pub async fn job(self) -> Result<Job, InvokeFailure> {
        let InvokeRequest { pending, invoke } = self;
        let request = described(&invoke);
        let result = exchange(pending, request.clone(), move |id| {
            FromAgent::Invoke(Invoke { id, ..invoke })
        })
        .await?;
        job_of(&request, result)
    }
}

impl IntoFuture for InvokeRequest {
    type Output = Result<InvokeResponse, InvokeFailure>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    /// Sends the invoke now (before the first poll), then waits for its result.
    fn into_future(self) -> Self::IntoFuture {
        let InvokeRequest { pending, invoke } = self;
        let request = described(&invoke);
        let answer = exchange(pending, request.clone(), move |id| {
            FromAgent::Invoke(Invoke { id, ..invoke })
        });
        Box::pin(async move { settle(&request, answer.await?) })
    }
}

/// `jobGet` or `jobCancel` of `job_id`: the job as it stands.
pub(crate) fn job_request(
    pending: Arc<Pending>,
    job_id: String,
    cancel: bool,
) -> impl Future<Output = Result<Job, InvokeFailure>> + Send {
    let verb = if cancel { "jobCancel" } else { "jobGet" };
    let request = Invoke {
        id: String::new(),
        connection: String::new(),
        operation: format!("{verb} {job_id}"),
        input: Json::default(),
        idempotency_key: None,
        timeout_ms: None,
        correlation_id: None,
    };
    let answer = exchange(pending, request.clone(), move |id| {
        if cancel {
            FromAgent::JobCancel(JobCancel { id, job_id })
        } else {
            FromAgent::JobGet(JobGet { id, job_id })
        }
    });
    async move { job_of(&request, answer.await?) }
}

/// What a future keeps to describe an invoke in its errors: all but the input.
fn described(invoke: &Invoke) -> Invoke {
    Invoke {
        id: String::new(),
        connection: invoke.connection.clone(),
        operation: invoke.operation.clone(),
        input: Json::default(),
        idempotency_key: invoke.idempotency_key.clone(),
        timeout_ms: invoke.timeout_ms,
        correlation_id: invoke.correlation_id.clone(),
    }
}

/// Sends the message `make(id)` now (before the first poll) under a new id,
/// then waits for the `result` with that id.
fn exchange(
    pending: Arc<Pending>,
    mut request: Invoke,
    make: impl FnOnce(String) -> FromAgent,
) -> Pin<Box<dyn Future<Output = Result<InvokeResult, InvokeFailure>> + Send>> {
    let n = pending.next_id.fetch_add(1, Ordering::Relaxed);
    request.id = format!("invoke-{n}");
    let (tx, rx) = oneshot::channel();
    let filed = {
        let mut state = pending.lock();
        if !state.closed {
            state.waiting.insert(request.id.clone(), tx);
        }
        !state.closed
    };
    if filed {
        let (on_fail, id) = (pending.clone(), request.id.clone());
        pending.outbox.send_or(
            make(request.id.clone()),
            Box::new(move |e| {
                if let Some(answer) = on_fail.lock().waiting.remove(&id) {
                    let _ = answer.send(Err(InvokeFailure {
                        connection: String::new(),
                        operation: String::new(),
                        class: FailureClass::ValidationError,
                        message: format!("the invoke could not be sent: {e}"),
                        retry_after_ms: None,
                        provider_status: None,
                        attempts: 0,
                    }));
                }
            }),
        );
    }
    // Owned by the future: dropping it, even unpolled, withdraws the waiter.
    let guard = Withdraw {
        pending,
        id: request.id.clone(),
    };
    Box::pin(async move {
        if !filed {
            return Err(closed(&request));
        }
        let got = rx.await;
        drop(guard);
        match got {
            Err(_) => Err(closed(&request)),
            Ok(Err(mut unsent)) => {
                unsent.connection = request.connection.clone();
                unsent.operation = request.operation.clone();
                Err(unsent)
            }
            Ok(Ok(result)) => Ok(result),
        }
    })
}

/// Removes a waiter whose future was dropped before its result came.
struct Withdraw {
    pending: Arc<Pending>,
    id: String,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.pending.lock().waiting.remove(&self.id);
    }
}

fn closed(req: &Invoke) -> InvokeFailure {
    InvokeFailure::local(
        req,
        FailureClass::Unavailable,
        "the channel to the orchestrator is closed; whether the operation ran is unknown",
    )
}

fn job_of(req: &Invoke, result: InvokeResult) -> Result<Job, InvokeFailure> {
    match (result.ok, result.job, result.error) {
        (true, Some(job), _) => Ok(*job),
        (false, _, Some(error)) => Err(InvokeFailure::from_error(req, error)),
        (ok, ..) => Err(InvokeFailure::local(
            req,
            FailureClass::Permanent,
            format!(
                "the orchestrator's result (ok: {ok}) has no {} (is the operation async?)",
                if ok { "job" } else { "error" }
            ),
        )),
    }
}

fn settle(req: &Invoke, result: InvokeResult) -> Result<InvokeResponse, InvokeFailure> {
    match (result.ok, result.response, result.error) {
        (true, Some(response), _) => Ok(response),
        (false, _, Some(error)) => Err(InvokeFailure::from_error(req, error)),
        (ok, ..) => Err(InvokeFailure::local(
            req,
            FailureClass::Permanent,
            format!(
                "the orchestrator's result (ok: {ok}) has no {}",
                if ok {
                    "response (is the operation async? use .job())"
                } else {
                    "error"
                }
            ),
        )),
    }
}
