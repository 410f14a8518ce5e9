//! `connector.yaml` against the mapping: every test payload becomes a
//! declared event carrying only declared properties, with the required ones.

mod common;

use std::collections::BTreeMap;

use common::{crate_dir, event_payloads};
use connector_sdk::Event;
use connector_slack::commands::{self, Form};
use connector_slack::events::{self, GENERIC, NAMED};
use connector_slack::interactions;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Doc {
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

fn declared() -> BTreeMap<String, BTreeMap<String, PropDecl>> {
    let text = std::fs::read_to_string(crate_dir().join("connector.yaml")).unwrap();
    let doc: Doc = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc.spec.entry, "connector-slack");
    doc.spec
        .events
        .into_iter()
        .map(|e| (e.name, e.properties))
        .collect()
}

fn check(decls: &BTreeMap<String, BTreeMap<String, PropDecl>>, label: &str, event: &Event) {
    let decl = decls
        .get(&event.name)
        .unwrap_or_else(|| panic!("{label}: {} is not declared", event.name));
    for key in event.properties.keys() {
        let p = decl
            .get(key)
            .unwrap_or_else(|| panic!("{label}: property {key} is not declared"));
        assert_eq!(p.ty, "string", "{label}: {key}");
    }
    for (key, p) in decl {
        assert!(
            p.optional || event.properties.contains_key(key),
            "{label}: required {key} is missing"
        );
    }
}

#[test]
fn declared_events_are_the_fixed_list() {
    let decls = declared();
    let mut want: Vec<&str> = NAMED.to_vec();
    want.extend([commands::SLASH_COMMAND, GENERIC]);
    want.extend(interactions::NAMED);
    want.push(interactions::GENERIC);
    want.sort_unstable();
    let got: Vec<&str> = decls.keys().map(String::as_str).collect();
    assert_eq!(got, want);
    for (name, props) in &decls {
        let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
        let interaction =
            interactions::NAMED.contains(&name.as_str()) || name == interactions::GENERIC;
        let mut mapped: Vec<&str> = if name == commands::SLASH_COMMAND {
            vec!["command", "team", "channel", "user", "response_ref"]
        } else if interaction {
            interactions::PROPERTIES.to_vec()
        } else {
            events::properties_of(name).to_vec()
        };
        keys.sort_unstable();
        mapped.sort_unstable();
        assert_eq!(
            keys, mapped,
            "{name}: the mapping and the declaration agree"
        );
    }
}

#[test]
fn every_test_payload_maps_to_a_declared_event() {
    let decls = declared();
    for (stem, _, json) in event_payloads() {
        let m = events::map_callback(&json).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let ty = stem.split('.').next().unwrap();
        let want = if NAMED.contains(&ty) { ty } else { GENERIC };
        assert_eq!(m.event.name, want, "{stem}");
        assert!(m.event_id.is_some(), "{stem}");
        check(&decls, &stem, &m.event);
    }
    let vector = common::slack_vector();
    let body = vector["payload"].as_str().unwrap();
    let Ok(Form::Command { event, .. }) = commands::parse(body.as_bytes()) else {
        panic!("the Slack vector is a slash command");
    };
    check(&decls, "the slack vector", &event);

    let payloads = [
        json!({"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1"},
               "channel": {"id": "C1"}, "container": {"message_ts": "1.0"},
               "actions": [{"action_id": "a", "block_id": "b", "value": "v"}]}),
        json!({"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1"},
               "view": {"id": "V1", "callback_id": "c"}}),
        json!({"type": "shortcut", "team": {"id": "T1"}, "user": {"id": "U1"}, "callback_id": "s"}),
    ];
    for p in payloads {
        let mut i = interactions::map_payload(&p).unwrap();
        i.event
            .properties
            .insert("response_ref".into(), "rsp_x".into());
        check(&decls, &p["type"].to_string(), &i.event);
    }
}
