//! What tests/tests/cluster.rs builds on: orchestrator nodes joined to one
//! NATS (one [`Harness`] each: own temp dir and state dir, the same bundle
//! text), the bundle they share, what the fake peers recorded, and the
//! sampler that checks "one agent process per (agent, key) cluster-wide".
//!
//! The peers: `delivery-connector` writes every answer to `answers.log` in
//! the Connection's state directory of the node it runs on (a node that
//! takes the Connection over starts it again: a new run in its own file);
//! `delivery-agent` appends every delivery to `<RECORD_DIR>/<key>.jsonl`,
//! one directory shared by every node, so the counts are exact whichever
//! node delivered.

#![allow(dead_code)] // each test binary uses a part of it

pub mod sampler;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::{DEADLINE, Harness, pid_alive};
use serde_json::Value;

/// For the long runs (thousands of events, failovers) on debug builds and
/// two shared cores.
pub const LONG: Duration = Duration::from_secs(120);

/// The deadline a node has to join (connect to NATS, create its streams and
/// buckets, compare bundle hashes).
pub const JOIN: Duration = Duration::from_secs(30);

/// The Connector `dconn` (`delivery-connector`), a Swarm whose one Agent
/// `worker` (`delivery-agent`) records in `records`, and a Connection
/// `name` with `config` (a YAML flow mapping) and `extra` spec lines
/// (indented by 2). The text is the same for every node that gets the same
/// arguments.
pub fn bundle(records: &Path, name: &str, config: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: dconn }}
spec:
  entry: delivery-connector
  protocol: frames
  events:
    - name: item
      properties: {{ i: {{ type: number, optional: true }} }}
  restart: {{ backoff: {{ initial: 100ms, max: 1s }} }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: {name} }}
spec:
  connectorRef: Connector/dconn
  config: {config}
{extra}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/worker, agents: [Agent/worker] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: worker }}
spec:
  entry: delivery-agent
  protocol: frames
  env:
    RECORD_DIR: "{records}"
  restart: {{ backoff: {{ initial: 100ms, max: 1s }} }}
"#,
        records = records.display()
    )
}

/// One orchestrator node: `orchestrator run bundle.yaml --cluster … --node NAME`.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub h: Harness,
}

impl Node {
    /// Writes `bundle` and starts the node on `urls` with `extra` arguments.
    pub fn start(name: &str, bundle: &str, urls: &str, extra: &[&str]) -> Node {
        let mut h = Harness::new();
        let mut args = vec!["--cluster", urls, "--node", name];
        args.extend_from_slice(extra);
        h.start_with(bundle, &args);
        Node {
            name: name.to_owned(),
            h,
        }
    }

    /// The hash in its `joined cluster … (bundle hash <hex>)` line, once written.
    pub fn bundle_hash(&self) -> Option<String> {
        let stderr = self.h.stderr();
        let line = stderr.lines().find(|l| l.contains("joined cluster "))?;
        let (_, rest) = line.split_once("bundle hash ")?;
        let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        (hex.len() == 64).then_some(hex)
    }

    /// Waits until it has joined; returns its bundle hash.
    pub fn wait_joined(&mut self) -> String {
        let what = format!("node {} to join the cluster", self.name);
        let mut hash = None;
        let start = Instant::now();
        loop {
            hash = hash.or_else(|| self.bundle_hash());
            if let Some(hash) = hash {
                return hash;
            }
            assert!(
                self.h.is_running(),
                "node {} exited before joining\n{}",
                self.name,
                self.h.dump()
            );
            assert!(
                start.elapsed() < JOIN,
                "timed out after {JOIN:?} waiting for {what}\n{}",
                self.h.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its `answers.log` of Connection `name`, split into runs (each
    /// starting at a `start pid=…` line).
    pub fn answer_runs(&self, name: &str) -> Vec<Vec<String>> {
        answer_runs(&self.h.state(), name)
    }

    /// `kill -9` it, then waits until it and every child it noted starting are gone.
    pub fn kill9(&mut self) {
        self.h.signal(libc::SIGKILL);
        self.h.wait_exit(DEADLINE);
        let pids = self.h.child_pids();
        self.h
            .wait_until("every child to die with the node", DEADLINE, || {
                pids.iter().all(|&p| !pid_alive(p))
            });
    }

    /// `(name, temp dir, state dir)`: what the sampler needs to ask its status.
    pub fn address(&self) -> (String, PathBuf, PathBuf) {
        (
            self.name.clone(),
            self.h.dir().to_path_buf(),
            self.h.state(),
        )
    }
}

/// Every node's dump, then `extra` (the NATS servers' logs).
pub fn dump_all(nodes: &[&Node], extra: &str) -> String {
    let mut out = String::new();
    for n in nodes {
        let _ = writeln!(out, "######## node {}\n{}", n.name, n.h.dump());
    }
    out.push_str(extra);
    out
}

/// Polls `cond` every `poll` until it holds; past `deadline`, panics naming
/// `what` with `dump()`.
pub fn wait_for(
    what: &str,
    deadline: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
    dump: impl Fn() -> String,
) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > deadline {
            panic!(
                "timed out after {deadline:?} waiting for: {what}\n{}",
                dump()
            );
        }
        std::thread::sleep(poll);
    }
}

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

/// Every delivery recorded for instance `key`, in order.
pub fn records(dir: &Path, key: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{key}.jsonl"))).unwrap_or_default();
    // A line still being written (no newline yet) is read next time.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l:?}: {e}")))
        .collect()
}

/// How many deliveries are recorded in `dir`, all keys (counting lines only:
/// cheap enough to poll).
pub fn record_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .sum()
}

/// Every recorded delivery by key (file stem).
pub fn all_records(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(key) = name.strip_suffix(".jsonl") {
            out.insert(key.to_owned(), records(dir, key));
        }
    }
    out
}

