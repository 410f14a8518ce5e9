//! What an apply would do: the resources that differ between the running
//! bundle and a new one, and for each child (a Connection's process, an
//! Agent's instances) whether it is left alone, changed in place,
//! restarted, started or stopped. Pure: bundles and digests in, a plan out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, Connection};

/// `spec` keys of a Connection that an apply changes without a restart.
const CONNECTION_LIVE: [&str; 5] = ["ingress", "rateLimit", "overflow", "operations", "swarmRef"];

/// `spec` keys of an Agent that an apply changes without a restart.
const AGENT_LIVE: [&str; 6] = [
    "invoke",
    "idleTimeout",
    "instanceTtl",
    "maxInFlight",
    "maxAttempts",
    "deliveryTimeout",
];

/// Hashes of the values a child was (or would be) started with; never the values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    /// Each secret's value, hashed, by key.
    pub secrets: BTreeMap<String, [u8; 32]>,
    /// The resolved `spec.config`, hashed.
    pub config: [u8; 32],
}

/// How one resource differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceChange {
    /// `Connector`, `Connection`, `Swarm`, `Agent` or `Secret`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// For `changed`: the `spec` fields that differ (`spec.ingress`, `spec.config.PORT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// What happens to one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Nothing: its pid does not change.
    Keep,
    /// Its routing or limits change in place; no process restarts.
    Update,
    /// It restarts gracefully with its new spec.
    Restart,
    /// It starts (a Connection now; an Agent on its first event).
    Start,
    /// It stops gracefully and is gone.
    Stop,
    /// It stops and stays declared, not running (`enabled: false`).
    Disable,
}

impl Action {
    /// The words `diff` prints.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Keep => "left alone",
            Action::Update => "changed in place (no restart)",
            Action::Restart => "restarted",
            Action::Start => "started",
            Action::Stop => "stopped",
            Action::Disable => "disabled (stopped, kept declared)",
        }
    }
}

/// One child and what happens to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildAction {
    /// `connection/<name>` or `agent/<name>` (all its instances).
    pub target: String,
    /// What happens.
    pub action: Action,
    /// Why, when it is not left alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Secret keys whose values changed: each is a `credential_rotated` audit record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotated: Vec<String>,
}

/// Everything an apply would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Resources added, removed or changed.
    pub resources: Vec<ResourceChange>,
    /// Every child of the new and the old bundle.
    pub children: Vec<ChildAction>,
}

impl Plan {
    /// Nothing differs: an apply would leave everything alone.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.children.iter().all(|c| c.action == Action::Keep)
    }

    /// What happens to `target`.
    pub fn action(&self, target: &str) -> Action {
        self.children
            .iter()
            .find(|c| c.target == target)
            .map_or(Action::Keep, |c| c.action)
    }

    /// The text `orchestrator diff` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.is_empty() {
            out.push_str("no differences: apply would leave everything alone\n");
            return out;
        }
        for r in &self.resources {
            out.push_str(&format!("{}/{}: {}", r.kind, r.name, r.change));
            if !r.fields.is_empty() {
                out.push_str(&format!(" ({})", r.fields.join(", ")));
            }
            out.push('\n');
        }
        out.push('\n');
        for c in &self.children {
            out.push_str(&format!("{}: {}", c.target, c.action.describe()));
            if !c.reason.is_empty() {
                out.push_str(&format!(": {}", c.reason));
            }
            out.push('\n');
        }
        out
    }
}

