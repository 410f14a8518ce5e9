//! One case per validation rule: a small document added to [`BASE`], the
//! message it must produce, and where.

use super::{BASE, diagnostics, doc, kind_rules};

#[derive(Clone)]
pub(super) struct Case {
    name: &'static str,
    /// The document appended to BASE.
    text: String,
    want: &'static str,
    /// line:column within `text`.
    at: (usize, usize),
}

/// A case whose position is given inside the spec snippet (see [`doc`]).
pub(super) fn spec(
    name: &'static str,
    kind: &str,
    body: &str,
    want: &'static str,
    at: (usize, usize),
) -> Case {
    Case {
        name,
        text: doc(kind, "x", body),
        want,
        at: (at.0 + 4, at.1 + 2),
    }
}

/// A case given as a whole document.
fn raw(name: &'static str, text: &str, want: &'static str, at: (usize, usize)) -> Case {
    Case {
        name,
        text: text.to_owned(),
        want,
        at,
    }
}

fn header_cases() -> Vec<Case> {
    vec![
        raw(
            "apiVersion",
            "apiVersion: goondan.ai/v2\nkind: Agent\nmetadata: {name: a}\nspec: {entry: x}\n",
            "unsupported apiVersion `goondan.ai/v2`, expected goondan.ai/v1",
            (1, 13),
        ),
        raw(
            "unknown kind",
            "apiVersion: goondan.ai/v1\nkind: Pipeline\nmetadata: {name: a}\nspec: {}\n",
            "`kind`: unknown kind `Pipeline`, expected one of: Connector, Connection, Swarm, Agent, Secret",
            (2, 7),
        ),
        raw(
            "missing kind",
            "apiVersion: goondan.ai/v1\nmetadata: {name: a}\n",
            "missing required field `kind`",
            (1, 1),
        ),
        raw(
            "not a mapping",
            "- a\n- b\n",
            "expected a mapping with apiVersion, kind, metadata and spec, found a list",
            (1, 1),
        ),
        raw(
            "missing name",
            "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {labels: {a: b}}\nspec: {entry: x}\n",
            "missing required field `name` in `metadata`",
            (3, 11),
        ),
        raw(
            "bad name",
            "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: ../etc}\nspec: {entry: x}\n",
            "`metadata.name`: invalid name `../etc`",
            (3, 18),
        ),
        raw(
            "duplicate name",
            &doc("Agent", "handler", "entry: ./other"),
            "duplicate Agent name `handler`, first defined at bundle.yaml:15:1",
            (3, 18),
        ),
        raw(
            "label not scalar",
            "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: a, labels: {team: [x]}}\nspec: {entry: x}\n",
            "`metadata.labels.team`: expected a string, number or boolean, found a list",
            (3, 36),
        ),
        raw(
            "missing spec",
            "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: a}\n",
            "missing required field `spec` in Agent document",
            (1, 1),
        ),
        raw(
            "unknown top-level field",
            "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: a}\nstatus: {}\nspec: {entry: x}\n",
            "unknown field `status` in Agent document, expected one of: apiVersion, kind, metadata, spec",
            (4, 1),
        ),
        raw(
            "yaml syntax",
            "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: [a}\n",
            "invalid YAML",
            (3, 18),
        ),
        raw(
            "duplicate field",
            "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: a}\nspec: {entry: x, entry: y}\n",
            "duplicate field `entry` in Agent spec",
            (4, 18),
        ),
    ]
}

