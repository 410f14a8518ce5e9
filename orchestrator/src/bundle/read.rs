//! A small typed reader over the spanned tree.
//!
//! Each accessor either returns the value or records a diagnostic at the
//! node and returns `None`, so a caller reads every field it knows about,
//! whatever went wrong before, and all problems come out in one pass.

use serde_saphyr::Location;

use super::common::{GOONDAN_ONLY_AGENT_FIELDS, PORTING};
use super::diag::Cx;
use super::node::{Node, SNode};

/// One node being read, with the dotted path that names it in messages
/// (`spec.restart.backoff.initial`, `spec.events[2].name`).
#[derive(Clone, Debug)]
pub(crate) struct Field<'n> {
    /// Path from the document root.
    pub path: String,
    /// The node itself.
    pub node: &'n SNode,
}

/// The entries of a free-form mapping (`env`, `config`, `labels`).
#[derive(Clone, Debug)]
pub(crate) struct Entry<'n> {
    /// The key as a string.
    pub key: String,
    /// Where the key is written.
    pub key_at: Location,
    /// The value.
    pub value: Field<'n>,
}

/// A mapping read as a struct: keys checked against an allowed list.
#[derive(Debug)]
pub(crate) struct Fields<'n> {
    path: String,
    at: Location,
    entries: Vec<(&'n str, &'n SNode)>,
}

