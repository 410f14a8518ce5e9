//! How a broken bundle is reported as a whole: every problem, in document
//! order, each at its place; and what a hostile file gets.

use std::path::Path;

use super::super::{Diagnostic, Source, parse};
use super::{diagnostics, doc};

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// Two files, five documents, one problem in each of four and two in one.
fn broken_sources() -> Vec<Source> {
    let first = [
        doc("Connector", "tg", "entry: ./connector-tg\nprotocol: grpc\nevents:\n  - name: message\n    properties: {chat_id: {type: integer}}"),
        doc("Agent", "handler", "entry: ./agent\nmaxQueue: 0"),
        doc("Swarm", "main", "entryAgent: handler\nagents: [handler]"),
    ]
    .join("---\n");
    let second = [
        doc(
            "Connection",
            "tg",
            "connectorRef: tg\ningress:\n  rules:\n    - match: {event: message}\n      route: {agentRef: Agent/handler, instanceKey: a, instanceKeyProperty: chat_id}",
        ),
        doc("Secret", "bad/name", "data: {K: {valueFrom: {env: K}}}"),
    ]
    .join("---\n");
    vec![
        Source {
            name: "b/resources.yaml".into(),
            text: first,
        },
        Source {
            name: "a/connections.yaml".into(),
            text: second,
        },
    ]
}

#[test]
fn every_problem_is_reported_in_document_order() {
    let diags = parse(Path::new("/b"), &broken_sources()).expect_err("broken");
    let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let want = [
        "b/resources.yaml:6:13: Connector/tg: `spec.protocol`: unknown value `grpc`, expected one of: frames, jsonl",
        "b/resources.yaml:9:36: Connector/tg: `spec.events[0].properties.chat_id.type`: unknown value `integer`, expected one of: string, number, boolean",
        "b/resources.yaml:16:13: Agent/handler: `spec.maxQueue`: must be at least 1, found 0",
        "a/connections.yaml:9:16: Connection/tg: route sets both instanceKey and instanceKeyProperty",
        "a/connections.yaml:13:18: Secret: `metadata.name`: invalid name `bad/name`: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    ];
    assert_eq!(got, want);
}

#[test]
fn broken_bundle_renders_for_humans() {
    let diags = parse(Path::new("/b"), &broken_sources()).expect_err("broken");
    insta::assert_snapshot!(render(&diags));
}

#[test]
fn a_yaml_error_in_one_file_keeps_the_other_files_checks() {
    let sources = [
        Source {
            name: "good.yaml".into(),
            text: doc("Agent", "a", "entry: ./a\nmaxQueue: 0"),
        },
        Source {
            name: "bad.yaml".into(),
            text: "kind: Agent\nspec: {entry: [\n".into(),
        },
    ];
    let diags = parse(Path::new("/b"), &sources).expect_err("broken");
    let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].starts_with("good.yaml:6:13: Agent/a: `spec.maxQueue`"),
        "{got:#?}"
    );
    assert!(
        got[1].starts_with("bad.yaml:") && got[1].contains("invalid YAML"),
        "{got:#?}"
    );
}

#[test]
fn an_alias_bomb_fails_cleanly() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let diags = diagnostics(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(diags[0].message.starts_with("invalid YAML"), "{}", diags[0]);
    assert!(diags[0].place.is_some(), "{}", diags[0]);
}

#[test]
fn deep_nesting_fails_cleanly() {
    let text = format!("spec: {}1{}\n", "[".repeat(200), "]".repeat(200));
    let diags = diagnostics(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(diags[0].message.starts_with("invalid YAML"), "{}", diags[0]);
}

#[test]
fn an_oversized_source_is_refused_unparsed() {
    let text = format!("# {}\n", "x".repeat(super::super::node::MAX_SOURCE_BYTES));
    let diags = diagnostics(&text);
    assert!(diags[0].message.contains("more than the"), "{}", diags[0]);
}

#[test]
fn diagnostic_display_omits_what_it_does_not_know() {
    let place = super::super::Place {
        file: "bundle.yaml".into(),
        line: 14,
        column: 7,
    };
    let full = Diagnostic {
        place: Some(place.clone()),
        resource: Some("Connection/tg".into()),
        message: "route sets both instanceKey and instanceKeyProperty".into(),
    };
    assert_eq!(
        full.to_string(),
        "bundle.yaml:14:7: Connection/tg: route sets both instanceKey and instanceKeyProperty"
    );
    let bare = Diagnostic {
        place: Some(place),
        resource: None,
        message: "invalid YAML: x".into(),
    };
    assert_eq!(bare.to_string(), "bundle.yaml:14:7: invalid YAML: x");
    assert_eq!(
        Diagnostic::global("no resources").to_string(),
        "no resources"
    );
}
