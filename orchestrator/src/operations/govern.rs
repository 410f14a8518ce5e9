//! The governed path of one invoke, from policy to audit record (the checks
//! that call no one are in `checks.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ipc_proto::{
    CallError, FailureClass, Invoke, InvokeError, InvokeResponse, InvokeResult, Json,
    ResponseMetadata,
};

use super::checks::finish_output;
use super::{ConnectionOps, Operations};

/// Who invokes: an agent instance (handling an event, usually), or the operator.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The Agent.
    pub agent: String,
    /// Its instance key.
    pub instance_key: String,
    /// Its Swarm (where `job.*` events are routed).
    pub swarm: String,
    /// The event it is handling, when the invoke does not say.
    pub correlation_id: Option<String>,
    /// `orchestrator invoke`, not an agent (an Agent may be called `operator`).
    pub operator: bool,
}

/// The name an operator's invokes carry as their `agent` in the audit log.
pub const OPERATOR: &str = "operator";

impl Caller {
    /// `orchestrator invoke`: allowed every operation the Connection allows.
    pub fn operator() -> Self {
        Self {
            agent: OPERATOR.into(),
            instance_key: String::new(),
            swarm: String::new(),
            correlation_id: None,
            operator: true,
        }
    }
}

/// Counts an invoke as ended `canceled` if its future is dropped before it ends.
struct Unfinished<'a> {
    conn: Option<&'a ConnectionOps>,
    operation: &'a str,
    started: Instant,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(c) = self.conn
        {
            let took = self.started.elapsed();
            c.counters(self.operation, |s| {
                s.finished(Some(FailureClass::Canceled), took)
            });
        }
    }
}

/// A failure on the way, before it becomes a result.
pub(super) struct Failure {
    pub class: FailureClass,
    pub message: String,
    pub retry_after_ms: Option<u64>,
    pub provider_status: Option<u16>,
}

impl Failure {
    pub(super) fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after_ms: None,
            provider_status: None,
        }
    }
}

impl Failure {
    /// The error a result carries, after `attempts` calls.
    pub(super) fn into_error(self, attempts: u32) -> InvokeError {
        InvokeError {
            class: self.class,
            message: self.message,
            retry_after_ms: self.retry_after_ms,
            provider_status: self.provider_status,
            attempts,
        }
    }

    /// The failed result of the invoke `id`.
    pub(super) fn into_result(self, id: &str, attempts: u32) -> InvokeResult {
        InvokeResult {
            id: id.to_owned(),
            ok: false,
            response: None,
            error: Some(self.into_error(attempts)),
            job: None,
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Self {
            class: e.class,
            message: e.message,
            retry_after_ms: e.retry_after_ms,
            provider_status: e.provider_status,
        }
    }
}

impl Operations {
    /// Runs `invoke` for `caller` through the whole governed path; always an
    /// answer. An `async` operation answers at once with its job instead
    /// (see `jobs.rs`).
    pub async fn invoke(self: &Arc<Self>, caller: &Caller, invoke: Invoke) -> InvokeResult {
        // Cluster mode: the node that runs the Connection governs the call.
        if let Some(cluster) = self.cluster.get()
            && self.connection(&invoke.connection).is_some()
            && !cluster.serves(&invoke.connection)
        {
            return cluster.forward_invoke(caller, invoke).await;
        }
        self.invoke_here(caller, invoke).await
    }

    /// [`invoke`](Self::invoke) on this node's own process of the Connection.
    pub async fn invoke_here(self: &Arc<Self>, caller: &Caller, invoke: Invoke) -> InvokeResult {
        let conn = self.connection(&invoke.connection);
        let asynchronous = conn.as_ref().is_some_and(|c| {
            c.operations
                .get(&invoke.operation)
                .is_some_and(|op| op.decl.asynchronous)
        });
        if let Some(c) = conn.filter(|_| asynchronous)
            && self.admit(caller, &c, &invoke).is_ok()
        {
            return self.start_job(caller, &c, invoke).await;
        }
        // A refused async invoke is answered (and audited) like a sync one.
        let mode = if asynchronous { "async" } else { "sync" };
        self.run(caller, invoke, mode, None).await
    }

