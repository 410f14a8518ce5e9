//! The JSON Schema of the bundle (`orchestrator schema`) against the parser
//! it describes: the same keys in every mapping, no others allowed, the
//! committed copy current, and every shipped bundle and Connector valid.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::super::node::parse_documents;
use super::super::{bundle_schema, bundle_schema_text};
use super::parse_text;
use super::shipped::{shipped_yaml, workspace};

/// One step from a mapping's schema to a nested one.
#[derive(Clone, Debug)]
enum Step {
    /// A named field.
    Key(String),
    /// The item of a list.
    Item,
    /// A value of a free-form mapping (`secrets.<KEY>`).
    AnyKey,
}

/// The key a probe writes where the schema allows any key.
const ANY_KEY: &str = "K1";
/// The key no mapping allows.
const UNKNOWN: &str = "zzzUnknown";

/// The path as the parser names it in messages: `spec.ingress.rules[0].route`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::AnyKey => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(ANY_KEY);
            }
            Step::Item => out.push_str("[0]"),
        }
    }
    out
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/$defs/").expect("a local $ref");
            resolve(root, &root["$defs"][name])
        }
        None => schema,
    }
}

fn is_object_type(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "object",
        Value::Array(ts) => ts.iter().any(|t| t == "object"),
        _ => false,
    }
}

/// Every mapping `schema` describes below `path`: its path and its schema.
fn mappings<'a>(
    root: &'a Value,
    schema: &'a Value,
    path: Vec<Step>,
    out: &mut Vec<(Vec<Step>, &'a Value)>,
) {
    assert!(
        path.len() < 16,
        "the schema nests too deep at {}",
        dotted(&path)
    );
    let schema = resolve(root, schema);
    if is_object_type(schema)
        && let Some(props) = schema["properties"].as_object()
    {
        out.push((path.clone(), schema));
        for (key, sub) in props {
            let mut p = path.clone();
            p.push(Step::Key(key.clone()));
            mappings(root, sub, p, out);
        }
    }
    if schema["additionalProperties"].is_object() {
        let mut p = path.clone();
        p.push(Step::AnyKey);
        mappings(root, &schema["additionalProperties"], p, out);
    }
    if schema["items"].is_object() {
        let mut p = path.clone();
        p.push(Step::Item);
        mappings(root, &schema["items"], p, out);
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for variant in schema[combinator].as_array().into_iter().flatten() {
            mappings(root, variant, path.clone(), out);
        }
    }
}

/// A document of `kind` with `{zzzUnknown: 1}` at `path`.
fn probe(kind: &str, path: &[Step]) -> String {
    let mut doc = json!({
        "apiVersion": "goondan.ai/v1",
        "kind": kind,
        "metadata": {"name": "probe"},
        "spec": {}
    });
    let mut at = &mut doc;
    for step in path {
        at = match step {
            Step::Key(k) => {
                if !at[k.as_str()].is_object() {
                    at[k.as_str()] = json!({});
                }
                &mut at[k.as_str()]
            }
            Step::AnyKey => {
                at[ANY_KEY] = json!({});
                &mut at[ANY_KEY]
            }
            Step::Item => {
                *at = json!([{}]);
                &mut at[0]
            }
        };
    }
    at[UNKNOWN] = json!(1);
    // JSON is YAML.
    doc.to_string()
}

/// The keys the parser says a mapping may have, read from its answer to an unknown one.
fn parser_keys(kind: &str, path: &[Step]) -> Result<BTreeSet<String>, String> {
    let text = probe(kind, path);
    let label = match dotted(path).as_str() {
        "" => format!("{kind} document"),
        "spec" => format!("{kind} spec"),
        p => format!("`{p}`"),
    };
    let head = format!("unknown field `{UNKNOWN}` in {label}, expected one of: ");
    let diags = parse_text(&text).err().unwrap_or_default();
    diags
        .iter()
        .find_map(|d| d.message.strip_prefix(&head))
        .map(|list| list.split(", ").map(str::to_owned).collect())
        .ok_or_else(|| format!("the parser did not refuse `{UNKNOWN}` in {label}: {diags:#?}"))
}