pub fn text(r: &Value) -> &str {
    r["text"].as_str().expect("record text")
}

pub fn attempt(r: &Value) -> u64 {
    r["attempt"].as_u64().expect("record attempt")
}

/// The `i` of a `delivery-connector` text `e-<i>`.
pub fn index(r: &Value) -> u64 {
    text(r)
        .strip_prefix("e-")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a COUNT event: {r}"))
}

/// The set of event indexes recorded, all keys.
pub fn delivered(dir: &Path) -> BTreeSet<u64> {
    all_records(dir).values().flatten().map(index).collect()
}

/// Checks the records of a COUNT stream where events may be repeated (after
/// a failover): per key, the first deliveries come in emit order, and each
/// repeat of an event is the same event (same id) on a later attempt.
/// Returns how many repeats there were.
pub fn check_order_and_repeats(dir: &Path, dump: impl Fn() -> String) -> usize {
    let mut repeats = 0;
    for (key, rs) in all_records(dir) {
        let mut id_of: BTreeMap<u64, String> = BTreeMap::new();
        let mut last_first = None;
        for r in &rs {
            let i = index(r);
            let id = r["id"].as_str().expect("record id").to_owned();
            match id_of.get(&i) {
                None => {
                    assert!(
                        last_first.is_none_or(|last| last < i),
                        "{key}: e-{i} first arrived after e-{} (order per key broken)\n{}",
                        last_first.unwrap_or_default(),
                        dump()
                    );
                    last_first = Some(i);
                    id_of.insert(i, id);
                }
                Some(first_id) => {
                    repeats += 1;
                    assert!(
                        *first_id == id && attempt(r) > 1,
                        "{key}: e-{i} delivered again as {r}, first as id {first_id}: a repeat \
                         must be a redelivery of the same event marked attempt > 1\n{}",
                        dump()
                    );
                }
            }
        }
    }
    repeats
}

/// The `processes` of `orchestrator status --json` run in `dir` on `state`, or why not.
pub fn status_rows(dir: &Path, state: &Path) -> Result<Vec<Value>, String> {
    let out = std::process::Command::new(e2e::bin("orchestrator"))
        .current_dir(dir)
        .args(["status", "--json", "--state-dir"])
        .arg(state)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("run orchestrator status: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "status exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "status --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    json["processes"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no processes array in {json}"))
}

/// The `node` of a status row.
pub fn node_of(row: &Value) -> Option<&str> {
    row["node"].as_str()
}

/// Polls `status --json` on `node` until a ready `connection/<name>` row
/// names the node running it; returns that node's name.
pub fn wait_connection_node(node: &Node, name: &str, dump: impl Fn() -> String) -> String {
    let target = format!("connection/{name}");
    let mut found = None;
    wait_for(
        &format!(
            "{target} to be ready on some node (status on {})",
            node.name
        ),
        JOIN,
        Duration::from_millis(100),
        || {
            found = node.h.try_status().ok().and_then(|rows| {
                rows.iter()
                    .find(|r| r["target"] == target.as_str() && r["state"] == "ready")
                    .and_then(|r| node_of(r).map(str::to_owned))
            });
            found.is_some()
        },
        dump,
    );
    found.expect("found")
}
