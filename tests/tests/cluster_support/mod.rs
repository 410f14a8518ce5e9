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

pub use e2e::answers;
pub mod ops;
pub mod sampler;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::nats::Nats;
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
    bundle_with_agent(records, name, config, extra, "", "")
}

/// [`bundle`], with `agent_env` lines in the Agent's `env` (indented by 4)
/// and `agent_spec` lines in its spec (indented by 2).
pub fn bundle_with_agent(
    records: &Path,
    name: &str,
    config: &str,
    extra: &str,
    agent_env: &str,
    agent_spec: &str,
) -> String {
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
{agent_env}
  restart: {{ backoff: {{ initial: 100ms, max: 1s }} }}
{agent_spec}
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

    /// Waits until it has joined; returns its bundle hash. A failure shows
    /// its logs, then `extra()` (the NATS servers' logs).
    pub fn wait_joined(&mut self, extra: impl Fn() -> String) -> String {
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
                "node {} exited before joining\n{}{}",
                self.name,
                self.h.dump(),
                extra()
            );
            assert!(
                start.elapsed() < JOIN,
                "timed out after {JOIN:?} waiting for {what}\n{}{}",
                self.h.dump(),
                extra()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its `answers.log` of Connection `name`, split into runs (each
    /// starting at a `start pid=…` line).
    pub fn answer_runs(&self, name: &str) -> Vec<Vec<String>> {
        answers::answer_runs(&self.h.state(), name)
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

/// Starts nodes `names` on `nats`, each with `extra` arguments, and waits
/// until every one has joined. The first joins alone (creating the
/// cluster's streams and buckets, and holding every partition until the
/// others come), the others then start together: a fresh cluster joined by
/// several nodes at once is its own test.
pub fn start_nodes(nats: &impl Nats, names: &[&str], bundle: &str, extra: &[&str]) -> Vec<Node> {
    let urls = nats.urls();
    let nats_dump = || nats.dump();
    let mut nodes = vec![Node::start(names[0], bundle, &urls, extra)];
    nodes[0].wait_joined(nats_dump);
    for name in &names[1..] {
        nodes.push(Node::start(name, bundle, &urls, extra));
    }
    for n in &mut nodes[1..] {
        n.wait_joined(nats_dump);
    }
    nodes
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

/// Every delivery recorded for instance `key`, in order.
pub use e2e::delivery_records as records;

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

/// Waits (up to [`LONG`], polling every `poll`) until every event of
/// `acked` is recorded in `dir`; past it, panics with the first missing
/// ones and `dump()`.
pub fn wait_every_acked_delivered(
    dir: &Path,
    acked: &BTreeSet<u64>,
    poll: Duration,
    dump: impl Fn() -> String,
) {
    wait_for(
        "every acked event to reach an agent",
        LONG,
        poll,
        || record_count(dir) >= acked.len() && acked.is_subset(&delivered(dir)),
        || {
            let missing: Vec<_> = acked
                .difference(&delivered(dir))
                .take(10)
                .copied()
                .collect();
            format!("missing (first 10): {missing:?}\n{}", dump())
        },
    );
}

/// What [`check_order_and_repeats`] counted.
#[derive(Debug, Default)]
pub struct Repeats {
    /// Deliveries of an event after its first.
    pub redelivered: usize,
    /// Deliveries of events no run of the connector had acked, new or as a
    /// duplicate (a publish whose ack was lost: JetStream may still have
    /// stored it). Out of the checks: the connector was told it failed, so
    /// nothing was promised.
    pub refused_but_delivered: usize,
}

/// Checks the records of a COUNT stream where events may be repeated (after
/// a failover) and runs of the connector may have re-emitted it: per key,
/// the first deliveries of the events one run had acked as new come in that
/// run's emit order (the order they were accepted in; an event refused in
/// one run and accepted in a later one is in the later one's place), and
/// each repeat of an acked event is the same event (same id) on a later
/// attempt. `acked` is every event acked by some run (new or duplicate),
/// `runs` each run's acked-new set.
pub fn check_order_and_repeats(
    dir: &Path,
    acked: &BTreeSet<u64>,
    runs: &[BTreeSet<u64>],
    dump: impl Fn() -> String,
) -> Repeats {
    let mut counts = Repeats::default();
    for (key, rs) in all_records(dir) {
        let mut first_of: BTreeMap<u64, &Value> = BTreeMap::new();
        let mut firsts = Vec::new();
        for r in &rs {
            let i = index(r);
            if !acked.contains(&i) {
                counts.refused_but_delivered += 1;
                continue;
            }
            match first_of.get(&i) {
                None => {
                    // Order holds "except redeliveries marked attempt > 1":
                    // an event published again after a NATS failure arrives
                    // marked so, and may follow later ones.
                    if attempt(r) == 1 {
                        firsts.push(i);
                    }
                    first_of.insert(i, r);
                }
                Some(first) => {
                    counts.redelivered += 1;
                    assert!(
                        first["id"] == r["id"] && attempt(r) > 1,
                        "{key}: e-{i} delivered again as {r}, first as {first}: a repeat \
                         must be a redelivery of the same event marked attempt > 1\n{}",
                        dump()
                    );
                }
            }
        }
        for (n, run) in runs.iter().enumerate() {
            let mut last = None;
            for &i in firsts.iter().filter(|i| run.contains(i)) {
                assert!(
                    last.is_none_or(|l| l < i),
                    "{key}: e-{i} first arrived after e-{} though run {n} of the connector \
                     had them accepted the other way round (order per key broken)\n{}",
                    last.unwrap_or_default(),
                    dump()
                );
                last = Some(i);
            }
        }
    }
    counts
}

pub use e2e::status_rows;

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
