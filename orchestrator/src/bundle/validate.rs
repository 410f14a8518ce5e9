//! Checks that need more than one document: unique names, references that
//! resolve, rules that fit their Connector and Swarm. Then the [`Bundle`].

use std::collections::BTreeMap;
use std::path::Path;

use super::common::Located;
use super::connection::ConnectionDoc;
use super::diag::{Diagnostic, did_you_mean};
use super::document::{Body, Doc};
use super::model::{Bundle, Connector, EventDecl, Place, Secret, Swarm};
use super::rules::RuleRefs;

/// Every resource by kind and name, first definition wins.
struct Index<'d> {
    docs: BTreeMap<(&'static str, &'d str), &'d Doc>,
    first_swarm: Option<&'d str>,
}

impl<'d> Index<'d> {
    fn exists(&self, kind: &'static str, name: &str) -> bool {
        self.docs.contains_key(&(kind, name))
    }

    fn body(&self, kind: &'static str, name: &str) -> Option<&'d Body> {
        self.docs.get(&(kind, name)).and_then(|d| d.body.as_ref())
    }

    fn connector(&self, name: &str) -> Option<&'d Connector> {
        match self.body("Connector", name) {
            Some(Body::Connector(c)) => Some(c),
            _ => None,
        }
    }

    fn swarm(&self, name: &str) -> Option<&'d Swarm> {
        match self.body("Swarm", name) {
            Some(Body::Swarm(s)) => Some(&s.swarm),
            _ => None,
        }
    }

    fn secret(&self, name: &str) -> Option<&'d Secret> {
        match self.body("Secret", name) {
            Some(Body::Secret(s)) => Some(s),
            _ => None,
        }
    }
}

/// Diagnostics for one resource.
struct Report<'o> {
    resource: String,
    out: &'o mut Vec<Diagnostic>,
}

impl Report<'_> {
    fn at(&mut self, place: &Place, message: String) {
        self.out.push(Diagnostic {
            place: Some(place.clone()),
            resource: Some(self.resource.clone()),
            message,
        });
    }

    fn field(&mut self, l: &Located, message: String) {
        self.at(&l.place, format!("`{}`: {message}", l.path));
    }

    fn must_exist(&mut self, index: &Index<'_>, kind: &'static str, r: &Located) -> bool {
        let found = index.exists(kind, &r.value);
        if !found {
            let names = index
                .docs
                .keys()
                .filter(|(k, _)| *k == kind)
                .map(|(_, name)| *name);
            let hint = did_you_mean(&r.value, names)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            self.field(
                r,
                format!("no {kind} named `{}` in the bundle{hint}", r.value),
            );
        }
        found
    }
}

/// Checks `docs` against each other and builds the bundle from them.
pub(crate) fn assemble(root: &Path, mut docs: Vec<Doc>, out: &mut Vec<Diagnostic>) -> Bundle {
    let mut index = Index {
        docs: BTreeMap::new(),
        first_swarm: None,
    };
    for doc in &docs {
        let Some(name) = doc.name.as_deref() else {
            continue;
        };
        if let Some(first) = index.docs.get(&(doc.kind, name)) {
            let message = format!(
                "duplicate {} name `{name}`, first defined at {}",
                doc.kind, first.place
            );
            Report {
                resource: format!("{}/{name}", doc.kind),
                out: &mut *out,
            }
            .at(&doc.name_place, message);
            continue;
        }
        index.docs.insert((doc.kind, name), doc);
        if doc.kind == "Swarm" && index.first_swarm.is_none() {
            index.first_swarm = Some(name);
        }
    }

    let mut swarms_for = Vec::new();
    let mut stdin_reader: Option<&str> = None;
    for doc in &docs {
        if let Some(Body::Connection(c)) = &doc.body
            && index.connector(&c.connector.value).is_some_and(|k| k.stdin)
        {
            match stdin_reader {
                None => stdin_reader = Some(&c.connection.name),
                Some(first) => {
                    let message = format!(
                        "its Connector reads the orchestrator's stdin (`stdin: inherit`), and Connection/{first} already does: only one may"
                    );
                    Report {
                        resource: format!("Connection/{}", c.connection.name),
                        out: &mut *out,
                    }
                    .field(&c.connector, message);
                }
            }
        }
    }
    for doc in &docs {
        match &doc.body {
            Some(Body::Swarm(s)) => {
                let mut report = Report {
                    resource: format!("Swarm/{}", s.swarm.name),
                    out: &mut *out,
                };
                for agent in &s.agents {
                    report.must_exist(&index, "Agent", agent);
                }
            }
            Some(Body::Connection(c)) => swarms_for.push(check_connection(&index, c, out)),
            Some(Body::Agent(a)) => {
                let mut report = Report {
                    resource: format!("Agent/{}", a.name),
                    out: &mut *out,
                };
                for grant in &a.invoke {
                    let at = Located {
                        value: grant.connection.clone(),
                        place: grant.place.clone(),
                        path: "spec.invoke[].connection".into(),
                    };
                    report.must_exist(&index, "Connection", &at);
                }
                check_secret_refs(&index, &mut report, &a.secret_refs);
            }
            _ => {}
        }
    }

    let mut bundle = Bundle {
        root: root.to_path_buf(),
        ..Bundle::default()
    };
    let mut swarms_for = swarms_for.into_iter();
    for doc in docs.drain(..) {
        match doc.body {
            Some(Body::Connector(c)) => {
                bundle.connectors.entry(c.name.clone()).or_insert(c);
            }
            Some(Body::Connection(c)) => {
                let mut connection = c.connection;
                connection.swarm = swarms_for.next().flatten().unwrap_or_default();
                bundle.connections.push(connection);
            }
            Some(Body::Swarm(s)) => {
                bundle.swarms.entry(s.swarm.name.clone()).or_insert(s.swarm);
            }
            Some(Body::Agent(a)) => {
                bundle.agents.entry(a.name.clone()).or_insert(a);
            }
            Some(Body::Secret(s)) => {
                bundle.secrets.entry(s.name.clone()).or_insert(s);
            }
            None => {}
        }
    }
    bundle
}

