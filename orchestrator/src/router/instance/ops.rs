//! An instance's operations: its invokes, and `jobGet` / `jobCancel`, each
//! governed on a task of its own so the instance's deliveries go on.

use std::sync::atomic::Ordering;

use ipc_proto::{Invoke, ToAgent};

use super::{InstanceRole, MAX_INVOKES_IN_FLIGHT};
use crate::operations::Caller;
use crate::supervisor::Outbox;

impl InstanceRole {
    /// An `invoke` from the agent: refused `overloaded` past
    /// [`MAX_INVOKES_IN_FLIGHT`], else governed and answered with `result`.
    pub(super) fn invoke(&self, invoke: Invoke, outbox: &Outbox<ToAgent>) {
        // An agent cannot pile up unbounded work: past this many
        // invokes of its own in flight, the next is overloaded.
        if self.invokes.load(Ordering::Relaxed) >= MAX_INVOKES_IN_FLIGHT {
            let error = ipc_proto::InvokeError {
                class: ipc_proto::FailureClass::Overloaded,
                message: format!("{MAX_INVOKES_IN_FLIGHT} invokes of this instance are in flight"),
                retry_after_ms: None,
                provider_status: None,
                attempts: 0,
            };
            outbox.send(ToAgent::Result(ipc_proto::InvokeResult {
                id: invoke.id,
                ok: false,
                response: None,
                error: Some(error),
                job: None,
            }));
            return;
        }
        // Governed on its own task: a slow operation holds up neither
        // this instance's deliveries nor its other invokes.
        let caller = Caller {
            agent: self.agent.name.clone(),
            instance_key: self.key.clone(),
            swarm: self.swarm.clone(),
            correlation_id: self.deliveries.only_in_flight().map(str::to_owned),
            operator: false,
        };
        let (operations, outbox) = (self.operations.clone(), outbox.clone());
        let invokes = self.invokes.clone();
        invokes.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let result = operations.invoke(&caller, invoke).await;
            outbox.send(ToAgent::Result(result));
            invokes.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// `jobGet` / `jobCancel`: answered with a `result` on its own task
    /// (the journal read is blocking work).
    pub(super) fn job_request(
        &self,
        id: String,
        job_id: String,
        cancel: bool,
        outbox: &Outbox<ToAgent>,
    ) {
        let caller = Caller {
            agent: self.agent.name.clone(),
            instance_key: self.key.clone(),
            swarm: self.swarm.clone(),
            correlation_id: None,
            operator: false,
        };
        let (operations, outbox) = (self.operations.clone(), outbox.clone());
        tokio::spawn(async move {
            let found = if cancel {
                operations.cancel_job(&caller, &job_id).await
            } else {
                operations.job(&caller, &job_id).await
            };
            let (job, error) = match found {
                Ok(record) => (Some(Box::new(record.job())), None),
                Err(e) => (None, Some(e)),
            };
            outbox.send(ToAgent::Result(ipc_proto::InvokeResult {
                id,
                ok: error.is_none(),
                response: None,
                error,
                job,
            }));
        });
    }
}