    /// The governed path of one invoke, to its end; `mode` goes in the audit
    /// record, and `request_id` (a job's id) replaces a new one.
    pub(super) async fn run(
        &self,
        caller: &Caller,
        invoke: Invoke,
        mode: &str,
        request_id: Option<String>,
    ) -> InvokeResult {
        let started = Instant::now();
        let request_id = request_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let correlation_id = invoke
            .correlation_id
            .clone()
            .or_else(|| caller.correlation_id.clone());
        let conn = self.connection(&invoke.connection);
        if let Some(c) = &conn {
            c.counters(&invoke.operation, |s| s.started());
        }
        // A job canceled mid-way drops this future: it still counts as ended.
        let mut unfinished = Unfinished {
            conn: conn.as_deref(),
            operation: &invoke.operation,
            started,
            armed: true,
        };
        let (outcome, attempts) = match &conn {
            None => (
                Err(Failure::new(
                    FailureClass::PolicyDenied,
                    format!(
                        "no Connection `{}` this agent may invoke",
                        invoke.connection
                    ),
                )),
                0,
            ),
            Some(c) => self.govern(caller, c, &invoke).await,
        };
        let took = started.elapsed();
        let result = match outcome {
            Ok((data, warnings, redactions, truncated, provider_status)) => InvokeResult {
                id: invoke.id.clone(),
                ok: true,
                response: Some(InvokeResponse {
                    data: Json(data),
                    metadata: ResponseMetadata {
                        request_id: request_id.clone(),
                        correlation_id: correlation_id.clone(),
                        connection: invoke.connection.clone(),
                        operation: invoke.operation.clone(),
                        duration_ms: took.as_millis() as u64,
                        attempts,
                        provider_status,
                    },
                    warnings,
                    redactions_applied: redactions,
                    truncated,
                }),
                error: None,
                job: None,
            },
            Err(f) => f.into_result(&invoke.id, attempts),
        };
        let class = result.error.as_ref().map(|e| e.class);
        unfinished.armed = false;
        if let Some(op) = conn
            .as_ref()
            .and_then(|c| c.operations.get(&invoke.operation))
        {
            op.seconds.record(took.as_secs_f64());
        }
        if let Some(c) = &conn {
            c.counters(&invoke.operation, |s| s.finished(class, took));
        }
        let provider_status = match (&result.response, &result.error) {
            (Some(r), _) => r.metadata.provider_status,
            (_, Some(e)) => e.provider_status,
            _ => None,
        };
        // One record per invoke; never the input, the output or a secret.
        self.audit.record(serde_json::json!({
            "time": crate::logs::timestamp(SystemTime::now()),
            "kind": "invoke",
            "requestId": request_id,
            "correlationId": correlation_id,
            "agent": caller.agent,
            "instanceKey": caller.instance_key,
            "connection": invoke.connection,
            "connector": conn.as_ref().map(|c| c.connector.clone()),
            "operation": invoke.operation,
            "mode": mode,
            "outcome": class.map_or("ok", FailureClass::as_str),
            "durationMs": took.as_millis() as u64,
            "providerStatus": provider_status,
            "retryCount": attempts.saturating_sub(1),
        }));
        result
    }

