//! The rule cases for Connector, Agent, Swarm and Secret specs, restart and
//! sandbox; run by the table test in `rules.rs`.

use super::rules::{Case, spec};

pub(super) fn program_cases() -> Vec<Case> {
    let conn = |name, body: &str, want, at| spec(name, "Connector", body, want, at);
    let agent = |name, body: &str, want, at| spec(name, "Agent", body, want, at);
    vec![
        conn(
            "stdin needs frames",
            "entry: ./c\nprotocol: jsonl\nstdin: inherit\nevents: [{name: e}]",
            "`spec.stdin`: `stdin: inherit` needs `protocol: frames` (a jsonl child's stdin carries its messages)",
            (3, 8),
        ),
        conn(
            "stdin value",
            "entry: ./c\nstdin: pipe\nevents: [{name: e}]",
            "`spec.stdin`: unknown value `pipe`, expected one of: inherit, none",
            (2, 8),
        ),
        conn(
            "missing entry",
            "events: [{name: e}]",
            "missing required field `entry` in Connector spec",
            (1, 1),
        ),
        conn(
            "missing events",
            "entry: ./c",
            "missing required field `events` in Connector spec",
            (1, 1),
        ),
        conn(
            "no events",
            "entry: ./c\nevents: []",
            "`spec.events`: a Connector must declare at least one event",
            (2, 9),
        ),
        conn(
            "duplicate event",
            "entry: ./c\nevents: [{name: e}, {name: e}]",
            "`spec.events[1].name`: duplicate event `e`",
            (2, 28),
        ),
        conn(
            "property type",
            "entry: ./c\nevents: [{name: e, properties: {n: {type: integer}}}]",
            "`spec.events[0].properties.n.type`: unknown value `integer`, expected one of: string, number, boolean",
            (2, 43),
        ),
        conn(
            "protocol",
            "entry: ./c\nprotocol: grpc\nevents: [{name: e}]",
            "`spec.protocol`: unknown value `grpc`, expected one of: frames, jsonl",
            (2, 11),
        ),
        conn(
            "reserved env",
            "entry: ./c\nenv: {ORCHESTRATOR_SOCKET: x}\nevents: [{name: e}]",
            "`spec.env.ORCHESTRATOR_SOCKET`: names starting with ORCHESTRATOR_ are reserved",
            (2, 7),
        ),
        conn(
            "bad env name",
            "entry: ./c\nenv: {1X: x}\nevents: [{name: e}]",
            "`spec.env.1X`: not a valid environment variable name",
            (2, 7),
        ),
        conn(
            "frame too big",
            "entry: ./c\nmaxFrameBytes: 128Mi\nevents: [{name: e}]",
            "`spec.maxFrameBytes`: must be between 1Ki and 64Mi, found 134217728 bytes",
            (2, 16),
        ),
        conn(
            "bad duration",
            "entry: ./c\nhealthInterval: soon\nevents: [{name: e}]",
            "`spec.healthInterval`: invalid duration `soon`",
            (2, 17),
        ),
        conn(
            "negative count",
            "entry: ./c\nmaxProtocolErrors: -1\nevents: [{name: e}]",
            "`spec.maxProtocolErrors`: must be at least 0, found -1",
            (2, 20),
        ),
        conn(
            "args not a list",
            "entry: ./c\nargs: --verbose\nevents: [{name: e}]",
            "`spec.args`: expected a list, found a string",
            (2, 7),
        ),
        agent(
            "maxInFlight",
            "entry: ./a\nmaxInFlight: 0",
            "`spec.maxInFlight`: must be at least 1, found 0",
            (2, 14),
        ),
        agent(
            "maxQueue",
            "entry: ./a\nmaxQueue: 0",
            "`spec.maxQueue`: must be at least 1, found 0",
            (2, 11),
        ),
        agent(
            "maxAttempts",
            "entry: ./a\nmaxAttempts: 0",
            "`spec.maxAttempts`: must be at least 1, found 0",
            (2, 14),
        ),
        agent(
            "maxInstances",
            "entry: ./a\nmaxInstances: 0",
            "`spec.maxInstances`: must be at least 1, found 0",
            (2, 15),
        ),
        agent(
            "zero timeout",
            "entry: ./a\ndeliveryTimeout: 0s",
            "`spec.deliveryTimeout`: must be longer than zero",
            (2, 18),
        ),
        agent(
            "duration as number",
            "entry: ./a\nidleTimeout: 30",
            "`spec.idleTimeout`: expected a duration like 10s, found an integer",
            (2, 14),
        ),
        agent(
            "empty entry",
            "entry: ''",
            "`spec.entry`: must not be empty",
            (1, 8),
        ),
    ]
}

