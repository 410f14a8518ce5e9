//! Async operations: durable jobs.
//!
//! An invoke of a `mode: async` operation that passes policy and input
//! checks becomes a job: its record is written to the journal (`pending`)
//! before the invoke is answered with the job id, then a task runs the same
//! governed path a sync invoke takes (`running`), and writes the outcome
//! (`succeeded | failed | canceled`). The outcome then reaches the instance
//! that started it as an ordinary event — `job.succeeded`, `job.failed` or
//! `job.canceled`, properties `jobId` and `operation`, the response or the
//! error as `payload` — journaled and delivered at least once like any
//! other; a failed job is also a dead letter. The record says whether that
//! event was handed to the journal (`notified`), so a restart between the
//! two sends it then (its dedupe key keeps it single).
//!
//! On start, [`Operations::resume_jobs`] takes what an earlier run left: an
//! unsettled job of an idempotent operation runs again (with its key); any
//! other fails "interrupted by a restart".

use std::sync::Arc;
use std::time::SystemTime;

use ipc_proto::{DeliveredEvent, FailureClass, Invoke, InvokeError, InvokeResult, JobState};
use tokio_util::sync::CancellationToken;

use super::govern::Failure;
use super::{Caller, ConnectionOps, Operations};
use crate::bundle::Overflow;
use crate::journal::{Accepted, NewEvent, RouteRecord};
use crate::router::Pending;

use super::job_record::job_event;
pub use super::job_record::{JobRecord, JobSummary};

/// Jobs not yet settled, at most; past it a new job is `overloaded`.
pub const MAX_OPEN_JOBS: usize = 10_000;

fn now() -> String {
    crate::logs::timestamp(SystemTime::now())
}

impl Operations {
    /// Accepts an admitted async invoke as a job: durable first, then answered.
    pub(super) async fn start_job(
        self: &Arc<Self>,
        caller: &Caller,
        conn: &ConnectionOps,
        invoke: Invoke,
    ) -> InvokeResult {
        if self.open_jobs.lock().expect("ops lock").len() >= MAX_OPEN_JOBS {
            let m = format!("{MAX_OPEN_JOBS} jobs are open; try again when some settle");
            return Failure::new(FailureClass::Overloaded, m).into_result(&invoke.id, 0);
        }
        let at = now();
        let record = JobRecord {
            job_id: uuid::Uuid::now_v7().to_string(),
            state: JobState::Pending,
            connection: conn.name.clone(),
            connector: conn.connector.clone(),
            operation: invoke.operation.clone(),
            agent: caller.agent.clone(),
            instance_key: caller.instance_key.clone(),
            swarm: caller.swarm.clone(),
            operator: caller.operator,
            input: invoke.input.0.clone(),
            idempotency_key: invoke.idempotency_key.clone(),
            correlation_id: invoke
                .correlation_id
                .clone()
                .or_else(|| caller.correlation_id.clone()),
            timeout_ms: invoke.timeout_ms,
            created_at: at.clone(),
            updated_at: at,
            response: None,
            error: None,
            notified: false,
            node: self.cluster.get().map(|c| c.node().to_string()),
        };
        if let Err(e) = self.write_job(&record).await {
            let m = format!("the journal could not keep the job: {e}");
            return Failure::new(FailureClass::Transient, m).into_result(&invoke.id, 0);
        }
        let job = record.job();
        self.spawn_job(record);
        InvokeResult {
            id: invoke.id,
            ok: true,
            response: None,
            error: None,
            job: Some(Box::new(job)),
        }
    }

    /// Runs a job on its own task until it settles or is canceled.
    pub(super) fn spawn_job(self: &Arc<Self>, mut record: JobRecord) {
        let cancel = CancellationToken::new();
        self.open_jobs
            .lock()
            .expect("ops lock")
            .insert(record.job_id.clone(), cancel.clone());
        let ops = self.clone();
        tokio::spawn(async move {
            record.state = JobState::Running;
            record.updated_at = now();
            if let Err(e) = ops.write_job(&record).await {
                tracing::warn!(job = %record.job_id, "job record not updated: {e}");
            }
            let (caller, invoke) = (record.caller(), record.invoke());
            let result = tokio::select! {
                r = ops.run(&caller, invoke, "async", Some(record.job_id.clone())) => Some(r),
                _ = cancel.cancelled() => None,
            };
            match result {
                Some(r) if r.ok => {
                    record.state = JobState::Succeeded;
                    record.response = r.response;
                }
                Some(r) => {
                    record.state = JobState::Failed;
                    record.error = r.error;
                }
                // Canceled: `cancel_job` settles it.
                None => return,
            }
            // Whoever takes the job out of the open ones settles it: this
            // task, or a `cancel_job` that came first.
            let mine = ops
                .open_jobs
                .lock()
                .expect("ops lock")
                .remove(&record.job_id)
                .is_some();
            if mine {
                ops.settle(record).await;
            }
        });
    }