/// The plan from `old` (running, started with `old_digests`) to `new`
/// (whose values hash to `new_digests`), by `Kind/name`.
pub fn plan(
    old: &Bundle,
    new: &Bundle,
    old_digests: &BTreeMap<String, Digests>,
    new_digests: &BTreeMap<String, Digests>,
) -> Plan {
    let mut plan = Plan {
        resources: resource_changes(old, new),
        children: Vec::new(),
    };
    let changed = |id: &str| changed_fields(old.specs.get(id), new.specs.get(id));
    let rotated = |id: &str| -> (bool, Vec<String>) {
        let (Some(a), Some(b)) = (old_digests.get(id), new_digests.get(id)) else {
            return (false, Vec::new());
        };
        let keys: BTreeSet<&String> = a.secrets.keys().chain(b.secrets.keys()).collect();
        let rotated = keys
            .into_iter()
            .filter(
                |k| matches!((a.secrets.get(*k), b.secrets.get(*k)), (Some(x), Some(y)) if x != y),
            )
            .cloned()
            .collect();
        (a.config != b.config, rotated)
    };

    let names: BTreeSet<&String> = old
        .connections
        .iter()
        .chain(&new.connections)
        .map(|c| &c.name)
        .collect();
    let find = |b: &'_ Bundle, name: &str| b.connections.iter().find(|c| c.name == name).cloned();
    for name in names {
        let id = format!("Connection/{name}");
        let (o, n) = (find(old, name), find(new, name));
        let mut child = ChildAction {
            target: format!("connection/{name}"),
            action: Action::Keep,
            reason: String::new(),
            rotated: Vec::new(),
        };
        match (&o, &n) {
            (None, Some(n)) if n.enabled => set(&mut child, Action::Start, "new"),
            (None, Some(_)) => set(&mut child, Action::Disable, "added with enabled: false"),
            (Some(o), None) if o.enabled => set(&mut child, Action::Stop, "removed"),
            (Some(_), None) => set(&mut child, Action::Stop, "removed (it was disabled)"),
            (Some(o), Some(n)) => match (o.enabled, n.enabled) {
                (true, false) => set(&mut child, Action::Disable, "enabled: false"),
                (false, true) => set(&mut child, Action::Start, "enabled again"),
                (false, false) => {}
                (true, true) => {
                    let (config, keys) = rotated(&id);
                    connection_change(&mut child, old, new, o, n, &changed(&id), config, keys);
                }
            },
            (None, None) => {}
        }
        plan.children.push(child);
    }

    let names: BTreeSet<&String> = old.agents.keys().chain(new.agents.keys()).collect();
    for name in names {
        let id = format!("Agent/{name}");
        let mut child = ChildAction {
            target: format!("agent/{name}"),
            action: Action::Keep,
            reason: String::new(),
            rotated: Vec::new(),
        };
        match (old.agents.get(name), new.agents.get(name)) {
            (None, Some(n)) if n.enabled => set(
                &mut child,
                Action::Start,
                "new (its instances start on their first event)",
            ),
            (None, Some(_)) => set(&mut child, Action::Disable, "added with enabled: false"),
            (Some(_), None) => set(
                &mut child,
                Action::Stop,
                "removed (what its instances have not delivered is dead-lettered)",
            ),
            (Some(o), Some(n)) => match (o.enabled, n.enabled) {
                (true, false) => set(
                    &mut child,
                    Action::Disable,
                    "enabled: false (the journal keeps its events)",
                ),
                (false, true) => set(&mut child, Action::Start, "enabled again"),
                (false, false) => {}
                (true, true) => {
                    let (_, keys) = rotated(&id);
                    agent_change(&mut child, &changed(&id), keys);
                }
            },
            (None, None) => {}
        }
        plan.children.push(child);
    }
    plan
}

/// `fields` (`spec.x.y`) as (those that need a restart, those that `live`
/// names); `spec.enabled` is neither (its own action).
fn split(fields: &[String], live: &[&str]) -> (Vec<String>, Vec<String>) {
    fields
        .iter()
        .filter(|f| *f != "spec.enabled")
        .cloned()
        .partition(|f| !live.contains(&f.split('.').nth(1).unwrap_or_default()))
}

fn set(child: &mut ChildAction, action: Action, reason: &str) {
    child.action = action;
    child.reason = reason.to_string();
}

