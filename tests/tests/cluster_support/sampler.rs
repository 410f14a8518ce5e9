//! "One agent process per (agent, instanceKey) across the whole cluster, at
//! every moment", checked from `status`: a thread asks `status --json` of
//! every node over and over while a test kills or stops nodes.
//!
//! A node's view of the others is up to ~2 s old, and the nodes are asked
//! one after another, so two rows alone prove nothing (an instance that moved
//! shows on its old node for a while). Every node runs on this machine,
//! though, so each round ends by looking at the pids the rows name, all at
//! one instant: a violation is two *live* `delivery-agent` processes that
//! rows give as the same (agent, key), at that instant. A pid is only
//! trusted with the start time it had when a row first named it (pids are
//! reused).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use serde_json::Value;

use super::status_rows;

/// What the sampler saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Rounds (every node asked once, then the pids looked at).
    pub rounds: usize,
    /// Rounds in which live agent rows came from at least two nodes (so the
    /// check was not vacuous).
    pub multi_node_rounds: usize,
    /// Agent rows with a live pid, all rounds.
    pub live_rows: usize,
    /// Status calls that failed (a node being killed or not up yet).
    pub failed_calls: usize,
    /// Rows without a `node` field.
    pub rows_without_node: usize,
    /// Each violation, described.
    pub violations: Vec<String>,
}

/// A running sampler; [`Sampler::finish`] stops it and returns its [`Report`].
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Report>>,
}

/// Whether `pid` is a live `delivery-agent` that started at `start`.
fn live_agent(pid: u32, start: u64) -> bool {
    e2e::same_process_alive(pid, start)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("delivery-agent"))
}

impl Sampler {
    /// Starts sampling the nodes at `(name, temp dir, state dir)`.
    pub fn start(nodes: Vec<(String, PathBuf, PathBuf)>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut report = Report::default();
            // pid → its start time when a row first named it.
            let mut starts: HashMap<u32, u64> = HashMap::new();
            while !flag.load(Ordering::Relaxed) {
                // (agent, key) → pid → nodes whose rows named it.
                let mut named: BTreeMap<(String, String), BTreeMap<u32, BTreeSet<String>>> =
                    BTreeMap::new();
                for (_, dir, state) in &nodes {
                    let rows: Vec<Value> = match status_rows(dir, state) {
                        Ok(rows) => rows,
                        Err(_) => {
                            report.failed_calls += 1;
                            continue;
                        }
                    };
                    for row in &rows {
                        let Some(node) = row["node"].as_str() else {
                            report.rows_without_node += 1;
                            continue;
                        };
                        let (Some("agent"), Some(name), Some(key), Some(pid)) = (
                            row["kind"].as_str(),
                            row["name"].as_str(),
                            row["instanceKey"].as_str(),
                            row["pid"].as_u64(),
                        ) else {
                            continue;
                        };
                        let pid = pid as u32;
                        if let std::collections::hash_map::Entry::Vacant(e) = starts.entry(pid) {
                            match e2e::start_time(pid) {
                                Some(t) => e.insert(t),
                                None => continue,
                            };
                        }
                        named
                            .entry((name.to_owned(), key.to_owned()))
                            .or_default()
                            .entry(pid)
                            .or_default()
                            .insert(node.to_owned());
                    }
                }
                // One instant: which of the named pids live now.
                let mut live_nodes = BTreeSet::new();
                for ((agent, key), pids) in &named {
                    let live: Vec<(&u32, &BTreeSet<String>)> = pids
                        .iter()
                        .filter(|(pid, _)| live_agent(**pid, starts[*pid]))
                        .collect();
                    report.live_rows += live.len();
                    for (_, nodes) in &live {
                        live_nodes.extend(nodes.iter().cloned());
                    }
                    if live.len() > 1 {
                        report.violations.push(format!(
                            "round {}: agent/{agent}/{key} has {} live processes: {:?}",
                            report.rounds,
                            live.len(),
                            live
                        ));
                    }
                }
                if live_nodes.len() > 1 {
                    report.multi_node_rounds += 1;
                }
                report.rounds += 1;
            }
            report
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; returns what it saw.
    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the sampler thread panicked")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
