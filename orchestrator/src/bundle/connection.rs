//! `kind: Connection`: one running Connector bound to a Swarm.

use std::collections::BTreeMap;

use super::common::{Located, env_name, reference, versioned_reference};
use super::diag::Cx;
use super::model::{Connection, Overflow, Place, Placement, RateLimit, ValueSource};
use super::node::Node;
use super::read::Field;
use super::restart::restart;
use super::rules::{RuleRefs, ingress};

const FIELDS: [&str; 11] = [
    "connectorRef",
    "swarmRef",
    "config",
    "secrets",
    "ingress",
    "restart",
    "rateLimit",
    "overflow",
    "operations",
    "enabled",
    "placement",
];

/// A Connection with everything it refers to, checked once all documents are read.
#[derive(Debug)]
pub(crate) struct ConnectionDoc {
    /// The Connection; `swarm` is empty until the default Swarm is known.
    pub connection: Connection,
    /// `spec.connectorRef`.
    pub connector: Located,
    /// `spec.connectorRef.version`: the range the Connector's version must satisfy.
    pub connector_version: Option<Located>,
    /// `spec.swarmRef`, when written.
    pub swarm: Option<Located>,
    /// Each `secretRef`: the Secret (its `ref`) and the key in it.
    pub secret_refs: Vec<(Located, Located)>,
    /// Where each `spec.config` value is written.
    pub config_places: BTreeMap<String, Located>,
    /// `spec.config` itself (or the spec), for a missing key.
    pub config_at: Located,
    /// `spec.secrets` itself (or the spec), for a missing secret.
    pub secrets_at: Located,
    /// One per ingress rule, in order.
    pub rules: Vec<RuleRefs>,
    /// Each name in `spec.operations.allow`.
    pub allowed: Vec<Located>,
}

/// Reads a Connection spec.
pub(crate) fn read(
    cx: &mut Cx<'_>,
    spec: &Field<'_>,
    name: String,
    place: Place,
) -> Option<ConnectionDoc> {
    let spec_field = spec;
    let spec = spec.fields(cx, &FIELDS)?;
    let connector = spec
        .required(cx, "connectorRef")
        .and_then(|f| versioned_reference(cx, &f, "Connector"));
    let swarm = spec
        .get("swarmRef")
        .and_then(|f| reference(cx, &f, "Swarm"));
    let mut secret_refs = Vec::new();
    let mut config_places = BTreeMap::new();
    let config_field = spec.get("config");
    let config = config_field
        .as_ref()
        .map(|f| config(cx, f, &mut secret_refs, &mut config_places))
        .unwrap_or_default();
    // Where a missing config key or secret is reported: the mapping, else the spec.
    let config_at = Located::new(
        cx,
        config_field.as_ref().unwrap_or(spec_field),
        String::new(),
    );
    let secrets_at = Located::new(
        cx,
        spec.get("secrets").as_ref().unwrap_or(spec_field),
        String::new(),
    );
    let secrets = spec
        .get("secrets")
        .map(|f| secrets(cx, &f, &mut secret_refs))
        .unwrap_or_default();
    let (ingress, rules) = spec
        .get("ingress")
        .map(|f| ingress(cx, &f))
        .unwrap_or_default();
    let restart = spec.get("restart").and_then(|f| restart(cx, &f));
    let rate_limit = spec.get("rateLimit").and_then(|f| rate_limit(cx, &f));
    let choices = [("reject", Overflow::Reject), ("wait", Overflow::Wait)];
    let overflow = spec
        .get("overflow")
        .and_then(|f| f.one_of(cx, &choices))
        .unwrap_or_default();
    let placement = spec
        .get("placement")
        .and_then(|f| placement(cx, &f))
        .unwrap_or_default();
    let (operations, allowed) = spec
        .get("operations")
        .map(|f| super::operations::connection_operations(cx, &f))
        .unwrap_or_default();
    let (connector, connector_version) = connector?;
    let connection = Connection {
        name,
        place,
        connector: connector.value.clone(),
        connector_version: connector_version.as_ref().map(|v| v.value.clone()),
        swarm: String::new(),
        config,
        secrets,
        ingress,
        restart,
        rate_limit,
        overflow,
        operations,
        placement,
        enabled: spec.get("enabled").and_then(|f| f.bool(cx)).unwrap_or(true),
    };
    Some(ConnectionDoc {
        connection,
        connector,
        connector_version,
        swarm,
        secret_refs,
        config_places,
        config_at,
        secrets_at,
        rules,
        allowed,
    })
}

