//! The part of a Connector or Agent spec that says how to run a program.

use std::collections::BTreeMap;
use std::time::Duration;

use super::common::{is_env_name, positive_duration, size};
use super::diag::Cx;
use super::model::{Program, Protocol};
use super::read::{Field, Fields};
use super::restart::restart;
use super::sandbox::sandbox;

/// The spec fields [`program`] reads.
pub(crate) const PROGRAM_FIELDS: [&str; 9] = [
    "entry",
    "args",
    "env",
    "protocol",
    "restart",
    "sandbox",
    "healthInterval",
    "maxFrameBytes",
    "maxProtocolErrors",
];

/// The frame limit when none is given.
pub(crate) const DEFAULT_MAX_FRAME_BYTES: usize = 4 << 20;
/// The frame limit a bundle may ask for: large enough for any sane event,
/// small enough that one hostile child can't make the orchestrator buffer gigabytes.
pub(crate) const MAX_FRAME_BYTES: u64 = 64 << 20;
const MIN_FRAME_BYTES: u64 = 1 << 10;
const DEFAULT_FRAMES_HEALTH: Duration = Duration::from_secs(5);

/// Reads the program fields of `spec`; `None` when `entry` is missing or unusable.
pub(crate) fn program(
    cx: &mut Cx<'_>,
    spec: &Fields<'_>,
    default_protocol: Protocol,
) -> Option<Program> {
    let entry_field = spec.required(cx, "entry");
    // `entry: name`, or `entry: {path: name, sha256: <hex>}` to pin the program.
    let (path_field, entry_sha256) = match &entry_field {
        Some(f) if f.is_map() => match f.fields(cx, &["path", "sha256"]) {
            Some(map) => {
                let sha = map.get("sha256").and_then(|s| sha256(cx, &s));
                (map.required(cx, "path"), sha)
            }
            None => (None, None),
        },
        other => (other.clone(), None),
    };
    let entry = path_field
        .as_ref()
        .and_then(|f| f.nonempty(cx).filter(|s| no_nul(cx, f, s)));
    let entry_place = path_field.as_ref().map(|f| cx.place(f.at()));
    let args = spec.get("args").map(|f| args(cx, &f)).unwrap_or_default();
    let env = spec.get("env").map(|f| env(cx, &f)).unwrap_or_default();
    let protocols = [("frames", Protocol::Frames), ("jsonl", Protocol::Jsonl)];
    let protocol = spec
        .get("protocol")
        .and_then(|f| f.one_of(cx, &protocols))
        .unwrap_or(default_protocol);
    let restart = spec
        .get("restart")
        .and_then(|f| restart(cx, &f))
        .unwrap_or_default();
    let sandbox = spec.get("sandbox").and_then(|f| sandbox(cx, &f));
    // jsonl children are often scripts that never learned to answer pings.
    let health_interval = match spec.get("healthInterval") {
        Some(f) => positive_duration(cx, &f),
        None => (protocol == Protocol::Frames).then_some(DEFAULT_FRAMES_HEALTH),
    };
    let max_frame_bytes = spec.get("maxFrameBytes").and_then(|f| frame_bytes(cx, &f));
    let max_protocol_errors = spec
        .get("maxProtocolErrors")
        .and_then(|f| f.u32(cx, 0))
        .unwrap_or(100);
    Some(Program {
        entry: entry?,
        entry_place: entry_place?,
        entry_sha256,
        args,
        env,
        protocol,
        restart,
        sandbox,
        health_interval,
        max_frame_bytes: max_frame_bytes.unwrap_or(DEFAULT_MAX_FRAME_BYTES),
        max_protocol_errors,
    })
}

/// A NUL byte can't cross `execve`; better said here than as a spawn failure.
fn no_nul(cx: &mut Cx<'_>, f: &Field<'_>, s: &str) -> bool {
    if s.contains('\0') {
        f.error(cx, "must not contain a NUL character");
        return false;
    }
    true
}

fn args(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<String> {
    let items = f.seq(cx).unwrap_or_default();
    items
        .iter()
        .filter_map(|item| item.scalar(cx).filter(|s| no_nul(cx, item, s)))
        .collect()
}

fn env(cx: &mut Cx<'_>, f: &Field<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in f.entries(cx).unwrap_or_default() {
        if !is_env_name(&entry.key) {
            cx.error(
                &entry.key_at,
                format!(
                    "`{}`: not a valid environment variable name",
                    entry.value.path
                ),
            );
            continue;
        }
        if entry.key.starts_with("ORCHESTRATOR_") {
            cx.error(
                &entry.key_at,
                format!(
                    "`{}`: names starting with ORCHESTRATOR_ are reserved for the orchestrator",
                    entry.value.path
                ),
            );
            continue;
        }
        if let Some(v) = entry
            .value
            .scalar(cx)
            .filter(|s| no_nul(cx, &entry.value, s))
        {
            out.insert(entry.key, v);
        }
    }
    out
}

fn frame_bytes(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<usize> {
    let n = size(cx, f)?;
    if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&n) {
        f.error(cx, format!("must be between 1Ki and 64Mi, found {n} bytes"));
        return None;
    }
    usize::try_from(n).ok()
}

/// `entry.sha256`: 64 hex digits (any case; kept lowercase).
fn sha256(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<String> {
    let s = f.nonempty(cx)?;
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(s.to_ascii_lowercase())
    } else {
        f.error(
            cx,
            "expected the program's SHA-256 as 64 hex digits (`orchestrator pin` prints it)",
        );
        None
    }
}
