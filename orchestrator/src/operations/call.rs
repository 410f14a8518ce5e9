//! One invoke's calls to the connector: a slot among `maxParallel`, the
//! `call` with its deadline, its answer or `cancel`, and the retries.

use std::time::{Duration, Instant};

use ipc_proto::{Call, CallResult, CancelCall, FailureClass, Invoke, ToConnector};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::govern::Failure;
use super::{Compiled, ConnectionOps};
use crate::bundle::Overflow;

/// How the call part ended: the connector's data, or why not, and the calls made.
pub(super) struct Called {
    pub outcome: Result<CallResult, Failure>,
    pub attempts: u32,
}

impl ConnectionOps {
    /// A place among the `maxParallel` calls: at once, after waiting in the
    /// queue (at most `maxQueue` wait), or `overloaded`.
    pub(super) async fn slot(
        &self,
        deadline: Option<Instant>,
    ) -> Result<OwnedSemaphorePermit, Failure> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        {
            let mut waiting = self.waiting.lock().expect("ops lock");
            if *waiting >= self.policy.max_queue && self.policy.overflow == Overflow::Reject {
                return Err(Failure::new(
                    FailureClass::Overloaded,
                    format!(
                        "Connection/{}: {} calls in flight and {} waiting (maxParallel, maxQueue)",
                        self.name, self.policy.max_parallel, *waiting
                    ),
                ));
            }
            *waiting += 1;
        }
        let acquire = self.slots.clone().acquire_owned();
        let got = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), acquire).await.ok(),
            None => Some(acquire.await),
        };
        *self.waiting.lock().expect("ops lock") -= 1;
        match got {
            Some(Ok(p)) => Ok(p),
            Some(Err(_)) => Err(Failure::new(FailureClass::Unavailable, "stopping")),
            None => Err(Failure::new(
                FailureClass::Timeout,
                "no call slot within the invoke's timeout",
            )),
        }
    }

    pub(super) async fn call_with_retries(
        &self,
        op: &Compiled,
        invoke: &Invoke,
        deadline: Option<Instant>,
        retry_cap: u32,
    ) -> Called {
        let retry = &op.decl.retry;
        let max_retries = retry.max_retries.min(retry_cap);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let per_attempt = Instant::now() + op.decl.timeout;
            let until = deadline.map_or(per_attempt, |d| d.min(per_attempt));
            let outcome = self.call_once(op, invoke, attempt, until).await;
            let failure = match outcome {
                Ok(r) if r.ok => {
                    return Called {
                        outcome: Ok(r),
                        attempts: attempt,
                    };
                }
                Ok(r) => r.error.map(Failure::from).unwrap_or_else(|| {
                    Failure::new(FailureClass::Transient, "callResult without ok or error")
                }),
                Err(f) => f,
            };
            if failure.class == FailureClass::QuotaExceeded
                && let Some(ms) = failure.retry_after_ms
            {
                *self.hold_until.lock().expect("ops lock") =
                    Some(Instant::now() + Duration::from_millis(ms));
            }
            let delay = backoff(&retry.backoff, attempt);
            let in_time = deadline.is_none_or(|d| Instant::now() + delay < d);
            if attempt > max_retries || !retry.on.contains(&failure.class) || !in_time {
                return Called {
                    outcome: Err(failure),
                    attempts: attempt,
                };
            }
            self.counters(&op.decl.name, |s| s.retried());
            tokio::time::sleep(delay).await;
        }
    }

    /// One `call` to the connector, answered or timed out at `until`.
    pub(super) async fn call_once(
        &self,
        op: &Compiled,
        invoke: &Invoke,
        attempt: u32,
        until: Instant,
    ) -> Result<CallResult, Failure> {
        // A connector being restarted (after a crash, say) serves the call
        // once it is ready, if that is before the deadline.
        loop {
            let waiting = self.attached.notified();
            tokio::pin!(waiting);
            // Registered before the check, so an attach in between is not missed.
            waiting.as_mut().enable();
            if self.link.lock().expect("ops lock").is_some() {
                break;
            }
            if tokio::time::timeout_at(until.into(), waiting)
                .await
                .is_err()
            {
                break;
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        let (tx, rx) = oneshot::channel();
        let sent = {
            let mut link = self.link.lock().expect("ops lock");
            match link.as_mut() {
                None => None,
                Some(l) => {
                    l.pending.insert(id.clone(), tx);
                    Some(l.outbox.send(ToConnector::Call(Call {
                        id: id.clone(),
                        operation: op.decl.name.clone(),
                        input: invoke.input.clone(),
                        attempt,
                        deadline_ms: until.saturating_duration_since(Instant::now()).as_millis()
                            as u64,
                        idempotency_key: invoke.idempotency_key.clone(),
                    })))
                }
            }
        };
        match sent {
            None => {
                return Err(Failure::new(
                    FailureClass::Unavailable,
                    format!("the connector of Connection/{} is not running", self.name),
                ));
            }
            Some(false) => {
                self.forget(&id);
                return Err(Failure::new(
                    FailureClass::Transient,
                    "the connector's channel is closed",
                ));
            }
            Some(true) => {}
        }
        match tokio::time::timeout_at(until.into(), rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(Failure::new(
                FailureClass::Transient,
                format!(
                    "the connector of Connection/{} exited during the call",
                    self.name
                ),
            )),
            Err(_) => {
                self.forget(&id);
                if let Some(l) = self.link.lock().expect("ops lock").as_ref() {
                    l.outbox.send(ToConnector::Cancel(CancelCall { id }));
                }
                Err(Failure::new(
                    FailureClass::Timeout,
                    format!(
                        "no answer within {} (attempt {attempt})",
                        humantime::format_duration(op.decl.timeout)
                    ),
                ))
            }
        }
    }

    fn forget(&self, id: &str) {
        if let Some(l) = self.link.lock().expect("ops lock").as_mut() {
            l.pending.remove(id);
        }
    }
}

/// The delay before retry number `attempt` (1 after the first call).
fn backoff(b: &crate::bundle::Backoff, attempt: u32) -> Duration {
    let factor = b.multiplier.powi(attempt.saturating_sub(1).min(30) as i32);
    b.initial.mul_f64(factor).min(b.max)
}
