//! A bundle using every field parses into the values it says; one using
//! none gets the documented defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::model::*;
use super::{BASE, parse_text};

const FULL: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata:
  name: telegram
  labels: {team: chat, tier: 1}
  annotations: {owner: ops}
spec:
  entry: connector-telegram
  args: [--poll, 30, true]
  env: {RUST_LOG: debug, RETRIES: 3}
  protocol: jsonl
  healthInterval: 15s
  maxFrameBytes: 1Mi
  maxProtocolErrors: 0
  events:
    - name: user_message
      properties:
        chat_id: {type: number}
        text:
        urgent: {type: boolean, optional: true}
    - name: command
      properties: {command: {type: string}}
  restart:
    policy: always
    backoff: {initial: 500ms, multiplier: 1.5, max: 2m, jitter: 0}
    resetAfter: 1h
    startTimeout: 20s
    circuit: {failures: 3, window: 1m, cooldown: 30s}
    permanentExitCodes: [78, 64]
    stop: {grace: 2s, termGrace: 1s}
  sandbox:
    mode: bestEffort
    user: nobody
    network: {mode: allowlist, bindTcp: [3000], connectTcp: [443, 8443], connectUdp: [53]}
    resources: {memoryMax: 256Mi, tasksMax: 64, cpuQuota: 150%, nofile: 1024, core: 0}
    capabilities: [NET_BIND_SERVICE, CAP_NET_BIND_SERVICE, CAP_KILL]
    filesystem: {readOnly: [/srv/data], readWrite: [/var/cache/handler]}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {name: handler}
spec:
  entry: ./agents/handler.py
  protocol: frames
  idleTimeout: 10m
  maxInstances: 50
  maxInFlight: 4
  maxQueue: 16
  maxAttempts: 2
  deliveryTimeout: 1m
  maxFrameBytes: 1048576
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {name: admin}
spec: {entry: ./agents/admin}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {name: first}
spec: {entryAgent: Agent/admin, agents: [admin]}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {name: support}
spec:
  entryAgent: {kind: Agent, name: handler}
  agents: [Agent/handler, {kind: Agent, name: admin}]
---
apiVersion: goondan.ai/v1
kind: Secret
metadata: {name: vault}
spec:
  data:
    BOT: {valueFrom: {file: secrets/bot-token}}
    HOOK: {valueFrom: {env: HOOK_SECRET}}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {name: telegram-production}
spec:
  connectorRef: Connector/telegram
  swarmRef: {kind: Swarm, name: support}
  config: {pollSeconds: 30, verbose: true, chat: "0123", ratio: 0.5}
  secrets:
    BOT_TOKEN: {valueFrom: {secretRef: {ref: Secret/vault, key: BOT}}}
    HOOK: {valueFrom: {env: TG_HOOK}}
    STATIC: {value: not-really-secret}
  ingress:
    unmatched: drop
    rules:
      - match: {event: command, properties: {command: /reset}}
        route: {agentRef: Agent/admin, instanceKey: admin}
      - match: {event: user_message}
        route: {agentRef: handler, instanceKeyProperty: chat_id, instanceKeyPrefix: "tg:"}
      - match: {properties: {urgent: true}}
      - route: {}
  restart: {policy: never}
  rateLimit: {perSecond: 2.5, burst: 10}
  overflow: wait
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {name: defaults}
spec: {connectorRef: telegram}
"#;

fn full() -> Bundle {
    parse_text(FULL).unwrap_or_else(|d| panic!("{d:#?}"))
}

