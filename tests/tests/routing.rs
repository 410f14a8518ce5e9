//! Ingress rules and the instance table, end to end: connectors emit, the
//! orchestrator routes, and agent-echo processes say what they received.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{DEADLINE, Harness, agent_pids, escape_key, event, pid_alive, started_pids};

/// The Connector every test here uses: test-emitter and three events.
const EMITTER: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: emitter }
spec:
  entry: test-emitter
  protocol: frames
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
    - name: command
      properties: { command: { type: string }, scope: { type: string, optional: true } }
    - name: note
  restart: { backoff: { initial: 100ms, max: 1s } }
"#;

/// Three agent-echo agents in one Swarm whose entryAgent is `entry`.
const AGENTS: &str = r#"
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/entry, agents: [Agent/entry, Agent/admin, Agent/handler] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: entry }
spec: { entry: agent-echo, protocol: frames }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: admin }
spec: { entry: agent-echo, protocol: frames }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: handler }
spec: { entry: agent-echo, protocol: frames }
"#;

/// One run, three Connections, every rule feature. Each event's text names
/// the case; the table at the end says where each must (and must only) land.
#[test]
fn ingress_table_end_to_end() {
    let mut h = Harness::new();
    // Connection `rules`: ordered rules ending in a catch-all.
    let events_rules = h.write_events(
        "rules.jsonl",
        &[
            // Matches rule 0 and rule 1: the first wins.
            event(
                "command",
                "first-match-wins",
                &[("command", "/reset"), ("scope", "all")],
                Some("own-1"),
            ),
            // One of rule 0's two properties differs: falls through to rule 1.
            event(
                "command",
                "properties-and",
                &[("command", "/reset"), ("scope", "one")],
                Some("own-2"),
            ),
            // instanceKeyProperty with a prefix; the event's own key is ignored.
            event(
                "user_message",
                "key-from-property",
                &[("chat_id", "42")],
                Some("own-3"),
            ),
            // A rule without agentRef: the Swarm's entryAgent, the event's own key.
            event(
                "command",
                "entry-agent-own-key",
                &[("command", "/help")],
                Some("cmd-own"),
            ),
            // Nothing above matches: the catch-all rule (no `match`).
            event("note", "catch-all", &[], Some("own-5")),
        ],
    );
    // Connection `fallthrough`: no catch-all, `unmatched` left at its default.
    let events_fallthrough = h.write_events(
        "fallthrough.jsonl",
        &[
            event("note", "unmatched-own-key", &[], Some("b-own")),
            event("note", "unmatched-no-key", &[], None),
            event(
                "command",
                "fallthrough-matched",
                &[("command", "x")],
                Some("b-ignored"),
            ),
        ],
    );
    // Connection `dropper`: `unmatched: drop`. The dropped note carries the
    // key the sentinel is routed to, so had it not been dropped it would have
    // reached entry/c-key before the sentinel (one instance, accept order).
    let events_dropper = h.write_events(
        "dropper.jsonl",
        &[
            event("note", "must-be-dropped", &[], Some("c-key")),
            event(
                "command",
                "drop-sentinel",
                &[("command", "sentinel")],
                Some("c-other"),
            ),
        ],
    );
    let bundle = format!(
        "{EMITTER}{}{AGENTS}",
        r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: rules }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@RULES@" }
  ingress:
    rules:
      - match: { event: command, properties: { command: /reset, scope: all } }
        route: { agentRef: Agent/admin, instanceKey: admin }
      - match: { event: command, properties: { command: /reset } }
        route: { agentRef: Agent/admin, instanceKey: reset-other }
      - match: { event: user_message }
        route: { agentRef: Agent/handler, instanceKeyProperty: chat_id, instanceKeyPrefix: "tg:" }
      - match: { event: command }
        route: {}
      - route: { agentRef: Agent/handler, instanceKey: caught }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: fallthrough }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@FALLTHROUGH@" }
  ingress:
    rules:
      - match: { event: command }
        route: { agentRef: Agent/admin, instanceKey: b-admin }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: dropper }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@DROPPER@" }
  ingress:
    rules:
      - match: { event: command }
        route: { instanceKey: c-key }
    unmatched: drop
