//! Every GitHub payload example in `testdata/payloads/` through the event
//! mapping, checked against `connector.yaml` the way the orchestrator checks
//! an emit; and `connector.yaml` itself, generated from those payloads.
//!
//! Regenerate `connector.yaml` after changing the payloads or the catalog:
//! `UPDATE_CONNECTOR_YAML=1 cargo test -p connector-github --test payloads`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use common::{Sample, connector_yaml_path, samples};
use connector_github::{auth, catalog, config, mapping};
use connector_webhook::listen;
use serde::Deserialize;

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    spec: Spec,
}

#[derive(Deserialize)]
struct Spec {
    entry: String,
    events: Vec<EventDecl>,
}

#[derive(Deserialize)]
struct EventDecl {
    name: String,
    #[serde(default)]
    properties: BTreeMap<String, PropDecl>,
}

#[derive(Deserialize)]
struct PropDecl {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    optional: bool,
}

/// Every event name the payloads yield, with its `X-GitHub-Event` and whether it has an action.
fn observed(samples: &[Sample]) -> BTreeMap<String, (String, bool)> {
    samples
        .iter()
        .map(|s| {
            let has_action = s.json["action"].is_string();
            (s.expected_name(), (s.folder.clone(), has_action))
        })
        .collect()
}

/// Event types with actions whose bare name no payload yields: each gets a
/// fallback declaration.
fn fallbacks(observed: &BTreeMap<String, (String, bool)>) -> BTreeSet<String> {
    let with_action: BTreeSet<String> = observed
        .values()
        .filter(|(_, a)| *a)
        .map(|(f, _)| f.clone())
        .collect();
    with_action
        .into_iter()
        .filter(|f| !observed.contains_key(f))
        .collect()
}

/// A duration as `Settings::duration` reads it (humantime: `30s`, `1h 30m`).
const DURATION: &str = r"^\s*([0-9]+\s*[A-Za-zµ]+\s*)+$";

/// `spec.config`: the JSON Schema of each key the connector reads, in the
/// order written (values are strings). The keys must be exactly those of
/// `listen::KEYS` and `config::KEYS` (checked below), so that
/// `additionalProperties: false` refuses only what the connector ignores.
fn config_schema() -> Vec<(&'static str, String)> {
    let duration = || format!("{{ type: string, pattern: '{DURATION}' }}");
    let number = || r#"{ type: string, pattern: "^[0-9]+$" }"#.to_owned();
    let keys = vec![
        ("HOST", "{ type: string, minLength: 1 }".to_owned()),
        (
            "PORT",
            r#"{ type: string, pattern: "^[0-9]{1,5}$" }"#.to_owned(),
        ),
        ("MAX_BODY_BYTES", number()),
        ("HEADER_TIMEOUT", duration()),
        ("BODY_TIMEOUT", duration()),
        ("IDLE_TIMEOUT", duration()),
        ("MAX_CONNECTIONS", number()),
        (
            "API_BASE",
            r#"{ type: string, pattern: "^https?://" }"#.to_owned(),
        ),
        ("APP_ID", "{ type: string, minLength: 1 }".to_owned()),
        ("INSTALLATION_ID", number()),
        (
            "MAX_DELIVERY_AGE",
            r"{ type: string, pattern: '^\s*(off\s*|([0-9]+\s*[A-Za-zµ]+\s*)+)$' }".to_owned(),
        ),
    ];
    let declared: BTreeSet<&str> = keys.iter().map(|(k, _)| *k).collect();
    let read: BTreeSet<&str> = listen::KEYS.iter().chain(config::KEYS).copied().collect();
    assert_eq!(
        declared, read,
        "spec.config declares the keys the connector reads"
    );
    keys
}

/// `spec.version`, `spec.config` and `spec.secrets`.
fn declarations() -> String {
    let mut y = String::new();
    let _ = writeln!(y, "  version: {}", env!("CARGO_PKG_VERSION"));
    y.push_str("  config:                           # JSON Schema of a Connection's spec.config (values are strings)\n");
    y.push_str("    type: object\n    additionalProperties: false\n    properties:\n");
    for (key, schema) in config_schema() {
        let _ = writeln!(y, "      {key}: {schema}");
    }
    let _ = writeln!(
        y,
        "  secrets:\n    required: [{}]\n    optional: [{}, {}]",
        connector_github::SECRET,
        auth::TOKEN_SECRET,
        auth::KEY_SECRET
    );
    y
}

