//! Jobs a run left behind, taken up: after a restart of a single node
//! (`resume_jobs`), and in cluster mode, jobs of a node that is gone, by
//! the node that runs their Connection now (`sweep_jobs`, every few
//! seconds).

use std::sync::Arc;

use ipc_proto::{FailureClass, JobState};

use super::Operations;
use super::jobs::{JobRecord, refusal};

impl Operations {
    /// Takes up a job a run left (this node's last, or a node that is
    /// gone): a settled one whose event was not sent sends it; an unsettled
    /// one of an idempotent operation runs again here; any other fails
    /// with `why`.
    pub(super) async fn take_up(self: &Arc<Self>, mut record: JobRecord, why: &str) {
        if record.state.is_settled() {
            if !record.notified {
                self.notify(record).await;
            }
            return;
        }
        let idempotent = self
            .connection(&record.connection)
            .and_then(|c| {
                c.operations
                    .get(&record.operation)
                    .map(|o| o.decl.idempotent)
            })
            .unwrap_or(false);
        if idempotent {
            tracing::info!(job = %record.job_id, "running a job again ({why})");
            self.spawn_job(record);
            return;
        }
        record.state = JobState::Failed;
        record.error = Some(refusal(FailureClass::Transient, why.to_string()));
        self.settle(record).await;
    }
}

/// How often a cluster node looks for jobs it must take up.
pub(super) const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Operations {
    /// Cluster mode: takes up the unsettled jobs of Connections this node
    /// runs whose node is gone (or is this node, from a run before
    /// `started`): as [`resume_jobs`](Self::resume_jobs) does after a
    /// restart, an idempotent one runs again here, any other fails, and a
    /// settled one whose event was not sent sends it.
    pub(super) async fn sweep_jobs(self: &Arc<Self>, started: &str) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let records = match cluster.jobs().await {
            Ok(records) => records,
            Err(e) => {
                tracing::debug!("cluster: cannot look for jobs to take up: {e}");
                return;
            }
        };
        for bytes in records {
            let Ok(mut record) = serde_json::from_slice::<JobRecord>(&bytes) else {
                continue;
            };
            let Some(node) = record.node.clone() else {
                continue;
            };
            if (record.state.is_settled() && record.notified) || !cluster.serves(&record.connection)
            {
                continue;
            }
            let left = if node == cluster.node() {
                record.created_at.as_str() < started
                    && !self
                        .open_jobs
                        .lock()
                        .expect("ops lock")
                        .contains_key(&record.job_id)
            } else {
                !cluster.is_live(&node).await
            };
            if !left || !cluster.claim_job(&record.job_id).await {
                continue;
            }
            if node == cluster.node() {
                self.take_up(record, "interrupted by a restart").await;
            } else {
                record.node = Some(cluster.node().to_string());
                self.take_up(record, &format!("its node {node} is gone"))
                    .await;
            }
        }
    }
}
