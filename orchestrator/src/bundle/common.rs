//! Value syntaxes shared by every kind: names, references, durations,
//! sizes, percentages, environment variable names.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diag::Cx;
use super::model::Place;
use super::node::Node;
use super::read::Field;

/// The kinds a bundle may contain, in the order messages list them.
pub(crate) const KINDS: [&str; 5] = ["Connector", "Connection", "Swarm", "Agent", "Secret"];

/// Goondan kinds this orchestrator has no use for: it runs agents as programs.
pub(crate) const GOONDAN_ONLY_KINDS: [&str; 4] = ["Package", "Model", "Tool", "Extension"];

/// Goondan Agent fields that describe an LLM agent rather than a program.
pub(crate) const GOONDAN_ONLY_AGENT_FIELDS: [&str; 4] =
    ["modelConfig", "prompt", "tools", "extensions"];

/// What to say about a Goondan-only kind or field.
pub(crate) const PORTING: &str = "this orchestrator runs each agent as a program (`spec.entry`); see \"Porting a Goondan agent\" in the README";

/// Why `name` is not a usable resource name, if it is not.
///
/// Names become file names (log paths), so they are kept to a portable,
/// separator-free alphabet: `^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "invalid name `{name}`: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// A resource name.
pub(crate) fn name(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<String> {
    let name = f.string(cx)?;
    match check_name(&name) {
        Ok(()) => Some(name),
        Err(e) => {
            f.error(cx, e);
            None
        }
    }
}

/// A string kept with where it was written, for checks that can only be
/// made once every document has been read (references, event names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    /// The value (for a reference: the referenced resource's name).
    pub value: String,
    /// Where it is written.
    pub place: Place,
    /// Its path, for messages.
    pub path: String,
}

impl Located {
    /// `value` as written by `f`.
    pub fn new(cx: &Cx<'_>, f: &Field<'_>, value: String) -> Self {
        Self {
            value,
            place: cx.place(f.at()),
            path: f.path.clone(),
        }
    }
}

/// A reference to a resource of kind `expected`: `"Kind/name"`, a bare
/// `"name"`, or `{kind, name}`. Existence is checked later, once every
/// document has been read.
pub(crate) fn reference(cx: &mut Cx<'_>, f: &Field<'_>, expected: &str) -> Option<Located> {
    reference_with(cx, f, expected, false).map(|(r, _)| r)
}

/// `connectorRef`: a [`reference`](fn@reference) whose mapping form may also ask for a
/// version range, `{name: telegram, version: "^1"}` (Cargo's syntax). The
/// range is returned when written and valid; whether the Connector's
/// `spec.version` satisfies it is checked once every document is read.
pub(crate) fn versioned_reference(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    expected: &str,
) -> Option<(Located, Option<Located>)> {
    reference_with(cx, f, expected, true)
}

fn reference_with(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    expected: &str,
    versioned: bool,
) -> Option<(Located, Option<Located>)> {
    let mut range = None;
    let (kind, name) = match &f.node.value {
        Node::Str(s) => match s.split_once('/') {
            Some((kind, name)) => (Some(kind.to_owned()), name.to_owned()),
            None => (None, s.clone()),
        },
        Node::Map(_) => {
            let allowed: &[&str] = if versioned {
                &["kind", "name", "ref", "version"]
            } else {
                &["kind", "name", "ref"]
            };
            let map = f.fields(cx, allowed)?;
            range = map.get("version").and_then(|v| version_range(cx, &v));
            match map.get("ref") {
                // Goondan's `{ref: "Agent/x"}`.
                Some(r) => {
                    if map.get("kind").is_some() || map.get("name").is_some() {
                        f.error(cx, "set either `ref` or `kind` and `name`, not both");
                        return None;
                    }
                    let text = r.string(cx)?;
                    match text.split_once('/') {
                        Some((kind, name)) => (Some(kind.to_owned()), name.to_owned()),
                        None => (None, text),
                    }
                }
                None => {
                    let kind = map.get("kind").and_then(|k| k.string(cx));
                    let name = map.required(cx, "name")?.string(cx)?;
                    (kind, name)
                }
            }
        }
        other => {
            f.error(
                cx,
                format!(
                    "expected a reference like `{expected}/name`, found {}",
                    other.kind_name()
                ),
            );
            return None;
        }
    };
    if let Some(kind) = kind.filter(|k| k != expected) {
        f.error(
            cx,
            format!("expected a reference to a {expected}, found `{kind}/{name}`"),
        );
        return None;
    }
    if let Err(e) = check_name(&name) {
        f.error(cx, e);
        return None;
    }
    Some((Located::new(cx, f, name), range))
}

