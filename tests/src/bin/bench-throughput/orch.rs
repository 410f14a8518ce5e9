//! End-to-end runs through `orchestrator run`, and reading what the bench
//! programs wrote (shared with the relay runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::proc_stats::context_switches;
use e2e::{Harness, bin};
use serde_json::Value;

use crate::PAYLOAD;

/// How often a throughput run looks for the result files.
const POLL: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    Jsonl,
    Frames,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Jsonl => "jsonl",
            Transport::Frames => "frames",
        }
    }
    pub fn connector(self) -> &'static str {
        match self {
            Transport::Jsonl => "bench-jsonl-connector",
            Transport::Frames => "bench-connector",
        }
    }
    pub fn agent(self) -> &'static str {
        match self {
            Transport::Jsonl => "bench-jsonl-agent",
            Transport::Frames => "bench-agent",
        }
    }
}

/// One end-to-end run's settings.
pub struct Run {
    pub transport: Transport,
    pub durable: bool,
    pub keys: u64,
    pub count: u64,
    /// 0 = unpaced.
    pub rate: u64,
    pub stamp: bool,
    /// The Agent's `maxInFlight`.
    pub in_flight: u32,
}

/// What one run measured.
pub struct Measured {
    pub events_per_sec: f64,
    pub latencies: Vec<u64>,
    pub nacked: u64,
    /// CPU seconds of the whole run by process kind (orchestrator or relay,
    /// connector, agents, shims).
    pub cpu: BTreeMap<&'static str, f64>,
}

pub fn journal_name(durable: bool) -> &'static str {
    if durable { "durable" } else { "memory" }
}

/// The bundle of a run: one Connection of the bench connector, one Agent
/// `sink` of the bench agent; `agent_extra` is more Agent spec (YAML lines).
pub fn bundle(run: &Run, warm: Option<&Path>, agent_extra: &str) -> String {
    let per_key = run.count.div_ceil(run.keys.max(1));
    let t = run.transport;
    let warm = warm.map(|w| w.display().to_string()).unwrap_or_default();
    let warm_cfg = if warm.is_empty() {
        String::new()
    } else {
        format!("WARM_DIR: \"{warm}\"")
    };
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: bench }}
spec:
  entry: {connector}
  protocol: {proto}
  events:
    - name: item
      properties: {{ t: {{ type: number, optional: true }} }}
  restart: {{ policy: never }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: bench }}
spec:
  connectorRef: Connector/bench
  config:
    COUNT: "{count}"
    KEYS: "{keys}"
    WINDOW: "4096"
    RATE: "{rate}"
    STAMP: "{stamp}"
    PAYLOAD: "{PAYLOAD}"
    {warm_cfg}
  overflow: wait
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/sink, agents: [Agent/sink] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: sink }}
spec:
  entry: {agent}
  protocol: {proto}
  maxQueue: 1000000
  maxInFlight: {in_flight}
  env: {{ EXPECT: "{per_key}", WARM_DIR: "{warm}" }}
  restart: {{ policy: never }}
{agent_extra}
"#,
        connector = t.connector(),
        agent = t.agent(),
        proto = t.name(),
        count = run.count,
        keys = run.keys,
        rate = run.rate,
        stamp = run.stamp,
        in_flight = run.in_flight,
    )
}

pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Polls `cond` every `poll` until it holds (panics past `deadline`, or
/// when `child` exits first).
pub fn wait_for(
    what: &str,
    deadline: Duration,
    poll: Duration,
    child: &mut Child,
    mut cond: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !cond() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what}: the process exited ({status}) before it came");
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(poll);
    }
}

/// Starts `orchestrator run` on `bundle` in `h`'s dir; `extra` args.
pub fn start(h: &Harness, bundle: &str, durable: bool, extra: &[&str]) -> Child {
    h.write("bundle.yaml", bundle);
    let mut cmd = Command::new(bin("orchestrator"));
    cmd.current_dir(h.dir())
        .args(["run", "bundle.yaml", "--state-dir"])
        .arg(h.state())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.path("orchestrator.stderr")).expect("stderr file"));
    if !durable {
        cmd.args(["--journal", "memory"]);
    }
    cmd.spawn().expect("spawn orchestrator")
}

pub fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// Reads the connector's result and the agents' results and latencies.
pub fn collect(
    conn_result: &Path,
    agent_dirs: &[PathBuf],
    count: u64,
    cpu: BTreeMap<&'static str, f64>,
) -> Measured {
    let c = read_json(conn_result).expect("connector result");
    let first_emit = c["firstEmitNs"].as_u64().expect("firstEmitNs");
    let mut last_receipt = 0;
    let mut received = 0;
    let mut latencies = Vec::new();
    for dir in agent_dirs {
        let a = read_json(&dir.join("result.json")).expect("agent result");
        last_receipt = last_receipt.max(a["lastNs"].as_u64().expect("lastNs"));
        received += a["count"].as_u64().expect("count");
        if let Ok(bytes) = std::fs::read(dir.join("latency.bin")) {
            latencies.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
    }
    assert_eq!(received, count, "every event reached an agent");
    latencies.sort_unstable();
    Measured {
        events_per_sec: count as f64
            / ((last_receipt.saturating_sub(first_emit)).max(1) as f64 / 1e9),
        latencies,
        nacked: c["nacked"].as_u64().unwrap_or(0) + c["failed"].as_u64().unwrap_or(0),
        cpu,
    }
}

pub fn measure(run: &Run) -> Measured {
    assert_eq!(
        run.count % run.keys,
        0,
        "COUNT must split evenly over the keys"
    );
    let h = Harness::new();
    let warm = h.path("warm");
    let mut child = start(&h, &bundle(run, Some(&warm), ""), run.durable, &[]);
    let conn_result = h.state().join("state/connections/bench/result.json");
    let deadline = Duration::from_secs(600);
    wait_for("the connector's result", deadline, POLL, &mut child, || {
        conn_result.exists()
    });
    let agent_dirs: Vec<PathBuf> = (0..run.keys)
        .map(|k| h.state().join(format!("state/agents/sink/k{k}")))
        .collect();
    wait_for("every agent's result", deadline, POLL, &mut child, || {
        agent_dirs.iter().all(|d| d.join("result.json").exists())
    });
    let mut cpu = tree_cpu(child.id());
    cpu.insert(SWITCHES, context_switches(child.id()) as f64);
    stop(&mut child);
    collect(&conn_result, &agent_dirs, run.count, cpu)
}

/// The key of [`context_switches`] in a run's `cpu`.
pub const SWITCHES: &str = "orchestrator context switches";

/// CPU seconds (user + system, all threads) used so far by `root` and every
/// process below it, summed by kind: the orchestrator (or the relay), its
/// shims, the connector, the agents.
pub fn tree_cpu(root: u32) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    for p in e2e::process_tree(root) {
        let kind = if p.pid == root {
            "orchestrator"
        } else if p.cmdline.contains("__shim") {
            "shims"
        } else if p.cmdline.contains("connector") {
            "connector"
        } else if p.cmdline.contains("agent") {
            "agents"
        } else {
            "other"
        };
        *out.entry(kind).or_insert(0.0) += p.cpu_secs;
    }
    out
}