"#
        .replace("@RULES@", &events_rules)
        .replace("@FALLTHROUGH@", &events_fallthrough)
        .replace("@DROPPER@", &events_dropper)
    );
    h.start(&bundle);

    // (agent, instanceKey) → the texts it must receive, in order, and nothing else.
    let expected: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::from([
        (("admin", "admin"), vec!["first-match-wins"]),
        (("admin", "reset-other"), vec!["properties-and"]),
        (("handler", "tg:42"), vec!["key-from-property"]),
        (("entry", "cmd-own"), vec!["entry-agent-own-key"]),
        (("handler", "caught"), vec!["catch-all"]),
        (("entry", "b-own"), vec!["unmatched-own-key"]),
        // No instanceKey on the event: the Connection's name is the key.
        (("entry", "fallthrough"), vec!["unmatched-no-key"]),
        (("admin", "b-admin"), vec!["fallthrough-matched"]),
        (("entry", "c-key"), vec!["drop-sentinel"]),
    ]);
    for (&(agent, key), texts) in &expected {
        h.wait_received(agent, key, texts.len());
    }
    // Every connector has had all its answers, so nothing is still on its way.
    for name in ["rules", "fallthrough", "dropper"] {
        h.wait_until(
            &format!("connection {name} to report all answers"),
            DEADLINE,
            || h.connection_log(name).contains("all answered"),
        );
    }

    for (&(agent, key), texts) in &expected {
        let received = h.received(agent, key);
        let got: Vec<&str> = received
            .iter()
            .map(|r| r["text"].as_str().unwrap_or("<no text>"))
            .collect();
        assert_eq!(&got, texts, "{agent}/{key}\n{}", h.dump());
        for r in &received {
            assert_eq!(
                r["instanceKey"], key,
                "the delivered event names its routed key: {r}"
            );
        }
    }
    let connection_of = |agent: &str, key: &str| h.received(agent, key)[0]["connection"].clone();
    assert_eq!(connection_of("entry", "fallthrough"), "fallthrough");
    assert_eq!(connection_of("handler", "tg:42"), "rules");
    assert_eq!(
        h.received("handler", "tg:42")[0]["properties"]["chat_id"],
        "42"
    );

    // No other instance was started: in particular none for the dropped event.
    let want: Vec<(String, String)> = expected
        .keys()
        .map(|(a, k)| (a.to_string(), escape_key(k)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(h.agent_instances(), want, "agent instances\n{}", h.dump());
    for (path, text) in h.all_logs() {
        assert!(
            !text.contains("\"must-be-dropped\""),
            "the dropped event reached {}",
            path.display()
        );
    }
    // Every emit was acked, the dropped one included (accepted, then dropped).
    for (name, n) in [("rules", 5), ("fallthrough", 3), ("dropper", 2)] {
        let log = h.connection_log(name);
        for seq in 1..=n {
            assert!(
                log.contains(&format!("stdout ack {seq}\n")),
                "{name}: ack {seq}\n{log}"
            );
        }
    }
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// Two keys, two processes; the same key again, the same process.
#[test]
fn one_process_per_instance_key() {
    let mut h = Harness::new();
    let events = h.write_events(
        "events.jsonl",
        &[
            event("user_message", "one-a", &[("chat_id", "1")], None),
            event("user_message", "two-a", &[("chat_id", "2")], None),
            event("user_message", "one-b", &[("chat_id", "1")], None),
        ],
    );
    let bundle = format!(
        "{EMITTER}{}{AGENTS}",
        r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@" }
  ingress:
    rules:
      - match: { event: user_message }
        route: { agentRef: Agent/handler, instanceKeyProperty: chat_id, instanceKeyPrefix: "chat:" }
"#
        .replace("@EVENTS@", &events)
    );
    h.start(&bundle);
    h.wait_received("handler", "chat:1", 2);
    h.wait_received("handler", "chat:2", 1);
    assert_eq!(h.texts("handler", "chat:1"), ["one-a", "one-b"]);
    assert_eq!(h.texts("handler", "chat:2"), ["two-a"]);

    let log1 = h.agent_log("handler", "chat:1");
    let log2 = h.agent_log("handler", "chat:2");
    let pids1 = agent_pids(&log1);
    let pids2 = agent_pids(&log2);
    assert_eq!(
        pids1.len(),
        1,
        "one process served both chat:1 events\n{log1}"
    );
    assert_eq!(pids2.len(), 1, "one process for chat:2\n{log2}");
    assert_ne!(pids1[0], pids2[0], "two keys, two processes");
    // The orchestrator's own note agrees with what the agent says about itself.
    assert_eq!(
        started_pids(&log1),
        pids1,
        "started note vs pid= line\n{log1}"
    );
    assert_eq!(
        started_pids(&log2),
        pids2,
        "started note vs pid= line\n{log2}"
    );
    for pid in [pids1[0], pids2[0]] {
        assert!(
            pid_alive(pid),
            "agent process {pid} is running\n{}",
            h.dump()
        );
    }
    // Both events for chat:1 were printed by that one process: its log has
    // exactly one first line, so no second process wrote there.
    assert_eq!(log1.matches(" pid=").count(), 1, "{log1}");
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// 1,000 events to one key arrive in emit order, each exactly once.
#[test]
fn per_instance_order_for_a_thousand_events() {
    const N: usize = 1000;
    let mut h = Harness::new();
    let all: Vec<_> = (0..N)
        .map(|i| event("note", &format!("m{i:04}"), &[], Some("the-one")))
        .collect();
    let events = h.write_events("events.jsonl", &all);
    let bundle = format!(
        "{EMITTER}{}{AGENTS}",
        r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@" }
"#
        .replace("@EVENTS@", &events)
    );
    h.start(&bundle);
    let what = format!("{N} deliveries to entry/the-one");
    h.wait_until(&what, Duration::from_secs(60), || {
        h.received("entry", "the-one").len() >= N
    });
    h.wait_until("all acks", DEADLINE, || {
        h.connection_log("main").contains("all answered")
    });

    let received = h.received("entry", "the-one");
    assert_eq!(received.len(), N, "each event exactly once");
    let texts: Vec<&str> = received
        .iter()
        .map(|r| r["text"].as_str().expect("text"))
        .collect();
    let want: Vec<String> = (0..N).map(|i| format!("m{i:04}")).collect();
    assert!(
        texts == want,
        "deliveries out of order: first difference at {:?}",
        texts.iter().zip(&want).position(|(a, b)| a != b)
    );
    let mut ids: Vec<&str> = received
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N, "every delivery has its own id");
    assert!(
        received.iter().all(|r| r["attempt"] == 1),
        "no redelivery happened"
    );
    let log = h.connection_log("main");
    assert_eq!(
        log.matches(" stdout ack ").count(),
        N,
        "every emit acked once"
    );
    assert_eq!(
        agent_pids(&h.agent_log("entry", "the-one")).len(),
        1,
        "one process"
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// Instance keys that are not safe file names get escaped log files, and
/// the agent still sees the key as it was.
#[test]
fn instance_keys_are_escaped_in_log_file_names() {
    let mut h = Harness::new();
    let keys = [
        ("webhook:/a/b", "webhook:%2Fa%2Fb"),
        (".hidden", "%2Ehidden"),
        ("100%", "100%25"),
    ];
    let all: Vec<_> = keys
        .iter()
        .map(|(key, _)| event("note", &format!("for {key}"), &[], Some(key)))
        .collect();
    let events = h.write_events("events.jsonl", &all);
    let bundle = format!(
        "{EMITTER}{}{AGENTS}",
        r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@" }
  ingress:
    rules:
      - route: {}
"#
        .replace("@EVENTS@", &events)
    );
    h.start(&bundle);
    for (key, file) in keys {
        assert_eq!(
            escape_key(key),
            file,
            "the harness escapes like docs/architecture.md says"
        );
        let received = h.wait_received("entry", key, 1);
        assert_eq!(received[0]["instanceKey"], key);
        assert_eq!(received[0]["text"], format!("for {key}"));
        let path = h
            .state()
            .join("logs/agents/entry")
            .join(format!("{file}.log"));
        assert!(path.is_file(), "{} exists", path.display());
        assert!(
            h.agent_log("entry", key)
                .contains(&format!(" instanceKey={key}\n")),
            "{}",
            h.dump()
        );
    }
    assert_eq!(
        h.agent_instances().len(),
        keys.len(),
        "{:?}",
        h.agent_instances()
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// A rule whose instanceKeyProperty is absent from the event falls back to
/// the event's own key, and says so once per rule.
#[test]
fn an_absent_key_property_falls_back_to_the_event_key_with_one_warning() {
    let mut h = Harness::new();
    let events = h.write_events(
        "events.jsonl",
        &[
            event(
                "command",
                "with-scope",
                &[("command", "x"), ("scope", "s1")],
                Some("own"),
            ),
            event(
                "command",
                "without-scope-1",
                &[("command", "x")],
                Some("own"),
            ),
            event("command", "without-scope-2", &[("command", "x")], None),
        ],
    );
    let bundle = format!(
        "{EMITTER}{}{AGENTS}",
        r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/emitter
  config: { EVENTS: "@EVENTS@" }
  ingress:
    rules:
      - match: { event: command }
        route: { agentRef: Agent/admin, instanceKeyProperty: scope, instanceKeyPrefix: "scope:" }
"#
        .replace("@EVENTS@", &events)
    );
    h.start(&bundle);
    h.wait_received("admin", "scope:s1", 1);
    h.wait_received("admin", "own", 1);
    // No key on the event either: the Connection's name.
    h.wait_received("admin", "main", 1);
    assert_eq!(h.texts("admin", "own"), ["without-scope-1"]);
    assert_eq!(h.texts("admin", "main"), ["without-scope-2"]);
    let log = h.connection_log("main");
    let warnings = log
        .lines()
        .filter(|l| l.contains("instanceKeyProperty is absent"))
        .count();
    assert_eq!(warnings, 1, "one warning for the rule\n{log}");
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}
