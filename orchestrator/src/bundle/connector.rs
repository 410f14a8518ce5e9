//! `kind: Connector`: a program and the events it may emit.

use std::collections::BTreeMap;

use super::diag::Cx;
use super::model::{
    Connector, EventDecl, Place, PropertyDecl, PropertyType, Protocol, SecretNames,
};
use super::node::Node;
use super::program::{PROGRAM_FIELDS, program};
use super::read::Field;

/// `maxPayloadBytes` when the Connector does not say: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 1024 * 1024;

/// Reads a Connector spec.
pub(crate) fn read(
    cx: &mut Cx<'_>,
    spec: &Field<'_>,
    name: String,
    place: Place,
) -> Option<Connector> {
    let allowed: Vec<&str> = PROGRAM_FIELDS
        .iter()
        .copied()
        .chain([
            "events",
            "stdin",
            "operations",
            "maxPayloadBytes",
            "version",
            "config",
            "secrets",
        ])
        .collect();
    let spec = spec.fields(cx, &allowed)?;
    let program = program(cx, &spec, Protocol::Frames);
    let events = spec.required(cx, "events").map(|f| events(cx, &f));
    let stdin = match spec.get("stdin") {
        Some(f) => {
            let inherit = f
                .one_of(cx, &[("inherit", true), ("none", false)])
                .unwrap_or(false);
            if inherit
                && program
                    .as_ref()
                    .is_some_and(|p| p.protocol == Protocol::Jsonl)
            {
                f.error(cx, "`stdin: inherit` needs `protocol: frames` (a jsonl child's stdin carries its messages)");
            }
            inherit
        }
        None => false,
    };
    let operations = spec
        .get("operations")
        .map(|f| super::operations::connector_operations(cx, &f))
        .unwrap_or_default();
    let max_payload_bytes = spec
        .get("maxPayloadBytes")
        .map_or(Some(DEFAULT_MAX_PAYLOAD_BYTES), |f| {
            super::common::size(cx, &f)
        });
    let version = spec.get("version").and_then(|f| version(cx, &f));
    let config_schema = spec
        .get("config")
        .and_then(|f| super::operations::schema(cx, &f));
    let secrets = spec.get("secrets").map(|f| secret_names(cx, &f));
    Some(Connector {
        name,
        place,
        program: program?,
        events: events?,
        stdin,
        operations,
        max_payload_bytes: max_payload_bytes?,
        version,
        config_schema,
        secrets,
    })
}

fn events(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<EventDecl> {
    let Some(items) = f.seq(cx) else {
        return Vec::new();
    };
    if items.is_empty() {
        f.error(cx, "a Connector must declare at least one event");
    }
    let mut out: Vec<EventDecl> = Vec::with_capacity(items.len());
    for item in &items {
        let Some(map) = item.fields(cx, &["name", "properties"]) else {
            continue;
        };
        let name_field = map.required(cx, "name");
        let name = name_field.as_ref().and_then(|n| n.nonempty(cx));
        let properties = map
            .get("properties")
            .map(|p| properties(cx, &p))
            .unwrap_or_default();
        let (Some(name), Some(name_field)) = (name, name_field) else {
            continue;
        };
        if out.iter().any(|e| e.name == name) {
            name_field.error(cx, format!("duplicate event `{name}`"));
            continue;
        }
        out.push(EventDecl { name, properties });
    }
    out
}

fn properties(cx: &mut Cx<'_>, f: &Field<'_>) -> BTreeMap<String, PropertyDecl> {
    let mut out = BTreeMap::new();
    for entry in f.entries(cx).unwrap_or_default() {
        if entry.key.is_empty() {
            cx.error(
                &entry.key_at,
                format!("`{}`: a property name must not be empty", f.path),
            );
            continue;
        }
        let mut decl = PropertyDecl {
            ty: PropertyType::String,
            optional: false,
        };
        // `chat_id:` alone declares a required string, the common case.
        if entry.value.node.value != Node::Null {
            let Some(map) = entry.value.fields(cx, &["type", "optional"]) else {
                continue;
            };
            let types = [
                ("string", PropertyType::String),
                ("number", PropertyType::Number),
                ("boolean", PropertyType::Boolean),
            ];
            if let Some(ty) = map.get("type").and_then(|t| t.one_of(cx, &types)) {
                decl.ty = ty;
            }
            if let Some(optional) = map.get("optional").and_then(|o| o.bool(cx)) {
                decl.optional = optional;
            }
        }
        out.insert(entry.key, decl);
    }
    out
}

/// `version`: semver, `MAJOR.MINOR.PATCH` with an optional `-pre` or `+build`.
///
/// A version that does not parse is reported here and still kept, so that a
/// Connection's range is not reported against it again (a bundle with any
/// error is never used).
fn version(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<String> {
    let v = f.nonempty(cx)?;
    if let Err(e) = semver::Version::parse(&v) {
        f.error(
            cx,
            format!("`{v}` is not a semantic version ({e}): write MAJOR.MINOR.PATCH, e.g. 1.2.0"),
        );
    }
    Some(v)
}

/// `secrets: {required: [..], optional: [..]}`: the secret names the program reads.
fn secret_names(cx: &mut Cx<'_>, f: &Field<'_>) -> SecretNames {
    let mut out = SecretNames::default();
    let Some(map) = f.fields(cx, &["required", "optional"]) else {
        return out;
    };
    let names = |cx: &mut Cx<'_>, key: &str| -> Vec<String> {
        map.get(key)
            .and_then(|l| l.seq(cx))
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.nonempty(cx))
            .collect()
    };
    out.required = names(cx, "required");
    out.optional = names(cx, "optional");
    out
}
