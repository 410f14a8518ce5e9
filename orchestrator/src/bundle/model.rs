//! The validated bundle: what the rest of the orchestrator consumes.
//!
//! Every value here has been checked: references resolve, names are unique,
//! durations and sizes parsed, defaults filled in. Each resource keeps the
//! [`Place`] of its document so later errors can still point at the YAML.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// file:line:column of a node in the bundle, 1-based.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The file as the user named it (or as found in the bundle directory).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A whole validated bundle.
#[derive(Clone, Debug, Default)]
pub struct Bundle {
    /// The directory relative entries are resolved against (the bundle file's directory, or the bundle directory).
    pub root: PathBuf,
    /// Connector resources by name.
    pub connectors: BTreeMap<String, Connector>,
    /// Connection resources in document order.
    pub connections: Vec<Connection>,
    /// Swarm resources by name.
    pub swarms: BTreeMap<String, Swarm>,
    /// Agent resources by name.
    pub agents: BTreeMap<String, Agent>,
    /// Secret resources by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Each resource's `spec` as JSON, by `Kind/name`: what `diff` compares
    /// (places aside). May hold inline secret values: never print it.
    pub specs: BTreeMap<String, serde_json::Value>,
}

/// Which transport a child speaks (docs/protocol.md, Transports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Length-prefixed bincode over an inherited Unix socket.
    Frames,
    /// One JSON object per line over stdin/stdout.
    Jsonl,
}

/// What every supervised program has: how to start it and how to keep it alive.
#[derive(Clone, Debug)]
pub struct Program {
    /// `spec.entry` as written: a path relative to the bundle, or a bare name.
    pub entry: String,
    /// Where `spec.entry` is, for errors about it.
    pub entry_place: Place,
    /// `spec.entry.sha256`: the program must hash to this (lowercase hex) at every spawn.
    pub entry_sha256: Option<String>,
    /// `spec.args`.
    pub args: Vec<String>,
    /// `spec.env`: plain (non-secret) environment variables for the child.
    pub env: BTreeMap<String, String>,
    /// `spec.protocol`.
    pub protocol: Protocol,
    /// `spec.restart`, with defaults filled in.
    pub restart: RestartPolicy,
    /// `spec.sandbox`, when present.
    pub sandbox: Option<Sandbox>,
    /// `spec.healthInterval`: ping period; `None` = no pings (the jsonl default).
    pub health_interval: Option<Duration>,
    /// `spec.maxFrameBytes` (default 4 MiB): largest frame or line either way.
    pub max_frame_bytes: usize,
    /// `spec.maxProtocolErrors` (default 100): bad messages tolerated before the channel is closed.
    pub max_protocol_errors: u32,
}

/// `kind: Connector`.
#[derive(Clone, Debug)]
pub struct Connector {
    /// metadata.name.
    pub name: String,
    /// Where the document starts.
    pub place: Place,
    /// How to run it (protocol defaults to frames).
    pub program: Program,
    /// `spec.events`, names unique.
    pub events: Vec<EventDecl>,
    /// `spec.stdin: inherit`: the connector reads the orchestrator's own stdin
    /// (frames only; at most one Connection in a bundle).
    pub stdin: bool,
    /// `spec.operations`: what the program can do when asked, names unique.
    pub operations: Vec<OperationDecl>,
    /// `spec.maxPayloadBytes` (default 1 MiB): a larger `event.payload` is
    /// dropped, and the event says so with `payloadTruncated: "true"`.
    pub max_payload_bytes: u64,
    /// `spec.version`: the program's semantic version.
    pub version: Option<String>,
    /// `spec.config`: JSON Schema of a Connection's `spec.config` (values are strings).
    pub config_schema: Option<serde_json::Value>,
    /// `spec.secrets`: the secret names the program reads.
    pub secrets: Option<SecretNames>,
}

/// `Connector.spec.secrets`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretNames {
    /// A Connection must give these.
    pub required: Vec<String>,
    /// A Connection may give these.
    pub optional: Vec<String>,
}

