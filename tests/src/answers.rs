//! What `delivery-connector` (tests/src/bin) answered, from its `answers.log` (one per
//! node that ran the Connection, each run starting at a `start pid=…` line).

use std::collections::BTreeSet;
use std::path::Path;

/// `answers.log` of Connection `name` under `state`, split into runs.
pub fn answer_runs(state: &Path, name: &str) -> Vec<Vec<String>> {
    let path = state
        .join("state/connections")
        .join(name)
        .join("answers.log");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut runs: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("start ") {
            runs.push(Vec::new());
        } else if let Some(run) = runs.last_mut() {
            run.push(line.to_owned());
        }
    }
    runs
}

/// The `i` of every `ack <i> <kind>` line of `run`.
pub fn acked(run: &[String], kind: &str) -> BTreeSet<u64> {
    run.iter()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("ack"))
                .then(|| w.next()?.parse().ok())
                .flatten()
                .filter(|_| w.next() == Some(kind))
        })
        .collect()
}

/// Every line of `run` that is neither an ack nor `done`.
pub fn refusals(run: &[String]) -> Vec<&String> {
    run.iter()
        .filter(|l| !l.starts_with("ack ") && *l != "done")
        .collect()
}

/// Whether `run` has every emit answered.
pub fn is_done(run: &[String]) -> bool {
    run.iter().any(|l| l == "done")
}
