//! `kind: Agent`: a program run once per instanceKey, and its delivery limits.

use std::time::Duration;

use super::common::positive_duration;
use super::diag::Cx;
use super::model::{Agent, Place, Protocol};
use super::program::{PROGRAM_FIELDS, program};
use super::read::Field;

const AGENT_FIELDS: [&str; 10] = [
    "invoke",
    "secrets",
    "idleTimeout",
    "instanceTtl",
    "maxInstances",
    "maxInFlight",
    "maxQueue",
    "maxAttempts",
    "deliveryTimeout",
    "enabled",
];

/// Reads an Agent spec.
pub(crate) fn read(cx: &mut Cx<'_>, spec: &Field<'_>, name: String, place: Place) -> Option<Agent> {
    let allowed: Vec<&str> = PROGRAM_FIELDS
        .iter()
        .chain(AGENT_FIELDS.iter())
        .copied()
        .collect();
    let spec = spec.fields(cx, &allowed)?;
    let program = program(cx, &spec, Protocol::Jsonl);
    let count = |cx: &mut Cx<'_>, key: &str| spec.get(key).and_then(|f| f.u32(cx, 1));
    let mut secret_refs = Vec::new();
    let secrets = spec
        .get("secrets")
        .map(|f| super::connection::secrets(cx, &f, &mut secret_refs))
        .unwrap_or_default();
    let agent = Agent {
        name,
        place,
        idle_timeout: spec
            .get("idleTimeout")
            .and_then(|f| positive_duration(cx, &f)),
        instance_ttl: spec
            .get("instanceTtl")
            .and_then(|f| positive_duration(cx, &f))
            .unwrap_or(Duration::from_secs(600)),
        max_instances: count(cx, "maxInstances"),
        max_in_flight: count(cx, "maxInFlight").unwrap_or(1),
        max_queue: count(cx, "maxQueue").unwrap_or(1024),
        max_attempts: count(cx, "maxAttempts").unwrap_or(5),
        delivery_timeout: spec
            .get("deliveryTimeout")
            .and_then(|f| positive_duration(cx, &f))
            .unwrap_or(Duration::from_secs(30)),
        invoke: spec
            .get("invoke")
            .map(|f| super::operations::invoke_grants(cx, &f))
            .unwrap_or_default(),
        program: program?,
        secrets,
        secret_refs,
        enabled: spec.get("enabled").and_then(|f| f.bool(cx)).unwrap_or(true),
    };
    Some(agent)
}