/// One `Connector.spec.operations[]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationDecl {
    /// Its name.
    pub name: String,
    /// `timeout`: the most one attempt may take (default 30s).
    pub timeout: Duration,
    /// `retry`: which failures are called again, and how.
    pub retry: OperationRetry,
    /// `input`: JSON Schema of the input (draft 2020-12), if any.
    pub input: Option<serde_json::Value>,
    /// `output`: JSON Schema of the output, if any.
    pub output: Option<serde_json::Value>,
    /// `maxInputBytes` (default 64Ki): a larger input is refused.
    pub max_input_bytes: u64,
    /// `maxOutputBytes` (default 1Mi): a larger output is cut and marked truncated.
    pub max_output_bytes: u64,
    /// `redact`: JSON pointers into the output replaced by `"<redacted>"`.
    pub redact: Vec<String>,
    /// `idempotent`: a repeat of an `idempotencyKey` within the
    /// Connection's `idempotencyTtl` gets the first result, without a call.
    pub idempotent: bool,
    /// `mutating`: it changes the world; an idempotent one must be called
    /// with an `idempotencyKey` (a retry must not act twice).
    pub mutating: bool,
    /// `mode: async`: the invoke answers at once with a job, whose outcome
    /// reaches the invoking instance as a `job.*` event.
    pub asynchronous: bool,
}

/// `operations[].retry`.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationRetry {
    /// Calls after the first, at most (default 0).
    pub max_retries: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
    /// The failure classes retried (default `transient`, `timeout`).
    pub on: Vec<ipc_proto::FailureClass>,
}

impl Default for OperationRetry {
    fn default() -> Self {
        Self {
            max_retries: 0,
            backoff: Backoff {
                initial: Duration::from_millis(200),
                multiplier: 2.0,
                max: Duration::from_secs(5),
                jitter: 0.0,
            },
            on: vec![
                ipc_proto::FailureClass::Transient,
                ipc_proto::FailureClass::Timeout,
            ],
        }
    }
}

/// `Connection.spec.operations`: what this Connection allows, and how hard it may be driven.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionOperations {
    /// `allow`: the operations it allows (default none).
    pub allow: Vec<String>,
    /// `maxParallel` (default 4): calls in flight to the connector at once.
    pub max_parallel: u32,
    /// `maxQueue` (default 100): invokes waiting beyond that.
    pub max_queue: u32,
    /// `overflow` (default reject): a full queue refuses (`overloaded`) or waits.
    pub overflow: Overflow,
    /// `rateLimit`: calls per second for the whole Connection.
    pub rate_limit: Option<RateLimit>,
    /// `circuit`: this many provider failures within the window make the
    /// Connection `degraded` (calls fail `unavailable` at once) until a probe
    /// after the cooldown succeeds.
    pub circuit: Option<Circuit>,
    /// `idempotencyTtl` (default 24h): how long a first result is kept.
    pub idempotency_ttl: Duration,
}

impl Default for ConnectionOperations {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            max_parallel: 4,
            max_queue: 100,
            overflow: Overflow::Reject,
            rate_limit: None,
            circuit: None,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// One `Agent.spec.invoke[]` entry: what the agent may invoke.
#[derive(Clone, Debug, PartialEq)]
pub struct InvokeGrant {
    /// The Connection.
    pub connection: String,
    /// Where `connection` is written.
    pub place: Place,
    /// Its operations this agent may invoke (`*`: every one the Connection allows).
    pub operations: Vec<String>,
    /// Per instanceKey: one instance cannot drain the Connection's budget.
    pub rate_limit: Option<RateLimit>,
}

impl Connector {
    /// The declared event called `name`.
    pub fn event(&self, name: &str) -> Option<&EventDecl> {
        self.events.iter().find(|e| e.name == name)
    }
}

/// One `spec.events[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDecl {
    /// The event name.
    pub name: String,
    /// Declared properties by key.
    pub properties: BTreeMap<String, PropertyDecl>,
}

