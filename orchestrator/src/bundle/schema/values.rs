//! The value syntaxes every kind shares, as schemas of their own (each is a
//! `$defs` entry the others refer to).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::super::document::API_VERSION;
use super::super::sandbox::CAPABILITIES;

/// A value syntax with a hand-written schema.
macro_rules! leaf {
    ($(#[$doc:meta])* $name:ident, $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

/// `^…$` around a humantime duration: numbers with units, `500ms`, `1h 30m`.
const DURATION: &str = r"^\s*([0-9]+\s*[A-Za-zµ]+\s*)+$";

leaf!(
    /// `goondan.ai/v1`.
    ApiVersion,
    json_schema!({
        "description": "The only apiVersion this orchestrator reads.",
        "const": API_VERSION
    })
);

leaf!(
    /// A resource name.
    Name,
    json_schema!({
        "description": "A resource name: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit (it becomes a file name).",
        "type": "string",
        "pattern": "^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$"
    })
);

leaf!(
    /// A string that must not be empty.
    NonEmpty,
    json_schema!({"type": "string", "minLength": 1})
);

leaf!(
    /// A scalar, kept as the string it stands for.
    Scalar,
    json_schema!({
        "description": "A string, number or boolean (kept as its text: 30 is \"30\").",
        "type": ["string", "number", "boolean"]
    })
);

leaf!(
    /// A duration.
    Duration,
    json_schema!({
        "description": "A duration like 500ms, 10s, 1m or 1h 30m.",
        "type": "string",
        "pattern": DURATION
    })
);

leaf!(
    /// A size in bytes.
    Size,
    json_schema!({
        "description": "Bytes: an integer, or a number with Ki, Mi, Gi, Ti (1024s) or K, M, G, T (1000s), like 256Mi.",
        "type": ["integer", "string"],
        "minimum": 0,
        "pattern": "^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$"
    })
);

leaf!(
    /// A percentage of one CPU.
    Percent,
    json_schema!({
        "description": "A whole percentage of one CPU, greater than zero, like 50% (200% is two CPUs).",
        "type": "string",
        "pattern": "^0*[1-9][0-9]*%$"
    })
);

leaf!(
    /// An environment variable name.
    EnvName,
    json_schema!({
        "description": "An environment variable name.",
        "type": "string",
        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
    })
);

leaf!(
    /// A semantic version.
    Semver,
    json_schema!({
        "description": "A semantic version: MAJOR.MINOR.PATCH, with an optional -prerelease and +build (1.4.0, 2.0.0-rc.1).",
        "type": "string",
        "pattern": r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
    })
);

leaf!(
    /// A JSON Schema written in YAML.
    JsonSchemaValue,
    json_schema!({
        "description": "A JSON Schema (draft 2020-12), written in YAML; no remote $ref.",
        "type": ["object", "boolean"]
    })
);

leaf!(
    /// A JSON pointer.
    JsonPointer,
    json_schema!({
        "description": "A JSON pointer, like /token or /user/email.",
        "type": "string",
        "pattern": "^/"
    })
);

leaf!(
    /// An absolute path.
    AbsolutePath,
    json_schema!({
        "description": "An absolute path, without `..`.",
        "type": "string",
        "pattern": "^/"
    })
);

leaf!(
    /// A program's SHA-256.
    Sha256,
    json_schema!({
        "description": "The program's SHA-256 as 64 hex digits (`orchestrator pin` prints it).",
        "type": "string",
        "pattern": "^[0-9a-fA-F]{64}$"
    })
);

/// A Linux capability, `CAP_NET_BIND_SERVICE` or `NET_BIND_SERVICE`.
#[derive(Debug)]
pub(crate) struct Capability;

impl JsonSchema for Capability {
    fn schema_name() -> Cow<'static, str> {
        "Capability".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let pattern = format!("^(CAP_)?({})$", CAPABILITIES.join("|"));
        json_schema!({
            "description": "A Linux capability, with or without its CAP_ prefix (CAP_NET_BIND_SERVICE).",
            "type": "string",
            "pattern": pattern
        })
    }
}

/// The schema of a reference to a resource of `kind`: `"Kind/name"`, a
/// bare `"name"`, `{kind, name}` or `{ref: "Kind/name"}`; `versioned` adds
/// `version` to the mapping (a Connection's `connectorRef`).
fn reference(kind: &str, versioned: bool, name: Schema) -> Schema {
    let text = format!("^({kind}/)?[a-zA-Z0-9][a-zA-Z0-9._-]{{0,62}}$");
    let mut map = json_schema!({
        "type": "object",
        "properties": {
            "kind": { "const": kind },
            "name": name,
            "ref": {
                "description": format!("Goondan's form: \"{kind}/name\"."),
                "type": "string",
                "pattern": text
            }
        },
        "additionalProperties": false,
        "oneOf": [
            { "required": ["name"] },
            { "required": ["ref"], "not": { "required": ["kind"] } }
        ]
    });
    if versioned && let Some(props) = map.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert(
            "version".into(),
            serde_json::json!({
                "description": "A version range in Cargo's syntax (^1, ~1.2, >=1.2, <2) the Connector's spec.version must satisfy.",
                "type": "string",
                "minLength": 1
            }),
        );
    }
    json_schema!({
        "description": format!("A {kind} reference: \"{kind}/name\", \"name\", {{kind: {kind}, name}} or {{ref: \"{kind}/name\"}}."),
        "anyOf": [
            { "type": "string", "pattern": text },
            map
        ]
    })
}

macro_rules! reference {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $versioned:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                reference($kind, $versioned, generator.subschema_for::<Name>())
            }
        }
    };
}

reference!(
    /// A reference to an Agent.
    AgentRef,
    "Agent",
    false
);
reference!(
    /// A reference to a Swarm.
    SwarmRef,
    "Swarm",
    false
);
reference!(
    /// A reference to a Secret.
    SecretRef,
    "Secret",
    false
);
reference!(
    /// A reference to a Connector, optionally with a version range.
    ConnectorRef,
    "Connector",
    true
);
