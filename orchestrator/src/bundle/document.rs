//! One YAML document → one resource: the header every kind shares
//! (`apiVersion`, `kind`, `metadata`), then the kind's own spec reader.

use std::sync::Arc;

use super::common::{GOONDAN_ONLY_KINDS, KINDS, PORTING, name, scalar_map};
use super::connection::ConnectionDoc;
use super::diag::{Cx, Diagnostic, did_you_mean, place};
use super::model::{Agent, Connector, Place, Secret};
use super::node::{Node, SNode};
use super::read::Field;
use super::swarm::SwarmDoc;
use super::{agent, connection, connector, secret, swarm};

/// The only apiVersion this orchestrator reads.
pub(crate) const API_VERSION: &str = "goondan.ai/v1";

/// A resource as read from its document, references not yet resolved.
#[derive(Debug)]
pub(crate) enum Body {
    /// `kind: Connector`.
    Connector(Connector),
    /// `kind: Connection`.
    Connection(Box<ConnectionDoc>),
    /// `kind: Swarm`.
    Swarm(SwarmDoc),
    /// `kind: Agent`.
    Agent(Agent),
    /// `kind: Secret`.
    Secret(Secret),
}

/// A document with a known kind.
#[derive(Debug)]
pub(crate) struct Doc {
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// metadata.name, when it is a valid name.
    pub name: Option<String>,
    /// Where metadata.name is written (or the document, when it is missing).
    pub name_place: Place,
    /// Where the document starts.
    pub place: Place,
    /// The resource, unless its spec had a problem that leaves nothing to build.
    /// The name still counts for uniqueness and references, so one broken
    /// resource doesn't make every reference to it an error too.
    pub body: Option<Body>,
}

/// Reads one document; `None` when its kind is missing or unknown.
pub(crate) fn read(file: &Arc<str>, root: &SNode, out: &mut Vec<Diagnostic>) -> Option<Doc> {
    let Node::Map(pairs) = &root.value else {
        out.push(Diagnostic {
            place: Some(place(file, &root.referenced)),
            resource: None,
            message: format!(
                "expected a mapping with apiVersion, kind, metadata and spec, found {}",
                root.value.kind_name()
            ),
        });
        return None;
    };
    let kind_node = pairs
        .iter()
        .find(|(k, _)| k.value == Node::Str("kind".into()))
        .map(|(_, v)| v);
    let kind = match kind_node.map(|n| &n.value) {
        Some(Node::Str(k)) => KINDS.iter().find(|known| *known == k).copied(),
        _ => None,
    };
    let mut cx = Cx {
        file: Arc::clone(file),
        kind: kind.unwrap_or(""),
        resource: None,
        out,
    };
    let Some(kind) = kind else {
        let mut meant = None;
        let message = match kind_node {
            None => "missing required field `kind`".to_owned(),
            Some(n) => match &n.value {
                Node::Str(k) if GOONDAN_ONLY_KINDS.contains(&k.as_str()) => {
                    format!("`kind`: `{k}` is a Goondan resource: {PORTING}")
                }
                Node::Str(k) => {
                    meant = did_you_mean(k, KINDS.iter().copied());
                    match meant {
                        Some(m) => format!("`kind`: unknown kind `{k}`; did you mean `{m}`?"),
                        None => format!(
                            "`kind`: unknown kind `{k}`, expected one of: {}",
                            KINDS.join(", ")
                        ),
                    }
                }
                other => format!("`kind`: expected a string, found {}", other.kind_name()),
            },
        };
        cx.error(
            kind_node.map_or(&root.referenced, |n| &n.referenced),
            message,
        );
        // A misspelled kind still names its resource: references to it are
        // not reported again on top of the one error that matters.
        return meant.map(|kind| Doc {
            kind,
            name: loose_name(pairs),
            name_place: place(file, &root.referenced),
            place: place(file, &root.referenced),
            body: None,
        });
    };
    cx.resource = Some(kind.to_owned());
    let doc = Field::new("", root).fields(&mut cx, &["apiVersion", "kind", "metadata", "spec"])?;

    let metadata = doc.required(&mut cx, "metadata");
    let meta = metadata
        .as_ref()
        .and_then(|m| m.fields(&mut cx, &["name", "labels", "annotations"]));
    let name_field = meta.as_ref().and_then(|m| m.required(&mut cx, "name"));
    let name = name_field.as_ref().and_then(|f| name(&mut cx, f));
    if let Some(name) = &name {
        cx.resource = Some(format!("{kind}/{name}"));
    }
    // Reported after the name so these errors carry `Kind/name`.
    if let Some(v) = doc
        .required(&mut cx, "apiVersion")
        .and_then(|v| v.string(&mut cx).map(|s| (v, s)))
    {
        let (field, version) = v;
        if version != API_VERSION {
            field.error(
                &mut cx,
                format!("unsupported apiVersion `{version}`, expected {API_VERSION}"),
            );
        }
    }
    for key in ["labels", "annotations"] {
        if let Some(f) = meta.as_ref().and_then(|m| m.get(key)) {
            scalar_map(&mut cx, &f);
        }
    }

    let place = cx.place(&root.referenced);
    let name_place = name_field.map_or_else(|| place.clone(), |f| cx.place(f.at()));
    let spec = doc.required(&mut cx, "spec");
    // The spec is read even under a bad name, so its problems are reported too.
    let body = spec.and_then(|spec| {
        let (n, at) = (name.clone().unwrap_or_default(), place.clone());
        match kind {
            "Connector" => connector::read(&mut cx, &spec, n, at).map(Body::Connector),
            "Connection" => {
                connection::read(&mut cx, &spec, n, at).map(|c| Body::Connection(Box::new(c)))
            }
            "Swarm" => swarm::read(&mut cx, &spec, n, at).map(Body::Swarm),
            "Agent" => agent::read(&mut cx, &spec, n, at).map(Body::Agent),
            _ => secret::read(&mut cx, &spec, n, at).map(Body::Secret),
        }
    });
    let body = body.filter(|_| name.is_some());
    Some(Doc {
        kind,
        name,
        name_place,
        place,
        body,
    })
}

/// `metadata.name` of a document read no further, if it is a string.
fn loose_name(pairs: &[(SNode, SNode)]) -> Option<String> {
    let key = |n: &SNode, k: &str| n.value == Node::Str(k.into());
    let (_, metadata) = pairs.iter().find(|(k, _)| key(k, "metadata"))?;
    let Node::Map(meta) = &metadata.value else {
        return None;
    };
    match &meta.iter().find(|(k, _)| key(k, "name"))?.1.value {
        Node::Str(name) => Some(name.clone()),
        _ => None,
    }
}