#[allow(clippy::too_many_arguments)]
fn connection_change(
    child: &mut ChildAction,
    old: &Bundle,
    new: &Bundle,
    o: &Connection,
    n: &Connection,
    fields: &[String],
    config_values: bool,
    rotated: Vec<String>,
) {
    let (mut restart, mut live) = split(fields, &CONNECTION_LIVE);
    let connector = format!("Connector/{}", n.connector);
    let connector_fields = changed_fields(
        old.specs.get(&format!("Connector/{}", o.connector)),
        new.specs.get(&connector),
    );
    if o.connector == n.connector && !connector_fields.is_empty() {
        restart.push(format!("{connector} changed"));
    }
    if config_values && !fields.iter().any(|f| f.starts_with("spec.config")) {
        restart.push("config values changed".into());
    }
    if !rotated.is_empty() {
        restart.push(format!("secrets rotated: {}", rotated.join(", ")));
        child.rotated = rotated;
    }
    let swarm = format!("Swarm/{}", n.swarm);
    if o.swarm == n.swarm
        && !changed_fields(old.specs.get(&swarm), new.specs.get(&swarm)).is_empty()
    {
        live.push(format!("{swarm} changed"));
    }
    if !restart.is_empty() {
        set(child, Action::Restart, &restart.join("; "));
    } else if !live.is_empty() {
        set(child, Action::Update, &live.join(", "));
    }
}

fn agent_change(child: &mut ChildAction, fields: &[String], rotated: Vec<String>) {
    let (mut restart, live) = split(fields, &AGENT_LIVE);
    if !rotated.is_empty() {
        restart.push(format!("secrets rotated: {}", rotated.join(", ")));
        child.rotated = rotated;
    }
    if !restart.is_empty() {
        set(
            child,
            Action::Restart,
            &format!("its instances restart: {}", restart.join("; ")),
        );
    } else if !live.is_empty() {
        set(child, Action::Update, &live.join(", "));
    }
}

/// Every resource added, removed or changed, in kind order then name order.
fn resource_changes(old: &Bundle, new: &Bundle) -> Vec<ResourceChange> {
    const ORDER: [&str; 5] = ["Connector", "Connection", "Swarm", "Agent", "Secret"];
    let ids: BTreeSet<&String> = old.specs.keys().chain(new.specs.keys()).collect();
    let mut out: Vec<ResourceChange> = ids
        .into_iter()
        .filter_map(|id| {
            let (kind, name) = id.split_once('/')?;
            let (change, fields) = match (old.specs.get(id), new.specs.get(id)) {
                (None, Some(_)) => ("added", Vec::new()),
                (Some(_), None) => ("removed", Vec::new()),
                (a, b) => {
                    let fields = changed_fields(a, b);
                    if fields.is_empty() {
                        return None;
                    }
                    ("changed", fields)
                }
            };
            Some(ResourceChange {
                kind: kind.to_string(),
                name: name.to_string(),
                change: change.to_string(),
                fields,
            })
        })
        .collect();
    out.sort_by_key(|r| (ORDER.iter().position(|k| *k == r.kind), r.name.clone()));
    out
}

/// The paths under `spec` where `a` and `b` differ: one level into
/// mappings of the spec (`spec.config.PORT`), the whole field below that.
fn changed_fields(a: Option<&serde_json::Value>, b: Option<&serde_json::Value>) -> Vec<String> {
    use serde_json::Value;
    let (a, b) = match (a, b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => (a, b),
        (a, b) if a == b => return Vec::new(),
        _ => return vec!["spec".into()],
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (x, y) = (a.get(key), b.get(key));
        if x == y {
            continue;
        }
        match (x, y) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let inner: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in inner {
                    if x.get(k) != y.get(k) {
                        out.push(format!("spec.{key}.{k}"));
                    }
                }
            }
            _ => out.push(format!("spec.{key}")),
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