/// The whole of `connector.yaml`.
fn render(observed: &BTreeMap<String, (String, bool)>, payloads: usize) -> String {
    let mut y = String::new();
    let folders: BTreeSet<&str> = observed.values().map(|(f, _)| f.as_str()).collect();
    let _ = write!(
        y,
        "\
# The Connector resource of connector-github; include it in a bundle as one of
# its documents. GENERATED from the {payloads} GitHub payload examples ({} event
# types) in testdata/payloads/ by connector-github's tests: do not edit by hand;
#   UPDATE_CONNECTOR_YAML=1 cargo test -p connector-github --test payloads
# An action the examples never showed (e.g. issues.closed) arrives under the
# bare event name (`issues`) with its `action` property; an event type unknown
# here arrives as `unknown_event` with its `event` property. Route on those
# with match.properties. See README.md for what each property holds.
# spec.config declares the keys the connector reads (src/config.rs and
# connector-webhook's listener), spec.secrets the secrets (README.md, Secrets);
# spec.operations is copied from operations.yaml: edit it there.
apiVersion: goondan.ai/v1
kind: Connector
metadata:
  name: github
spec:
  entry: connector-github
  protocol: frames
",
        folders.len()
    );
    y.push_str(&declarations());
    y.push_str("  events:\n");
    let write = |y: &mut String, name: &str, props: Vec<catalog::Declared>| {
        let _ = writeln!(y, "    - name: {name}\n      properties:");
        for p in props {
            let optional = if p.optional { ", optional: true" } else { "" };
            let _ = writeln!(
                y,
                "        {}: {{ type: {}{optional} }}",
                p.name,
                p.ty.name()
            );
        }
    };
    for (name, (folder, has_action)) in observed {
        write(&mut y, name, catalog::declared(folder, *has_action));
    }
    // The fallbacks: `<event>` for actions the examples never showed, and
    // one name for event types this connector does not know.
    for folder in fallbacks(observed) {
        write(&mut y, &folder, catalog::declared_fallback(&folder));
    }
    write(&mut y, mapping::UNKNOWN_EVENT, catalog::declared_unknown());
    // The operations, as written in operations.yaml, under `spec:`.
    let ops = std::fs::read_to_string(common::crate_dir().join("operations.yaml")).unwrap();
    for line in ops.lines().skip_while(|l| l.starts_with('#')) {
        if line.is_empty() {
            y.push('\n');
        } else {
            let _ = writeln!(y, "  {line}");
        }
    }
    y
}

#[test]
fn connector_yaml_is_generated_from_the_payloads() {
    let samples = samples();
    assert_eq!(samples.len(), 274, "the payload examples are all there");
    let want = render(&observed(&samples), samples.len());
    let path = connector_yaml_path();
    if std::env::var_os("UPDATE_CONNECTOR_YAML").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "{} is not what the payloads give; regenerate it with \
         UPDATE_CONNECTOR_YAML=1 cargo test -p connector-github --test payloads",
        path.display()
    );
}

/// `examples/github-bot/bundle.yaml` ends with `connector.yaml`, after the
/// line that says so, plus the example's sandbox.
#[test]
fn the_example_bundle_carries_this_connector_yaml() {
    let connector = std::fs::read_to_string(connector_yaml_path()).unwrap();
    let path = common::crate_dir().join("../../examples/github-bot/bundle.yaml");
    let bundle = std::fs::read_to_string(&path).unwrap();
    const MARK: &str = "\n---\n# The Connector resource of connector-github";
    let at = bundle.find(MARK).expect("the bundle's Connector document") + 5;
    // The example's own sandbox, between these two lines after `spec:`
    // (tests/tests/egress_examples.rs checks it), is kept.
    let (begin, end) = ("  # >>> example sandbox", "  # <<< example sandbox\n");
    let sandbox = |text: &str| -> (usize, usize) {
        let from = text.find(begin).expect("the example's sandbox");
        let to = text[from..].find(end).expect("its end") + from + end.len();
        (from, to)
    };
    if std::env::var_os("UPDATE_CONNECTOR_YAML").is_some() {
        let (from, to) = sandbox(&bundle[at..]);
        let lines = &bundle[at + from..at + to];
        let spec = connector.find("\nspec:\n").expect("spec:") + "\nspec:\n".len();
        let copy = format!("{}{lines}{}", &connector[..spec], &connector[spec..]);
        std::fs::write(&path, format!("{}{copy}", &bundle[..at])).unwrap();
    }
    let bundle = std::fs::read_to_string(&path).unwrap();
    let (from, to) = sandbox(&bundle[at..]);
    let without = format!("{}{}", &bundle[at..at + from], &bundle[at + to..]);
    assert!(
        without == connector,
        "{} does not end with connector.yaml; copy it with \
         UPDATE_CONNECTOR_YAML=1 cargo test -p connector-github --test payloads",
        path.display()
    );
}

