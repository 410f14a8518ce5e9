//! What a Connector and an Agent share: how to run the program, restart it
//! and confine it (`program.rs`, `restart.rs`, `sandbox.rs`).

use schemars::JsonSchema;

use super::values::{AbsolutePath, Capability, Duration, NonEmpty, Percent, Sha256, Size};

/// Defines a spec struct with the program fields (`PROGRAM_FIELDS`) first,
/// then `$extra` fields: Connector and Agent specs.
macro_rules! program_spec {
    ($(#[$m:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, schemars::JsonSchema)]
        #[schemars(rename_all = "camelCase", deny_unknown_fields)]
        pub(crate) struct $name {
            /// The executable: a path relative to the bundle, or a bare name found next to the orchestrator binary, then on PATH, then beside the bundle. `{path, sha256}` pins it.
            entry: $crate::bundle::schema::program::Entry,
            /// Its arguments.
            args: Option<Vec<$crate::bundle::schema::values::Scalar>>,
            /// Plain (non-secret) environment variables for the child; names starting with ORCHESTRATOR_ are reserved.
            #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "not": {"pattern": "^ORCHESTRATOR_"}}))]
            env: Option<std::collections::BTreeMap<String, $crate::bundle::schema::values::Scalar>>,
            /// frames (length-prefixed bincode on an inherited socket) or jsonl (stdin/stdout). Default: frames for a Connector, jsonl for an Agent.
            protocol: Option<$crate::bundle::schema::program::Protocol>,
            /// When and how to restart the program.
            restart: Option<$crate::bundle::schema::program::Restart>,
            /// What the program may do: user, network, resources, capabilities, file system.
            sandbox: Option<$crate::bundle::schema::program::Sandbox>,
            /// Ping period (default 5s for frames, none for jsonl).
            health_interval: Option<$crate::bundle::schema::values::Duration>,
            /// The largest frame or line either way, 1Ki to 64Mi (default 4Mi).
            max_frame_bytes: Option<$crate::bundle::schema::values::Size>,
            /// Bad messages tolerated before the channel is closed (default 100).
            max_protocol_errors: Option<u32>,
            $($extra)*
        }
    };
}
pub(crate) use program_spec;

/// `entry`: a path or name, or `{path, sha256}` to pin the program.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub(crate) enum Entry {
    /// A path relative to the bundle, or a bare name.
    Path(NonEmpty),
    /// A pinned program: hashed before every spawn, refused on a mismatch.
    Pinned(PinnedEntry),
}

/// `entry: {path, sha256}`.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct PinnedEntry {
    /// A path relative to the bundle, or a bare name.
    path: NonEmpty,
    /// The program's SHA-256 (`orchestrator pin` prints it).
    sha256: Option<Sha256>,
}

/// How a child speaks to the orchestrator.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum Protocol {
    /// Length-prefixed bincode over an inherited Unix socket.
    Frames,
    /// One JSON object per line over stdin/stdout.
    Jsonl,
}

/// `restart`: every field optional.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Restart {
    /// on-failure (default), always or never.
    policy: Option<RestartMode>,
    /// The delay before each restart (default 1s, doubling to 60s, jitter 0.2).
    backoff: Option<Backoff>,
    /// A run this long after `ready` resets the backoff (default 10m).
    reset_after: Option<Duration>,
    /// No `ready` within this long is a failed start (default 10s).
    start_timeout: Option<Duration>,
    /// A crash-loop breaker (default 10 failures in 10m, probed every 5m).
    circuit: Option<Circuit>,
    /// Exit codes after which the child is not restarted (default [77, 78]).
    permanent_exit_codes: Option<Vec<ExitCode>>,
    /// How long a graceful stop may take (default grace 10s, termGrace 5s).
    stop: Option<Stop>,
}

/// `restart.policy`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "kebab-case")]
pub(crate) enum RestartMode {
    /// Whatever the exit.
    Always,
    /// Unless it exited 0.
    OnFailure,
    /// Never.
    Never,
}

/// An exit code, 0 to 255.
#[derive(Debug, JsonSchema)]
#[schemars(transparent)]
pub(crate) struct ExitCode(#[schemars(range(min = 0, max = 255))] u8);

/// `backoff`: an exponential delay.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Backoff {
    /// The first delay.
    initial: Option<Duration>,
    /// Each delay is the previous one times this (at least 1).
    #[schemars(range(min = 1.0))]
    multiplier: Option<f64>,
    /// The longest delay (not shorter than initial).
    max: Option<Duration>,
    /// A random share of each delay, 0 to 1.
    #[schemars(range(min = 0.0, max = 1.0))]
    jitter: Option<f64>,
}