/// Mappings the parser reads without a list of keys: a `config` value is a
/// scalar, or a mapping of only `value`/`valueFrom` read as a secret's (whose
/// keys are checked where the secret forms are).
const NOT_FIELD_LISTS: [(&str, &str); 1] = [("Connection", "spec.config.K1")];

#[test]
fn every_mapping_has_the_parsers_keys_and_no_others() {
    let root = bundle_schema();
    let mut failures = Vec::new();
    let mut probed = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    for document in root["oneOf"].as_array().expect("one schema per kind") {
        let document = resolve(&root, document);
        let kind = document["properties"]["kind"]["const"]
            .as_str()
            .expect("a kind const");
        let mut found = Vec::new();
        mappings(&root, document, Vec::new(), &mut found);
        for (path, schema) in found {
            let at = dotted(&path);
            if NOT_FIELD_LISTS.contains(&(kind, at.as_str())) {
                skipped.insert((kind, at));
                continue;
            }
            if schema["additionalProperties"] != Value::Bool(false) {
                failures.push(format!("{kind} `{at}`: additionalProperties is not false"));
            }
            let in_schema: BTreeSet<String> = schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            match parser_keys(kind, &path) {
                Ok(keys) if keys == in_schema => {}
                Ok(keys) => failures.push(format!(
                    "{kind} `{at}`: the parser allows {keys:?}, the schema {in_schema:?}"
                )),
                Err(e) => failures.push(format!("{kind} `{at}`: {e}")),
            }
            probed.insert(format!("{kind} {at}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        skipped.len(),
        NOT_FIELD_LISTS.len(),
        "every exception is still met"
    );
    // What the walk must reach, so that a mapping the schema stops describing is noticed.
    for must in [
        "Connector ",
        "Connector metadata",
        "Connector spec",
        "Connector spec.entry",
        "Connector spec.restart",
        "Connector spec.restart.backoff",
        "Connector spec.restart.circuit",
        "Connector spec.restart.stop",
        "Connector spec.sandbox",
        "Connector spec.sandbox.network",
        "Connector spec.sandbox.resources",
        "Connector spec.sandbox.filesystem",
        "Connector spec.events[0]",
        "Connector spec.events[0].properties.K1",
        "Connector spec.operations[0]",
        "Connector spec.operations[0].retry",
        "Connector spec.operations[0].retry.backoff",
        "Connector spec.secrets",
        "Connection spec",
        "Connection spec.connectorRef",
        "Connection spec.swarmRef",
        "Connection spec.secrets.K1",
        "Connection spec.secrets.K1.valueFrom",
        "Connection spec.secrets.K1.valueFrom.secretRef",
        "Connection spec.secrets.K1.valueFrom.secretRef.ref",
        "Connection spec.config.K1.valueFrom",
        "Connection spec.ingress",
        "Connection spec.ingress.rules[0]",
        "Connection spec.ingress.rules[0].match",
        "Connection spec.ingress.rules[0].route",
        "Connection spec.ingress.rules[0].route.agentRef",
        "Connection spec.restart",
        "Connection spec.rateLimit",
        "Connection spec.operations",
        "Connection spec.operations.rateLimit",
        "Connection spec.operations.circuit",
        "Swarm spec",
        "Swarm spec.entryAgent",
        "Swarm spec.agents[0]",
        "Agent spec",
        "Agent spec.entry",
        "Agent spec.sandbox.network",
        "Agent spec.invoke[0]",
        "Agent spec.invoke[0].rateLimit",
        "Agent spec.secrets.K1.valueFrom",
        "Secret spec",
        "Secret spec.data.K1",
        "Secret spec.data.K1.valueFrom",
    ] {
        assert!(
            probed.contains(must),
            "the walk did not reach {must:?}: {probed:#?}"
        );
    }
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&bundle_schema()).expect("the schema compiles")
}

/// The documents of a YAML text as JSON, read as the parser reads them.
fn documents(name: &str, text: &str) -> Vec<Value> {
    let file: Arc<str> = name.into();
    parse_documents(&file, text)
        .unwrap_or_else(|d| panic!("{name}: {d}"))
        .iter()
        .map(|n| n.value.to_json().unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

/// Each problem `validator` finds in `text`'s documents, as one line.
fn problems(validator: &jsonschema::Validator, name: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, doc) in documents(name, text).iter().enumerate() {
        for e in validator.iter_errors(doc) {
            out.push(format!(
                "{name} document {}: at `{}`: {e}",
                i + 1,
                e.instance_path()
            ));
        }
    }
    out
}

#[test]
fn bad_documents_fail_and_good_ones_pass() {
    let v = validator();
    // A Connection of BASE's resources.
    let good = "apiVersion: goondan.ai/v1\nkind: Connection\nmetadata: {name: tg}\nspec:\n  connectorRef: {name: tg}\n  config: {POLL: 30, MODE: {value: fast}}\n  secrets: {BOT_TOKEN: {valueFrom: {secretRef: {ref: Secret/creds, key: TOKEN}}}}\n  ingress: {rules: [{match: {event: message}, route: {agentRef: Agent/handler, instanceKeyProperty: chat_id}}]}\n";
    assert_eq!(problems(&v, "good", good), Vec::<String>::new());
    let with_base = |doc: &str| parse_text(&format!("{}{doc}", super::BASE));
    with_base(good).unwrap_or_else(|d| panic!("{d:#?}"));
    let ranged = good.replace(
        "connectorRef: {name: tg}",
        "connectorRef: {name: tg, version: \"^1\"}",
    );
    assert_eq!(problems(&v, "ranged", &ranged), Vec::<String>::new());
    let bad = [
        ("unknown field", good.replace("  ingress:", "  colour: red\n  ingress:")),
        ("wrong kind", good.replace("kind: Connection", "kind: Pipeline")),
        ("wrong apiVersion", good.replace("goondan.ai/v1", "goondan.ai/v2")),
        ("bad name", good.replace("metadata: {name: tg}", "metadata: {name: ../tg}")),
        ("wrong reference kind", good.replace("connectorRef: {name: tg}", "connectorRef: Agent/tg")),
        ("both value forms", good.replace("{value: fast}", "{value: fast, valueFrom: {env: MODE}}")),
        ("both instance keys", good.replace("instanceKeyProperty: chat_id", "instanceKeyProperty: chat_id, instanceKey: k")),
        ("nested config", good.replace("POLL: 30", "POLL: {every: 30}")),
        ("a list for a mapping", good.replace("  ingress: {rules:", "  ingress: [{rules:").replace("chat_id}}]}", "chat_id}}]}]")),
        ("no spec", "apiVersion: goondan.ai/v1\nkind: Secret\nmetadata: {name: s}\n".to_owned()),
        ("zero queue", "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: a}\nspec: {entry: ./a, maxQueue: 0}\n".to_owned()),
        ("bad duration", "apiVersion: goondan.ai/v1\nkind: Agent\nmetadata: {name: a}\nspec: {entry: ./a, deliveryTimeout: soon}\n".to_owned()),
        ("bad semver", "apiVersion: goondan.ai/v1\nkind: Connector\nmetadata: {name: c}\nspec: {entry: ./c, version: \"1.2\", events: [{name: e}]}\n".to_owned()),
    ];
    for (what, text) in bad {
        assert!(
            !problems(&v, what, &text).is_empty(),
            "{what}: the schema let it through:\n{text}"
        );
        // The parser refuses each one too: here the schema is not stricter than it.
        assert!(
            with_base(&text).is_err(),
            "{what}: the parser took it:\n{text}"
        );
    }
}

/// `schema/bundle.schema.json` is what `orchestrator schema` prints.
#[test]
fn the_committed_schema_is_current() {
    let path = workspace().join("schema/bundle.schema.json");
    let want = bundle_schema_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).expect("write schema/bundle.schema.json");
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "{} is not what `orchestrator schema` prints; regenerate it with \
         UPDATE_SCHEMA=1 cargo nextest run -p orchestrator the_committed_schema_is_current",
        path.display()
    );
}

#[test]
fn every_example_bundle_and_shipped_connector_validates() {
    let v = validator();
    let files = shipped_yaml();
    assert!(files.len() >= 12, "{files:#?}");
    let mut failures = Vec::new();
    let mut documents_seen = 0;
    for path in &files {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.display().to_string();
        documents_seen += documents(&name, &text).len();
        failures.extend(problems(&v, &name, &text));
    }
    assert!(documents_seen >= 20, "{documents_seen} documents");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
