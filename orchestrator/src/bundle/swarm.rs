//! `kind: Swarm`: a set of agents and the one unrouted events go to.

use super::common::{Located, reference};
use super::diag::Cx;
use super::model::{Place, Swarm};
use super::node::Node;
use super::read::Field;

/// A Swarm with the places of its references, checked once all Agents are known.
#[derive(Debug)]
pub(crate) struct SwarmDoc {
    /// The Swarm, agent names as written.
    pub swarm: Swarm,
    /// `spec.agents[]`.
    pub agents: Vec<Located>,
}

/// Reads a Swarm spec.
pub(crate) fn read(
    cx: &mut Cx<'_>,
    spec: &Field<'_>,
    name: String,
    place: Place,
) -> Option<SwarmDoc> {
    let spec = spec.fields(cx, &["entryAgent", "agents"])?;
    let entry_field = spec.required(cx, "entryAgent");
    let entry = entry_field.as_ref().and_then(|f| reference(cx, f, "Agent"));
    let list = spec.required(cx, "agents");
    let mut agents: Vec<Located> = Vec::new();
    if let Some(list) = &list {
        let items = list.seq(cx).unwrap_or_default();
        if items.is_empty() && matches!(list.node.value, Node::Seq(_)) {
            list.error(cx, "a Swarm needs at least one agent");
        }
        for item in &items {
            let Some(agent) = reference(cx, item, "Agent") else {
                continue;
            };
            if agents.iter().any(|a| a.value == agent.value) {
                item.error(cx, format!("Agent `{}` is listed twice", agent.value));
                continue;
            }
            agents.push(agent);
        }
    }
    let (entry, entry_field) = (entry?, entry_field?);
    list?;
    if !agents.is_empty() && !agents.iter().any(|a| a.value == entry.value) {
        entry_field.error(cx, format!("Agent `{}` is not in spec.agents", entry.value));
    }
    let swarm = Swarm {
        name,
        place,
        entry_agent: entry.value.clone(),
        agents: agents.iter().map(|a| a.value.clone()).collect(),
    };
    Some(SwarmDoc { swarm, agents })
}
