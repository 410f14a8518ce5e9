//! `bench-throughput`: events/s and latency end to end, against the raw
//! framed Unix-socket throughput of this machine. Prints a table; asserts nothing.
//!
//! ```sh
//! cargo run --release -p e2e --bin bench-throughput [-- N [LATENCY_N]]
//! ```
//!
//! It first runs `cargo build --release --workspace --bins` (skip with
//! `E2E_NO_BUILD=1` when they are built), so that the orchestrator and the
//! peers it runs are release builds. Everything runs in one process tree on
//! this machine, in a temp dir (the durable journal's fsyncs go to the temp
//! dir's file system; `TMPDIR` picks it):
//!
//! 1. **Raw baseline**: this binary spawns itself as a reader over a
//!    `socketpair`; it writes length-prefixed frames of exactly the size of
//!    one encoded `emit` as fast as it can, the reader reads them: through a
//!    256 KiB buffer (the baseline the ratios use), and, for reference, with
//!    one `write(2)` per frame.
//! 2. **Throughput** (N events, default 200,000): `bench-connector` (frames,
//!    connector-sdk, pipelined under a window of 4,096 unacked emits) →
//!    `orchestrator run` (`--journal memory`, then the durable default) →
//!    ingress → `bench-agent` (frames, `connector_sdk::agent`, acks at once),
//!    for 1, 4 and 64 instance keys with the default `maxInFlight: 1`, and 4
//!    keys with `maxInFlight: 256`; `overflow: wait` and a large `maxQueue`
//!    so nothing is nacked. Agent instances are started (one `warm` event
//!    per key) before the clock starts. Measured from the first emit to the
//!    last receipt in any agent (CLOCK_REALTIME, same machine); `acks/s` is
//!    first emit to last ack. The CPU time of each process kind (from
//!    `/proc/<pid>/stat`, all threads) is shown per event: where the time goes.
//! 3. **Latency** at an offered 10,000 events/s (LATENCY_N events, default
//!    50,000, one instance key): each event carries its send time; the agent
//!    records receive − send; p50/p99/p999/max.
//!
//! Ratios are to the raw baseline's frames/s.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connector_sdk::ipc_proto::{self, Emit, Event, FromConnector, Message};
use e2e::{Harness, bin, bin_dir};
use serde_json::Value;

const KEY_COUNTS: [u64; 3] = [1, 4, 64];
const LATENCY_RATE: u64 = 10_000;
const PAYLOAD: usize = 64;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// The bytes on the wire of one measured `emit` (4-byte length + bincode body).
fn emit_frame_bytes() -> usize {
    let event = Event {
        name: "item".into(),
        message: Some(Message::text("x".repeat(PAYLOAD))),
        properties: [("t".to_string(), now_ns().to_string())].into(),
        instance_key: Some("k12".into()),
        payload: None,
    };
    let emit = FromConnector::Emit(Emit {
        seq: 123_456,
        event,
        dedupe_key: None,
    });
    4 + ipc_proto::frame::encode_body(&emit)
        .expect("encode an emit")
        .len()
}

// ------------------------------------------------------------------ raw baseline

/// The reader half: reads frames from stdin (a Unix socket) until EOF; prints
/// `<frames> <end ns>`.
fn raw_reader() -> ExitCode {
    let stdin = std::io::stdin();
    let mut r = BufReader::with_capacity(256 << 10, stdin.lock());
    let mut len = [0u8; 4];
    let mut body = vec![0u8; 1 << 16];
    let mut frames = 0u64;
    while r.read_exact(&mut len).is_ok() {
        let n = u32::from_be_bytes(len) as usize;
        if body.len() < n {
            body.resize(n, 0);
        }
        if r.read_exact(&mut body[..n]).is_err() {
            break;
        }
        frames += 1;
    }
    println!("{frames} {}", now_ns());
    ExitCode::SUCCESS
}

/// Frames/s from this process to a reader process over a socketpair:
/// written through a 256 KiB buffer, or with one `write(2)` per frame.
fn raw_baseline(frame_bytes: usize, frames: u64, buffered: bool) -> f64 {
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    // Not current_exe(): the build at start may just have replaced this binary.
    let child = Command::new(bin("bench-throughput"))
        .arg("--raw-reader")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the raw reader");
    let body_len = frame_bytes - 4;
    let mut frame = Vec::with_capacity(frame_bytes);
    frame.extend_from_slice(&(body_len as u32).to_be_bytes());
    frame.extend((0..body_len).map(|i| i as u8));
    let start = now_ns();
    if buffered {
        let mut w = BufWriter::with_capacity(256 << 10, &mine);
        for _ in 0..frames {
            w.write_all(&frame).expect("write a frame");
        }
        w.flush().expect("flush");
    } else {
        let mut w = &mine;
        for _ in 0..frames {
            w.write_all(&frame).expect("write a frame");
        }
    }
    drop(mine);
    let out = child.wait_with_output().expect("raw reader");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let got: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let end: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_eq!(got, frames, "the reader got every frame");
    frames as f64 / ((end - start) as f64 / 1e9)
}