fn connection_cases() -> Vec<Case> {
    let c = |name, body: &str, want, at| spec(name, "Connection", body, want, at);
    vec![
        c(
            "unknown field",
            "connectorRef: tg\nfoo: 1",
            "unknown field `foo` in Connection spec, expected one of: connectorRef, swarmRef, config, secrets, ingress, restart, rateLimit, overflow, operations, enabled",
            (2, 1),
        ),
        c(
            "missing connectorRef",
            "swarmRef: main",
            "missing required field `connectorRef` in Connection spec",
            (1, 1),
        ),
        c(
            "ref of wrong kind",
            "connectorRef: Agent/handler",
            "`spec.connectorRef`: expected a reference to a Connector, found `Agent/handler`",
            (1, 15),
        ),
        c(
            "map ref of wrong kind",
            "connectorRef: {kind: Swarm, name: tg}",
            "expected a reference to a Connector, found `Swarm/tg`",
            (1, 15),
        ),
        c(
            "ref to nothing",
            "connectorRef: Connector/nope",
            "`spec.connectorRef`: no Connector named `nope` in the bundle",
            (1, 15),
        ),
        c(
            "swarmRef to nothing",
            "connectorRef: tg\nswarmRef: {kind: Swarm, name: other}",
            "`spec.swarmRef`: no Swarm named `other` in the bundle",
            (2, 11),
        ),
        c(
            "nested config",
            "connectorRef: tg\nconfig: {port: 3000, tls: {on: true}}",
            "`spec.config.tls`: expected a string, number or boolean, {value: …} or {valueFrom: …}, found a mapping",
            (2, 27),
        ),
        c(
            "value and valueFrom",
            "connectorRef: tg\nsecrets:\n  A: {value: x, valueFrom: {env: A}}",
            "`spec.secrets.A`: set exactly one of value and valueFrom, not both",
            (3, 6),
        ),
        c(
            "neither value nor valueFrom",
            "connectorRef: tg\nsecrets:\n  A: {}",
            "`spec.secrets.A`: set one of value or valueFrom",
            (3, 6),
        ),
        c(
            "bad env name",
            "connectorRef: tg\nsecrets:\n  A: {valueFrom: {env: 'TG TOKEN'}}",
            "`spec.secrets.A.valueFrom.env`: `TG TOKEN` is not a valid environment variable name",
            (3, 24),
        ),
        c(
            "secretRef to nothing",
            "connectorRef: tg\nsecrets:\n  A: {valueFrom: {secretRef: {ref: Secret/vault, key: K}}}",
            "`spec.secrets.A.valueFrom.secretRef.ref`: no Secret named `vault` in the bundle",
            (3, 36),
        ),
        c(
            "secretRef to missing key",
            "connectorRef: tg\nsecrets:\n  A: {valueFrom: {secretRef: {ref: Secret/creds, key: NOPE}}}",
            "`spec.secrets.A.valueFrom.secretRef.key`: Secret `creds` has no key `NOPE`",
            (3, 55),
        ),
        c(
            "undeclared event",
            "connectorRef: tg\ningress:\n  rules:\n    - match: {event: photo}",
            "`spec.ingress.rules[0].match.event`: Connector `tg` declares no event `photo` (declared: message, command)",
            (4, 22),
        ),
        c(
            "property not of event",
            "connectorRef: tg\ningress:\n  rules:\n    - match: {event: command, properties: {chat_id: 1}}",
            "`spec.ingress.rules[0].match.properties.chat_id`: event `command` declares no property `chat_id`",
            (4, 44),
        ),
        c(
            "property of no event",
            "connectorRef: tg\ningress:\n  rules:\n    - match: {properties: {user: bob}}",
            "no event of Connector `tg` declares a property `user`",
            (4, 28),
        ),
        c(
            "agentRef to nothing",
            "connectorRef: tg\ningress:\n  rules:\n    - route: {agentRef: Agent/ghost}",
            "`spec.ingress.rules[0].route.agentRef`: no Agent named `ghost` in the bundle",
            (4, 25),
        ),
        c(
            "agentRef outside swarm",
            "connectorRef: tg\ningress:\n  rules:\n    - route: {agentRef: outsider}",
            "Agent `outsider` is not in Swarm `main`",
            (4, 25),
        ),
        c(
            "both keys",
            "connectorRef: tg\ningress:\n  rules:\n    - match: {event: message}\n      route: {instanceKey: a, instanceKeyProperty: chat_id}",
            "route sets both instanceKey and instanceKeyProperty",
            (5, 14),
        ),
        c(
            "prefix without property",
            "connectorRef: tg\ningress:\n  rules:\n    - route: {instanceKeyPrefix: 'tg:'}",
            "`spec.ingress.rules[0].route.instanceKeyPrefix`: instanceKeyPrefix needs instanceKeyProperty",
            (4, 34),
        ),
        c(
            "key property not of event",
            "connectorRef: tg\ningress:\n  rules:\n    - match: {event: command}\n      route: {instanceKeyProperty: chat_id}",
            "`spec.ingress.rules[0].route.instanceKeyProperty`: event `command` declares no property `chat_id`",
            (5, 36),
        ),
        c(
            "unmatched",
            "connectorRef: tg\ningress: {unmatched: ignore}",
            "`spec.ingress.unmatched`: unknown value `ignore`, expected one of: entryAgent, drop",
            (2, 22),
        ),
        c(
            "rate zero",
            "connectorRef: tg\nrateLimit: {perSecond: 0}",
            "`spec.rateLimit.perSecond`: must be greater than zero, found 0",
            (2, 24),
        ),
        c(
            "burst zero",
            "connectorRef: tg\nrateLimit: {perSecond: 5, burst: 0}",
            "`spec.rateLimit.burst`: must be at least 1, found 0",
            (2, 34),
        ),
        c(
            "overflow",
            "connectorRef: tg\noverflow: drop",
            "`spec.overflow`: unknown value `drop`, expected one of: reject, wait",
            (2, 11),
        ),
        c(
            "restart policy",
            "connectorRef: tg\nrestart: {policy: sometimes}",
            "`spec.restart.policy`: unknown value `sometimes`, expected one of: always, on-failure, never",
            (2, 19),
        ),
    ]
}

#[test]
fn each_rule_reports_its_message_at_its_place() {
    let base_lines = BASE.lines().count();
    let cases = [
        header_cases(),
        connection_cases(),
        kind_rules::program_cases(),
        kind_rules::policy_cases(),
        kind_rules::other_kind_cases(),
    ]
    .concat();
    let mut failures = Vec::new();
    for case in &cases {
        let diags = diagnostics(&format!("{BASE}{}", case.text));
        let want_at = format!("bundle.yaml:{}:{}", base_lines + case.at.0, case.at.1);
        let rendered: Vec<String> = diags.iter().map(ToString::to_string).collect();
        let hit = diags.iter().any(|d| {
            d.message.contains(case.want)
                && d.place.as_ref().is_some_and(|p| p.to_string() == want_at)
        });
        if !hit || diags.len() != 1 {
            failures.push(format!(
                "{}: want one `{}` at {want_at}, got {rendered:#?}",
                case.name, case.want
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_connection_without_any_swarm_is_reported_at_the_connection() {
    let text = [
        doc("Connector", "tg", "entry: ./c\nevents: [{name: e}]"),
        doc("Connection", "tg", "connectorRef: tg"),
    ]
    .join("---\n");
    let diags = diagnostics(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(
        diags[0].to_string(),
        "bundle.yaml:8:1: Connection/tg: no spec.swarmRef and no Swarm in the bundle to default to"
    );
}

#[test]
fn an_empty_bundle_is_an_error() {
    let diags = diagnostics("# nothing here\n---\n");
    assert_eq!(diags[0].to_string(), "the bundle has no resources");
}