/// `circuit`: a breaker.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Circuit {
    /// Failures that open it.
    #[schemars(range(min = 1))]
    failures: Option<u32>,
    /// Within this long.
    window: Option<Duration>,
    /// How long it stays open.
    cooldown: Option<Duration>,
}

/// `restart.stop`: a graceful stop.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Stop {
    /// How long after `shutdown` before SIGTERM.
    grace: Option<Duration>,
    /// How long after SIGTERM before SIGKILL.
    term_grace: Option<Duration>,
}

/// `sandbox`: what is asked for; whether this machine can enforce it is decided at start.
#[derive(Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Sandbox {
    /// enforce (default: refuse to start what cannot be enforced), bestEffort or off.
    mode: Option<SandboxMode>,
    /// dynamic (a uid of its own per child, recommended) or a user name.
    user: Option<NonEmpty>,
    /// What the child may reach.
    network: Option<Network>,
    /// Resource limits.
    resources: Option<Resources>,
    /// Linux capabilities to keep (default none).
    capabilities: Option<Vec<Capability>>,
    /// Paths beyond the defaults the child may read or write.
    filesystem: Option<Filesystem>,
}

/// `sandbox.mode`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase")]
pub(crate) enum SandboxMode {
    /// Refuse to start what cannot be enforced.
    Enforce,
    /// Apply what can be, and say what could not.
    BestEffort,
    /// No sandbox.
    Off,
}

/// `sandbox.network`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Network {
    /// none, loopback, allowlist (only the listed ports), egress (only the
    /// listed host names, through the orchestrator's proxy) or host.
    mode: NetworkMode,
    /// TCP ports it may bind (allowlist only).
    bind_tcp: Option<Vec<Port>>,
    /// TCP ports it may connect to (allowlist only).
    connect_tcp: Option<Vec<Port>>,
    /// UDP ports it may bind (allowlist only).
    bind_udp: Option<Vec<Port>>,
    /// UDP ports it may send to (allowlist only).
    connect_udp: Option<Vec<Port>>,
    /// Host names it may reach through its proxy (egress only): exact, or
    /// `*.example.com` for any name below it; a literal IP only if listed.
    allow_hosts: Option<Vec<AllowHost>>,
    /// Ports it may reach them on (egress only; default 443).
    allow_ports: Option<Vec<Port>>,
    /// Address blocks it may reach although private, loopback, link-local
    /// or metadata (egress only): `10.20.0.0/16`, `fd00::/8`, an address.
    allow_cidrs: Option<Vec<String>>,
    /// Inbound (egress only): a port (`127.0.0.1:<port>`) or `address:port`
    /// on the host, forwarded to the same port on 127.0.0.1 inside its
    /// network namespace. Needs root.
    publish_tcp: Option<Vec<Publish>>,
}

/// An `allowHosts` entry: a host name, `*.` and a host name, or an IP address.
#[derive(Debug, JsonSchema)]
#[schemars(transparent)]
pub(crate) struct AllowHost(
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^(\*\.)?[A-Za-z0-9_.:\[\]-]+$")
    )]
    String,
);

/// A `publishTcp` entry: a port, or `address:port`.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub(crate) enum Publish {
    /// A port on 127.0.0.1.
    Port(Port),
    /// `address:port` (`0.0.0.0:3000`, `[::1]:3000`).
    Address(String),
}

/// `sandbox.network.mode`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub(crate) enum NetworkMode {
    /// No network at all.
    None,
    /// Loopback only.
    Loopback,
    /// Only the listed ports.
    Allowlist,
    /// Only the listed host names, through the orchestrator's proxy.
    Egress,
    /// The host's network.
    Host,
}

/// A port, 1 to 65535.
#[derive(Debug, JsonSchema)]
#[schemars(transparent)]
pub(crate) struct Port(#[schemars(range(min = 1))] u16);

/// `sandbox.resources`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Resources {
    /// Memory limit (256Mi).
    memory_max: Option<Size>,
    /// Most tasks (processes and threads).
    #[schemars(range(min = 1))]
    tasks_max: Option<u64>,
    /// CPU quota (50%).
    cpu_quota: Option<Percent>,
    /// Most open files.
    #[schemars(range(min = 1))]
    nofile: Option<u64>,
    /// Largest core dump.
    core: Option<Size>,
}

/// `sandbox.filesystem`.
#[derive(Debug, JsonSchema)]
#[schemars(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Filesystem {
    /// Absolute paths it may read.
    read_only: Option<Vec<AbsolutePath>>,
    /// Absolute paths it may read and write.
    read_write: Option<Vec<AbsolutePath>>,
}