// ------------------------------------------------------------------ orchestrator runs

/// One end-to-end run's settings.
struct Run {
    durable: bool,
    keys: u64,
    count: u64,
    /// 0 = unpaced.
    rate: u64,
    stamp: bool,
    /// The Agent's `maxInFlight`.
    in_flight: u32,
}

/// What one run measured.
struct Measured {
    events_per_sec: f64,
    acks_per_sec: f64,
    latencies: Vec<u64>,
    nacked: u64,
    journal_bytes: u64,
    /// CPU seconds of the whole run by process kind (orchestrator, connector, agents, shims).
    cpu: BTreeMap<&'static str, f64>,
}

fn bundle(run: &Run, warm: &Path) -> String {
    let per_key = run.count / run.keys;
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: bench }}
spec:
  entry: bench-connector
  protocol: frames
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
    WARM_DIR: "{warm}"
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
  entry: bench-agent
  protocol: frames
  maxQueue: 1000000
  maxInFlight: {in_flight}
  env: {{ EXPECT: "{per_key}", WARM_DIR: "{warm}" }}
  restart: {{ policy: never }}
"#,
        count = run.count,
        keys = run.keys,
        rate = run.rate,
        stamp = run.stamp,
        in_flight = run.in_flight,
        warm = warm.display(),
    )
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn wait_for(what: &str, deadline: Duration, child: &mut Child, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the orchestrator exited ({status}) while waiting for {what}");
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn measure(run: &Run) -> Measured {
    assert_eq!(
        run.count % run.keys,
        0,
        "COUNT must split evenly over the keys"
    );
    let h = Harness::new();
    let warm = h.path("warm");
    h.write("bundle.yaml", &bundle(run, &warm));
    let mut cmd = Command::new(bin("orchestrator"));
    cmd.current_dir(h.dir())
        .args(["run", "bundle.yaml", "--state-dir"])
        .arg(h.state())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.path("orchestrator.stderr")).expect("stderr file"));
    if !run.durable {
        cmd.args(["--journal", "memory"]);
    }
    let mut child = cmd.spawn().expect("spawn orchestrator");

    let conn_result = h.state().join("state/connections/bench/result.json");
    let deadline = Duration::from_secs(600);
    wait_for("the connector's result", deadline, &mut child, || {
        conn_result.exists()
    });
    let agent_result = |k: u64| {
        h.state()
            .join(format!("state/agents/sink/k{k}/result.json"))
    };
    wait_for("every agent's result", deadline, &mut child, || {
        (0..run.keys).all(|k| agent_result(k).exists())
    });
    let cpu = tree_cpu(child.id());
    let journal_bytes = std::fs::metadata(h.state().join("journal.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    // SAFETY: kill(2) on our own child; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();

    let c = read_json(&conn_result).expect("connector result");
    let first_emit = c["firstEmitNs"].as_u64().expect("firstEmitNs");
    let last_ack = c["lastAckNs"].as_u64().expect("lastAckNs");
    let mut last_receipt = 0;
    let mut received = 0;
    let mut latencies = Vec::new();
    for k in 0..run.keys {
        let a = read_json(&agent_result(k)).expect("agent result");
        last_receipt = last_receipt.max(a["lastNs"].as_u64().expect("lastNs"));
        received += a["count"].as_u64().expect("count");
        if let Ok(bytes) = std::fs::read(
            h.state()
                .join(format!("state/agents/sink/k{k}/latency.bin")),
        ) {
            latencies.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
    }
    assert_eq!(received, run.count, "every event reached an agent");
    Measured {
        events_per_sec: run.count as f64 / ((last_receipt - first_emit) as f64 / 1e9),
        acks_per_sec: run.count as f64 / ((last_ack - first_emit) as f64 / 1e9),
        latencies,
        nacked: c["nacked"].as_u64().unwrap_or(0) + c["failed"].as_u64().unwrap_or(0),
        journal_bytes,
        cpu,
    }
}

/// CPU seconds (user + system, all threads) used so far by `root` and every
/// process below it, summed by kind: the orchestrator, its shims, the
/// connector, the agents.
fn tree_cpu(root: u32) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    for p in e2e::process_tree(root) {
        let kind = if p.pid == root {
            "orchestrator"
        } else if p.cmdline.contains("__shim") {
            "shims"
        } else if p.cmdline.contains("bench-connector") {
            "connector"
        } else if p.cmdline.contains("bench-agent") {
            "agents"
        } else {
            "other"
        };
        *out.entry(kind).or_insert(0.0) += p.cpu_secs;
    }
    out
}

// ------------------------------------------------------------------ report

fn machine() -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let tmp = std::env::temp_dir();
    let fs = mount_of(&tmp).unwrap_or_else(|| "?".into());
    vec![
        ("nproc".into(), cpus),
        ("cpu".into(), model),
        ("kernel".into(), kernel),
        ("temp dir".into(), format!("{} ({fs})", tmp.display())),
    ]
}