/// `properties.<key>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyDecl {
    /// What the string value must parse as.
    pub ty: PropertyType,
    /// `optional: true` means it may be absent.
    pub optional: bool,
}

/// `properties.<key>.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyType {
    /// Any string.
    String,
    /// Parses as a finite f64.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// `kind: Connection`.
#[derive(Clone, Debug)]
pub struct Connection {
    /// metadata.name.
    pub name: String,
    /// Where the document starts.
    pub place: Place,
    /// `spec.connectorRef`, resolved to a Connector name.
    pub connector: String,
    /// `spec.connectorRef.version`: the range (Cargo's syntax, `^1`) the
    /// Connector's `spec.version` satisfies, when one is asked.
    pub connector_version: Option<String>,
    /// `spec.swarmRef`, resolved to a Swarm name (default: the first Swarm).
    pub swarm: String,
    /// `spec.config`: where each value comes from (inline scalars as strings).
    pub config: BTreeMap<String, ValueSource>,
    /// `spec.secrets`: where each secret's value comes from.
    pub secrets: BTreeMap<String, ValueSource>,
    /// `spec.ingress`.
    pub ingress: Ingress,
    /// `spec.restart`: replaces the Connector's policy when set.
    pub restart: Option<RestartPolicy>,
    /// `spec.rateLimit`.
    pub rate_limit: Option<RateLimit>,
    /// `spec.overflow` (default reject).
    pub overflow: Overflow,
    /// `spec.operations`: what agents may invoke through it, and how hard.
    pub operations: ConnectionOperations,
    /// `spec.placement`: where it runs in cluster mode (one node by default).
    pub placement: Placement,
    /// `spec.enabled` (default true): `false` keeps it declared but not running.
    pub enabled: bool,
}

/// `Connection.spec.placement`: which nodes of a cluster run it (ignored on a single node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// One live node at a time, moved on failure (default).
    #[default]
    One,
    /// Every node (an HTTP connector behind a load balancer).
    Every,
    /// One of these nodes at a time.
    Nodes(Vec<String>),
}

/// Where a secret value comes from. Resolved only when a child is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueSource {
    /// `value: …` inline in the bundle.
    Value(String),
    /// `valueFrom: {env: NAME}`: the orchestrator's environment.
    Env(String),
    /// `valueFrom: {secretRef: {ref: Secret/name, key: K}}`.
    SecretRef {
        /// The Secret resource's name.
        secret: String,
        /// The key in its `spec.data`.
        key: String,
    },
}

/// `spec.ingress`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingress {
    /// Evaluated in order, first match wins.
    pub rules: Vec<Rule>,
    /// What happens to an event no rule matches.
    pub unmatched: Unmatched,
}

/// `spec.ingress.unmatched`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unmatched {
    /// Route to the Swarm's entryAgent with the event's own instanceKey (Goondan's behaviour).
    #[default]
    EntryAgent,
    /// Drop it (counted).
    Drop,
}

/// One ingress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// Where the rule is, for warnings.
    pub place: Option<Place>,
    /// `match.event`: the event name must equal this.
    pub event: Option<String>,
    /// `match.properties`: each must equal (AND).
    pub properties: BTreeMap<String, String>,
    /// `route.agentRef`, resolved to an Agent name; `None` = the Swarm's entryAgent.
    pub agent: Option<String>,
    /// How the instance key is chosen.
    pub key: KeySource,
}

/// How a rule picks the instance key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeySource {
    /// The event's own instanceKey.
    #[default]
    Event,
    /// `route.instanceKey`.
    Fixed(String),
    /// `route.instanceKeyProperty`, prefixed by `route.instanceKeyPrefix`.
    Property {
        /// The property to read.
        name: String,
        /// Put before its value ("" when unset).
        prefix: String,
    },
}

