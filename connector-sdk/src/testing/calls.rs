//! Calling a connector's operations from a test, as the orchestrator would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipc_proto::{Call, CallResult, CancelCall, Json, ToConnector};
use serde_json::Value;

use super::HarnessError;
use super::harness::TestRun;
use super::peer::Cmd;

/// The `deadlineMs` of a call sent by [`TestRun::call`].
const TEST_CALL_DEADLINE_MS: u64 = 30_000;

impl TestRun {
    /// Sends a `call` of `operation` with `input` (attempt 1, no
    /// idempotency key) and waits at most `limit` for its `callResult`.
    pub async fn call(
        &self,
        operation: &str,
        input: Value,
        limit: Duration,
    ) -> Result<CallResult, HarnessError> {
        let id = self.send_call(operation, input);
        self.call_result(&id, limit).await
    }

    /// Sends a `call` without waiting; returns its id, for
    /// [`call_result`](Self::call_result) and [`cancel`](Self::cancel).
    pub fn send_call(&self, operation: &str, input: Value) -> String {
        static N: AtomicU64 = AtomicU64::new(1);
        let id = format!("test-call-{}", N.fetch_add(1, Ordering::Relaxed));
        self.send_raw_call(Call {
            id: id.clone(),
            operation: operation.into(),
            input: Json(input),
            attempt: 1,
            deadline_ms: TEST_CALL_DEADLINE_MS,
            idempotency_key: None,
        });
        id
    }

    /// Sends `call` as it is (any attempt, deadline or key).
    pub fn send_raw_call(&self, call: Call) {
        let _ = self.cmds.send(Cmd::Send(ToConnector::Call(call)));
    }

    /// Sends `cancel` for call `id`.
    pub fn cancel(&self, id: &str) {
        let _ = self
            .cmds
            .send(Cmd::Send(ToConnector::Cancel(CancelCall { id: id.into() })));
    }

    /// Waits at most `limit` for the `callResult` of call `id`.
    pub async fn call_result(&self, id: &str, limit: Duration) -> Result<CallResult, HarnessError> {
        self.wait(&format!("the callResult of {id}"), limit, |r| {
            r.call_results.get(id).cloned()
        })
        .await
    }
}
