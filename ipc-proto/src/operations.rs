//! The messages of operations: an agent invokes an operation of a
//! Connection, the orchestrator calls the connector, the connector answers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Any JSON value. In jsonl it is inline; in frames (bincode, which is not
/// self-describing) it travels as its JSON text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Json(pub serde_json::Value);

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
            s.serialize_str(&text)
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            serde_json::Value::deserialize(d).map(Json)
        } else {
            let text = String::deserialize(d)?;
            serde_json::from_str(&text)
                .map(Json)
                .map_err(serde::de::Error::custom)
        }
    }
}

impl From<serde_json::Value> for Json {
    fn from(v: serde_json::Value) -> Self {
        Json(v)
    }
}

/// How an invoke or a call failed. Exactly one class per failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// May work on a retry (a 5xx, a reset connection).
    Transient,
    /// Will not change (a 4xx).
    Permanent,
    /// The Agent's `invoke` or the Connection's `allow` does not allow it.
    PolicyDenied,
    /// A local limit, or the provider's 429.
    QuotaExceeded,
    /// Input or output against its schema, or over its size.
    ValidationError,
    /// No answer within the deadline.
    Timeout,
    /// Circuit open, connection not running, no such operation.
    Unavailable,
    /// Too many calls in flight and queued.
    Overloaded,
    /// Canceled.
    Canceled,
}

impl FailureClass {
    /// Every class, in the order above.
    pub const ALL: [FailureClass; 9] = [
        FailureClass::Transient,
        FailureClass::Permanent,
        FailureClass::PolicyDenied,
        FailureClass::QuotaExceeded,
        FailureClass::ValidationError,
        FailureClass::Timeout,
        FailureClass::Unavailable,
        FailureClass::Overloaded,
        FailureClass::Canceled,
    ];

    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
            FailureClass::PolicyDenied => "policy_denied",
            FailureClass::QuotaExceeded => "quota_exceeded",
            FailureClass::ValidationError => "validation_error",
            FailureClass::Timeout => "timeout",
            FailureClass::Unavailable => "unavailable",
            FailureClass::Overloaded => "overloaded",
            FailureClass::Canceled => "canceled",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent asks to run `operation` of `connection`; answered by one [`InvokeResult`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoke {
    /// Chosen by the agent, unique per process; echoed in the result.
    pub id: String,
    /// The Connection's name.
    pub connection: String,
    /// The operation's name, one its Connector declares.
    pub operation: String,
    /// The operation's input.
    #[serde(default)]
    pub input: Json,
    /// A repeat within the Connection's idempotencyTtl gets the first result.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The most the agent will wait; capped by the operation's timeout.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The event being handled; defaults to the one delivery in flight.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// What every successful invoke returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeResponse {
    /// What the operation returned (redacted, and cut when too large).
    pub data: Json,
    /// Where it came from and what it cost.
    pub metadata: ResponseMetadata,
    /// Warnings of the connector.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// JSON pointers replaced by `"<redacted>"`.
    #[serde(default)]
    pub redactions_applied: Vec<String>,
    /// `data` was cut to the operation's maxOutputBytes.
    #[serde(default)]
    pub truncated: bool,
}

/// The `metadata` of a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMetadata {
    /// The orchestrator's id of this invoke (in the audit log too).
    pub request_id: String,
    /// The event it was made for, if any.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The Connection.
    pub connection: String,
    /// The operation.
    pub operation: String,
    /// From the invoke to the result, in milliseconds.
    pub duration_ms: u64,
    /// Calls made to the connector (1 without retries).
    pub attempts: u32,
    /// The provider's status code, when the connector gave one.
    #[serde(default)]
    pub provider_status: Option<u16>,
}

/// Why an invoke failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeError {
    /// Its class.
    pub class: FailureClass,
    /// What happened.
    pub message: String,
    /// When to try again, if known (a provider's 429).
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// The provider's status code, if any.
    #[serde(default)]
    pub provider_status: Option<u16>,
    /// Calls made to the connector (0 when refused before any).
    #[serde(default)]
    pub attempts: u32,
}

/// The answer to an [`Invoke`]: `ok` with a response, or not with an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeResult {
    /// The invoke's id.
    pub id: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// With `ok`.
    #[serde(default)]
    pub response: Option<InvokeResponse>,
    /// Without `ok`.
    #[serde(default)]
    pub error: Option<InvokeError>,
    /// The job an `async` operation started, or the one `jobGet`/`jobCancel` named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<Job>>,
}

/// Where a job stands: `pending → running → succeeded | failed | canceled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted, not yet called.
    Pending,
    /// The connector is working on it (retries included).
    Running,
    /// Done: `response` holds the result.
    Succeeded,
    /// Done: `error` says why.
    Failed,
    /// Canceled before it settled.
    Canceled,
}

impl JobState {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    /// Whether the job has settled (it will not change again).
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Canceled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An async operation's job, as `result` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job's id (the invoke's request id).
    pub job_id: String,
    /// Where it stands.
    pub state: JobState,
    /// Its Connection.
    #[serde(default)]
    pub connection: Option<String>,
    /// Its operation.
    #[serde(default)]
    pub operation: Option<String>,
    /// When it succeeded: the normalized response.
    #[serde(default)]
    pub response: Option<InvokeResponse>,
    /// When it failed or was canceled: why.
    #[serde(default)]
    pub error: Option<InvokeError>,
}

/// An agent asks where a job stands; answered by a `result` with `job`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobGet {
    /// Chosen by the agent; echoed in the result.
    pub id: String,
    /// The job.
    pub job_id: String,
}

/// An agent cancels a job it started; answered by a `result` with `job`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCancel {
    /// Chosen by the agent; echoed in the result.
    pub id: String,
    /// The job.
    pub job_id: String,
}

/// The orchestrator asks the connector to perform an operation; answered by
/// exactly one [`CallResult`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// Chosen by the orchestrator; echoed in the result.
    pub id: String,
    /// The operation's name.
    pub operation: String,
    /// Its input, already checked against the operation's schema.
    pub input: Json,
    /// 1 for the first call of an invoke, higher for its retries.
    pub attempt: u32,
    /// Milliseconds from now after which an answer is too late.
    pub deadline_ms: u64,
    /// The invoke's idempotency key, for a provider that takes one.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Advice that a call is no longer wanted; the connector may still answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelCall {
    /// The call's id.
    pub id: String,
}

/// Why a call failed, as the connector classifies it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallError {
    /// Its class (`transient`, `permanent`, `quota_exceeded`, `validation_error`, …).
    pub class: FailureClass,
    /// What happened.
    pub message: String,
    /// The provider asked to wait this long (a 429).
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// The provider's status code, if any.
    #[serde(default)]
    pub provider_status: Option<u16>,
}

/// The connector's answer to a [`Call`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallResult {
    /// The call's id.
    pub id: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// With `ok`: what the operation returned.
    #[serde(default)]
    pub data: Option<Json>,
    /// The provider's status code, if any.
    #[serde(default)]
    pub provider_status: Option<u16>,
    /// Warnings to pass on.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Without `ok`.
    #[serde(default)]
    pub error: Option<CallError>,
}