/// `spec.rateLimit`: a token bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// `spec.overflow`: what a full queue does to an emit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Nack `overloaded`.
    #[default]
    Reject,
    /// Hold the ack until there is room.
    Wait,
}

/// `kind: Swarm`.
#[derive(Clone, Debug)]
pub struct Swarm {
    /// metadata.name.
    pub name: String,
    /// Where the document starts.
    pub place: Place,
    /// `spec.entryAgent`, an Agent name in `agents`.
    pub entry_agent: String,
    /// `spec.agents`, Agent names.
    pub agents: Vec<String>,
}

/// `kind: Agent`.
#[derive(Clone, Debug)]
pub struct Agent {
    /// metadata.name.
    pub name: String,
    /// Where the document starts.
    pub place: Place,
    /// How to run it (protocol defaults to jsonl).
    pub program: Program,
    /// `spec.idleTimeout`: stop an instance with no delivery for this long.
    pub idle_timeout: Option<Duration>,
    /// `spec.instanceTtl`: forget an instance whose process has been stopped
    /// this long with nothing to do (its row, its log handle, its slot).
    pub instance_ttl: Duration,
    /// `spec.maxInstances`.
    pub max_instances: Option<u32>,
    /// `spec.maxInFlight` (default 1).
    pub max_in_flight: u32,
    /// `spec.maxQueue` (default 1024): events waiting per instance.
    pub max_queue: u32,
    /// `spec.maxAttempts` (default 5).
    pub max_attempts: u32,
    /// `spec.deliveryTimeout` (default 30s).
    pub delivery_timeout: Duration,
    /// `spec.invoke`: the operations it may invoke (default none).
    pub invoke: Vec<InvokeGrant>,
    /// `spec.secrets`: the agent's own credentials (an LLM API key), sent in
    /// its instances' `init` only. Never a Connection's.
    pub secrets: BTreeMap<String, ValueSource>,
    /// Each `secretRef` of `secrets`, for `validate`.
    pub(crate) secret_refs: Vec<(super::common::Located, super::common::Located)>,
    /// `spec.enabled` (default true): `false` keeps it declared but starts no instance.
    pub enabled: bool,
}

/// `kind: Secret`.
#[derive(Clone, Debug)]
pub struct Secret {
    /// metadata.name.
    pub name: String,
    /// Where the document starts.
    pub place: Place,
    /// `spec.data.<key>.valueFrom`.
    pub data: BTreeMap<String, SecretSource>,
}

/// Where a Secret's key gets its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `valueFrom: {env: NAME}`.
    Env(String),
    /// `valueFrom: {file: PATH}`, relative to the bundle root.
    File(PathBuf),
}

/// `restart.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartMode {
    /// Restart after any exit.
    Always,
    /// Restart after a failure (non-zero exit, signal, failed start, hung).
    OnFailure,
    /// Never restart.
    Never,
}

/// `restart` (README.md, Restart policy), defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    /// default on-failure.
    pub policy: RestartMode,
    /// default 1s × 2 up to 60s, jitter 0.2.
    pub backoff: Backoff,
    /// default 10m of uptime after `ready` resets the backoff.
    pub reset_after: Duration,
    /// default 10s to send `ready`.
    pub start_timeout: Duration,
    /// default 10 failures in 10m trip the circuit for 5m.
    pub circuit: Circuit,
    /// default `[78]`.
    pub permanent_exit_codes: Vec<i32>,
    /// default grace 10s, termGrace 5s.
    pub stop: StopPolicy,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            policy: RestartMode::OnFailure,
            backoff: Backoff::default(),
            reset_after: Duration::from_secs(600),
            start_timeout: Duration::from_secs(10),
            circuit: Circuit::default(),
            permanent_exit_codes: vec![77, 78],
            stop: StopPolicy::default(),
        }
    }
}

/// `restart.backoff`.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Growth per failure (≥ 1).
    pub multiplier: f64,
    /// Largest delay.
    pub max: Duration,
    /// Fraction of random spread, 0..=1.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

