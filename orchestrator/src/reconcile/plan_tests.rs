use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::bundle::{Source, parse};

const BASE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: c }
spec: { entry: ./c, events: [{ name: e }] }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: conn }
spec:
  connectorRef: Connector/c
  config: { PORT: "1" }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: s }
spec: { entryAgent: Agent/a, agents: [Agent/a] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: a }
spec: { entry: ./a, maxAttempts: 5 }
"#;

fn bundle(text: &str) -> Bundle {
    let source = Source {
        name: "b.yaml".into(),
        text: text.into(),
    };
    parse(Path::new("/"), &[source]).unwrap_or_else(|e| panic!("{e:?}"))
}

fn plan_of(a: &str, b: &str) -> Plan {
    plan(&bundle(a), &bundle(b), &BTreeMap::new(), &BTreeMap::new())
}

#[test]
fn the_same_bundle_is_no_change() {
    let p = plan_of(BASE, BASE);
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.action("connection/conn"), Action::Keep);
}

#[test]
fn routing_and_limits_change_in_place_program_changes_restart() {
    let live = BASE.replace("maxAttempts: 5", "maxAttempts: 9");
    let p = plan_of(BASE, &live);
    assert_eq!(p.action("agent/a"), Action::Update);
    assert_eq!(p.resources[0].fields, ["spec.maxAttempts"]);

    let restart = BASE.replace("entry: ./a,", "entry: ./a, args: [x],");
    assert_eq!(plan_of(BASE, &restart).action("agent/a"), Action::Restart);

    let config = BASE.replace("PORT: \"1\"", "PORT: \"2\"");
    let p = plan_of(BASE, &config);
    assert_eq!(p.action("connection/conn"), Action::Restart);
    assert_eq!(p.resources[0].fields, ["spec.config.PORT"]);

    let connector = BASE.replace("entry: ./c,", "entry: ./c, args: [y],");
    let p = plan_of(BASE, &connector);
    assert_eq!(p.action("connection/conn"), Action::Restart);
    assert_eq!(p.action("agent/a"), Action::Keep);
}

#[test]
fn disabled_and_removed_children() {
    let off = BASE.replace(
        "config: { PORT: \"1\" }",
        "config: { PORT: \"1\" }\n  enabled: false",
    );
    assert_eq!(
        plan_of(BASE, &off).action("connection/conn"),
        Action::Disable
    );
    assert_eq!(plan_of(&off, BASE).action("connection/conn"), Action::Start);
    let gone: String = BASE
        .split("\n---\n")
        .filter(|d| !d.contains("kind: Connection\n"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let p = plan_of(BASE, &gone);
    assert_eq!(p.action("connection/conn"), Action::Stop);
    assert_eq!(p.resources[0].change, "removed");
}

#[test]
fn rotated_secret_values_restart_and_are_named() {
    let (b, _) = (bundle(BASE), ());
    let digests = |v: u8| {
        let mut d = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        secrets.insert("TOKEN".to_string(), [v; 32]);
        d.insert(
            "Connection/conn".to_string(),
            Digests {
                secrets,
                config: [0; 32],
            },
        );
        d
    };
    let p = plan(&b, &b, &digests(1), &digests(2));
    assert_eq!(p.action("connection/conn"), Action::Restart);
    let child = p.children.iter().find(|c| c.target == "connection/conn");
    assert_eq!(
        child.map(|c| c.rotated.clone()),
        Some(vec!["TOKEN".to_string()])
    );
    assert!(!p.is_empty());
}

/// What `orchestrator diff` prints, as operators read it.
#[test]
fn diff_text() {
    let new = BASE
        .replace("maxAttempts: 5", "maxAttempts: 9")
        .replace("PORT: \"1\"", "PORT: \"2\"")
        + r#"
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: extra }
spec: { entry: ./a }
"#;
    insta::assert_snapshot!(plan_of(BASE, &new).render());
    insta::assert_snapshot!("no_difference", plan_of(BASE, BASE).render());
}
