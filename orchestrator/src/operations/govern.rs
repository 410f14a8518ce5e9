//! The governed path of one invoke, from policy to audit record.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ipc_proto::{
    CallError, FailureClass, Invoke, InvokeError, InvokeResponse, InvokeResult, Json,
    ResponseMetadata,
};

use super::{Compiled, ConnectionOps, MAX_INSTANCE_BUCKETS, Operations};
use crate::bundle::RateLimit;
use crate::connection::limit::TokenBucket;

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
            let kept = self
                .journal
                .remember(&k.0, &k.1, &k.2, record.to_string().into_bytes())
                .await;
            if let Err(e) = kept {
                tracing::warn!(connection = %k.0, operation = %k.1, "idempotency record not kept: {e}");
            }
        }
        (outcome, attempts)
    }

    /// Steps 1 and 2 of the path: policy, then input size and schema (and an
    /// idempotency key where one is required). Nothing is spent or called.
    pub(super) fn admit<'c>(
        &self,
        caller: &Caller,
        conn: &'c ConnectionOps,
        invoke: &Invoke,
    ) -> Result<(&'c Compiled, Option<RateLimit>), Failure> {
        let operation = &invoke.operation;
        // 1. Policy: the Agent's invoke list and the Connection's allow list.
        let grant = self.grants.get(&caller.agent).and_then(|gs| {
            gs.iter().find(|g| {
                g.connection == conn.name && g.operations.iter().any(|o| o == "*" || o == operation)
            })
        });
        let per_instance = grant.and_then(|g| g.rate_limit);
        if grant.is_none() && !caller.operator {
            let m = format!(
                "Agent/{} may not invoke `{operation}` of Connection/{} (its spec.invoke does not list it)",
                caller.agent, conn.name
            );
            return Err(Failure::new(FailureClass::PolicyDenied, m));
        };
        if !conn.policy.allow.iter().any(|a| a == operation) {
            let m = format!(
                "Connection/{} does not allow `{operation}` (spec.operations.allow)",
                conn.name
            );
            return Err(Failure::new(FailureClass::PolicyDenied, m));
        }
        let Some(op) = conn.operations.get(operation) else {
            let m = format!(
                "Connector/{} has no operation `{operation}`",
                conn.connector
            );
            return Err(Failure::new(FailureClass::Unavailable, m));
        };
        // 2. Input: size, then schema.
        check_input(op, &invoke.input.0)?;
        if op.decl.mutating && op.decl.idempotent && invoke.idempotency_key.is_none() {
            let m = format!(
                "`{operation}` changes the world and is idempotent: call it with an idempotencyKey"
            );
            return Err(Failure::new(FailureClass::ValidationError, m));
        }
        Ok((op, per_instance))
    }

    fn take_tokens(
        &self,
        caller: &Caller,
        conn: &ConnectionOps,
        per_instance: Option<RateLimit>,
    ) -> Result<(), Failure> {
        let now = Instant::now();
        let quota = |what: &str, wait: Duration| Failure {
            retry_after_ms: Some(wait.as_millis().max(1) as u64),
            ..Failure::new(FailureClass::QuotaExceeded, format!("{what} is spent"))
        };
        if let Some(until) = *conn.hold_until.lock().expect("ops lock")
            && until > now
        {
            return Err(Failure {
                retry_after_ms: Some((until - now).as_millis().max(1) as u64),
                ..Failure::new(
                    FailureClass::QuotaExceeded,
                    format!(
                        "the provider of Connection/{} asked to wait (429)",
                        conn.name
                    ),
                )
            });
        }
        if let Some(limit) = per_instance {
            let mut buckets = self.instance_buckets.lock().expect("ops lock");
            if buckets.len() >= MAX_INSTANCE_BUCKETS {
                buckets.clear();
            }
            let key = (
                caller.agent.clone(),
                caller.instance_key.clone(),
                conn.name.clone(),
            );
            let bucket = buckets
                .entry(key)
                .or_insert_with(|| TokenBucket::new(limit, now));
            bucket.take(now).map_err(|w| {
                quota(
                    &format!(
                        "the rate limit of Agent/{} instance {} on Connection/{}",
                        caller.agent, caller.instance_key, conn.name
                    ),
                    w,
                )
            })?;
        }
        if let Some(bucket) = self.global_bucket.lock().expect("ops lock").as_mut() {
            bucket
                .take(now)
                .map_err(|w| quota("the orchestrator's --max-invocations-per-second", w))?;
        }
        if let Some(bucket) = conn.bucket.lock().expect("ops lock").as_mut() {
            bucket
                .take(now)
                .map_err(|w| quota(&format!("the rate limit of Connection/{}", conn.name), w))?;
        }
        Ok(())
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

fn check_input(op: &Compiled, input: &serde_json::Value) -> Result<(), Failure> {
    let size = serde_json::to_vec(input).map(|v| v.len()).unwrap_or(0) as u64;
    if size > op.decl.max_input_bytes {
        return Err(Failure::new(
            FailureClass::ValidationError,
            format!(
                "input of {size} bytes is over maxInputBytes ({}) of `{}`",
                op.decl.max_input_bytes, op.decl.name
            ),
        ));
    }
    if let Some(schema) = &op.input
        && let Err(e) = schema.validate(input)
    {
        return Err(Failure::new(
            FailureClass::ValidationError,
            format!(
                "input of `{}` at `{}`: {e}",
                op.decl.name,
                e.instance_path()
            ),
        ));
    }
    Ok(())
}

/// Output schema, then redactions, then the size cap.
fn finish_output(
    op: &Compiled,
    mut data: serde_json::Value,
) -> Result<(serde_json::Value, Vec<String>, bool), Failure> {
    if let Some(schema) = &op.output
        && let Err(e) = schema.validate(&data)
    {
        return Err(Failure::new(
            FailureClass::ValidationError,
            format!(
                "output of `{}` at `{}`: {e}",
                op.decl.name,
                e.instance_path()
            ),
        ));
    }
    let mut redactions = Vec::new();
    for pointer in &op.decl.redact {
        if let Some(v) = data.pointer_mut(pointer) {
            *v = serde_json::Value::String("<redacted>".into());
            redactions.push(pointer.clone());
        }
    }
    let text = serde_json::to_string(&data).unwrap_or_default();
    let max = op.decl.max_output_bytes as usize;
    if text.len() <= max {
        return Ok((data, redactions, false));
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Ok((
        serde_json::Value::String(text[..cut].to_string()),
        redactions,
        true,
    ))
}
