//! The checks of the governed path that decide without calling anyone:
//! policy, input, rate limits (steps 1, 2 and 4), and the output's schema,
//! redactions and size cap (step 8).

use std::time::{Duration, Instant};

use ipc_proto::{FailureClass, Invoke};

use super::govern::{Caller, Failure};
use super::{Compiled, ConnectionOps, MAX_INSTANCE_BUCKETS, Operations};
use crate::bundle::RateLimit;
use crate::connection::limit::TokenBucket;

impl Operations {
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
        let grant = {
            let grants = self.grants.read().expect("ops lock");
            grants.get(&caller.agent).and_then(|gs| {
                gs.iter()
                    .find(|g| {
                        g.connection == conn.name
                            && g.operations.iter().any(|o| o == "*" || o == operation)
                    })
                    .map(|g| g.rate_limit)
            })
        };
        let per_instance = grant.flatten();
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

    pub(super) fn take_tokens(
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

pub(super) fn check_input(op: &Compiled, input: &serde_json::Value) -> Result<(), Failure> {
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
pub(super) fn finish_output(
    op: &Compiled,
    data: serde_json::Value,
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
    Ok(normalize_output(
        data,
        &op.decl.redact,
        op.decl.max_output_bytes,
    ))
}

/// An operation's output after its checked schema: each `redact` pointer
/// that is present replaced by `"<redacted>"` (and listed), then, if the
/// compact JSON is over `max_output_bytes`, that JSON cut to fit (on a
/// character boundary) as a string, marked truncated.
#[doc(hidden)]
pub fn normalize_output(
    mut data: serde_json::Value,
    redact: &[String],
    max_output_bytes: u64,
) -> (serde_json::Value, Vec<String>, bool) {
    let mut redactions = Vec::new();
    for pointer in redact {
        if let Some(v) = data.pointer_mut(pointer) {
            *v = serde_json::Value::String("<redacted>".into());
            redactions.push(pointer.clone());
        }
    }
    let text = serde_json::to_string(&data).unwrap_or_default();
    let max = usize::try_from(max_output_bytes).unwrap_or(usize::MAX);
    if text.len() <= max {
        return (data, redactions, false);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    (
        serde_json::Value::String(text[..cut].to_string()),
        redactions,
        true,
    )
}