/// `<device> <fs type>` of the mount that holds `path`.
fn mount_of(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} {}", f[0], f[2])))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, m)| m)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e6
}

fn journal_name(durable: bool) -> &'static str {
    if durable { "durable" } else { "memory" }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--raw-reader") {
        return raw_reader();
    }
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let latency_n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let n = n - n % 64;

    eprintln!("building (release) …");
    let dir = bin_dir();
    if !dir.ends_with("release") {
        eprintln!(
            "warning: {} is not a release build; run with --release",
            dir.display()
        );
    }
    let frame = emit_frame_bytes();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("raw baseline ({frame}-byte frames) …");
    let raw_frames = (n * 20).max(2_000_000);
    let raw = (0..3)
        .map(|_| raw_baseline(frame, raw_frames, true))
        .fold(0.0, f64::max);
    let raw_unbatched = raw_baseline(frame, n.max(200_000), false);

    // (journal, keys, maxInFlight)
    let mut configs: Vec<(bool, u64, u32)> = Vec::new();
    for durable in [false, true] {
        configs.extend(KEY_COUNTS.iter().map(|&k| (durable, k, 1)));
        configs.push((durable, 4, 256));
    }
    let mut rows = Vec::new();
    for (durable, keys, in_flight) in configs {
        eprintln!(
            "throughput: {} journal, {keys} keys, maxInFlight {in_flight}, {n} events …",
            journal_name(durable)
        );
        let m = measure(&Run {
            durable,
            keys,
            count: n,
            rate: 0,
            stamp: false,
            in_flight,
        });
        rows.push((durable, keys, in_flight, m));
    }
    let mut latency_rows = Vec::new();
    for durable in [false, true] {
        eprintln!(
            "latency: {} journal, {LATENCY_RATE}/s offered, {latency_n} events …",
            journal_name(durable)
        );
        let m = measure(&Run {
            durable,
            keys: 1,
            count: latency_n,
            rate: LATENCY_RATE,
            stamp: true,
            in_flight: 1,
        });
        latency_rows.push((durable, m));
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    println!("## bench-throughput");
    println!();
    for (k, v) in machine() {
        println!("- {k}: {v}");
    }
    println!(
        "- load average before / after: {} / {}",
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("- event: one `emit` frame of {frame} bytes ({PAYLOAD}-byte text, a `t` property)");
    println!();
    println!(
        "| what | journal | keys | maxInFlight | events/s | acks/s | of raw | of raw (1 write/frame) | CPU µs/event: orchestrator / connector / agents / shims |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    println!(
        "| raw framed Unix socket, 2 processes, buffered writes ({raw_frames} frames) | — | — | — | {raw:.0} | — | 100% | — | — |"
    );
    println!(
        "| raw framed Unix socket, 2 processes, one write(2) per frame | — | — | — | {raw_unbatched:.0} | — | {:.1}% | 100% | — |",
        100.0 * raw_unbatched / raw
    );
    let per_event = |m: &Measured, count: u64| {
        ["orchestrator", "connector", "agents", "shims"]
            .iter()
            .map(|k| {
                format!(
                    "{:.1}",
                    m.cpu.get(k).copied().unwrap_or(0.0) * 1e6 / count as f64
                )
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for (durable, keys, in_flight, m) in &rows {
        println!(
            "| end to end, {n} events | {} | {keys} | {in_flight} | {:.0} | {:.0} | {:.2}% | {:.1}% | {} |",
            journal_name(*durable),
            m.events_per_sec,
            m.acks_per_sec,
            100.0 * m.events_per_sec / raw,
            100.0 * m.events_per_sec / raw_unbatched,
            per_event(m, n),
        );
        if m.nacked > 0 {
            println!(
                "|   ↳ {} emits were not accepted | | | | | | | | |",
                m.nacked
            );
        }
    }
    println!();
    println!(
        "| latency, emit → agent receipt | journal | offered | achieved events/s | p50 ms | p99 ms | p999 ms | max ms |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (durable, m) in &latency_rows {
        let mut l = m.latencies.clone();
        l.sort_unstable();
        println!(
            "| {latency_n} events, 1 key | {} | {LATENCY_RATE}/s | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} |",
            journal_name(*durable),
            m.events_per_sec,
            percentile(&l, 0.50),
            percentile(&l, 0.99),
            percentile(&l, 0.999),
            l.last().map_or(f64::NAN, |&x| x as f64 / 1e6),
        );
    }
    let sizes: Vec<String> = rows
        .iter()
        .filter(|(d, ..)| *d)
        .map(|(_, k, f, m)| {
            format!(
                "{k} keys/maxInFlight {f}: {:.0} MiB",
                m.journal_bytes as f64 / (1 << 20) as f64
            )
        })
        .collect();
    println!();
    println!(
        "journal.db after each durable run of {n} events: {}",
        sizes.join(", ")
    );
    ExitCode::SUCCESS
}
