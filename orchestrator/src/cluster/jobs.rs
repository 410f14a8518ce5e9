//! Jobs across nodes. A job runs on the node that took its invoke (where
//! its Connection runs), and its record names that node. `jobs cancel`
//! asked of another node is sent there as a NATS request (`N.jobs.<node>`);
//! a job whose node is gone is taken up by the node that runs its
//! Connection now (see `Operations::sweep_jobs`), once: the first to claim
//! it with a lease in `N-leases` (`job.<id>`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipc_proto::{FailureClass, InvokeError};

use super::Cluster;
use super::lease::Lease;
use crate::operations::{Caller, JobRecord, Operations};

/// How long a cancel sent to another node waits for its answer.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// A `jobs cancel` sent to the node running the job.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cancel {
    agent: String,
    instance_key: String,
    swarm: String,
    operator: bool,
    id: String,
}

/// Its answer: the job as it stands then, or why not.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
enum Answer {
    Job(Box<JobRecord>),
    Refused(InvokeError),
}

fn refused(class: FailureClass, message: String) -> InvokeError {
    InvokeError {
        class,
        message,
        retry_after_ms: None,
        provider_status: None,
        attempts: 0,
    }
}

impl Cluster {
    fn jobs_subject(&self, node: &str) -> String {
        format!("{}.jobs.{node}", self.inner.opts.name)
    }

    /// Whether `node` has a fresh heartbeat (when NATS cannot tell: yes).
    pub async fn is_live(&self, node: &str) -> bool {
        !matches!(self.inner.nodes.get(node).await, Ok(None))
    }

    /// Cancels job `id` on `node`, which runs it; `Ok(None)` when no node
    /// of that name answers (it is gone).
    pub async fn forward_cancel(
        &self,
        node: &str,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<JobRecord>, InvokeError> {
        let cancel = Cancel {
            agent: caller.agent.clone(),
            instance_key: caller.instance_key.clone(),
            swarm: caller.swarm.clone(),
            operator: caller.operator,
            id: id.to_string(),
        };
        let body = serde_json::to_vec(&cancel).unwrap_or_default();
        let request = self
            .inner
            .client
            .request(self.jobs_subject(node), body.into());
        let transient = |m: String| refused(FailureClass::Transient, m);
        let msg = match tokio::time::timeout(CANCEL_WAIT, request).await {
            Err(_) => return Err(transient(format!("node {node} did not answer the cancel"))),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Ok(None);
            }
            Ok(Err(e)) => return Err(transient(format!("cannot reach node {node}: {e}"))),
            Ok(Ok(msg)) => msg,
        };
        match serde_json::from_slice::<Answer>(&msg.payload) {
            Ok(Answer::Job(record)) => Ok(Some(*record)),
            Ok(Answer::Refused(e)) => Err(e),
            Err(e) => Err(transient(format!(
                "unreadable answer from node {node}: {e}"
            ))),
        }
    }

    /// Answers the cancels other nodes send for the jobs this node runs.
    pub fn serve_jobs(&self, operations: Arc<Operations>) {
        let (client, subject) = (self.inner.client.clone(), self.jobs_subject(self.node()));
        tokio::spawn(async move {
            let mut sub = match client.subscribe(subject).await {
                Ok(sub) => sub,
                Err(e) => {
                    tracing::error!("cluster: cannot take cancels of this node's jobs: {e}");
                    return;
                }
            };
            while let Some(msg) = sub.next().await {
                let Some(reply) = msg.reply.clone() else {
                    continue;
                };
                let (client, operations) = (client.clone(), operations.clone());
                tokio::spawn(async move {
                    let answer = match serde_json::from_slice::<Cancel>(&msg.payload) {
                        Ok(c) => {
                            let caller = Caller {
                                agent: c.agent,
                                instance_key: c.instance_key,
                                swarm: c.swarm,
                                correlation_id: None,
                                operator: c.operator,
                            };
                            match operations.cancel_job(&caller, &c.id).await {
                                Ok(record) => Answer::Job(Box::new(record)),
                                Err(e) => Answer::Refused(e),
                            }
                        }
                        Err(e) => Answer::Refused(refused(
                            FailureClass::Permanent,
                            format!("not a cancel: {e}"),
                        )),
                    };
                    let body = serde_json::to_vec(&answer).unwrap_or_default();
                    if let Err(e) = client.publish(reply, body.into()).await {
                        tracing::warn!("cluster: cannot answer a cancel: {e}");
                    }
                });
            }
        });
    }

    /// Claims job `id`, whose node is gone, for this node: `true` for the
    /// first node to ask within a lease TTL (by then its record says who
    /// took it up).
    pub async fn claim_job(&self, id: &str) -> bool {
        let key = format!("job.{id}");
        Lease::acquire(&self.inner.leases, &key, self.node(), self.lease_ttl())
            .await
            .is_some()
    }
}
