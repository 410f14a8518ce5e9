//! The JSON Schema (draft 2020-12) of the bundle format, for editors and
//! for checking a bundle without this binary: `orchestrator schema`.
//!
//! The parser (`read.rs` and one module per kind) is hand-written over a
//! spanned YAML tree, so that every problem is reported at its line and
//! column; it does not use these types. They are a typed description of
//! the same format, written for [`schemars`]: each struct is one mapping the
//! parser reads, each field one key it allows, and each doc comment the
//! description an editor shows. Nothing builds them.
//!
//! What keeps the two from drifting apart: the tests (`tests/schema.rs`)
//! walk the generated schema and, for every mapping it describes, make the
//! parser read that mapping with an unknown key in it; the keys the parser
//! then says it expects must be exactly the schema's `properties`, and the
//! schema must allow no others (`additionalProperties: false`). The
//! committed `schema/bundle.schema.json` must equal this output, and every
//! example bundle and shipped `connector.yaml` must validate against it.
//!
//! What the schema cannot say, the parser still checks: references that
//! resolve, unique names, rules against their Connector's events, a zero
//! duration, backoff `max` below `initial`, and so on.

// These types are only ever described, never built or read.
#![allow(dead_code)]

mod connection;
mod kinds;
mod program;
mod values;

use schemars::generate::SchemaSettings;
use serde_json::Value;

/// The schema of one bundle document (any of the five kinds), as JSON.
pub fn bundle_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<kinds::Document>();
    let mut value = schema.to_value();
    // The five kinds exclude each other by `kind`: exactly one must match.
    if let Some(root) = value.as_object_mut()
        && let Some(any_of) = root.remove("anyOf")
    {
        root.insert("oneOf".into(), any_of);
    }
    value
}

/// [`bundle_schema`] as the text `orchestrator schema` prints and
/// `schema/bundle.schema.json` holds: pretty JSON and a final newline.
pub fn bundle_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&bundle_schema()).unwrap_or_default();
    text.push('\n');
    text
}