/// A version range in Cargo's syntax (`^1`, `>=1.2, <2`, `~0.3`, `=1.4.0`).
fn version_range(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Located> {
    let text = f.nonempty(cx)?;
    match semver::VersionReq::parse(&text) {
        Ok(_) => Some(Located::new(cx, f, text)),
        Err(e) => {
            f.error(
                cx,
                format!(
                    "invalid version range `{text}` ({e}), expected e.g. ^1, ~1.2 or >=1.2, <2"
                ),
            );
            None
        }
    }
}

/// `10s`, `1m`, `500ms`, `1h 30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration `{text}` ({e}), expected e.g. 500ms, 10s, 1m"))
}

/// A duration written as a string.
pub(crate) fn duration(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Duration> {
    let Node::Str(text) = &f.node.value else {
        f.error(
            cx,
            format!(
                "expected a duration like 10s, found {}",
                f.node.value.kind_name()
            ),
        );
        return None;
    };
    parse_duration(text).map_err(|e| f.error(cx, e)).ok()
}

/// A duration that must not be zero (a period, a timeout).
pub(crate) fn positive_duration(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Duration> {
    let d = duration(cx, f)?;
    if d.is_zero() {
        f.error(cx, "must be longer than zero");
        return None;
    }
    Some(d)
}

const SIZE_UNITS: [(&str, u64); 8] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

/// `1048576`, `256Mi`, `1G`: bytes, with Kubernetes' binary and decimal suffixes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let bad = || {
        format!(
            "invalid size `{text}`, expected bytes or a number with Ki, Mi, Gi, Ti, K, M, G or T"
        )
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit = if suffix.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(s, _)| *s == suffix)
            .map(|(_, u)| *u)
            .ok_or_else(bad)?
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

/// A size, as an integer number of bytes or a string with a suffix.
pub(crate) fn size(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<u64> {
    let parsed = match &f.node.value {
        Node::Int(n) => {
            u64::try_from(*n).map_err(|_| format!("size must not be negative, found {n}"))
        }
        Node::Str(s) => parse_size(s),
        other => Err(format!(
            "expected a size like 256Mi, found {}",
            other.kind_name()
        )),
    };
    parsed.map_err(|e| f.error(cx, e)).ok()
}

/// `50%`: a positive whole percentage (of one CPU, so above 100 is fine).
pub(crate) fn parse_percent(text: &str) -> Result<u32, String> {
    let bad = || format!("invalid percentage `{text}`, expected e.g. 50%");
    let n: u32 = text
        .strip_suffix('%')
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    if n == 0 {
        return Err(format!(
            "percentage must be greater than zero, found `{text}`"
        ));
    }
    Ok(n)
}

/// A percentage written as a string.
pub(crate) fn percent(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<u32> {
    let Node::Str(text) = &f.node.value else {
        f.error(
            cx,
            format!(
                "expected a percentage like 50%, found {}",
                f.node.value.kind_name()
            ),
        );
        return None;
    };
    parse_percent(text).map_err(|e| f.error(cx, e)).ok()
}

/// Whether `name` can be an environment variable name.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The name of an environment variable to read (`valueFrom.env`).
pub(crate) fn env_name(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<String> {
    let name = f.string(cx)?;
    if !is_env_name(&name) {
        f.error(
            cx,
            format!("`{name}` is not a valid environment variable name"),
        );
        return None;
    }
    Some(name)
}

/// A mapping whose values are scalars, kept as strings; nested values are errors.
pub(crate) fn scalar_map(cx: &mut Cx<'_>, f: &Field<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in f.entries(cx).unwrap_or_default() {
        if let Some(v) = entry.value.scalar(cx) {
            out.insert(entry.key, v);
        }
    }
    out
}
