//! `kind: Connection` spec (`connection.rs`, `rules.rs`, `operations.rs`).

use std::collections::BTreeMap;

use schemars::JsonSchema;

use super::program::{Circuit, Restart};
use super::values::{
    AgentRef, ConnectorRef, Duration, EnvName, NonEmpty, Scalar, SecretRef, SwarmRef,
};

/// `kind: Connection` spec.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConnectionSpec {
    /// false keeps it declared but not running (default true).
    enabled: Option<bool>,
    /// The Connector to run; `{name, version: "^1"}` also requires a version range of it.
    connector_ref: ConnectorRef,
    /// Where its events go (default: the first Swarm).
    swarm_ref: Option<SwarmRef>,
    /// Sent to the connector in init as strings; checked against the Connector's spec.config.
    config: Option<BTreeMap<String, ConfigValue>>,
    /// Sent only in init, never in argv or the environment; checked against the Connector's spec.secrets.
    #[schemars(extend("propertyNames" = {"minLength": 1}))]
    secrets: Option<BTreeMap<String, ValueSource>>,
    /// How its events are routed to agents.
    ingress: Option<Ingress>,
    /// Replaces the Connector's restart policy.
    restart: Option<Restart>,
    /// A token bucket for its emits; beyond it they are nacked quota_exceeded.
    rate_limit: Option<RateLimit>,
    /// A full agent queue: reject (default) nacks overloaded, wait holds the connector.
    overflow: Option<Overflow>,
    /// What agents may invoke through it, and how hard.
    operations: Option<ConnectionOperations>,
    /// Cluster mode: one node at a time (one, default), every node, or one of {nodes: [...]}.
    placement: Option<Placement>,
}

/// `Connection.spec.placement`.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub(crate) enum Placement {
    /// one or every.
    Mode(PlacementMode),
    /// One of these nodes at a time.
    Nodes(PlacementNodes),
}

/// `one` or `every`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum PlacementMode {
    /// One live node at a time.
    One,
    /// Every node.
    Every,
}

/// `{nodes: [a, b]}`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct PlacementNodes {
    /// The nodes (`--node` names) it may run on.
    #[schemars(length(min = 1))]
    nodes: Vec<NonEmpty>,
}

/// A `config` value: a scalar, or a value source like a secret's.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub(crate) enum ConfigValue {
    /// Written inline.
    Scalar(Scalar),
    /// `{value}` or `{valueFrom}`.
    Source(ValueSource),
}

/// Where a value comes from: exactly one of value and valueFrom.
#[derive(Debug, JsonSchema)]
#[schemars(
    rename_all = "camelCase",
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["value"]}, {"required": ["valueFrom"]}])
)]
pub(crate) struct ValueSource {
    /// Written inline.
    value: Option<Scalar>,
    /// Read at start.
    value_from: Option<ValueFrom>,
}

/// `valueFrom`: exactly one of env and secretRef.
#[derive(Debug, JsonSchema)]
#[schemars(
    rename_all = "camelCase",
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["env"]}, {"required": ["secretRef"]}])
)]
pub(crate) struct ValueFrom {
    /// An environment variable of the orchestrator.
    env: Option<EnvName>,
    /// A key of a Secret resource.
    secret_ref: Option<SecretKeyRef>,
}

/// `valueFrom.secretRef`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct SecretKeyRef {
    /// The Secret.
    #[schemars(rename = "ref")]
    secret: SecretRef,
    /// The key in its spec.data.
    key: NonEmpty,
}

/// `spec.ingress`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Ingress {
    /// In order; the first match wins.
    rules: Option<Vec<Rule>>,
    /// What no rule matches: entryAgent (default) or drop.
    unmatched: Option<Unmatched>,
}

/// `ingress.unmatched`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase")]
pub(crate) enum Unmatched {
    /// The Swarm's entryAgent.
    EntryAgent,
    /// Dropped.
    Drop,
}

/// `ingress.rules[]`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Rule {
    /// What the event must be (everything, when left out).
    #[schemars(rename = "match")]
    matches: Option<Match>,
    /// Where it goes.
    route: Option<Route>,
}

/// `rules[].match`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Match {
    /// The event's name, one the Connector declares.
    event: Option<NonEmpty>,
    /// Properties the event must have, with these values.
    properties: Option<BTreeMap<String, Scalar>>,
}

/// `rules[].route`.
#[derive(Debug, JsonSchema)]
#[schemars(
    rename_all = "camelCase",
    deny_unknown_fields,
    extend(
        "not" = {"required": ["instanceKey", "instanceKeyProperty"]},
        "dependentRequired" = {"instanceKeyPrefix": ["instanceKeyProperty"]}
    )
)]
pub(crate) struct Route {
    /// The agent (default: the Swarm's entryAgent).
    agent_ref: Option<AgentRef>,
    /// A fixed instanceKey.
    instance_key: Option<Scalar>,
    /// The property whose value is the instanceKey.
    instance_key_property: Option<NonEmpty>,
    /// Put before that value.
    instance_key_prefix: Option<Scalar>,
}

/// `rateLimit`: a token bucket.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RateLimit {
    /// Tokens per second, more than zero.
    #[schemars(extend("exclusiveMinimum" = 0))]
    per_second: f64,
    /// The bucket's size (default: perSecond rounded up).
    #[schemars(range(min = 1))]
    burst: Option<u32>,
}

/// A full queue.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum Overflow {
    /// Refuse (overloaded).
    Reject,
    /// Wait for room.
    Wait,
}

/// `Connection.spec.operations`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConnectionOperations {
    /// The operations it allows (default none).
    allow: Option<Vec<NonEmpty>>,
    /// Calls in flight to the connector at once (default 4).
    #[schemars(range(min = 1))]
    max_parallel: Option<u32>,
    /// Invokes waiting beyond that (default 100).
    max_queue: Option<u32>,
    /// A full queue refuses (reject, default) or waits.
    overflow: Option<Overflow>,
    /// Calls per second for the whole Connection.
    rate_limit: Option<RateLimit>,
    /// Provider failures that make the Connection degraded until a probe succeeds.
    circuit: Option<Circuit>,
    /// How long a first result is kept for an idempotencyKey (default 24h).
    idempotency_ttl: Option<Duration>,
}