/// `restart.circuit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circuit {
    /// Failures within `window` that trip it.
    pub failures: u32,
    /// The sliding window.
    pub window: Duration,
    /// How long it stays open before a probe.
    pub cooldown: Duration,
}

impl Default for Circuit {
    fn default() -> Self {
        Self {
            failures: 10,
            window: Duration::from_secs(600),
            cooldown: Duration::from_secs(300),
        }
    }
}

/// `restart.stop`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopPolicy {
    /// After `shutdown`, wait this long for a clean exit.
    pub grace: Duration,
    /// After SIGTERM, wait this long before SIGKILL.
    pub term_grace: Duration,
}

impl Default for StopPolicy {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(10),
            term_grace: Duration::from_secs(5),
        }
    }
}

/// `sandbox` (README.md, Sandbox).
#[derive(Clone, Debug, PartialEq)]
pub struct Sandbox {
    /// default enforce.
    pub mode: SandboxMode,
    /// Run as this user (only when the orchestrator is root); `dynamic`:
    /// a uid of its own from the orchestrator's `--uid-range`.
    pub user: Option<String>,
    /// `network`.
    pub network: Option<Network>,
    /// `resources`.
    pub resources: Resources,
    /// `capabilities`: those it keeps (`CAP_NET_BIND_SERVICE`, …); all
    /// others are dropped.
    pub capabilities: Vec<String>,
    /// `filesystem`: paths beyond the defaults.
    pub filesystem: Filesystem,
}

/// `sandbox.filesystem`: absolute paths the child may read, or read and write,
/// on top of the program, the system and its own state directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filesystem {
    /// `readOnly`.
    pub read_only: Vec<std::path::PathBuf>,
    /// `readWrite`.
    pub read_write: Vec<std::path::PathBuf>,
}

/// `sandbox.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxMode {
    /// Refuse to start if a limit can't be applied.
    Enforce,
    /// Start anyway, warn, show the gap in status.
    BestEffort,
    /// No sandbox.
    Off,
}

/// `sandbox.network`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// `mode`.
    pub mode: NetworkMode,
    /// `bindTcp` ports (allowlist).
    pub bind_tcp: Vec<u16>,
    /// `connectTcp` ports (allowlist).
    pub connect_tcp: Vec<u16>,
    /// `bindUdp` ports (allowlist).
    pub bind_udp: Vec<u16>,
    /// `connectUdp` ports (allowlist): where it may send datagrams.
    pub connect_udp: Vec<u16>,
    /// `allowHosts` (egress): names (lowercased), `*.suffix`, or literal IPs.
    pub allow_hosts: Vec<String>,
    /// `allowPorts` (egress; `[443]` when not given).
    pub allow_ports: Vec<u16>,
    /// `allowCidrs` (egress): addresses reachable although private.
    pub allow_cidrs: Vec<crate::egress::Cidr>,
    /// `publishTcp` (egress): host addresses forwarded to the same port on
    /// `127.0.0.1` inside its namespace (a port alone: `127.0.0.1:<port>`).
    pub publish_tcp: Vec<std::net::SocketAddr>,
}

/// `sandbox.network.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// No network at all.
    None,
    /// Only a private loopback.
    Loopback,
    /// Only the listed TCP ports.
    Allowlist,
    /// Only its egress proxy, which allows the listed host names.
    Egress,
    /// The host's network.
    Host,
}

/// `sandbox.resources`; `None` = not limited.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// `memoryMax` in bytes (`256Mi`, `1G`, …).
    pub memory_max: Option<u64>,
    /// `tasksMax`.
    pub tasks_max: Option<u64>,
    /// `cpuQuota` in percent of one CPU (`50%`).
    pub cpu_quota: Option<u32>,
    /// `nofile`.
    pub nofile: Option<u64>,
    /// `core` in bytes.
    pub core: Option<u64>,
}