#[test]
fn connector_fields_override_defaults() {
    let b = full();
    assert_eq!(b.root, PathBuf::from("/bundle"));
    let c = &b.connectors["telegram"];
    assert_eq!(c.place.to_string(), "bundle.yaml:2:1");
    let p = &c.program;
    assert_eq!(p.entry, "connector-telegram");
    assert_eq!(p.args, ["--poll", "30", "true"]);
    assert_eq!(p.env["RETRIES"], "3");
    assert_eq!(p.protocol, Protocol::Jsonl);
    assert_eq!(p.health_interval, Some(Duration::from_secs(15)));
    assert_eq!(p.max_frame_bytes, 1 << 20);
    assert_eq!(p.max_protocol_errors, 0);

    let msg = c.event("user_message").expect("declared");
    assert_eq!(
        msg.properties["chat_id"],
        PropertyDecl {
            ty: PropertyType::Number,
            optional: false
        }
    );
    assert_eq!(
        msg.properties["text"],
        PropertyDecl {
            ty: PropertyType::String,
            optional: false
        }
    );
    assert_eq!(
        msg.properties["urgent"],
        PropertyDecl {
            ty: PropertyType::Boolean,
            optional: true
        }
    );

    let r = &p.restart;
    assert_eq!(r.policy, RestartMode::Always);
    assert_eq!(
        r.backoff,
        Backoff {
            initial: Duration::from_millis(500),
            multiplier: 1.5,
            max: Duration::from_secs(120),
            jitter: 0.0
        }
    );
    assert_eq!(r.reset_after, Duration::from_secs(3600));
    assert_eq!(r.start_timeout, Duration::from_secs(20));
    assert_eq!(
        r.circuit,
        Circuit {
            failures: 3,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30)
        }
    );
    assert_eq!(r.permanent_exit_codes, [78, 64]);
    assert_eq!(
        r.stop,
        StopPolicy {
            grace: Duration::from_secs(2),
            term_grace: Duration::from_secs(1)
        }
    );

    let s = p.sandbox.as_ref().expect("sandbox");
    assert_eq!(s.mode, SandboxMode::BestEffort);
    assert_eq!(s.user.as_deref(), Some("nobody"));
    assert_eq!(
        s.network,
        Some(Network {
            mode: NetworkMode::Allowlist,
            bind_tcp: vec![3000],
            connect_tcp: vec![443, 8443],
            bind_udp: vec![],
            connect_udp: vec![53],
            allow_hosts: vec![],
            allow_ports: vec![],
            allow_cidrs: vec![],
            publish_tcp: vec![],
        })
    );
    assert_eq!(s.capabilities, ["CAP_NET_BIND_SERVICE", "CAP_KILL"]);
    assert_eq!(
        s.filesystem,
        Filesystem {
            read_only: vec!["/srv/data".into()],
            read_write: vec!["/var/cache/handler".into()],
        }
    );
    assert_eq!(
        s.resources,
        Resources {
            memory_max: Some(256 << 20),
            tasks_max: Some(64),
            cpu_quota: Some(150),
            nofile: Some(1024),
            core: Some(0)
        }
    );
}

