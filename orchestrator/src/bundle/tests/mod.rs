//! Tests for the bundle: validation rules (table-driven), whole bundles,
//! rendered output (snapshots), and the entry / secret look-ups.

mod entry;
mod full;
mod kind_rules;
mod load;
mod report;
mod rules;
mod schema;
mod secrets;
mod shipped;
mod values;
mod versions;

use std::path::Path;

use super::{Bundle, Diagnostic, Source, parse};

/// Parses one text as `bundle.yaml` rooted at `/bundle`.
fn parse_text(text: &str) -> Result<Bundle, Vec<Diagnostic>> {
    parse(
        Path::new("/bundle"),
        &[Source {
            name: "bundle.yaml".into(),
            text: text.into(),
        }],
    )
}

/// The diagnostics of a text that must not parse.
fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse_text(text) {
        Ok(_) => panic!("expected errors, the bundle parsed:\n{text}"),
        Err(d) => d,
    }
}

/// A bundle that parses: the resources most rule tests refer to.
const BASE: &str = "\
apiVersion: goondan.ai/v1
kind: Connector
metadata: {name: tg}
spec:
  entry: ./connector-tg
  events:
    - name: message
      properties:
        chat_id: {}
        text: {type: string}
    - name: command
      properties:
        command: {}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {name: handler}
spec: {entry: ./agent}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {name: admin}
spec: {entry: ./agent}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {name: outsider}
spec: {entry: ./agent}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {name: main}
spec: {entryAgent: handler, agents: [handler, admin]}
---
apiVersion: goondan.ai/v1
kind: Secret
metadata: {name: creds}
spec:
  data:
    TOKEN: {valueFrom: {env: TG_TOKEN}}
---
";

/// A document of `kind` named `name` whose spec is `spec` (indented here);
/// spec line 1 is document line 5, and spec columns shift by 2.
fn doc(kind: &str, name: &str, spec: &str) -> String {
    let mut out =
        format!("apiVersion: goondan.ai/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n");
    for line in spec.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn base_bundle_parses() {
    let bundle = parse_text(BASE).expect("BASE is valid");
    assert_eq!(bundle.agents.len(), 3);
    assert_eq!(bundle.connectors["tg"].events.len(), 2);
}

#[test]
fn only_one_connection_reads_stdin() {
    let text = format!(
        "{BASE}{}---\n{}---\n{}",
        doc(
            "Connector",
            "cli",
            "entry: ./cli\nstdin: inherit\nevents: [{name: line}]"
        ),
        doc("Connection", "first", "connectorRef: Connector/cli"),
        doc("Connection", "second", "connectorRef: Connector/cli"),
    );
    let got: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains(
            "Connection/second: `spec.connectorRef`: its Connector reads the orchestrator's stdin"
        ) && got[0].contains("Connection/first already does"),
        "{}",
        got[0]
    );
    // One alone is fine, and says so in the model.
    let one = format!(
        "{BASE}{}---\n{}",
        doc(
            "Connector",
            "cli",
            "entry: ./cli\nstdin: inherit\nevents: [{name: line}]"
        ),
        doc("Connection", "first", "connectorRef: Connector/cli"),
    );
    assert!(parse_text(&one).expect("valid").connectors["cli"].stdin);
}

#[test]
fn a_misspelled_kind_is_one_error_with_a_suggestion() {
    // The Connector is spelled wrong; the Connection that refers to it is
    // not reported as well.
    let text = format!(
        "{BASE}{}---\n{}",
        doc("Conector", "hook", "entry: ./hook\nevents: [{name: x}]"),
        doc("Connection", "main", "connectorRef: Connector/hook"),
    );
    let got: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains("unknown kind `Conector`; did you mean `Connector`?"),
        "{}",
        got[0]
    );
}

#[test]
fn a_reference_to_a_missing_name_suggests_a_close_one() {
    let text = format!(
        "{BASE}{}",
        doc(
            "Connection",
            "main",
            "connectorRef: Connector/tg\nswarmRef: Swarm/mian"
        ),
    );
    let got: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains("no Swarm named `mian` in the bundle; did you mean `main`?"),
        "{}",
        got[0]
    );
}

#[test]
fn goondan_only_kinds_and_agent_fields_say_how_to_port() {
    let text = format!(
        "{BASE}{}---\n{}",
        doc("Model", "gpt", "provider: openai"),
        doc(
            "Agent",
            "llm",
            "entry: ./agent\nprompt: {system: hi}\nmodelConfig: {model: gpt}"
        ),
    );
    let got: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].contains(
            "`kind`: `Model` is a Goondan resource: this orchestrator runs each agent as a program"
        ),
        "{}",
        got[0]
    );
    assert!(
        got[1].contains("`prompt` is a Goondan agent field"),
        "{}",
        got[1]
    );
    assert!(
        got[2].contains("`modelConfig` is a Goondan agent field"),
        "{}",
        got[2]
    );
    assert!(got.iter().all(|e| e.contains("Porting a Goondan agent")));
}

#[test]
fn a_swarm_agent_may_be_a_ref_object() {
    let text = format!(
        "{BASE}{}",
        doc(
            "Swarm",
            "refs",
            "entryAgent: {ref: Agent/handler}\nagents: [{ref: \"Agent/handler\"}, {kind: Agent, name: admin}, outsider]"
        ),
    );
    let bundle = parse_text(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(
        bundle.swarms["refs"].agents,
        ["handler", "admin", "outsider"]
    );
}