    /// Writes a settled job, then hands its event to the journal.
    pub(super) async fn settle(&self, mut record: JobRecord) {
        record.updated_at = now();
        if let Err(e) = self.write_job(&record).await {
            tracing::warn!(job = %record.job_id, "job record not updated: {e}");
        }
        self.notify(record).await;
    }

    /// Sends a settled job's `job.*` event to the instance that started it
    /// (and a failed one to the dead-letter queue), then marks it notified.
    pub(super) async fn notify(&self, mut record: JobRecord) {
        if !record.operator {
            let event = job_event(&record);
            let route = RouteRecord {
                agent: record.agent.clone(),
                swarm: record.swarm.clone(),
            };
            let dedupe_key = Some(format!("job:{}", record.job_id));
            let kept = match self.cluster.get() {
                // Cluster mode: to the instance's partition, wherever it runs.
                Some(cluster) => {
                    cluster
                        .accept(route.clone(), event.clone(), dedupe_key)
                        .await
                }
                None => {
                    let Some(router) = self.router.lock().expect("ops lock").clone() else {
                        return;
                    };
                    let slot = router
                        .reserve(
                            &record.swarm,
                            &record.agent,
                            &record.instance_key,
                            Overflow::Wait,
                        )
                        .await;
                    let accepted = self
                        .journal
                        .accept(NewEvent {
                            event: event.clone(),
                            route: Some(route.clone()),
                            dedupe_key,
                        })
                        .await;
                    match (&accepted, slot) {
                        (Ok(Accepted::New), Ok(slot)) => slot.send(Pending {
                            event: Box::new(event.clone()),
                            attempt: 1,
                            held: false,
                            receipt: None,
                        }),
                        // Journaled: the next start delivers it.
                        (Ok(Accepted::New), Err(e)) => {
                            tracing::warn!(job = %record.job_id, "job event kept for later: {e}");
                        }
                        _ => {}
                    }
                    accepted
                }
            };
            if let Err(e) = kept {
                tracing::warn!(job = %record.job_id, "job event not journaled: {e}");
                return;
            }
            if record.state == JobState::Failed {
                self.dead_letter(&record, event, route).await;
            }
        }
        record.notified = true;
        if let Err(e) = self.write_job(&record).await {
            tracing::warn!(job = %record.job_id, "job record not updated: {e}");
        }
    }

    /// A failed job is a dead letter too: a copy of its `job.failed` event,
    /// with the job's error as the reason (`dlq replay` delivers it again).
    async fn dead_letter(&self, record: &JobRecord, event: DeliveredEvent, route: RouteRecord) {
        let copy = DeliveredEvent {
            id: uuid::Uuid::now_v7().to_string(),
            ..event
        };
        let reason = record.error.as_ref().map_or_else(
            || format!("job {} failed", record.job_id),
            |e| format!("job {} failed: {}: {}", record.job_id, e.class, e.message),
        );
        if let Some(cluster) = self.cluster.get() {
            if let Err(e) = cluster.put_dead_letter(route, copy, 1, &reason).await {
                tracing::warn!(job = %record.job_id, "failed job not dead-lettered: {e}");
            }
            return;
        }
        let id = copy.id.clone();
        let kept = self
            .journal
            .accept(NewEvent {
                event: copy,
                route: Some(route),
                dedupe_key: Some(format!("job-dead:{}", record.job_id)),
            })
            .await;
        if !matches!(kept, Ok(Accepted::New)) {
            return;
        }
        if let Err(e) = self.journal.dead_letter(&id, 1, &reason).await {
            tracing::warn!(job = %record.job_id, "failed job not dead-lettered: {e}");
        }
    }

    async fn write_job(&self, record: &JobRecord) -> Result<(), crate::journal::JournalError> {
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        if let Some(cluster) = self.cluster.get() {
            return cluster.put_job(&record.job_id, bytes).await;
        }
        self.journal
            .put_job(&record.job_id, record.state.is_settled(), bytes)
            .await
    }

