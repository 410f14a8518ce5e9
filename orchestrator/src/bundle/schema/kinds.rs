//! The five kinds: the document each is written in, and the specs of
//! Connector, Swarm, Agent and Secret (`document.rs`, `connector.rs`,
//! `swarm.rs`, `agent.rs`, `secret.rs`). Connection is in `connection.rs`.

use std::collections::BTreeMap;

use schemars::JsonSchema;

use super::connection::{ConnectionSpec, RateLimit, ValueSource};
use super::program::program_spec;
use super::values::{
    AgentRef, ApiVersion, Duration, EnvName, JsonPointer, JsonSchemaValue, Name, NonEmpty, Scalar,
    Semver, Size,
};

/// One document of a bundle: a Connector, Connection, Swarm, Agent or
/// Secret, told apart by `kind`.
#[derive(Debug, JsonSchema)]
#[schemars(untagged, title = "Goondan orchestrator bundle document")]
pub(crate) enum Document {
    /// `kind: Connector`.
    Connector(ConnectorDocument),
    /// `kind: Connection`.
    Connection(ConnectionDocument),
    /// `kind: Swarm`.
    Swarm(SwarmDocument),
    /// `kind: Agent`.
    Agent(AgentDocument),
    /// `kind: Secret`.
    Secret(SecretDocument),
}

/// Defines the document of one kind.
macro_rules! document {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, JsonSchema)]
        #[schemars(rename_all = "camelCase", deny_unknown_fields)]
        pub(crate) struct $name {
            /// goondan.ai/v1.
            api_version: ApiVersion,
            /// The kind of resource.
            #[schemars(extend("const" = $kind))]
            kind: String,
            /// The resource's name, and labels and annotations for people.
            metadata: Metadata,
            /// What the resource is.
            spec: $spec,
        }
    };
}

document!(
    /// A program that turns a provider's traffic into events, and what it declares.
    ConnectorDocument,
    "Connector",
    ConnectorSpec
);
document!(
    /// One running Connector bound to a Swarm: its config, secrets and routing.
    ConnectionDocument,
    "Connection",
    ConnectionSpec
);
document!(
    /// A set of agents, and the one unrouted events go to.
    SwarmDocument,
    "Swarm",
    SwarmSpec
);
document!(
    /// A program run once per instanceKey, and its delivery limits.
    AgentDocument,
    "Agent",
    AgentSpec
);
document!(
    /// Where secret values live (never the values themselves).
    SecretDocument,
    "Secret",
    SecretSpec
);

/// `metadata`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Metadata {
    /// Unique among the resources of its kind.
    name: Name,
    /// Free-form labels (scalars).
    labels: Option<BTreeMap<String, Scalar>>,
    /// Free-form annotations (scalars).
    annotations: Option<BTreeMap<String, Scalar>>,
}

program_spec!(
    /// `kind: Connector` spec.
    ConnectorSpec {
        /// The events it may emit; every emit is checked against them.
        #[schemars(length(min = 1))]
        events: Vec<EventDecl>,
        /// inherit: the connector reads the orchestrator's own stdin (frames only; one Connection per bundle).
        stdin: Option<Stdin>,
        /// What the program can do when an agent asks.
        operations: Option<Vec<OperationDecl>>,
        /// The largest event.payload kept with an event (default 1Mi).
        max_payload_bytes: Option<Size>,
        /// The program's semantic version; a Connection may require a range of it.
        version: Option<Semver>,
        /// A JSON Schema of a Connection's spec.config, whose values are strings.
        config: Option<JsonSchemaValue>,
        /// The secret names the program reads.
        secrets: Option<SecretNames>,
    }
);

/// `spec.stdin`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum Stdin {
    /// The connector reads the orchestrator's stdin.
    Inherit,
    /// It does not (the default).
    None,
}

/// `spec.events[]`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct EventDecl {
    /// The event's name, unique in the Connector.
    name: NonEmpty,
    /// Its properties; `key:` alone declares a required string.
    #[schemars(extend("propertyNames" = {"minLength": 1}))]
    properties: Option<BTreeMap<String, Option<PropertyDecl>>>,
}

/// `spec.events[].properties.<key>`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct PropertyDecl {
    /// string (default), number or boolean.
    #[schemars(rename = "type")]
    ty: Option<PropertyType>,
    /// Whether an event may leave it out (default false).
    optional: Option<bool>,
}

/// A property's type; values travel as strings.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum PropertyType {
    /// Any string.
    String,
    /// A number's text.
    Number,
    /// true or false.
    Boolean,
}

