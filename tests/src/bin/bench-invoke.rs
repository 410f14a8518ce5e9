//! `bench-invoke`: invocations/s and latency of a no-op sync operation end
//! to end, beside a raw baseline of two round trips over the same kind of
//! sockets, in the same run. Prints a table; asserts nothing.
//!
//! ```sh
//! cargo build --release -p orchestrator -p e2e --bin orchestrator \
//!     --bin bench-invoke --bin bench-invoker --bin bench-op-connector
//! E2E_NO_BUILD=1 cargo run --release -p e2e --bin bench-invoke [-- N [K,K..]]
//! ```
//!
//! (Without `E2E_NO_BUILD=1` it first builds every bin of the workspace.)
//!
//! 1. **End to end** (N invokes per row, default 20,000): `orchestrator run`
//!    (`--journal memory`; an invoke does not touch the journal) with
//!    `bench-op-connector` (frames, serves `noop` → `{}`) and
//!    `bench-invoker` (frames, `connector_sdk::agent`). On its one delivery
//!    the agent makes 2,000 warm-up invokes, then N with 1 in flight, then
//!    N with 16 in flight (the Connection's `maxParallel` is 16), timing
//!    each from `ctx.invoke(..)` to its response: agent → orchestrator
//!    (`invoke`) → connector (`call`) → orchestrator (`callResult`) → agent
//!    (`result`), through the whole governed path (policy, schema, rate
//!    limits, circuit, concurrency, audit record, counters).
//! 2. **Raw baseline**, the same four hops without the work: this binary
//!    spawns itself as a relay over a Unix `socketpair` (the kind of socket
//!    the orchestrator gives a frames child), and the relay spawns itself as
//!    an echo over a second socketpair. A 128-byte length-prefixed frame
//!    goes A → relay → echo → relay → A: two round trips, three processes,
//!    blocking reads and one `write(2)` per frame, a thread per direction in
//!    the relay. The same N, with 1 and 16 frames in flight.
//!
//! The ratio is end to end against that baseline.

use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use e2e::{Harness, bin, bin_dir};
use serde_json::Value;

const FRAME: usize = 128;
/// The default in-flight counts (a second argument, e.g. `16` or `1,4,16`, overrides).
const IN_FLIGHT: [usize; 2] = [1, 16];
const WARM: usize = 2_000;

// ------------------------------------------------------------------ raw baseline

/// Stdin, a Unix socket, as a stream we can read and write.
fn stdin_socket() -> UnixStream {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("dup stdin");
    UnixStream::from(fd)
}

fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> bool {
    let mut len = [0u8; 4];
    if r.read_exact(&mut len).is_err() {
        return false;
    }
    let n = u32::from_be_bytes(len) as usize;
    buf.resize(4 + n, 0);
    buf[..4].copy_from_slice(&len);
    r.read_exact(&mut buf[4..]).is_ok()
}

