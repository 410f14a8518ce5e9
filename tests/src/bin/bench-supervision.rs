//! `bench-supervision`: how fast supervision reacts, on the real binaries.
//! Prints figures; asserts nothing.
//!
//! ```sh
//! cargo run --release -p e2e --bin bench-supervision [-- KILLS [STARTS]]
//! ```
//!
//! It first runs `cargo build --release --workspace --bins` (skip with
//! `E2E_NO_BUILD=1`), then starts `orchestrator run` on a bundle with a
//! frames connector (`test-feeder`) restarted with zero backoff and a circuit
//! that never trips, a Rust agent (`agent-echo`, frames) and a Python agent
//! (`examples/agents/echo.py`, jsonl), and measures:
//!
//! 1. kill -9 of the connector → its replacement `ready` (a new pid in state
//!    `ready` in the status), KILLS times (default 100), polling the control
//!    socket every millisecond;
//! 2. a new instanceKey → that agent instance `ready`, STARTS times per agent
//!    (default 30), one key at a time, from the log times of the connector's
//!    `emit` line, the instance's `started` and `ready` notes and its
//!    `received` line (millisecond resolution).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use e2e::{Harness, bin_dir, event, gap, lines_with};
use serde_json::Value;

const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: feeder }
spec:
  entry: test-feeder
  events:
    - name: user_message
      properties:
        chat_id: { type: string }
        lang: { type: string, optional: true }
  restart:
    backoff: { initial: 0s, max: 0s, jitter: 0 }
    circuit: { failures: 1000000 }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: feed }
spec:
  connectorRef: Connector/feeder
  config: { FEED: "@FEED@" }
  ingress:
    rules:
      - match: { properties: { lang: python } }
        route: { agentRef: Agent/echo-py, instanceKeyProperty: chat_id }
      - route: { agentRef: Agent/echo, instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/echo, agents: [Agent/echo, Agent/echo-py] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec: { entry: agent-echo, protocol: frames }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo-py }
spec: { entry: ./echo.py, protocol: jsonl }
"#;

/// One `status` request on the control socket; the rows, or `None` if it cannot answer.
fn status(socket: &Path) -> Option<Vec<Value>> {
    let mut conn = UnixStream::connect(socket).ok()?;
    conn.write_all(b"{\"verb\":\"status\"}\n").ok()?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).ok()?;
    let answer: Value = serde_json::from_str(&line).ok()?;
    answer["processes"].as_array().cloned()
}

/// `(pid, state)` of `target`.
fn row(socket: &Path, target: &str) -> Option<(Option<u64>, String)> {
    let rows = status(socket)?;
    let p = rows.into_iter().find(|p| p["target"] == target)?;
    Some((p["pid"].as_u64(), p["state"].as_str()?.to_string()))
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Median, p99, min and max of `xs`, in milliseconds.
fn summary(xs: &mut [Duration]) -> String {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| xs[((xs.len() as f64 * q).ceil() as usize).clamp(1, xs.len()) - 1];
    format!(
        "{:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>5}",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(xs[0]),
        ms(xs[xs.len() - 1]),
        xs.len()
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{nproc} × {cpu}, Linux {}", kernel.trim())
}

fn kills(socket: &Path, n: usize) -> Vec<Duration> {
    let target = "connection/feed";
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let old = wait_for(
            "the connector ready",
            Duration::from_secs(20),
            || match row(socket, target)? {
                (Some(pid), state) if state == "ready" => Some(pid),
                _ => None,
            },
        );
        // SAFETY: kill(2) on the pid the orchestrator reports for its child.
        unsafe {
            libc::kill(old as libc::pid_t, libc::SIGKILL);
        }
        let t0 = Instant::now();
        wait_for("a new ready pid", Duration::from_secs(20), || {
            match row(socket, target)? {
                (Some(pid), state) if pid != old && state == "ready" => Some(()),
                _ => None,
            }
        });
        out.push(t0.elapsed());
    }
    out
}

/// The first line of `log` containing `needle`, its time.
fn first(log: &str, needle: &str) -> Option<SystemTime> {
    lines_with(log, needle).first().map(|(t, _)| *t)
}

/// For `n` fresh keys of `agent`: emit → ready, started → ready, emit → received.
fn starts(h: &Harness, agent: &str, lang: &str, n: usize) -> [Vec<Duration>; 3] {
    let mut out: [Vec<Duration>; 3] = Default::default();
    for i in 0..n {
        let key = format!("{agent}-{i}");
        let text = format!("start-{key}");
        let mut props = vec![("chat_id", key.as_str())];
        if !lang.is_empty() {
            props.push(("lang", lang));
        }
        h.feed("feed.jsonl", &[event("user_message", &text, &props, None)]);
        let (emit, started, ready, received) = wait_for(
            "the instance's first delivery",
            Duration::from_secs(30),
            || {
                let log = h.agent_log(agent, &key);
                let received = first(&log, " received {")?;
                let started = first(&log, " orchestrator started ")?;
                let ready = first(&log, " orchestrator ready")?;
                let emit = lines_with(&h.connection_log("feed"), " stdout emit ")
                    .into_iter()
                    .find(|(_, l)| l.ends_with(&format!(" {text}")))
                    .map(|(t, _)| t)?;
                Some((emit, started, ready, received))
            },
        );
        out[0].push(gap(emit, ready));
        out[1].push(gap(started, ready));
        out[2].push(gap(emit, received));
    }
    out
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_kills = args.first().copied().unwrap_or(100);
    let n_starts = args.get(1).copied().unwrap_or(30);
    let profile = bin_dir();
    let mut h = Harness::new();
    h.copy_example("agents/echo.py");
    let feed = h.path("feed.jsonl").display().to_string();
    h.start(&BUNDLE.replace("@FEED@", &feed));
    let socket = h.state().join("control.sock");

    let mut killed = kills(&socket, n_kills);
    let rust = starts(&h, "echo", "", n_starts);
    let python = starts(&h, "echo-py", "python", n_starts);
    assert!(h.stop().success(), "the orchestrator did not stop cleanly");

    println!("bench-supervision");
    println!("machine: {}", machine());
    println!("binaries: {}", profile.display());
    println!();
    println!(
        "{:<58} {:>8} {:>8} {:>8} {:>8} {:>5}",
        "ms", "median", "p99", "min", "max", "n"
    );
    println!(
        "{:<58} {}",
        "kill -9 connector → replacement ready (zero backoff)",
        summary(&mut killed)
    );
    for (name, [emit_ready, started_ready, emit_received]) in [
        ("Rust agent (agent-echo, frames)", rust),
        ("Python agent (echo.py, jsonl)", python),
    ] {
        let (mut a, mut b, mut c) = (emit_ready, started_ready, emit_received);
        println!(
            "{:<58} {}",
            format!("new key → ready: {name}"),
            summary(&mut a)
        );
        println!("{:<58} {}", "  of which spawn → ready", summary(&mut b));
        println!(
            "{:<58} {}",
            "  new key → first delivery printed",
            summary(&mut c)
        );
    }
}