/// `spec.secrets`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct SecretNames {
    /// A Connection must give these.
    required: Option<Vec<NonEmpty>>,
    /// A Connection may give these.
    optional: Option<Vec<NonEmpty>>,
}

/// `spec.operations[]`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct OperationDecl {
    /// Its name, unique in the Connector.
    name: NonEmpty,
    /// A repeat of an idempotencyKey gets the first result, without a call.
    idempotent: Option<bool>,
    /// It changes the world (an idempotent one needs an idempotencyKey).
    mutating: Option<bool>,
    /// sync (default) or async (answered at once with a job).
    mode: Option<OperationMode>,
    /// The most one attempt may take (default 30s).
    timeout: Option<Duration>,
    /// Which failures are called again, and how.
    retry: Option<Retry>,
    /// JSON Schema of the input.
    input: Option<JsonSchemaValue>,
    /// JSON Schema of the output.
    output: Option<JsonSchemaValue>,
    /// A larger input is refused (default 64Ki).
    max_input_bytes: Option<Size>,
    /// A larger output is cut and marked truncated (default 1Mi).
    max_output_bytes: Option<Size>,
    /// JSON pointers into the output replaced by `"<redacted>"`.
    redact: Option<Vec<JsonPointer>>,
}

/// `operations[].mode`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum OperationMode {
    /// The invoke waits for the result.
    Sync,
    /// The invoke answers with a job; the outcome arrives as a job.* event.
    Async,
}

/// `operations[].retry`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Retry {
    /// Calls after the first, at most (default 0).
    max_retries: Option<u32>,
    /// The delay before each retry (default 200ms, doubling to 5s).
    backoff: Option<super::program::Backoff>,
    /// The failure classes retried (default transient and timeout).
    on: Option<Vec<RetryOn>>,
}

/// A failure class that may be retried.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum RetryOn {
    /// The provider failed for now.
    Transient,
    /// The attempt took too long.
    Timeout,
}

/// `kind: Swarm` spec.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SwarmSpec {
    /// Where events no rule routes go; must be in agents.
    entry_agent: AgentRef,
    /// Its agents, each once.
    #[schemars(length(min = 1))]
    agents: Vec<AgentRef>,
}

program_spec!(
    /// `kind: Agent` spec.
    AgentSpec {
        /// false keeps it declared but not running (default true).
        enabled: Option<bool>,
        /// The operations it may invoke, per Connection.
        invoke: Option<Vec<InvokeGrant>>,
        /// Its own credentials (an LLM API key), sent in each instance's init only.
        #[schemars(extend("propertyNames" = {"minLength": 1}))]
        secrets: Option<BTreeMap<String, ValueSource>>,
        /// An instance with nothing to do for this long is stopped (default: never).
        idle_timeout: Option<Duration>,
        /// A stopped, idle instance is forgotten after this long (default 10m).
        instance_ttl: Option<Duration>,
        /// At most this many processes at once (default: no limit).
        #[schemars(range(min = 1))]
        max_instances: Option<u32>,
        /// Events in flight per instance (default 1).
        #[schemars(range(min = 1))]
        max_in_flight: Option<u32>,
        /// Events queued per instance (default 1024).
        #[schemars(range(min = 1))]
        max_queue: Option<u32>,
        /// Deliveries of an event before it is dead-lettered (default 5).
        #[schemars(range(min = 1))]
        max_attempts: Option<u32>,
        /// How long one delivery may take (default 30s).
        delivery_timeout: Option<Duration>,
    }
);

/// `spec.invoke[]`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct InvokeGrant {
    /// The Connection, "name" or "Connection/name".
    connection: NonEmpty,
    /// The operations it may invoke there.
    operations: Vec<NonEmpty>,
    /// Calls per second for this agent on this Connection.
    rate_limit: Option<RateLimit>,
}

/// `kind: Secret` spec.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct SecretSpec {
    /// Each key and where its value is read at start.
    #[schemars(extend("propertyNames" = {"minLength": 1}))]
    data: BTreeMap<String, SecretData>,
}

/// `spec.data.<key>`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SecretData {
    /// Where the value is read.
    value_from: SecretSource,
}

/// `spec.data.<key>.valueFrom`: exactly one of env and file.
#[derive(Debug, JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["env"]}, {"required": ["file"]}])
)]
pub(crate) struct SecretSource {
    /// An environment variable of the orchestrator.
    env: Option<EnvName>,
    /// A file, relative to the bundle.
    file: Option<NonEmpty>,
}