/// `spec.config`: each value a scalar, or (as in Goondan) `{value: …}` or
/// `{valueFrom: {env | secretRef}}` like a secret.
fn config(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    refs: &mut Vec<(Located, Located)>,
    places: &mut BTreeMap<String, Located>,
) -> BTreeMap<String, ValueSource> {
    let mut out = BTreeMap::new();
    for entry in f.entries(cx).unwrap_or_default() {
        let at = Located::new(cx, &entry.value, entry.key.clone());
        places.insert(entry.key.clone(), at);
        let source = match &entry.value.node.value {
            Node::Map(pairs)
                if pairs.iter().all(
                    |(k, _)| matches!(&k.value, Node::Str(k) if k == "value" || k == "valueFrom"),
                ) =>
            {
                value_source(cx, &entry.value, refs)
            }
            Node::Map(_) => {
                entry.value.error(
                    cx,
                    format!(
                        "`{}`: expected a string, number or boolean, {{value: …}} or {{valueFrom: …}}, found a mapping",
                        entry.value.path
                    ),
                );
                None
            }
            _ => entry.value.scalar(cx).map(ValueSource::Value),
        };
        if let Some(source) = source {
            out.insert(entry.key, source);
        }
    }
    out
}

pub(crate) fn secrets(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    refs: &mut Vec<(Located, Located)>,
) -> BTreeMap<String, ValueSource> {
    let mut out = BTreeMap::new();
    for entry in f.entries(cx).unwrap_or_default() {
        if entry.key.is_empty() {
            cx.error(
                &entry.key_at,
                format!("`{}`: a secret name must not be empty", f.path),
            );
            continue;
        }
        if let Some(source) = value_source(cx, &entry.value, refs) {
            out.insert(entry.key, source);
        }
    }
    out
}

fn value_source(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    refs: &mut Vec<(Located, Located)>,
) -> Option<ValueSource> {
    let map = f.fields(cx, &["value", "valueFrom"])?;
    match (map.get("value"), map.get("valueFrom")) {
        (Some(value), None) => value.scalar(cx).map(ValueSource::Value),
        (None, Some(from)) => {
            let from_map = from.fields(cx, &["env", "secretRef"])?;
            match (from_map.get("env"), from_map.get("secretRef")) {
                (Some(env), None) => env_name(cx, &env).map(ValueSource::Env),
                (None, Some(r)) => {
                    let r = r.fields(cx, &["ref", "key"])?;
                    let secret = r
                        .required(cx, "ref")
                        .and_then(|s| reference(cx, &s, "Secret"));
                    let key_field = r.required(cx, "key");
                    let key = key_field.as_ref().and_then(|k| k.nonempty(cx));
                    let (secret, key) = (secret?, Located::new(cx, &key_field?, key?));
                    let source = ValueSource::SecretRef {
                        secret: secret.value.clone(),
                        key: key.value.clone(),
                    };
                    refs.push((secret, key));
                    Some(source)
                }
                (Some(_), Some(_)) => {
                    from.error(cx, "set exactly one of env and secretRef, not both");
                    None
                }
                (None, None) => {
                    from.error(cx, "set one of env or secretRef");
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            f.error(cx, "set exactly one of value and valueFrom, not both");
            None
        }
        (None, None) => {
            f.error(cx, "set one of value or valueFrom");
            None
        }
    }
}

pub(crate) fn rate_limit(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<RateLimit> {
    let map = f.fields(cx, &["perSecond", "burst"])?;
    let per_second_field = map.required(cx, "perSecond");
    let per_second = per_second_field.as_ref().and_then(|p| p.number(cx));
    if let (Some(field), Some(x)) = (&per_second_field, per_second)
        && x <= 0.0
    {
        field.error(cx, format!("must be greater than zero, found {x}"));
        return None;
    }
    let burst = map.get("burst").map(|b| b.u32(cx, 1));
    let per_second = per_second?;
    // A bucket smaller than one second's worth would cap the rate below perSecond.
    let default_burst = per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
    Some(RateLimit {
        per_second,
        burst: burst.unwrap_or(Some(default_burst))?,
    })
}

/// `spec.placement`: `one` (default), `every`, or `{nodes: [a, b]}`.
fn placement(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Placement> {
    if !f.is_map() {
        return match f.scalar(cx)?.as_str() {
            "one" => Some(Placement::One),
            "every" => Some(Placement::Every),
            _ => {
                f.error(cx, "must be one, every, or {nodes: [NODE, ...]}");
                None
            }
        };
    }
    let fields = f.fields(cx, &["nodes"])?;
    let list = fields.required(cx, "nodes")?;
    let mut nodes = Vec::new();
    for node in list.seq(cx)? {
        nodes.push(node.nonempty(cx)?);
    }
    if nodes.is_empty() {
        list.error(cx, "must name at least one node");
        return None;
    }
    Some(Placement::Nodes(nodes))
}