/// Checks one Connection; returns the name of the Swarm it is bound to.
fn check_connection(
    index: &Index<'_>,
    doc: &ConnectionDoc,
    out: &mut Vec<Diagnostic>,
) -> Option<String> {
    let c = &doc.connection;
    let mut report = Report {
        resource: format!("Connection/{}", c.name),
        out,
    };
    let connector = report
        .must_exist(index, "Connector", &doc.connector)
        .then(|| index.connector(&doc.connector.value))
        .flatten();
    let swarm_name = match &doc.swarm {
        Some(r) => report
            .must_exist(index, "Swarm", r)
            .then(|| r.value.clone()),
        None => {
            if index.first_swarm.is_none() {
                let message =
                    "no spec.swarmRef and no Swarm in the bundle to default to".to_owned();
                report.at(&c.place, message);
            }
            index.first_swarm.map(str::to_owned)
        }
    };
    let swarm = swarm_name.as_deref().and_then(|s| index.swarm(s));

    if let Some(connector) = connector {
        super::config_check::check(&mut |at, m| report.field(at, m), doc, connector);
    }
    if let (Some(connector), Some(range)) = (connector, &doc.connector_version) {
        check_version(&mut report, connector, range);
    }

    // An allowed operation must be one the Connector can do.
    if let Some(connector) = connector {
        for name in &doc.allowed {
            if !connector.operations.iter().any(|o| o.name == name.value) {
                let declared: Vec<&str> = connector
                    .operations
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect();
                let hint = did_you_mean(&name.value, declared.iter().copied())
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                report.field(
                    name,
                    format!(
                        "Connector `{}` declares no operation `{}` (declared: {}){hint}",
                        connector.name,
                        name.value,
                        if declared.is_empty() {
                            "none".to_owned()
                        } else {
                            declared.join(", ")
                        }
                    ),
                );
            }
        }
    }

    check_secret_refs(index, &mut report, &doc.secret_refs);

    for refs in &doc.rules {
        check_rule(index, &mut report, refs, connector, swarm);
    }
    swarm_name
}

/// The Connector's `spec.version` satisfies the Connection's `connectorRef.version`.
fn check_version(report: &mut Report<'_>, connector: &Connector, range: &Located) {
    // Checked when read; a range that does not parse is reported there.
    let Ok(req) = semver::VersionReq::parse(&range.value) else {
        return;
    };
    let Some(version) = &connector.version else {
        report.field(
            range,
            format!(
                "Connector `{}` declares no spec.version to check the range `{}` against",
                connector.name, range.value
            ),
        );
        return;
    };
    // A version that is not semver is reported at the Connector's `version`.
    let Ok(v) = semver::Version::parse(version) else {
        return;
    };
    if !req.matches(&v) {
        report.field(
            range,
            format!(
                "Connector `{}` is version {v}, which does not satisfy `{}`",
                connector.name, range.value
            ),
        );
    }
}

fn check_rule(
    index: &Index<'_>,
    report: &mut Report<'_>,
    refs: &RuleRefs,
    connector: Option<&Connector>,
    swarm: Option<&Swarm>,
) {
    if let Some(agent) = &refs.agent
        && report.must_exist(index, "Agent", agent)
        && let Some(s) = swarm.filter(|s| !s.agents.contains(&agent.value))
    {
        report.field(
            agent,
            format!("Agent `{}` is not in Swarm `{}`", agent.value, s.name),
        );
    }
    // Event checks need the Connector's declarations; if it is missing that is reported already.
    let Some(connector) = connector else { return };
    let event: Option<&EventDecl> = match &refs.event {
        Some(e) => match connector.event(&e.value) {
            Some(decl) => Some(decl),
            None => {
                let declared: Vec<&str> =
                    connector.events.iter().map(|d| d.name.as_str()).collect();
                let message = format!(
                    "Connector `{}` declares no event `{}` (declared: {})",
                    connector.name,
                    e.value,
                    declared.join(", ")
                );
                report.field(e, message);
                // Properties of an unknown event can't be checked.
                return;
            }
        },
        None => None,
    };
    for property in refs.properties.iter().chain(&refs.key_property) {
        match event {
            Some(e) if !e.properties.contains_key(&property.value) => {
                report.field(
                    property,
                    format!(
                        "event `{}` declares no property `{}`",
                        e.name, property.value
                    ),
                );
            }
            None if !connector
                .events
                .iter()
                .any(|e| e.properties.contains_key(&property.value)) =>
            {
                let message = format!(
                    "no event of Connector `{}` declares a property `{}`",
                    connector.name, property.value
                );
                report.field(property, message);
            }
            _ => {}
        }
    }
}

/// Each `secretRef` names a Secret of the bundle and a key it has.
fn check_secret_refs(index: &Index<'_>, report: &mut Report<'_>, refs: &[(Located, Located)]) {
    for (secret, key) in refs {
        if report.must_exist(index, "Secret", secret)
            && let Some(s) = index.secret(&secret.value)
            && !s.data.contains_key(&key.value)
        {
            report.field(
                key,
                format!("Secret `{}` has no key `{}`", s.name, key.value),
            );
        }
    }
}
