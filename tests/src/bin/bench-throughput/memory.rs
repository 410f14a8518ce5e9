//! The orchestrator's resident memory (`VmRSS`) and open fds, read from
//! /proc: idle, with many live agent instances, and after many distinct keys
//! came and went (instances stopped when idle and then forgotten).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Harness, bin};

use crate::orch::{Run, Transport, bundle, start, stop, wait_for};

/// One figure of the memory table.
pub struct Footprint {
    pub what: String,
    pub rss_kib: u64,
    pub fds: usize,
    /// The largest RSS seen while it ran (sampled every 5–50 ms).
    pub peak_kib: u64,
    pub secs: f64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `GET /metrics` of the orchestrator in `h` (plain HTTP/1.0 over TCP).
fn scrape(h: &Harness) -> String {
    let Ok(addr) = std::fs::read_to_string(h.state().join("metrics.address")) else {
        return String::new();
    };
    let Ok(mut s) = TcpStream::connect(addr.trim()) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// The agent instances `orchestrator status --json` counts now.
fn status_instances(h: &Harness) -> Option<u64> {
    let out = Command::new(bin("orchestrator"))
        .args(["status", "--json", "--state-dir"])
        .arg(h.state())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["agents"]
        .as_array()?
        .iter()
        .map(|a| a["instances"].as_u64())
        .sum()
}

/// The sum of every sample of `metric` (all label sets).
fn metric(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn run(keys: u64) -> Run {
    Run {
        transport: Transport::Jsonl,
        durable: true,
        keys: keys.max(1),
        count: keys,
        rate: 0,
        stamp: false,
        in_flight: 1,
    }
}

/// Waits for `cond` on the metrics, sampling RSS meanwhile; returns the peak.
fn watch(h: &Harness, child: &mut Child, what: &str, mut cond: impl FnMut(&str) -> bool) -> u64 {
    let mut peak = 0;
    let pid = child.id();
    wait_for(
        what,
        Duration::from_secs(3600),
        Duration::from_millis(100),
        child,
        || {
            peak = peak.max(rss_kib(pid));
            cond(&scrape(h))
        },
    );
    peak
}

/// RSS and fds of an idle orchestrator (its connector ready, no agent
/// instance yet), then with `live` agent instances running.
pub fn idle_and_live(live: u64) -> Vec<Footprint> {
    let mut out = Vec::new();
    for n in [0, live] {
        let h = Harness::new();
        let started = Instant::now();
        let mut child = start(
            &h,
            &bundle(&run(n), None, ""),
            true,
            &["--metrics", "127.0.0.1:0"],
        );
        let conn_result = h.state().join("state/connections/bench/result.json");
        let peak = watch(&h, &mut child, "the instances", |m| {
            conn_result.exists()
                && metric(m, "orchestrator_agent_acks_total") >= n as f64
                && metric(m, "orchestrator_agent_instances") >= n as f64
        });
        let pid = child.id();
        out.push(Footprint {
            what: if n == 0 {
                "idle (connector ready, no agent instance)".into()
            } else {
                format!("{n} live agent instances (jsonl)")
            },
            rss_kib: rss_kib(pid),
            fds: fds(pid),
            peak_kib: peak,
            secs: started.elapsed().as_secs_f64(),
        });
        stop(&mut child);
    }
    out
}

/// RSS and fds after `keys` distinct keys, one event each, came and went:
/// `idleTimeout: 1s`, `maxInstances: 200`, `instanceTtl: 2s`; measured once
/// every event is acked and every instance is forgotten.
pub fn churn(keys: u64) -> Footprint {
    let h = Harness::new();
    let started = Instant::now();
    let extra = "  idleTimeout: 1s\n  maxInstances: 200\n  instanceTtl: 2s\n";
    let mut child = start(
        &h,
        &bundle(&run(keys), None, extra),
        true,
        &["--metrics", "127.0.0.1:0"],
    );
    // The `orchestrator_agent_instances` gauge keeps its last value once an
    // Agent has no instance row left, so "all forgotten" is read from `status`.
    let peak = watch(&h, &mut child, "every key acked and forgotten", |m| {
        metric(m, "orchestrator_agent_acks_total") >= keys as f64 && status_instances(&h) == Some(0)
    });
    let pid = child.id();
    let f = Footprint {
        what: format!(
            "after {} distinct keys came and went (1 event each; idleTimeout 1s, maxInstances 200, instanceTtl 2s)",
            crate::report::thousands(keys as f64)
        ),
        rss_kib: rss_kib(pid),
        fds: fds(pid),
        peak_kib: peak,
        secs: started.elapsed().as_secs_f64(),
    };
    stop(&mut child);
    f
}
