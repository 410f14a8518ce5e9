//! Every message of docs/protocol.md. Field names are camelCase in JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::operations::{
    Call, CallResult, CancelCall, Invoke, InvokeResult, JobCancel, JobGet, Json,
};
use crate::wire::wire_enum;

// ---------------------------------------------------------------- shared parts

/// A message body: text, an image or a file, by URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    /// The text.
    pub text: String,
}

/// An image, by URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Where the image is.
    pub url: String,
}

/// A file, by URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Where the file is.
    pub url: String,
    /// Its file name.
    pub name: String,
}

wire_enum! {
    /// What an event says: `{"type":"text","text":…}`, `{"type":"image","url":…}`
    /// or `{"type":"file","url":…,"name":…}`.
    pub enum Message {
        /// Plain text.
        Text(Text) = "text" @ 0,
        /// An image by URL.
        Image(Image) = "image" @ 1,
        /// A file by URL.
        File(File) = "file" @ 2,
    }
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Message::Text(Text { text: text.into() })
    }

    /// The text, when this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(&t.text),
            _ => None,
        }
    }
}

/// A normalized event as a connector emits it. A field it does not know is
/// refused, not dropped: `"text"` beside `message` is a mistake to report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// The event name, one the Connector declares.
    pub name: String,
    /// What the event says, if anything.
    #[serde(default)]
    pub message: Option<Message>,
    /// Declared properties; values are strings whatever their declared type.
    /// In JSON a number or a boolean is taken too, as its text (`5` → `"5"`).
    #[serde(default, deserialize_with = "properties::deserialize")]
    pub properties: BTreeMap<String, String>,
    /// The connector's own instance key; ingress rules may replace it.
    #[serde(default)]
    pub instance_key: Option<String>,
    /// The provider's own object (the whole delivery or update), when the
    /// connector passes it on. Bounded by the Connector's `maxPayloadBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Json>,
}

/// `properties` in JSON: string values, or numbers and booleans kept as
/// their text; a value of another type names its key in the error.
mod properties {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, MapAccess, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        if d.is_human_readable() {
            d.deserialize_map(Properties)
        } else {
            BTreeMap::deserialize(d)
        }
    }

    struct Properties;

    impl<'de> Visitor<'de> for Properties {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings, numbers or booleans")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let value: Scalar = map
                    .next_value()
                    .map_err(|e| de::Error::custom(format!("properties.{key}: {e}")))?;
                out.insert(key, value.0);
            }
            Ok(out)
        }
    }

    struct Scalar(String);

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor)
        }
    }

    struct ScalarVisitor;

    impl Visitor<'_> for ScalarVisitor {
        type Value = Scalar;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
            Ok(Scalar(v.to_string()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
            Ok(Scalar(v))
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
            Ok(Scalar(v.to_string()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
            Ok(Scalar(v.to_string()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
            Ok(Scalar(v.to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
            Ok(Scalar(v.to_string()))
        }
    }
}

/// Secret values by name. Its `Debug` never shows a value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secrets(pub BTreeMap<String, String>);

impl Secrets {
    /// No secrets at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// Log levels a child may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very verbose.
    Trace,
    /// Verbose.
    Debug,
    /// Normal.
    Info,
    /// Something is off.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A log line a child sends over the channel instead of stderr.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    /// How important it is.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// `ready`: the child finished `init`. It may echo the protocol version it
/// speaks and name the optional features it understands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The protocol version the child speaks; absent means "the one in init".
    #[serde(default)]
    pub protocol: Option<u32>,
    /// Optional features the child understands ([`FEATURE_PAYLOAD`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// The feature an agent names in `ready` to be sent `event.payload`.
pub const FEATURE_PAYLOAD: &str = "payload";

impl Ready {
    /// Whether the child named `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// Stop: finish what is in hand and exit 0 within the grace period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    /// Milliseconds until SIGTERM.
    pub grace_ms: u64,
}

/// A health probe; the child answers with a [`Pong`] carrying the same nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed in the pong.
    pub nonce: u64,
}

/// The answer to a [`Ping`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's nonce.
    pub nonce: u64,
}

/// The orchestrator could not take a message the child sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolError {
    /// What was wrong, and where.
    pub message: String,
}

// ---------------------------------------------------------------- connectors

/// The first message to a connector: who it is and everything it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorInit {
    /// The protocol version the orchestrator speaks.
    pub protocol: u32,
    /// The Connector resource's name.
    pub connector: String,
    /// The Connection resource's name.
    pub connection: String,
    /// The Connection's `spec.config`, every value as a string.
    pub config: BTreeMap<String, String>,
    /// The Connection's resolved secrets.
    pub secrets: Secrets,
    /// A directory this connection may keep state in (cursors, offsets).
    pub state_dir: String,
}

/// An event the connector wants accepted; answered by one ack or nack for its `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Emit {
    /// Chosen by the connector, increasing from 1 per process.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// The source's delivery id, for deduplication.
    #[serde(default)]
    pub dedupe_key: Option<String>,
}

/// The event with this `seq` is accepted and durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmitAck {
    /// The emit's seq.
    pub seq: u64,
    /// `Some(true)` when the event was a duplicate and will not be delivered again.
    #[serde(default)]
    pub duplicate: Option<bool>,
}

