//! A job as the journal keeps it, as the CLI shows it, and the event its
//! outcome becomes.

use std::time::SystemTime;

use ipc_proto::{DeliveredEvent, Invoke, InvokeError, InvokeResponse, Job, JobState, Json};
use serde::{Deserialize, Serialize};

use super::Caller;

/// A job as the journal keeps it (JSON). It holds the input, to call again
/// after a restart; the journal is private to the orchestrator (0600).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// The job id (also the invoke's request id).
    pub job_id: String,
    /// Where it stands.
    pub state: JobState,
    /// Its Connection.
    pub connection: String,
    /// That Connection's Connector.
    pub connector: String,
    /// Its operation.
    pub operation: String,
    /// Who started it: an Agent, or `operator`.
    pub agent: String,
    /// The instance that started it (empty for the operator).
    pub instance_key: String,
    /// That instance's Swarm.
    pub swarm: String,
    /// Started by `orchestrator invoke`: no event is sent.
    pub operator: bool,
    /// The operation's input.
    pub input: serde_json::Value,
    /// The invoke's idempotency key.
    pub idempotency_key: Option<String>,
    /// The event being handled when it was started.
    pub correlation_id: Option<String>,
    /// The caller's timeout for each run.
    pub timeout_ms: Option<u64>,
    /// RFC 3339, when it was accepted.
    pub created_at: String,
    /// RFC 3339, when it last changed.
    pub updated_at: String,
    /// When it succeeded.
    pub response: Option<InvokeResponse>,
    /// When it failed or was canceled.
    pub error: Option<InvokeError>,
    /// Its `job.*` event was handed to the journal.
    #[serde(default)]
    pub notified: bool,
    /// Cluster mode: the node running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What `orchestrator jobs` shows of a job: the record without its input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    /// The job id.
    pub job_id: String,
    /// Where it stands.
    pub state: JobState,
    /// Its Connection.
    pub connection: String,
    /// Its operation.
    pub operation: String,
    /// Who started it: an Agent, or `operator`.
    pub agent: String,
    /// The instance that started it (empty for the operator).
    pub instance_key: String,
    /// RFC 3339, when it was accepted.
    pub created_at: String,
    /// RFC 3339, when it last changed.
    pub updated_at: String,
    /// When it succeeded.
    pub response: Option<InvokeResponse>,
    /// When it failed or was canceled.
    pub error: Option<InvokeError>,
}

impl From<&JobRecord> for JobSummary {
    fn from(r: &JobRecord) -> Self {
        Self {
            job_id: r.job_id.clone(),
            state: r.state,
            connection: r.connection.clone(),
            operation: r.operation.clone(),
            agent: r.agent.clone(),
            instance_key: r.instance_key.clone(),
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
            response: r.response.clone(),
            error: r.error.clone(),
        }
    }
}

impl JobRecord {
    /// What `result.job` shows of it.
    pub fn job(&self) -> Job {
        Job {
            job_id: self.job_id.clone(),
            state: self.state,
            connection: Some(self.connection.clone()),
            operation: Some(self.operation.clone()),
            response: self.response.clone(),
            error: self.error.clone(),
        }
    }

    pub(super) fn invoke(&self) -> Invoke {
        Invoke {
            id: self.job_id.clone(),
            connection: self.connection.clone(),
            operation: self.operation.clone(),
            input: Json(self.input.clone()),
            idempotency_key: self.idempotency_key.clone(),
            timeout_ms: self.timeout_ms,
            correlation_id: self.correlation_id.clone(),
        }
    }

    pub(super) fn caller(&self) -> Caller {
        Caller {
            agent: self.agent.clone(),
            instance_key: self.instance_key.clone(),
            swarm: self.swarm.clone(),
            correlation_id: self.correlation_id.clone(),
            operator: self.operator,
        }
    }
}

/// The `job.*` event of a settled job.
pub(super) fn job_event(record: &JobRecord) -> DeliveredEvent {
    let name = match record.state {
        JobState::Succeeded => "job.succeeded",
        JobState::Canceled => "job.canceled",
        _ => "job.failed",
    };
    let payload = match (&record.response, &record.error) {
        (Some(r), _) => serde_json::to_value(r).ok(),
        (_, Some(e)) => serde_json::to_value(e).ok(),
        _ => None,
    };
    DeliveredEvent {
        id: uuid::Uuid::now_v7().to_string(),
        connection: record.connection.clone(),
        connector: record.connector.clone(),
        name: name.into(),
        message: None,
        properties: [
            ("jobId".to_string(), record.job_id.clone()),
            ("operation".to_string(), record.operation.clone()),
        ]
        .into(),
        instance_key: record.instance_key.clone(),
        received_at: crate::logs::timestamp_secs(SystemTime::now()),
        payload: payload.map(Json),
    }
}