#[test]
fn every_payload_maps_to_a_declared_event_with_declared_properties() {
    let text = std::fs::read_to_string(connector_yaml_path()).unwrap();
    let doc: Doc = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        (doc.api_version.as_str(), doc.kind.as_str()),
        ("goondan.ai/v1", "Connector")
    );
    assert_eq!(doc.spec.entry, "connector-github");
    let declared: BTreeMap<&str, &EventDecl> = doc
        .spec
        .events
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    assert_eq!(
        declared.len(),
        doc.spec.events.len(),
        "no event declared twice"
    );

    let samples = samples();
    let mut seen = BTreeSet::new();
    for s in &samples {
        let event = mapping::map(&s.folder, &s.json);
        let label = s.label();
        assert_eq!(event.name, s.expected_name(), "{label}");
        seen.insert(event.name.clone());
        let decl = declared
            .get(event.name.as_str())
            .unwrap_or_else(|| panic!("{label}: event {} is not declared", event.name));
        for (key, value) in &event.properties {
            let p = decl
                .properties
                .get(key)
                .unwrap_or_else(|| panic!("{label}: property {key} is not declared"));
            assert!(!value.is_empty(), "{label}: {key} is empty");
            if p.ty == "number" {
                assert!(value.parse::<u64>().is_ok(), "{label}: {key}={value}");
            }
        }
        for (key, p) in &decl.properties {
            assert!(
                p.optional || event.properties.contains_key(key),
                "{label}: required property {key} is missing"
            );
        }
        let key = event.instance_key.as_deref().unwrap_or_default();
        assert!(
            key.starts_with("github:") && key.len() > 7,
            "{label}: {key}"
        );
        let text = event
            .message
            .as_ref()
            .and_then(|m| m.as_text())
            .unwrap_or_default();
        assert!(
            !text.is_empty() && !text.contains('\n'),
            "{label}: {text:?}"
        );
    }
    let declared_names: BTreeSet<String> = declared.keys().map(|k| k.to_string()).collect();
    let mut expected = seen.clone();
    expected.extend(fallbacks(&observed(&samples)));
    expected.insert(mapping::UNKNOWN_EVENT.to_owned());
    assert_eq!(
        expected, declared_names,
        "every declared event comes from a payload, or is a fallback"
    );
}

/// Real deliveries the examples do not show still get a declared name.
#[test]
fn unlisted_actions_and_unknown_events_fall_back_to_declared_names() {
    let text = std::fs::read_to_string(connector_yaml_path()).unwrap();
    let doc: Doc = serde_saphyr::from_str(&text).unwrap();
    let declared: BTreeMap<&str, &EventDecl> = doc
        .spec
        .events
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let opened = samples()
        .into_iter()
        .find(|s| s.folder == "issues" && s.file == "opened.payload.json")
        .expect("issues/opened");
    let mut payload = opened.json.clone();
    payload["action"] = "a_future_action".into();
    let event = mapping::map("issues", &payload);
    assert_eq!(event.name, "issues");
    assert_eq!(event.properties["action"], "a_future_action");
    assert_eq!(event.properties["number"], "1");
    let decl = declared.get("issues").expect("the fallback is declared");
    for key in event.properties.keys() {
        assert!(decl.properties.contains_key(key), "issues declares {key}");
    }

    let event = mapping::map("a_brand_new_event", &payload);
    assert_eq!(event.name, mapping::UNKNOWN_EVENT);
    assert_eq!(event.properties["event"], "a_brand_new_event");
    let decl = declared.get(mapping::UNKNOWN_EVENT).expect("declared");
    for key in event.properties.keys() {
        assert!(
            decl.properties.contains_key(key),
            "{} declares {key}",
            mapping::UNKNOWN_EVENT
        );
    }
}

#[test]
fn instance_keys_follow_issues_refs_and_repositories() {
    let by_file = |folder: &str, file: &str| {
        let s = samples()
            .into_iter()
            .find(|s| s.folder == folder && s.file == file)
            .unwrap_or_else(|| panic!("{folder}/{file}"));
        mapping::map(&s.folder, &s.json)
    };
    let pr = by_file("pull_request", "opened.payload.json");
    assert_eq!(pr.name, "pull_request.opened");
    assert_eq!(
        pr.instance_key.as_deref(),
        Some("github:Codertocat/Hello-World#2")
    );
    assert_eq!(pr.properties["number"], "2");
    assert_eq!(pr.properties["sender"], "Codertocat");
    let comment = by_file("issue_comment", "created.payload.json");
    assert_eq!(
        comment.instance_key.as_deref(),
        Some("github:Codertocat/Hello-World#1")
    );
    let push = by_file("push", "payload.json");
    assert_eq!(push.properties["ref"], "refs/tags/simple-tag");
    assert_eq!(
        push.instance_key.as_deref(),
        Some("github:Codertocat/Hello-World@refs/tags/simple-tag")
    );
    let star = by_file("star", "created.payload.json");
    assert_eq!(
        star.instance_key.as_deref(),
        Some("github:Codertocat/Hello-World")
    );
}
