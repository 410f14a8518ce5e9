//! `spec.ingress` of a Connection: the rules as the router will run them,
//! plus the places of everything that can only be checked against the
//! Connector and the Swarm.

use super::common::{Located, reference};
use super::diag::Cx;
use super::model::{Ingress, KeySource, Rule, Unmatched};
use super::read::Field;

/// What a rule refers to, for the cross-resource checks.
#[derive(Debug, Default)]
pub(crate) struct RuleRefs {
    /// `match.event`.
    pub event: Option<Located>,
    /// `match.properties` keys.
    pub properties: Vec<Located>,
    /// `route.agentRef`.
    pub agent: Option<Located>,
    /// `route.instanceKeyProperty`.
    pub key_property: Option<Located>,
}

/// Reads `spec.ingress`; the refs line up with `Ingress::rules`.
pub(crate) fn ingress(cx: &mut Cx<'_>, f: &Field<'_>) -> (Ingress, Vec<RuleRefs>) {
    let mut out = (Ingress::default(), Vec::new());
    let Some(map) = f.fields(cx, &["rules", "unmatched"]) else {
        return out;
    };
    let choices = [
        ("entryAgent", Unmatched::EntryAgent),
        ("drop", Unmatched::Drop),
    ];
    if let Some(u) = map.get("unmatched").and_then(|u| u.one_of(cx, &choices)) {
        out.0.unmatched = u;
    }
    for item in map.get("rules").and_then(|r| r.seq(cx)).unwrap_or_default() {
        if let Some((rule, refs)) = rule(cx, &item) {
            out.0.rules.push(rule);
            out.1.push(refs);
        }
    }
    out
}

fn rule(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<(Rule, RuleRefs)> {
    let map = f.fields(cx, &["match", "route"])?;
    let mut rule = Rule {
        place: Some(cx.place(f.at())),
        ..Rule::default()
    };
    let mut refs = RuleRefs::default();
    if let Some(m) = map
        .get("match")
        .and_then(|m| m.fields(cx, &["event", "properties"]))
    {
        if let Some(event) = m.get("event")
            && let Some(name) = event.nonempty(cx)
        {
            refs.event = Some(Located::new(cx, &event, name.clone()));
            rule.event = Some(name);
        }
        for entry in m
            .get("properties")
            .and_then(|p| p.entries(cx))
            .unwrap_or_default()
        {
            if let Some(v) = entry.value.scalar(cx) {
                refs.properties.push(Located {
                    value: entry.key.clone(),
                    place: cx.place(&entry.key_at),
                    path: entry.value.path.clone(),
                });
                rule.properties.insert(entry.key, v);
            }
        }
    }
    let keys = [
        "agentRef",
        "instanceKey",
        "instanceKeyProperty",
        "instanceKeyPrefix",
    ];
    if let Some(route_field) = map.get("route") {
        let route = route_field.fields(cx, &keys)?;
        refs.agent = route
            .get("agentRef")
            .and_then(|a| reference(cx, &a, "Agent"));
        rule.agent = refs.agent.as_ref().map(|a| a.value.clone());
        let fixed = route
            .get("instanceKey")
            .and_then(|k| k.scalar(cx).map(|v| (k, v)));
        let property = route
            .get("instanceKeyProperty")
            .and_then(|k| k.nonempty(cx).map(|v| (k, v)));
        let prefix = route
            .get("instanceKeyPrefix")
            .and_then(|k| k.scalar(cx).map(|v| (k, v)));
        rule.key = match (fixed, property, prefix) {
            (Some(_), Some(_), _) => {
                cx.error(
                    route_field.at(),
                    "route sets both instanceKey and instanceKeyProperty",
                );
                KeySource::Event
            }
            (_, None, Some((at, _))) => {
                at.error(cx, "instanceKeyPrefix needs instanceKeyProperty");
                KeySource::Event
            }
            (Some((at, key)), None, None) => {
                if key.is_empty() {
                    at.error(cx, "must not be empty");
                }
                KeySource::Fixed(key)
            }
            (None, Some((at, name)), prefix) => {
                refs.key_property = Some(Located::new(cx, &at, name.clone()));
                KeySource::Property {
                    name,
                    prefix: prefix.map(|(_, p)| p).unwrap_or_default(),
                }
            }
            (None, None, None) => KeySource::Event,
        };
    }
    Some((rule, refs))
}