/// How a mapping is named in messages: "Connection spec", or its path.
fn label(kind: &str, path: &str) -> String {
    match path {
        "" => format!("{kind} document"),
        "spec" => format!("{kind} spec"),
        path => format!("`{path}`"),
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl<'n> Field<'n> {
    /// A field at `path`.
    pub fn new(path: impl Into<String>, node: &'n SNode) -> Self {
        Self {
            path: path.into(),
            node,
        }
    }

    /// Where the value is written.
    pub fn at(&self) -> &Location {
        &self.node.referenced
    }

    /// Records "`path`: message" at this node.
    pub fn error(&self, cx: &mut Cx<'_>, message: impl std::fmt::Display) {
        cx.error(self.at(), format!("`{}`: {message}", self.path));
    }

    fn mismatch<T>(&self, cx: &mut Cx<'_>, expected: &str) -> Option<T> {
        self.error(
            cx,
            format!("expected {expected}, found {}", self.node.value.kind_name()),
        );
        None
    }

    /// A string, exactly.
    pub fn string(&self, cx: &mut Cx<'_>) -> Option<String> {
        match &self.node.value {
            Node::Str(s) => Some(s.clone()),
            _ => self.mismatch(cx, "a string"),
        }
    }

    /// A string that is not empty.
    pub fn nonempty(&self, cx: &mut Cx<'_>) -> Option<String> {
        let s = self.string(cx)?;
        if s.is_empty() {
            self.error(cx, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// Any scalar, as the string it stands for (`42`, `true`, `text`).
    pub fn scalar(&self, cx: &mut Cx<'_>) -> Option<String> {
        match self.node.value.scalar_string() {
            Some(s) => Some(s),
            None => self.mismatch(cx, "a string, number or boolean"),
        }
    }

    /// `true` or `false`.
    pub fn bool(&self, cx: &mut Cx<'_>) -> Option<bool> {
        match self.node.value {
            Node::Bool(b) => Some(b),
            _ => self.mismatch(cx, "true or false"),
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&self, cx: &mut Cx<'_>, min: i64, max: i64) -> Option<i64> {
        let v = match self.node.value {
            Node::Int(v) => v,
            Node::Float(x) if x.is_finite() && x.fract() == 0.0 => {
                // Only integers too large for i64 arrive as whole floats.
                self.error(cx, format!("{x} is too large, the most allowed is {max}"));
                return None;
            }
            _ => return self.mismatch(cx, "an integer"),
        };
        if v < min || v > max {
            let range = if max == i64::from(u32::MAX) || max == i64::MAX {
                format!("must be at least {min}")
            } else {
                format!("must be between {min} and {max}")
            };
            self.error(cx, format!("{range}, found {v}"));
            return None;
        }
        Some(v)
    }

    /// An integer in `min..=u32::MAX`.
    pub fn u32(&self, cx: &mut Cx<'_>, min: u32) -> Option<u32> {
        self.int(cx, min.into(), u32::MAX.into())
            .and_then(|v| u32::try_from(v).ok())
    }

    /// A finite number, integer or not.
    pub fn number(&self, cx: &mut Cx<'_>) -> Option<f64> {
        match self.node.value {
            Node::Int(v) => Some(v as f64),
            Node::Float(x) if x.is_finite() => Some(x),
            _ => self.mismatch(cx, "a finite number"),
        }
    }

    /// One of a fixed set of words.
    pub fn one_of<T: Copy>(&self, cx: &mut Cx<'_>, choices: &[(&str, T)]) -> Option<T> {
        let word = self.string(cx)?;
        if let Some((_, v)) = choices.iter().find(|(w, _)| *w == word) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
        self.error(
            cx,
            format!(
                "unknown value `{word}`, expected one of: {}",
                names.join(", ")
            ),
        );
        None
    }

    /// A list; its items named `path[i]`.
    pub fn seq(&self, cx: &mut Cx<'_>) -> Option<Vec<Field<'n>>> {
        match &self.node.value {
            Node::Seq(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, node)| Field::new(format!("{}[{i}]", self.path), node))
                    .collect(),
            ),
            _ => self.mismatch(cx, "a list"),
        }
    }

    /// Whether the value is a mapping (for fields that take a scalar or a mapping).
    pub fn is_map(&self) -> bool {
        matches!(self.node.value, Node::Map(_))
    }

    /// A mapping read as a struct whose keys must be in `allowed`.
    pub fn fields(&self, cx: &mut Cx<'_>, allowed: &[&str]) -> Option<Fields<'n>> {
        let Node::Map(pairs) = &self.node.value else {
            return self.mismatch(cx, "a mapping");
        };
        let label = label(cx.kind, &self.path);
        let mut entries: Vec<(&'n str, &'n SNode)> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let Node::Str(name) = &key.value else {
                cx.error(
                    &key.referenced,
                    format!(
                        "expected a field name in {label}, found {}",
                        key.value.kind_name()
                    ),
                );
                continue;
            };
            if !allowed.contains(&name.as_str()) {
                let message = if cx.kind == "Agent"
                    && self.path == "spec"
                    && GOONDAN_ONLY_AGENT_FIELDS.contains(&name.as_str())
                {
                    format!("`{name}` is a Goondan agent field: {PORTING}")
                } else {
                    format!(
                        "unknown field `{name}` in {label}, expected one of: {}",
                        allowed.join(", ")
                    )
                };
                cx.error(&key.referenced, message);
                continue;
            }
            if entries.iter().any(|(seen, _)| seen == name) {
                cx.error(
                    &key.referenced,
                    format!("duplicate field `{name}` in {label}"),
                );
                continue;
            }
            entries.push((name.as_str(), value));
        }
        Some(Fields {
            path: self.path.clone(),
            at: self.node.referenced,
            entries,
        })
    }

    /// A free-form mapping: scalar keys as strings, duplicates reported and dropped.
    pub fn entries(&self, cx: &mut Cx<'_>) -> Option<Vec<Entry<'n>>> {
        let Node::Map(pairs) = &self.node.value else {
            return self.mismatch(cx, "a mapping");
        };
        let mut out: Vec<Entry<'n>> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let Some(name) = key.value.scalar_string() else {
                cx.error(
                    &key.referenced,
                    format!(
                        "`{}`: expected a string key, found {}",
                        self.path,
                        key.value.kind_name()
                    ),
                );
                continue;
            };
            if out.iter().any(|e| e.key == name) {
                cx.error(
                    &key.referenced,
                    format!("`{}`: duplicate key `{name}`", self.path),
                );
                continue;
            }
            let value = Field::new(child_path(&self.path, &name), value);
            out.push(Entry {
                key: name,
                key_at: key.referenced,
                value,
            });
        }
        Some(out)
    }
}

impl<'n> Fields<'n> {
    /// Where the mapping is written.
    pub fn at(&self) -> &Location {
        &self.at
    }

    /// The field `key`; `None` when absent or written as null, so that
    /// `key:` with nothing after it means "use the default".
    pub fn get(&self, key: &str) -> Option<Field<'n>> {
        self.entries
            .iter()
            .find(|(k, v)| *k == key && v.value != Node::Null)
            .map(|(k, v)| Field::new(child_path(&self.path, k), v))
    }

    /// The field `key`, reporting it when missing.
    pub fn required(&self, cx: &mut Cx<'_>, key: &str) -> Option<Field<'n>> {
        let field = self.get(key);
        if field.is_none() {
            let label = label(cx.kind, &self.path);
            cx.error(
                &self.at,
                format!("missing required field `{key}` in {label}"),
            );
        }
        field
    }
}
