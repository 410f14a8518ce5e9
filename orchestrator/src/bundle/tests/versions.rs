//! `connectorRef: {name, version}`: a Connection asks for a version range of
//! its Connector, checked against the Connector's `spec.version` at the
//! range's place.

use super::{BASE, diagnostics, doc, parse_text};

/// BASE plus three Connectors: `v142` (version 1.4.2), `unversioned` and
/// `loose` (a version that is not semver), then `connections`.
fn bundle(connections: &[(&str, &str)]) -> String {
    let mut text = format!(
        "{}---\n{}",
        valid_bundle(&[]),
        doc(
            "Connector",
            "loose",
            "entry: ./c\nversion: \"1.4\"\nevents: [{name: e}]"
        ),
    );
    add_connections(&mut text, connections);
    text
}

/// BASE plus `v142` and `unversioned`, then `connections`.
fn valid_bundle(connections: &[(&str, &str)]) -> String {
    let mut text = format!(
        "{BASE}{}---\n{}",
        doc(
            "Connector",
            "v142",
            "entry: ./c\nversion: 1.4.2\nevents: [{name: e}]"
        ),
        doc(
            "Connector",
            "unversioned",
            "entry: ./c\nevents: [{name: e}]"
        ),
    );
    add_connections(&mut text, connections);
    text
}

fn add_connections(text: &mut String, connections: &[(&str, &str)]) {
    for (name, connector_ref) in connections {
        text.push_str("---\n");
        text.push_str(&doc(
            "Connection",
            name,
            &format!("connectorRef: {connector_ref}"),
        ));
    }
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle} not in the bundle"))
}

#[test]
fn a_satisfied_range_is_kept_in_the_model() {
    let text = valid_bundle(&[
        ("ranged", "{name: v142, version: \"^1.2\"}"),
        ("exact", "{ref: Connector/v142, version: \"=1.4.2\"}"),
        ("plain", "Connector/v142"),
    ]);
    let b = parse_text(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    let range = |name: &str| {
        b.connections
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.connector.clone(), c.connector_version.clone()))
    };
    assert_eq!(range("ranged"), Some(("v142".into(), Some("^1.2".into()))));
    assert_eq!(range("exact"), Some(("v142".into(), Some("=1.4.2".into()))));
    assert_eq!(range("plain"), Some(("v142".into(), None)));
}

#[test]
fn each_version_problem_is_reported_at_the_version_it_is_about() {
    let text = bundle(&[
        ("unparsable", "{name: v142, version: \"^^1\"}"),
        ("unversioned", "{name: unversioned, version: \"^1\"}"),
        ("loose", "{name: loose, version: \"^1\"}"),
        (
            "too-new",
            "{kind: Connector, name: v142, version: \">=2, <3\"}",
        ),
    ]);
    let got: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    let at =
        |needle: &str, column: usize| format!("bundle.yaml:{}:{column}", line_of(&text, needle));
    let want = [
        // The Connector's own version, at its value.
        format!(
            "{}: Connector/loose: `spec.version`: `1.4` is not a semantic version (unexpected end of input while parsing minor version number): write MAJOR.MINOR.PATCH, e.g. 1.2.0",
            at("version: \"1.4\"", 12)
        ),
        format!(
            "{}: Connection/unparsable: `spec.connectorRef.version`: invalid version range `^^1` (unexpected character '^' while parsing major version number), expected e.g. ^1, ~1.2 or >=1.2, <2",
            at("version: \"^^1\"", 39)
        ),
        format!(
            "{}: Connection/unversioned: `spec.connectorRef.version`: Connector `unversioned` declares no spec.version to check the range `^1` against",
            at("name: unversioned, version", 46)
        ),
        // `loose` is not reported again at the Connection that asks for a range.
        format!(
            "{}: Connection/too-new: `spec.connectorRef.version`: Connector `v142` is version 1.4.2, which does not satisfy `>=2, <3`",
            at("version: \">=2, <3\"", 56)
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn a_version_on_another_reference_is_an_unknown_field() {
    let text = format!(
        "{BASE}{}",
        doc(
            "Swarm",
            "pinned",
            "entryAgent: {name: handler, version: \"^1\"}\nagents: [handler]"
        )
    );
    let got: Vec<String> = diagnostics(&text).iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains(
            "unknown field `version` in `spec.entryAgent`, expected one of: kind, name, ref"
        ),
        "{}",
        got[0]
    );
}

#[test]
fn version_problems_render_for_humans() {
    let text = bundle(&[
        ("unparsable", "{name: v142, version: \"1.x.y.z\"}"),
        ("unversioned", "{name: unversioned, version: \"~0.3\"}"),
        ("too-old", "{name: v142, version: \"^1.5\"}"),
    ]);
    let rendered: String = diagnostics(&text)
        .iter()
        .map(|d| format!("{d}\n"))
        .collect();
    insta::assert_snapshot!(rendered);
}
