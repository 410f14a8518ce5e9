//! Operations in the bundle: what a Connector can do (`spec.operations[]`),
//! what a Connection allows (`spec.operations`), and what an Agent may
//! invoke (`spec.invoke[]`).

use ipc_proto::FailureClass;

use super::common::{Located, positive_duration, size};
use super::connection::rate_limit;
use super::diag::Cx;
use super::model::{ConnectionOperations, InvokeGrant, OperationDecl, OperationRetry, Overflow};
use super::read::Field;
use super::restart::{backoff_over, circuit};

const OPERATION_FIELDS: [&str; 11] = [
    "name",
    "idempotent",
    "mutating",
    "mode",
    "timeout",
    "retry",
    "input",
    "output",
    "maxInputBytes",
    "maxOutputBytes",
    "redact",
];

/// `Connector.spec.operations[]`.
pub(crate) fn connector_operations(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<OperationDecl> {
    let mut out: Vec<OperationDecl> = Vec::new();
    for item in f.seq(cx).unwrap_or_default() {
        let Some(map) = item.fields(cx, &OPERATION_FIELDS) else {
            continue;
        };
        let name_field = map.required(cx, "name");
        let name = name_field.as_ref().and_then(|n| n.nonempty(cx));
        let asynchronous = map
            .get("mode")
            .and_then(|m| m.one_of(cx, &[("sync", false), ("async", true)]))
            .unwrap_or(false);
        let timeout = map
            .get("timeout")
            .and_then(|t| positive_duration(cx, &t))
            .unwrap_or(std::time::Duration::from_secs(30));
        let retry = map.get("retry").map(|r| retry(cx, &r)).unwrap_or_default();
        let input = map.get("input").and_then(|s| schema(cx, &s));
        let output = map.get("output").and_then(|s| schema(cx, &s));
        let max_input_bytes = map
            .get("maxInputBytes")
            .and_then(|b| size(cx, &b))
            .unwrap_or(64 * 1024);
        let max_output_bytes = map
            .get("maxOutputBytes")
            .and_then(|b| size(cx, &b))
            .unwrap_or(1024 * 1024);
        let redact = map
            .get("redact")
            .map(|r| pointers(cx, &r))
            .unwrap_or_default();
        let idempotent = map
            .get("idempotent")
            .and_then(|b| b.bool(cx))
            .unwrap_or(false);
        let mutating = map
            .get("mutating")
            .and_then(|b| b.bool(cx))
            .unwrap_or(false);
        let (Some(name), Some(name_field)) = (name, name_field) else {
            continue;
        };
        if out.iter().any(|o| o.name == name) {
            name_field.error(cx, format!("duplicate operation `{name}`"));
            continue;
        }
        out.push(OperationDecl {
            name,
            timeout,
            retry,
            input,
            output,
            max_input_bytes,
            max_output_bytes,
            redact,
            idempotent,
            mutating,
            asynchronous,
        });
    }
    out
}

fn retry(cx: &mut Cx<'_>, f: &Field<'_>) -> OperationRetry {
    let mut out = OperationRetry::default();
    let Some(map) = f.fields(cx, &["maxRetries", "backoff", "on"]) else {
        return out;
    };
    if let Some(n) = map.get("maxRetries").and_then(|n| n.u32(cx, 0)) {
        out.max_retries = n;
    }
    if let Some(b) = map.get("backoff") {
        out.backoff = backoff_over(cx, &b, out.backoff.clone());
    }
    if let Some(on) = map.get("on") {
        let retryable = [
            ("transient", FailureClass::Transient),
            ("timeout", FailureClass::Timeout),
        ];
        out.on = on
            .seq(cx)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.one_of(cx, &retryable))
            .collect();
    }
    out
}

/// A JSON Schema written in YAML, checked to be one.
pub(crate) fn schema(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<serde_json::Value> {
    let value = match f.node.value.to_json() {
        Ok(v) => v,
        Err(e) => {
            f.error(cx, e);
            return None;
        }
    };
    match jsonschema::validator_for(&value) {
        Ok(_) => Some(value),
        Err(e) => {
            f.error(cx, format!("not a valid JSON Schema: {e}"));
            None
        }
    }
}

/// `redact`: JSON pointers (`/token`, `/user/email`).
fn pointers(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for p in f.seq(cx).unwrap_or_default() {
        match p.string(cx) {
            Some(s) if s.starts_with('/') => out.push(s),
            Some(s) => p.error(
                cx,
                format!("`{s}` is not a JSON pointer (it starts with /)"),
            ),
            None => {}
        }
    }
    out
}

/// `Connection.spec.operations`, with where each allowed name is written.
pub(crate) fn connection_operations(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
) -> (ConnectionOperations, Vec<Located>) {
    let mut out = ConnectionOperations::default();
    let mut allowed = Vec::new();
    let Some(map) = f.fields(
        cx,
        &[
            "allow",
            "maxParallel",
            "maxQueue",
            "overflow",
            "rateLimit",
            "circuit",
            "idempotencyTtl",
        ],
    ) else {
        return (out, allowed);
    };
    if let Some(allow) = map.get("allow") {
        for name in allow.seq(cx).unwrap_or_default() {
            if let Some(n) = name.nonempty(cx) {
                allowed.push(Located::new(cx, &name, n.clone()));
                out.allow.push(n);
            }
        }
    }
    if let Some(n) = map.get("maxParallel").and_then(|n| n.u32(cx, 1)) {
        out.max_parallel = n;
    }
    if let Some(n) = map.get("maxQueue").and_then(|n| n.u32(cx, 0)) {
        out.max_queue = n;
    }
    if let Some(o) = map.get("overflow") {
        let choices = [("reject", Overflow::Reject), ("wait", Overflow::Wait)];
        if let Some(o) = o.one_of(cx, &choices) {
            out.overflow = o;
        }
    }
    out.rate_limit = map.get("rateLimit").and_then(|r| rate_limit(cx, &r));
    out.circuit = map.get("circuit").map(|c| circuit(cx, &c));
    if let Some(ttl) = map
        .get("idempotencyTtl")
        .and_then(|t| positive_duration(cx, &t))
    {
        out.idempotency_ttl = ttl;
    }
    (out, allowed)
}

/// `Agent.spec.invoke[]`.
pub(crate) fn invoke_grants(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<InvokeGrant> {
    let mut out = Vec::new();
    for item in f.seq(cx).unwrap_or_default() {
        let Some(map) = item.fields(cx, &["connection", "operations", "rateLimit"]) else {
            continue;
        };
        let connection = map.required(cx, "connection").and_then(|c| {
            let name = c.nonempty(cx)?;
            let name = name
                .strip_prefix("Connection/")
                .map(str::to_owned)
                .unwrap_or(name);
            Some(Located::new(cx, &c, name))
        });
        let operations: Vec<String> = map
            .required(cx, "operations")
            .map(|o| {
                o.seq(cx)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|n| n.nonempty(cx))
                    .collect()
            })
            .unwrap_or_default();
        let rate_limit = map.get("rateLimit").and_then(|r| rate_limit(cx, &r));
        if let Some(connection) = connection {
            out.push(InvokeGrant {
                connection: connection.value,
                place: connection.place,
                operations,
                rate_limit,
            });
        }
    }
    out
}