    #[allow(clippy::type_complexity)]
    async fn govern(
        &self,
        caller: &Caller,
        conn: &ConnectionOps,
        invoke: &Invoke,
    ) -> (
        Result<
            (
                serde_json::Value,
                Vec<String>,
                Vec<String>,
                bool,
                Option<u16>,
            ),
            Failure,
        >,
        u32,
    ) {
        let operation = &invoke.operation;
        let (op, per_instance) = match self.admit(caller, conn, invoke) {
            Ok(admitted) => admitted,
            Err(f) => return (Err(f), 0),
        };
        // 3. Idempotency: a repeat of a key waits for the first, then gets its result.
        let idempotency = match (&invoke.idempotency_key, op.decl.idempotent) {
            (Some(key), true) => Some((conn.name.clone(), operation.clone(), key.clone())),
            _ => None,
        };
        let _turn = match &idempotency {
            Some(k) => Some(self.turn(k).await),
            None => None,
        };
        // Cluster mode: and the key's turn across nodes, held until its result is kept.
        let _claim = match (&idempotency, self.cluster.get()) {
            (Some(k), Some(cluster)) => cluster.claim_key(&k.0, &k.1, &k.2).await,
            _ => None,
        };
        if let Some(k) = &idempotency
            && let Some(first) = self.recall(k, conn.policy.idempotency_ttl).await
        {
            return (Ok(first), 0);
        }
        // 4. Rate limits: this instance's, the Connection's, a provider's hold.
        if let Err(f) = self.take_tokens(caller, conn, per_instance) {
            return (Err(f), 0);
        }
        // 5. The circuit: a degraded Connection fails fast, but for one probe
        //    after its cooldown (its `health` operation first, if declared).
        let probe = match conn.circuit_gate() {
            Ok(probe) => probe,
            Err(f) => return (Err(f), 0),
        };
        let deadline = invoke
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        if probe
            && operation != "health"
            && let Some(health) = conn.operations.get("health")
        {
            let until = Instant::now() + health.decl.timeout;
            let checked = conn
                .call_once(
                    health,
                    &Invoke {
                        input: Json::default(),
                        ..invoke.clone()
                    },
                    1,
                    until,
                )
                .await;
            let healthy = matches!(&checked, Ok(r) if r.ok);
            conn.circuit_after(true, (!healthy).then_some(FailureClass::Unavailable), 1);
            if !healthy {
                let m = format!(
                    "Connection/{} is degraded: its health probe failed",
                    conn.name
                );
                return (Err(Failure::new(FailureClass::Unavailable, m)), 0);
            }
        }
        // With a `health` operation the probe was that call; without, it is this one.
        let probe = probe && (operation == "health" || !conn.operations.contains_key("health"));
        // 6. Concurrency.
        let permit = match conn.slot(deadline).await {
            Ok(p) => p,
            Err(f) => {
                conn.circuit_after(probe, Some(f.class), 0);
                return (Err(f), 0);
            }
        };
        // 7. Call, with retries.
        let called = conn
            .call_with_retries(op, invoke, deadline, self.max_retries)
            .await;
        drop(permit);
        let attempts = called.attempts;
        let class = called.outcome.as_ref().err().map(|f| f.class);
        conn.circuit_after(probe, class, attempts);
        let result = match called.outcome {
            Ok(r) => r,
            Err(f) => return (Err(f), attempts),
        };
        // 8. Output: schema, redactions, size.
        let data = result.data.map(|d| d.0).unwrap_or(serde_json::Value::Null);
        let outcome = finish_output(op, data).map(|(data, redactions, truncated)| {
            (
                data,
                result.warnings,
                redactions,
                truncated,
                result.provider_status,
            )
        });
        // The first success of a key is kept (durably) before it is answered.
        if let (Some(k), Ok(first)) = (&idempotency, &outcome) {
            let (data, warnings, redactions, truncated, status) = first;
            let record = serde_json::json!({
                "data": data, "warnings": warnings, "redactionsApplied": redactions,
                "truncated": truncated, "providerStatus": status,
            });
            let bytes = record.to_string().into_bytes();
            let kept = match self.cluster.get() {
                Some(cluster) => cluster.remember(&k.0, &k.1, &k.2, bytes).await,
                None => self.journal.remember(&k.0, &k.1, &k.2, bytes).await,
            };
            if let Err(e) = kept {
                tracing::warn!(connection = %k.0, operation = %k.1, "idempotency record not kept: {e}");
            }
        }
        (outcome, attempts)
    }
}

impl ConnectionOps {
    pub(super) fn counters(&self, operation: &str, f: impl FnOnce(&mut super::stats::Counters)) {
        let mut stats = self.stats.lock().expect("ops lock");
        // Only declared operations get a row: a caller cannot grow the table.
        if self.operations.contains_key(operation) {
            f(stats.entry(operation.to_string()).or_default());
        }
    }
}
