use std::collections::BTreeMap;

use ipc_proto::Event;

use super::*;
use crate::bundle::{Connection, Ingress, Place, Rule, Swarm};

fn place() -> Place {
    Place {
        file: "bundle.yaml".into(),
        line: 1,
        column: 1,
    }
}

fn swarm() -> Swarm {
    Swarm {
        name: "default".into(),
        place: place(),
        entry_agent: "entry".into(),
        agents: vec!["entry".into(), "admin".into(), "handler".into()],
    }
}

fn connection(rules: Vec<Rule>, unmatched: Unmatched) -> Connection {
    Connection {
        name: "tg".into(),
        place: place(),
        connector: "telegram".into(),
        connector_version: None,
        swarm: "default".into(),
        config: BTreeMap::new(),
        secrets: BTreeMap::new(),
        ingress: Ingress { rules, unmatched },
        restart: None,
        rate_limit: None,
        overflow: Default::default(),
        operations: Default::default(),
        placement: Default::default(),
        enabled: true,
    }
}

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn event(name: &str, properties: &[(&str, &str)], key: Option<&str>) -> Event {
    Event {
        name: name.into(),
        message: None,
        properties: props(properties),
        instance_key: key.map(Into::into),
        payload: None,
    }
}

/// An example Connection's rules: a chat bot with an admin command.
fn design_rules() -> Vec<Rule> {
    vec![
        Rule {
            event: Some("command".into()),
            properties: props(&[("command", "/reset")]),
            agent: Some("admin".into()),
            key: KeySource::Fixed("admin".into()),
            ..Default::default()
        },
        Rule {
            event: Some("user_message".into()),
            agent: Some("handler".into()),
            key: KeySource::Property {
                name: "chat_id".into(),
                prefix: "tg:".into(),
            },
            ..Default::default()
        },
        Rule::default(),
    ]
}

fn deliver(agent: &str, key: &str, rule: Option<usize>) -> Decision {
    Decision::Deliver(Route {
        agent: agent.into(),
        instance_key: key.into(),
        rule,
        key_fell_back: false,
    })
}

#[test]
fn table() {
    let sw = swarm();
    let cases: Vec<(&str, Connection, Event, Decision)> = vec![
        (
            "event + properties match the first rule",
            connection(design_rules(), Unmatched::EntryAgent),
            event("command", &[("command", "/reset")], Some("telegram:1")),
            deliver("admin", "admin", Some(0)),
        ),
        (
            "properties are ANDed: one differs, so the catch-all wins",
            connection(design_rules(), Unmatched::EntryAgent),
            event("command", &[("command", "/start")], Some("telegram:1")),
            deliver("entry", "telegram:1", Some(2)),
        ),
        (
            "instanceKeyProperty with prefix",
            connection(design_rules(), Unmatched::EntryAgent),
            event("user_message", &[("chat_id", "42")], Some("telegram:42")),
            deliver("handler", "tg:42", Some(1)),
        ),
        (
            "first match wins even when a later rule is more specific",
            connection(
                vec![
                    Rule {
                        agent: Some("handler".into()),
                        ..Default::default()
                    },
                    Rule {
                        event: Some("x".into()),
                        agent: Some("admin".into()),
                        ..Default::default()
                    },
                ],
                Unmatched::EntryAgent,
            ),
            event("x", &[], Some("k")),
            deliver("handler", "k", Some(0)),
        ),
        (
            "unmatched goes to the entryAgent with the event's key",
            connection(vec![design_rules().remove(0)], Unmatched::EntryAgent),
            event("other", &[], Some("telegram:7")),
            deliver("entry", "telegram:7", None),
        ),
        (
            "unmatched: drop",
            connection(vec![design_rules().remove(0)], Unmatched::Drop),
            event("other", &[], Some("telegram:7")),
            Decision::Drop,
        ),
        (
            "no rules at all: entryAgent",
            connection(vec![], Unmatched::EntryAgent),
            event("other", &[], Some("x")),
            deliver("entry", "x", None),
        ),
        (
            "an event without a key gets one instance per connection",
            connection(vec![], Unmatched::EntryAgent),
            event("other", &[], None),
            deliver("entry", "tg", None),
        ),
        (
            "a property match needs the property present",
            connection(
                vec![Rule {
                    properties: props(&[("a", "1")]),
                    agent: Some("admin".into()),
                    ..Default::default()
                }],
                Unmatched::Drop,
            ),
            event("x", &[], Some("k")),
            Decision::Drop,
        ),
    ];
    for (name, conn, ev, want) in cases {
        assert_eq!(route(&conn, &sw, &ev), want, "{name}");
    }
}

#[test]
fn missing_key_property_falls_back_and_says_so() {
    let conn = connection(design_rules(), Unmatched::EntryAgent);
    let got = route(
        &conn,
        &swarm(),
        &event("user_message", &[], Some("telegram:9")),
    );
    assert_eq!(
        got,
        Decision::Deliver(Route {
            agent: "handler".into(),
            instance_key: "telegram:9".into(),
            rule: Some(1),
            key_fell_back: true,
        })
    );
}
