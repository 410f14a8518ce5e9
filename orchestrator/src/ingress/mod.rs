//! Ingress: which agent instance gets an event.
//!
//! # Theory of operation
//!
//! A Connection's rules are tried in order and the first that matches wins
//! (README.md, Bundle reference). A rule matches when its `event` (if any) equals the
//! event's name and every one of its `properties` equals the event's property
//! of that name (AND); a rule with neither catches everything. The winning
//! rule names the agent (default: the Swarm's entryAgent) and how the
//! instance key is chosen. An event no rule matches goes to the entryAgent,
//! or is dropped when the Connection says `unmatched: drop`.
//!
//! Everything here is a pure function of the Connection, the Swarm and the
//! event: no I/O, no clock, no logging. What deserves a log line (a missing
//! key property) is returned as data, and the caller decides.

mod check;

use ipc_proto::Event;

pub use check::check_event;

use crate::bundle::{Connection, KeySource, Swarm, Unmatched};

/// Where an event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Deliver to this agent instance.
    Deliver(Route),
    /// No rule matched and the Connection drops unmatched events.
    Drop,
}

/// The agent instance an event is routed to, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The Agent's name.
    pub agent: String,
    /// The instance key.
    pub instance_key: String,
    /// The index of the rule that matched; `None` for an unmatched event.
    pub rule: Option<usize>,
    /// The rule's `instanceKeyProperty` was absent, so the event's own key was used.
    pub key_fell_back: bool,
}

/// The instance key for an event that carries none and whose rule sets none:
/// one instance per Connection.
pub fn default_instance_key(connection: &Connection) -> String {
    connection.name.clone()
}

/// Routes `event`, which arrived on `connection` bound to `swarm`.
pub fn route(connection: &Connection, swarm: &Swarm, event: &Event) -> Decision {
    let own_key = || {
        event
            .instance_key
            .clone()
            .unwrap_or_else(|| default_instance_key(connection))
    };
    let Some((index, rule)) = connection
        .ingress
        .rules
        .iter()
        .enumerate()
        .find(|(_, rule)| matches(rule, event))
    else {
        return match connection.ingress.unmatched {
            Unmatched::Drop => Decision::Drop,
            Unmatched::EntryAgent => Decision::Deliver(Route {
                agent: swarm.entry_agent.clone(),
                instance_key: own_key(),
                rule: None,
                key_fell_back: false,
            }),
        };
    };
    let mut key_fell_back = false;
    let instance_key = match &rule.key {
        KeySource::Event => own_key(),
        KeySource::Fixed(key) => key.clone(),
        KeySource::Property { name, prefix } => match event.properties.get(name) {
            Some(value) => format!("{prefix}{value}"),
            None => {
                key_fell_back = true;
                own_key()
            }
        },
    };
    Decision::Deliver(Route {
        agent: rule
            .agent
            .clone()
            .unwrap_or_else(|| swarm.entry_agent.clone()),
        instance_key,
        rule: Some(index),
        key_fell_back,
    })
}

fn matches(rule: &crate::bundle::Rule, event: &Event) -> bool {
    rule.event.as_ref().is_none_or(|name| *name == event.name)
        && rule
            .properties
            .iter()
            .all(|(key, want)| event.properties.get(key) == Some(want))
}

#[cfg(test)]
mod tests;
