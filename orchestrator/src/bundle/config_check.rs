//! A Connection's `spec.config` and `spec.secrets` against what its
//! Connector declares (`spec.config`: a JSON Schema of the config, whose
//! values are strings; `spec.secrets`: the names it reads). At `validate`
//! every value written inline is checked against its property's schema, and
//! required keys and secrets must be there whatever their source; at start
//! ([`check_resolved`]) the resolved config is checked whole.

use std::collections::BTreeMap;

use serde_json::Value;

use super::common::Located;
use super::connection::ConnectionDoc;
use super::model::{Connector, ValueSource};

/// Reports each problem of `doc` against `connector` through `report(place, message)`.
pub(crate) fn check(
    report: &mut dyn FnMut(&Located, String),
    doc: &ConnectionDoc,
    connector: &Connector,
) {
    let c = &doc.connection;
    if let Some(schema) = &connector.config_schema {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for key in strings(&schema["required"]) {
            if !c.config.contains_key(&key) {
                report(
                    &doc.config_at,
                    format!(
                        "`{key}` is required by Connector/{} (its spec.config schema)",
                        connector.name
                    ),
                );
            }
        }
        let properties = schema["properties"].as_object();
        for (key, source) in &c.config {
            let at = doc.config_places.get(key).unwrap_or(&doc.config_at);
            let prop = properties.and_then(|p| p.get(key));
            if prop.is_none() && schema["additionalProperties"] == Value::Bool(false) {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                report(
                    at,
                    format!(
                        "Connector/{} has no config key `{key}` (it reads: {})",
                        connector.name,
                        known.join(", ")
                    ),
                );
                continue;
            }
            // Values from the environment or a Secret are checked at start.
            if let (Some(prop), ValueSource::Value(v)) = (prop, source)
                && let Some(problem) = problem(prop, &Value::String(v.clone()))
            {
                report(
                    at,
                    format!(
                        "{v:?} {problem} (Connector/{}'s spec.config schema)",
                        connector.name
                    ),
                );
            }
        }
    }
    if let Some(names) = &connector.secrets {
        for key in &names.required {
            if !c.secrets.contains_key(key) {
                report(
                    &doc.secrets_at,
                    format!(
                        "the secret `{key}` is required by Connector/{}",
                        connector.name
                    ),
                );
            }
        }
        for key in c.secrets.keys() {
            if !names.required.contains(key) && !names.optional.contains(key) {
                let reads: Vec<&str> = names
                    .required
                    .iter()
                    .chain(&names.optional)
                    .map(String::as_str)
                    .collect();
                report(
                    &doc.secrets_at,
                    format!(
                        "Connector/{} reads no secret `{key}` (it reads: {})",
                        connector.name,
                        reads.join(", ")
                    ),
                );
            }
        }
    }
}

/// The resolved `config` of a Connection against its Connector's schema, at
/// start: `Err` names the first problem (never a value: some come from secrets).
pub fn check_resolved(
    connection: &str,
    connector: &Connector,
    config: &BTreeMap<String, String>,
) -> Result<(), String> {
    let Some(schema) = &connector.config_schema else {
        return Ok(());
    };
    let instance = Value::Object(
        config
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    let Ok(validator) = jsonschema::validator_for(schema) else {
        return Ok(());
    };
    match validator.iter_errors(&instance).next() {
        None => Ok(()),
        Some(e) => Err(format!(
            "Connection/{connection}: spec.config at `{}` does not fit Connector/{}'s schema (rule {}; the value is not shown: it may come from a secret)",
            e.instance_path(),
            connector.name,
            e.schema_path()
        )),
    }
}

/// Why `value` does not fit `schema`, if it does not.
fn problem(schema: &Value, value: &Value) -> Option<String> {
    let validator = jsonschema::validator_for(schema).ok()?;
    validator.iter_errors(value).next().map(|e| e.to_string())
}
