//! `kind: Secret`: where secret values live, never the values themselves.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::common::env_name;
use super::diag::Cx;
use super::model::{Place, Secret, SecretSource};
use super::read::Field;

/// Reads a Secret spec.
pub(crate) fn read(
    cx: &mut Cx<'_>,
    spec: &Field<'_>,
    name: String,
    place: Place,
) -> Option<Secret> {
    let spec = spec.fields(cx, &["data"])?;
    let data = spec.required(cx, "data")?;
    let mut out = BTreeMap::new();
    for entry in data.entries(cx)? {
        if entry.key.is_empty() {
            cx.error(
                &entry.key_at,
                format!("`{}`: a key must not be empty", data.path),
            );
            continue;
        }
        let Some(map) = entry.value.fields(cx, &["valueFrom"]) else {
            continue;
        };
        let Some(from) = map.required(cx, "valueFrom") else {
            continue;
        };
        let Some(from_map) = from.fields(cx, &["env", "file"]) else {
            continue;
        };
        let source = match (from_map.get("env"), from_map.get("file")) {
            (Some(env), None) => env_name(cx, &env).map(SecretSource::Env),
            (None, Some(file)) => file
                .nonempty(cx)
                .map(|p| SecretSource::File(PathBuf::from(p))),
            (Some(_), Some(_)) => {
                from.error(cx, "set exactly one of env and file, not both");
                None
            }
            (None, None) => {
                from.error(cx, "set one of env or file");
                None
            }
        };
        if let Some(source) = source {
            out.insert(entry.key, source);
        }
    }
    Some(Secret {
        name,
        place,
        data: out,
    })
}
