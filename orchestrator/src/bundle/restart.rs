//! `restart` (Connector, Agent, Connection): every field optional, the
//! defaults are those of [`RestartPolicy::default`].

use super::common::{duration, positive_duration};
use super::diag::Cx;
use super::model::{Backoff, Circuit, RestartMode, RestartPolicy, StopPolicy};
use super::read::Field;

const FIELDS: &[&str] = &[
    "policy",
    "backoff",
    "resetAfter",
    "startTimeout",
    "circuit",
    "permanentExitCodes",
    "stop",
];

/// Reads a `restart` mapping; problems are recorded and the defaults kept in their place.
pub(crate) fn restart(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<RestartPolicy> {
    let map = f.fields(cx, FIELDS)?;
    let mut out = RestartPolicy::default();
    if let Some(p) = map.get("policy") {
        let modes = [
            ("always", RestartMode::Always),
            ("on-failure", RestartMode::OnFailure),
            ("never", RestartMode::Never),
        ];
        out.policy = p.one_of(cx, &modes).unwrap_or(out.policy);
    }
    if let Some(b) = map.get("backoff") {
        out.backoff = backoff(cx, &b);
    }
    if let Some(d) = map.get("resetAfter").and_then(|v| duration(cx, &v)) {
        out.reset_after = d;
    }
    if let Some(d) = map
        .get("startTimeout")
        .and_then(|v| positive_duration(cx, &v))
    {
        out.start_timeout = d;
    }
    if let Some(c) = map.get("circuit") {
        out.circuit = circuit(cx, &c);
    }
    if let Some(codes) = map.get("permanentExitCodes").and_then(|v| v.seq(cx)) {
        out.permanent_exit_codes = codes
            .iter()
            .filter_map(|c| c.int(cx, 0, 255))
            .filter_map(|c| i32::try_from(c).ok())
            .collect();
    }
    if let Some(s) = map.get("stop") {
        out.stop = stop(cx, &s);
    }
    Some(out)
}

fn backoff(cx: &mut Cx<'_>, f: &Field<'_>) -> Backoff {
    backoff_over(cx, f, Backoff::default())
}

/// A `backoff` mapping read over `base` (the defaults of where it appears).
pub(crate) fn backoff_over(cx: &mut Cx<'_>, f: &Field<'_>, base: Backoff) -> Backoff {
    let mut out = base;
    let Some(map) = f.fields(cx, &["initial", "multiplier", "max", "jitter"]) else {
        return out;
    };
    if let Some(d) = map.get("initial").and_then(|v| duration(cx, &v)) {
        out.initial = d;
    }
    if let Some(m) = map.get("multiplier") {
        match m.number(cx) {
            Some(x) if x >= 1.0 => out.multiplier = x,
            Some(x) => m.error(cx, format!("must be at least 1, found {x}")),
            None => {}
        }
    }
    let max = map.get("max");
    if let Some(d) = max.as_ref().and_then(|v| duration(cx, v)) {
        out.max = d;
    }
    if let Some(j) = map.get("jitter") {
        match j.number(cx) {
            Some(x) if (0.0..=1.0).contains(&x) => out.jitter = x,
            Some(x) => j.error(cx, format!("must be between 0 and 1, found {x}")),
            None => {}
        }
    }
    if out.max < out.initial {
        // Point at whichever of the two the user wrote; max is the likelier slip.
        let at = max.or_else(|| map.get("initial"));
        let msg = format!(
            "backoff max ({}) is shorter than initial ({})",
            humantime::format_duration(out.max),
            humantime::format_duration(out.initial)
        );
        match at {
            Some(field) => field.error(cx, msg),
            None => cx.error(map.at(), msg),
        }
    }
    out
}

pub(crate) fn circuit(cx: &mut Cx<'_>, f: &Field<'_>) -> Circuit {
    let mut out = Circuit::default();
    let Some(map) = f.fields(cx, &["failures", "window", "cooldown"]) else {
        return out;
    };
    if let Some(n) = map.get("failures").and_then(|v| v.u32(cx, 1)) {
        out.failures = n;
    }
    if let Some(d) = map.get("window").and_then(|v| positive_duration(cx, &v)) {
        out.window = d;
    }
    if let Some(d) = map.get("cooldown").and_then(|v| positive_duration(cx, &v)) {
        out.cooldown = d;
    }
    out
}

fn stop(cx: &mut Cx<'_>, f: &Field<'_>) -> StopPolicy {
    let mut out = StopPolicy::default();
    let Some(map) = f.fields(cx, &["grace", "termGrace"]) else {
        return out;
    };
    if let Some(d) = map.get("grace").and_then(|v| duration(cx, &v)) {
        out.grace = d;
    }
    if let Some(d) = map.get("termGrace").and_then(|v| duration(cx, &v)) {
        out.term_grace = d;
    }
    out
}