/// Why an emit was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NackKind {
    /// The event does not match what the Connector declares.
    ValidationError,
    /// The Connection's rate limit is spent.
    QuotaExceeded,
    /// Queues are full; try later.
    Overloaded,
    /// Something failed that may work on a retry.
    Transient,
    /// It will never be accepted.
    Permanent,
}

impl NackKind {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NackKind::ValidationError => "validation_error",
            NackKind::QuotaExceeded => "quota_exceeded",
            NackKind::Overloaded => "overloaded",
            NackKind::Transient => "transient",
            NackKind::Permanent => "permanent",
        }
    }
}

/// The failure carried by a nack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackError {
    /// Its class.
    pub kind: NackKind,
    /// What was wrong.
    pub message: String,
}

/// The event with this `seq` was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmitNack {
    /// The emit's seq.
    pub seq: u64,
    /// Why.
    pub error: NackError,
}

/// A security-relevant decision the connector made. Never carries a secret or a signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// What happened, e.g. `signature_rejected`.
    pub kind: String,
    /// The verification scheme, e.g. `github`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Why, e.g. `bad_signature`.
    #[serde(default)]
    pub reason: Option<String>,
}

wire_enum! {
    /// Orchestrator → connector.
    pub enum ToConnector {
        /// The first message.
        Init(ConnectorInit) = "init" @ 0,
        /// An emit was accepted.
        Ack(EmitAck) = "ack" @ 1,
        /// An emit was refused.
        Nack(EmitNack) = "nack" @ 2,
        /// Stop.
        Shutdown(Shutdown) = "shutdown" @ 3,
        /// Health probe.
        Ping(Ping) = "ping" @ 4,
        /// A message from the connector could not be taken.
        Error(ProtocolError) = "error" @ 5,
        /// Perform an operation.
        Call(Call) = "call" @ 6,
        /// A call is no longer wanted (advice).
        Cancel(CancelCall) = "cancel" @ 7,
    }
}

wire_enum! {
    /// Connector → orchestrator.
    pub enum FromConnector {
        /// Init done.
        Ready(Ready) = "ready" @ 0 | 6,
        /// An event.
        Emit(Emit) = "emit" @ 1 | 7,
        /// A log line.
        Log(Log) = "log" @ 2,
        /// A security-relevant decision.
        Audit(Audit) = "audit" @ 3,
        /// Health answer.
        Pong(Pong) = "pong" @ 4,
        /// The answer to a `call`.
        CallResult(CallResult) = "callResult" @ 5,
    }
}

// ---------------------------------------------------------------- agents

/// The first message to an agent instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInit {
    /// The protocol version the orchestrator speaks.
    pub protocol: u32,
    /// The Agent resource's name.
    pub agent: String,
    /// The instance key this process serves.
    pub instance_key: String,
    /// The Swarm's name.
    pub swarm: String,
    /// A directory this instance may keep state in.
    pub state_dir: String,
    /// The Agent's own `spec.secrets` (an LLM API key), when it has any.
    #[serde(default, skip_serializing_if = "Secrets::is_empty")]
    pub secrets: Secrets,
}

/// An accepted event as an agent receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredEvent {
    /// Stable across delivery attempts: agents deduplicate on it.
    pub id: String,
    /// The Connection it came through.
    pub connection: String,
    /// That Connection's Connector.
    pub connector: String,
    /// The event name.
    pub name: String,
    /// What the event says, if anything.
    #[serde(default)]
    pub message: Option<Message>,
    /// The event's properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The instance key it was routed to.
    pub instance_key: String,
    /// When the orchestrator accepted it, RFC 3339 UTC.
    pub received_at: String,
    /// The provider's own object, for an agent whose `ready` names the
    /// `payload` feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Json>,
}

/// One delivery attempt of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliver {
    /// The event id.
    pub id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The event.
    pub event: DeliveredEvent,
}

/// The agent handled the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAck {
    /// The event id.
    pub id: String,
}

/// The agent could not handle the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryNack {
    /// The event id.
    pub id: String,
    /// Whether another attempt may succeed.
    pub retry: bool,
    /// What went wrong.
    pub error: String,
}

wire_enum! {
    /// Orchestrator → agent.
    pub enum ToAgent {
        /// The first message.
        Init(AgentInit) = "init" @ 0 | 8,
        /// An event to handle.
        Deliver(Deliver) = "deliver" @ 1 | 6,
        /// Stop.
        Shutdown(Shutdown) = "shutdown" @ 2,
        /// Health probe.
        Ping(Ping) = "ping" @ 3,
        /// A message from the agent could not be taken.
        Error(ProtocolError) = "error" @ 4,
        /// The answer to an `invoke`.
        Result(InvokeResult) = "result" @ 5 | 7,
    }
}

wire_enum! {
    /// Agent → orchestrator.
    pub enum FromAgent {
        /// Init done.
        Ready(Ready) = "ready" @ 0 | 8,
        /// A delivery was handled.
        Ack(DeliveryAck) = "ack" @ 1,
        /// A delivery failed.
        Nack(DeliveryNack) = "nack" @ 2,
        /// A log line.
        Log(Log) = "log" @ 3,
        /// Health answer.
        Pong(Pong) = "pong" @ 4,
        /// Run an operation of a Connection.
        Invoke(Invoke) = "invoke" @ 5,
        /// Ask how a job stands.
        JobGet(JobGet) = "jobGet" @ 6,
        /// Cancel a job.
        JobCancel(JobCancel) = "jobCancel" @ 7,
    }
}