/// Copies frames from `from` to `to`, one `write(2)` each, until EOF.
fn pump(from: UnixStream, mut to: UnixStream) {
    let mut r = BufReader::with_capacity(64 << 10, from);
    let mut buf = Vec::new();
    while read_frame(&mut r, &mut buf) {
        if to.write_all(&buf).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// `--echo`: sends every frame back on stdin's socket.
fn echo() -> ExitCode {
    let s = stdin_socket();
    pump(s.try_clone().expect("dup"), s);
    ExitCode::SUCCESS
}

/// `--relay`: spawns an echo and forwards frames both ways between stdin's
/// socket and the echo's.
fn relay() -> ExitCode {
    let up = stdin_socket();
    let (down, theirs) = UnixStream::pair().expect("socketpair");
    let mut child = Command::new(bin("bench-invoke"))
        .arg("--echo")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .expect("spawn the echo");
    let (u, d) = (up.try_clone().expect("dup"), down.try_clone().expect("dup"));
    let back = std::thread::spawn(move || pump(d, u));
    pump(up, down);
    let _ = back.join();
    let _ = child.wait();
    ExitCode::SUCCESS
}

/// N frames through relay → echo and back with `k` in flight: (seconds, sorted ns).
fn raw_round_trips(n: usize, k: usize) -> (f64, Vec<u64>) {
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    let mut child = Command::new(bin("bench-invoke"))
        .arg("--relay")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .expect("spawn the relay");
    let mut w = mine.try_clone().expect("dup");
    let mut r = BufReader::with_capacity(64 << 10, mine.try_clone().expect("dup"));
    let mut frame = vec![0u8; FRAME];
    frame[..4].copy_from_slice(&((FRAME - 4) as u32).to_be_bytes());
    let mut sent_at = vec![Instant::now(); n];
    let mut send = |i: usize, w: &mut UnixStream, sent_at: &mut Vec<Instant>| {
        frame[4..12].copy_from_slice(&(i as u64).to_le_bytes());
        sent_at[i] = Instant::now();
        w.write_all(&frame).expect("write a frame");
    };
    let mut latencies = Vec::with_capacity(n);
    let mut buf = Vec::new();
    let start = Instant::now();
    let mut sent = 0;
    while sent < n.min(k) {
        send(sent, &mut w, &mut sent_at);
        sent += 1;
    }
    while latencies.len() < n {
        assert!(read_frame(&mut r, &mut buf), "the relay closed early");
        let i = u64::from_le_bytes(buf[4..12].try_into().expect("8 bytes")) as usize;
        latencies.push(sent_at[i].elapsed().as_nanos() as u64);
        if sent < n {
            send(sent, &mut w, &mut sent_at);
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(w);
    let _ = mine.shutdown(std::net::Shutdown::Write);
    let _ = child.wait();
    latencies.sort_unstable();
    (secs, latencies)
}

// ------------------------------------------------------------------ end to end

const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: benchop }
spec:
  entry: bench-op-connector
  protocol: frames
  events: [{ name: go }]
  restart: { policy: never }
  operations:
    - name: noop
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: bench }
spec:
  connectorRef: Connector/benchop
  operations:
    allow: [noop]
    maxParallel: 16
    maxQueue: 100
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/invoker, agents: [Agent/invoker] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: invoker }
spec:
  entry: bench-invoker
  protocol: frames
  env: { N: "$N", WARM: "$WARM", IN_FLIGHT: "$IN_FLIGHT" }
  restart: { policy: never }
  invoke:
    - connection: bench
      operations: [noop]
"#;

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

/// CPU seconds (user + system, all threads) used so far by `root` and every
/// process below it, by kind: orchestrator, connector, agent, other (shims).
fn tree_cpu(root: u32) -> [f64; 4] {
    let mut out = [0.0; 4];
    for p in e2e::process_tree(root) {
        let kind = if p.pid == root {
            0
        } else if p.cmdline.contains("bench-op-connector") {
            1
        } else if p.cmdline.contains("bench-invoker") {
            2
        } else {
            3
        };
        out[kind] += p.cpu_secs;
    }
    out
}

/// One row the agent measured: (in flight, seconds, errors, sorted ns).
type Row = (usize, f64, u64, Vec<u64>);

/// The agent's rows, and the CPU seconds of the whole run (start-up and
/// warm-up included) by process kind.
fn end_to_end(n: usize, in_flight: &[usize]) -> (Vec<Row>, [f64; 4]) {
    let h = Harness::new();
    let in_flight: Vec<String> = in_flight.iter().map(usize::to_string).collect();
    h.write(
        "bundle.yaml",
        &BUNDLE
            .replace("$N", &n.to_string())
            .replace("$WARM", &WARM.to_string())
            .replace("$IN_FLIGHT", &in_flight.join(",")),
    );
    let mut child = Command::new(bin("orchestrator"))
        .current_dir(h.dir())
        .args(["run", "bundle.yaml", "--journal", "memory", "--state-dir"])
        .arg(h.state())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.path("orchestrator.stderr")).expect("stderr file"))
        .spawn()
        .expect("spawn orchestrator");
    let result = h.state().join("state/agents/invoker/k/result.json");
    wait_for(
        "the agent's result",
        Duration::from_secs(600),
        &mut child,
        || result.exists(),
    );
    let cpu = tree_cpu(child.id());
    // SAFETY: kill(2) on our own child; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&result).expect("result.json"))
        .expect("result json");
    let rows = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let lat: Vec<u64> = r["latencyNs"]
                .as_array()
                .expect("latencyNs")
                .iter()
                .filter_map(Value::as_u64)
                .collect();
            (
                r["inFlight"].as_u64().expect("inFlight") as usize,
                r["secs"].as_f64().expect("secs"),
                r["errors"].as_u64().expect("errors"),
                lat,
            )
        })
        .collect();
    (rows, cpu)
}

// ------------------------------------------------------------------ report

fn us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e3
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--echo") => return echo(),
        Some("--relay") => return relay(),
        _ => {}
    }
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let in_flight: Vec<usize> = args
        .get(1)
        .map(|a| a.split(',').filter_map(|k| k.trim().parse().ok()).collect())
        .unwrap_or_else(|| IN_FLIGHT.to_vec());
    let dir = bin_dir();
    if !dir.ends_with("release") {
        eprintln!(
            "warning: {} is not a release build; run with --release",
            dir.display()
        );
    }
    let load_before = loadavg();
    eprintln!("raw baseline: {n} frames × {in_flight:?} in flight …");
    let _ = raw_round_trips(WARM, 16);
    let raw: Vec<(usize, f64, Vec<u64>)> = in_flight
        .iter()
        .map(|&k| {
            let (secs, lat) = raw_round_trips(n, k);
            (k, secs, lat)
        })
        .collect();
    eprintln!("end to end: {n} invokes × {in_flight:?} in flight …");
    let (e2e, cpu) = end_to_end(n, &in_flight);
    let load_after = loadavg();

    println!("## bench-invoke");
    println!();
    println!(
        "- nproc {}, load average before / after: {load_before} / {load_after}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| what | in flight | n | per second | p50 µs | p99 µs | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (k, secs, lat) in &raw {
        println!(
            "| raw: 2 round trips, A → relay → echo → relay → A, {FRAME}-byte frames | {k} | {n} | {:.0} | {:.1} | {:.1} | — |",
            n as f64 / secs,
            us(lat, 0.50),
            us(lat, 0.99)
        );
    }
    for (k, secs, errors, lat) in &e2e {
        println!(
            "| invoke `noop`: agent → orchestrator → connector → agent | {k} | {} | {:.0} | {:.1} | {:.1} | {errors} |",
            lat.len(),
            lat.len() as f64 / secs,
            us(lat, 0.50),
            us(lat, 0.99)
        );
    }
    let invokes = (WARM + n * in_flight.len()) as f64;
    println!();
    println!(
        "- CPU µs per invoke over the whole run ({invokes} invokes; start-up included): orchestrator {:.1} / connector {:.1} / agent {:.1} / other {:.1}",
        cpu[0] * 1e6 / invokes,
        cpu[1] * 1e6 / invokes,
        cpu[2] * 1e6 / invokes,
        cpu[3] * 1e6 / invokes
    );
    for ((k, rs, rl), (_, es, _, el)) in raw.iter().zip(&e2e) {
        println!(
            "- {k} in flight: invoke throughput {:.1}% of raw; invoke p50 {:.1}× raw p50",
            100.0 * rs / es,
            us(el, 0.5) / us(rl, 0.5)
        );
    }
    ExitCode::SUCCESS
}
