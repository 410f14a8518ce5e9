//! Synchronous replies (`REPLY_TIMEOUT`): the HTTP request waits, after the
//! orchestrator acked its event, for an agent to answer it through the
//! `respond` operation, and that answer becomes the HTTP response.
//!
//! Each waiting request has an unguessable reference (a UUIDv7) that the
//! event carries as its `replyTo` property; the agent names the reference,
//! never a URL or a connection. A request waits at most `REPLY_TIMEOUT`,
//! then gets the usual `200 {"accepted":true,…}`; at most
//! [`MAX_WAITING`] wait at once (past that a request is answered at once),
//! so waiting requests cannot pile up.

use std::collections::HashMap;
use std::sync::Mutex;

use connector_sdk::{OperationCall, OperationError, OperationOk};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Requests waiting for a reply, at most.
pub const MAX_WAITING: usize = 1024;

/// The property that carries a request's reference.
pub const REPLY_TO: &str = "replyTo";

/// What an agent answered: the HTTP status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// The requests waiting for a reply, by reference.
#[derive(Debug, Default)]
pub struct Replies {
    waiting: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
}

/// A request's place in [`Replies`]; dropping it (answered, or timed out) frees it.
#[derive(Debug)]
pub struct Waiting<'a> {
    replies: &'a Replies,
    pub reference: String,
    pub answer: oneshot::Receiver<Reply>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.replies.lock().remove(&self.reference);
    }
}

impl Replies {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Reply>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new reference to wait on; `None` when [`MAX_WAITING`] requests wait already.
    pub fn open(&self) -> Option<Waiting<'_>> {
        let mut waiting = self.lock();
        if waiting.len() >= MAX_WAITING {
            return None;
        }
        let reference = uuid::Uuid::now_v7().to_string();
        let (tx, rx) = oneshot::channel();
        waiting.insert(reference.clone(), tx);
        Some(Waiting {
            replies: self,
            reference,
            answer: rx,
        })
    }

    /// The `respond` operation: `{replyTo, body, status?}` answers the
    /// request waiting under `replyTo`.
    pub fn respond(&self, call: &OperationCall) -> Result<OperationOk, OperationError> {
        let reference = call.input[REPLY_TO]
            .as_str()
            .ok_or_else(|| OperationError::validation("input.replyTo must be a string"))?;
        let status = match &call.input["status"] {
            Value::Null => 200,
            v => v
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| OperationError::validation("input.status must be 200..599"))?,
        };
        let body = call.input.get("body").cloned().unwrap_or(Value::Null);
        let waiter = self.lock().remove(reference);
        let Some(tx) = waiter else {
            return Err(OperationError::permanent(format!(
                "no request waits for replyTo {reference}: it was answered, or waited its REPLY_TIMEOUT"
            )));
        };
        tx.send(Reply { status, body }).map_err(|_| {
            OperationError::permanent(format!("the request of replyTo {reference} is gone"))
        })?;
        Ok(OperationOk::new(json!({ "delivered": true })))
    }
}