#[test]
fn agents_swarms_and_secrets() {
    let b = full();
    let h = &b.agents["handler"];
    assert_eq!(h.program.protocol, Protocol::Frames);
    assert_eq!(
        h.program.health_interval,
        Some(Duration::from_secs(5)),
        "frames default"
    );
    assert_eq!(h.program.max_frame_bytes, 1 << 20);
    assert_eq!(h.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(h.max_instances, Some(50));
    assert_eq!((h.max_in_flight, h.max_queue, h.max_attempts), (4, 16, 2));
    assert_eq!(h.delivery_timeout, Duration::from_secs(60));

    let support = &b.swarms["support"];
    assert_eq!(support.entry_agent, "handler");
    assert_eq!(support.agents, ["handler", "admin"]);

    let vault = &b.secrets["vault"];
    assert_eq!(
        vault.data["BOT"],
        SecretSource::File(Path::new("secrets/bot-token").to_path_buf())
    );
    assert_eq!(vault.data["HOOK"], SecretSource::Env("HOOK_SECRET".into()));
}

#[test]
fn connection_fields_and_rules() {
    let b = full();
    let c = &b.connections[0];
    assert_eq!(
        (c.name.as_str(), c.connector.as_str(), c.swarm.as_str()),
        ("telegram-production", "telegram", "support")
    );
    assert_eq!(c.config["pollSeconds"], ValueSource::Value("30".into()));
    assert_eq!(c.config["verbose"], ValueSource::Value("true".into()));
    assert_eq!(c.config["chat"], ValueSource::Value("0123".into()));
    assert_eq!(c.config["ratio"], ValueSource::Value("0.5".into()));
    assert_eq!(
        c.secrets["BOT_TOKEN"],
        ValueSource::SecretRef {
            secret: "vault".into(),
            key: "BOT".into()
        }
    );
    assert_eq!(c.secrets["HOOK"], ValueSource::Env("TG_HOOK".into()));
    assert_eq!(
        c.secrets["STATIC"],
        ValueSource::Value("not-really-secret".into())
    );
    assert_eq!(c.ingress.unmatched, Unmatched::Drop);
    let rules = &c.ingress.rules;
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[0].event.as_deref(), Some("command"));
    assert_eq!(rules[0].properties["command"], "/reset");
    assert_eq!(rules[0].agent.as_deref(), Some("admin"));
    assert_eq!(rules[0].key, KeySource::Fixed("admin".into()));
    assert_eq!(
        rules[1].key,
        KeySource::Property {
            name: "chat_id".into(),
            prefix: "tg:".into()
        }
    );
    assert_eq!(rules[2].properties["urgent"], "true");
    assert_eq!(rules[2].agent, None);
    assert_eq!(
        rules[3],
        Rule {
            place: rules[3].place.clone(),
            ..Rule::default()
        }
    );
    assert_eq!(
        rules[3].place.as_ref().map(ToString::to_string).as_deref(),
        Some("bundle.yaml:98:9")
    );
    assert_eq!(
        c.restart.as_ref().map(|r| r.policy),
        Some(RestartMode::Never)
    );
    assert_eq!(
        c.restart.as_ref().map(|r| r.backoff.clone()),
        Some(Backoff::default())
    );
    assert_eq!(
        c.rate_limit,
        Some(RateLimit {
            per_second: 2.5,
            burst: 10
        })
    );
    assert_eq!(c.overflow, Overflow::Wait);
}

#[test]
fn defaults_fill_what_is_not_written() {
    let b = full();
    let d = &b.connections[1];
    assert_eq!(
        d.swarm, "first",
        "swarmRef defaults to the first Swarm in document order"
    );
    assert!(d.config.is_empty() && d.secrets.is_empty());
    assert_eq!(d.ingress, Ingress::default());
    assert_eq!(
        (d.restart.clone(), d.rate_limit, d.overflow),
        (None, None, Overflow::Reject)
    );

    let admin = &b.agents["admin"];
    let p = &admin.program;
    assert_eq!((p.protocol, p.health_interval), (Protocol::Jsonl, None));
    assert!(p.args.is_empty() && p.env.is_empty() && p.sandbox.is_none());
    assert_eq!((p.max_frame_bytes, p.max_protocol_errors), (4 << 20, 100));
    assert_eq!(p.restart, RestartPolicy::default());
    assert_eq!((admin.idle_timeout, admin.max_instances), (None, None));
    assert_eq!(
        (admin.max_in_flight, admin.max_queue, admin.max_attempts),
        (1, 1024, 5)
    );
    assert_eq!(admin.delivery_timeout, Duration::from_secs(30));

    let base = parse_text(BASE).expect("valid");
    let tg = &base.connectors["tg"].program;
    assert_eq!(
        (tg.protocol, tg.health_interval),
        (Protocol::Frames, Some(Duration::from_secs(5)))
    );
}

#[test]
fn a_rate_limit_without_burst_gets_one_seconds_worth() {
    let text = format!(
        "{BASE}{}",
        super::doc(
            "Connection",
            "c",
            "connectorRef: tg\nrateLimit: {perSecond: 2.5}"
        )
    );
    let b = parse_text(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(
        b.connections[0].rate_limit,
        Some(RateLimit {
            per_second: 2.5,
            burst: 3
        })
    );
}

#[test]
fn a_sandbox_with_only_a_mode_enforces_by_default() {
    let text = format!(
        "{BASE}{}",
        super::doc("Agent", "a", "entry: ./a\nsandbox: {user: nobody}")
    );
    let b = parse_text(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    let s = b.agents["a"].program.sandbox.clone().expect("sandbox");
    assert_eq!(
        (s.mode, s.network, s.resources),
        (SandboxMode::Enforce, None, Resources::default())
    );
}
