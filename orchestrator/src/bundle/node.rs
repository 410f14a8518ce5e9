//! The generic spanned YAML tree every document is first read into.
//!
//! Typed serde structs stop at the first error; a tree of [`Node`]s, each
//! wrapped in serde-saphyr's [`Spanned`], lets the readers in `read.rs` walk
//! the whole document, report every problem at its own line and column, and
//! carry on.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, Location, Options, Spanned};

use super::diag::{Diagnostic, place};

/// A node with the place it was written at.
pub(crate) type SNode = Spanned<Node>;

/// One YAML node, untyped.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits an i64.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<SNode>),
    /// A mapping, in written order, duplicates kept so the reader can report them.
    Map(Vec<(SNode, SNode)>),
}

impl Node {
    /// What a user would call this node in "expected X, found Y".
    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// The node as JSON (a schema written in YAML); mapping keys must be strings.
    pub fn to_json(&self) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        Ok(match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::Float(x) => serde_json::Number::from_f64(*x)
                .map(Value::Number)
                .ok_or_else(|| format!("{x} is not a JSON number"))?,
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.value.to_json())
                    .collect::<Result<_, _>>()?,
            ),
            Node::Map(pairs) => {
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    let Node::Str(key) = &k.value else {
                        return Err(format!(
                            "a key must be a string, found {}",
                            k.value.kind_name()
                        ));
                    };
                    map.insert(key.clone(), v.value.to_json()?);
                }
                Value::Object(map)
            }
        })
    }

    /// A scalar as the string it stands for; `None` for null and collections.
    pub fn scalar_string(&self) -> Option<String> {
        match self {
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(x) => Some(x.to_string()),
            Node::Str(s) => Some(s.clone()),
            Node::Null | Node::Seq(_) | Node::Map(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        // Nothing in a bundle needs integers past i64; keep the magnitude so
        // range checks still say "too large" rather than "wrong type".
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<Node, E> {
        Err(E::custom("binary values are not supported in a bundle"))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<SNode>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(entry) = map.next_entry::<SNode, SNode>()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

/// Largest bundle file accepted; a bundle is configuration, not data.
pub(crate) const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// Limits that make a hostile file (alias bombs, deep nesting, document
/// storms) fail fast with a located error instead of eating memory.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_documents = 1_000;
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_events = 400_000;
    budget.max_aliases = 1_000;
    budget.max_total_scalar_bytes = MAX_SOURCE_BYTES;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 100_000;
    options.alias_limits.max_replay_stack_depth = 16;
    // Duplicates reach the tree so the reader reports each one, with every
    // other problem, instead of the parse stopping at the first.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    // YAML 1.2 core only: `n`, `no`, `on` are strings (event property names,
    // ports named "on"…), and `007` stays the string it looks like.
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options.reject_unsupported_tags = true;
    options
}

/// Every non-empty document of `text`, or the one YAML error that stopped the parse.
pub(crate) fn parse_documents(file: &Arc<str>, text: &str) -> Result<Vec<SNode>, Diagnostic> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(Diagnostic {
            place: None,
            resource: None,
            message: format!(
                "{file}: file is {} bytes, more than the {MAX_SOURCE_BYTES} allowed for a bundle",
                text.len()
            ),
        });
    }
    serde_saphyr::from_str_multiple_with_options::<SNode, Vec<SNode>>(text, options()).map_err(
        |e| {
            let at = e.location().filter(|l| *l != Location::UNKNOWN);
            Diagnostic {
                place: at.map(|l| place(file, &l)),
                resource: None,
                message: format!("invalid YAML: {}", yaml_message(&e)),
            }
        },
    )
}

/// serde-saphyr's message without its own "at line X column Y" suffix,
/// since the [`Diagnostic`] already carries the place.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    strip_position(first).to_owned()
}

/// Cuts `message` at its first " at line N, column M"; what follows is
/// more positions (alias definition and use sites) the place already covers.
fn strip_position(message: &str) -> &str {
    let mut from = 0;
    while let Some(i) = message[from..].find(" at line ") {
        let at = from + i;
        let tail = &message[at + " at line ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(", column ") {
            return &message[..at];
        }
        from = at + 1;
    }
    message
}