    /// The job `id`, as `caller` may see it: an agent sees the jobs its
    /// Agent started; the operator sees every job.
    pub async fn job(&self, caller: &Caller, id: &str) -> Result<JobRecord, InvokeError> {
        let found = match self.cluster.get() {
            Some(cluster) => cluster.job(id).await,
            None => {
                let (journal, key) = (self.journal.clone(), id.to_owned());
                tokio::task::spawn_blocking(move || journal.job(&key))
                    .await
                    .map_err(|e| refusal(FailureClass::Transient, e.to_string()))?
            }
        };
        let record = match found {
            Ok(Some(bytes)) => serde_json::from_slice::<JobRecord>(&bytes)
                .map_err(|e| refusal(FailureClass::Transient, format!("job {id}: {e}")))?,
            Ok(None) => return Err(refusal(FailureClass::Permanent, format!("no job {id}"))),
            Err(crate::journal::JournalError::InvalidId(_)) => {
                return Err(refusal(FailureClass::Permanent, format!("no job {id}")));
            }
            Err(e) => return Err(refusal(FailureClass::Transient, e.to_string())),
        };
        if !caller.operator && record.agent != caller.agent {
            return Err(refusal(
                FailureClass::PolicyDenied,
                format!("no job {id} of Agent/{}", caller.agent),
            ));
        }
        Ok(record)
    }

    /// Cancels the job `id` if it has not settled; answers it as it stands.
    pub async fn cancel_job(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
    ) -> Result<JobRecord, InvokeError> {
        let mut record = self.job(caller, id).await?;
        let token = self.open_jobs.lock().expect("ops lock").remove(id);
        let by = if caller.operator {
            "the operator".to_string()
        } else {
            format!("Agent/{}", caller.agent)
        };
        let mut reason = format!("canceled by {by}");
        match token {
            Some(token) => token.cancel(),
            None => {
                // Cluster mode: a job of another node is canceled there; one
                // whose node is gone, here (once: the first node to claim it).
                let elsewhere = self.cluster.get().zip(record.node.clone());
                let Some((cluster, node)) = elsewhere.filter(|(c, n)| n != c.node()) else {
                    // Settled already (or settling): as it stands.
                    return Ok(record);
                };
                if record.state.is_settled() {
                    return Ok(record);
                }
                if let Some(there) = cluster.forward_cancel(&node, caller, id).await? {
                    return Ok(there);
                }
                if !cluster.claim_job(id).await {
                    return Ok(record);
                }
                reason = format!("{reason} (its node {node} is gone)");
            }
        }
        record.state = JobState::Canceled;
        record.error = Some(refusal(FailureClass::Canceled, reason));
        self.audit.record(serde_json::json!({
            "time": now(),
            "kind": "invoke",
            "requestId": record.job_id,
            "correlationId": record.correlation_id,
            "agent": record.agent,
            "instanceKey": record.instance_key,
            "connection": record.connection,
            "connector": record.connector,
            "operation": record.operation,
            "mode": "async",
            "outcome": "canceled",
            "durationMs": 0,
            "providerStatus": null,
            "retryCount": 0,
        }));
        self.settle(record.clone()).await;
        Ok(record)
    }

    /// Every job kept (in the journal, or the cluster's bucket), oldest first.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, crate::journal::JournalError> {
        let records = match self.cluster.get() {
            Some(cluster) => cluster.jobs().await?,
            None => {
                let journal = self.journal.clone();
                tokio::task::spawn_blocking(move || journal.jobs())
                    .await
                    .map_err(|e| crate::journal::JournalError::Cluster(e.to_string()))??
            }
        };
        Ok(records
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect())
    }

    /// Takes up the jobs an earlier run left: runs again an unsettled job of
    /// an idempotent operation, fails any other ("interrupted by a
    /// restart"), and sends the event of a settled job that was not sent.
    pub async fn resume_jobs(self: &Arc<Self>) -> Result<(), crate::journal::JournalError> {
        if let Some(cluster) = self.cluster.get() {
            // Cluster mode: jobs are taken up where their Connection runs
            // (`sweep_jobs`), and other nodes' cancels answered here.
            cluster.serve_jobs(self.clone());
            let (ops, started) = (self.clone(), now());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(super::job_takeup::SWEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    ops.sweep_jobs(&started).await;
                }
            });
            return Ok(());
        }
        let journal = self.journal.clone();
        let jobs = tokio::task::spawn_blocking(move || journal.jobs())
            .await
            .unwrap_or_else(|_| Ok(Vec::new()))?;
        for bytes in jobs {
            if let Ok(record) = serde_json::from_slice::<JobRecord>(&bytes) {
                self.take_up(record, "interrupted by a restart").await;
            }
        }
        Ok(())
    }
}

pub(super) fn refusal(class: FailureClass, message: String) -> InvokeError {
    Failure::new(class, message).into_error(0)
}