pub(super) fn policy_cases() -> Vec<Case> {
    let a = |name, body: &str, want, at| spec(name, "Agent", body, want, at);
    vec![
        a(
            "multiplier",
            "entry: ./a\nrestart: {backoff: {multiplier: 0.5}}",
            "`spec.restart.backoff.multiplier`: must be at least 1, found 0.5",
            (2, 33),
        ),
        a(
            "max below initial",
            "entry: ./a\nrestart: {backoff: {initial: 2m}}",
            "backoff max (1m) is shorter than initial (2m)",
            (2, 30),
        ),
        a(
            "jitter",
            "entry: ./a\nrestart: {backoff: {jitter: 2}}",
            "`spec.restart.backoff.jitter`: must be between 0 and 1, found 2",
            (2, 29),
        ),
        a(
            "backoff field",
            "entry: ./a\nrestart: {backoff: {factor: 2}}",
            "unknown field `factor` in `spec.restart.backoff`, expected one of: initial, multiplier, max, jitter",
            (2, 21),
        ),
        a(
            "circuit failures",
            "entry: ./a\nrestart: {circuit: {failures: 0}}",
            "`spec.restart.circuit.failures`: must be at least 1, found 0",
            (2, 31),
        ),
        a(
            "exit code",
            "entry: ./a\nrestart: {permanentExitCodes: [78, 300]}",
            "`spec.restart.permanentExitCodes[1]`: must be between 0 and 255, found 300",
            (2, 36),
        ),
        a(
            "stop grace",
            "entry: ./a\nrestart: {stop: {grace: forever}}",
            "`spec.restart.stop.grace`: invalid duration `forever`",
            (2, 25),
        ),
        a(
            "sandbox mode",
            "entry: ./a\nsandbox: {mode: strict}",
            "`spec.sandbox.mode`: unknown value `strict`, expected one of: enforce, bestEffort, off",
            (2, 17),
        ),
        a(
            "ports need allowlist",
            "entry: ./a\nsandbox: {network: {mode: host, bindTcp: [80]}}",
            "`spec.sandbox.network.bindTcp`: ports are only allowed with network mode allowlist",
            (2, 42),
        ),
        a(
            "port range",
            "entry: ./a\nsandbox: {network: {mode: allowlist, connectTcp: [443, 70000]}}",
            "`spec.sandbox.network.connectTcp[1]`: must be between 1 and 65535, found 70000",
            (2, 56),
        ),
        a(
            "network mode required",
            "entry: ./a\nsandbox: {network: {bindTcp: [80]}}",
            "missing required field `mode` in `spec.sandbox.network`",
            (2, 20),
        ),
        a(
            "memory size",
            "entry: ./a\nsandbox: {resources: {memoryMax: lots}}",
            "`spec.sandbox.resources.memoryMax`: invalid size `lots`",
            (2, 34),
        ),
        a(
            "cpu quota",
            "entry: ./a\nsandbox: {resources: {cpuQuota: 0%}}",
            "`spec.sandbox.resources.cpuQuota`: percentage must be greater than zero",
            (2, 33),
        ),
        a(
            "tasks",
            "entry: ./a\nsandbox: {resources: {tasksMax: 0}}",
            "`spec.sandbox.resources.tasksMax`: must be at least 1, found 0",
            (2, 33),
        ),
        a(
            "capability name",
            "entry: ./a\nsandbox: {capabilities: [NET_BIND_SERVICE, FLY]}",
            "`spec.sandbox.capabilities[1]`: unknown capability `FLY` (e.g. CAP_NET_BIND_SERVICE)",
            (2, 44),
        ),
        a(
            "filesystem path",
            "entry: ./a\nsandbox: {filesystem: {readOnly: [srv]}}",
            "`spec.sandbox.filesystem.readOnly[0]`: `srv` is not an absolute path",
            (2, 35),
        ),
        a(
            "filesystem field",
            "entry: ./a\nsandbox: {filesystem: {readwrite: [/srv]}}",
            "unknown field `readwrite` in `spec.sandbox.filesystem`, expected one of: readOnly, readWrite",
            (2, 24),
        ),
        a(
            "udp ports need allowlist",
            "entry: ./a\nsandbox: {network: {mode: none, connectUdp: [53]}}",
            "`spec.sandbox.network.connectUdp`: ports are only allowed with network mode allowlist",
            (2, 45),
        ),
    ]
}

pub(super) fn other_kind_cases() -> Vec<Case> {
    let s = |name, body: &str, want, at| spec(name, "Swarm", body, want, at);
    let sec = |name, body: &str, want, at| spec(name, "Secret", body, want, at);
    vec![
        s(
            "entry not in agents",
            "entryAgent: admin\nagents: [handler]",
            "`spec.entryAgent`: Agent `admin` is not in spec.agents",
            (1, 13),
        ),
        s(
            "no agents",
            "entryAgent: handler\nagents: []",
            "`spec.agents`: a Swarm needs at least one agent",
            (2, 9),
        ),
        s(
            "agent not found",
            "entryAgent: handler\nagents: [handler, Agent/ghost]",
            "`spec.agents[1]`: no Agent named `ghost` in the bundle",
            (2, 19),
        ),
        s(
            "agent twice",
            "entryAgent: handler\nagents: [handler, handler]",
            "`spec.agents[1]`: Agent `handler` is listed twice",
            (2, 19),
        ),
        s(
            "missing entryAgent",
            "agents: [handler]",
            "missing required field `entryAgent` in Swarm spec",
            (1, 1),
        ),
        sec(
            "env and file",
            "data:\n  K: {valueFrom: {env: A, file: a.txt}}",
            "`spec.data.K.valueFrom`: set exactly one of env and file, not both",
            (2, 18),
        ),
        sec(
            "no valueFrom",
            "data:\n  K: {}",
            "missing required field `valueFrom` in `spec.data.K`",
            (2, 6),
        ),
        sec(
            "value in a Secret",
            "data:\n  K: {value: x, valueFrom: {env: A}}",
            "unknown field `value` in `spec.data.K`, expected one of: valueFrom",
            (2, 7),
        ),
    ]
}
