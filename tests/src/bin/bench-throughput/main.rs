//! `bench-throughput`: the figures of issue 14 — throughput, latency and the
//! orchestrator's memory — each beside the same programs through a relay
//! that does the least an orchestrator can do, measured in the same run.
//! Prints one table; asserts nothing.
//!
//! ```sh
//! cargo run --release -p e2e --bin bench-throughput -- [--quick] [N [LATENCY_N]]
//!     [--live N] [--churn K,K…] [--rows I,I…] [--no-throughput] [--no-latency]
//!     [--no-memory]
//! ```
//!
//! It first runs `cargo build --release --workspace --bins` (skip with
//! `E2E_NO_BUILD=1` when they are built). Everything runs on this machine in
//! temp dirs (`TMPDIR` picks the file system the durable journal's fsyncs go to).
//!
//! - **Programs**: over jsonl, `bench-jsonl-connector` and `bench-jsonl-agent`
//!   (std + serde_json, no SDK); over frames, `bench-connector` and
//!   `bench-agent` (connector-sdk). The connector emits as fast as a window
//!   of 4,096 unacked emits allows (or paced), the agent acks each delivery
//!   at once. Agent instances are started (one `warm` event per key) before
//!   the clock starts; `overflow: wait`, so nothing is nacked.
//! - **Relay** (`bench-relay`): the same programs with a forwarder between
//!   them instead of the orchestrator — it reads each emit, acks it,
//!   forwards it as a deliver. Each orchestrator row's ratio is to the relay
//!   of its own shape (as many agent processes as keys, a window of its
//!   `maxInFlight`, blocking reads); the 1-key `maxInFlight: 1` row also to a
//!   spinning one; the share targets to the relay with no window and one agent.
//! - **Throughput** (N events, default 200,000; `--quick` 20,000): first emit
//!   to last receipt in any agent, CLOCK_REALTIME of one machine. CPU per
//!   event by process kind from `/proc/<pid>/stat`.
//! - **Latency** at 10,000 events/s offered, 1 key, durable (LATENCY_N
//!   events, default 50,000; `--quick` 5,000): each event carries its send
//!   time, the agent records receipt − send. The relay beside each row has
//!   its shape: one agent, one event in flight.
//! - **Memory**: the orchestrator's VmRSS and open fds, idle, with `--live`
//!   (default 1,000; `--quick` 100) agent instances, and after each `--churn`
//!   count of distinct keys came and went (default 5,000 and 100,000;
//!   `--quick` 500).
//! - Below the table, for reference: the raw framed socketpair throughput,
//!   the raw one-byte round trip to another process (blocking, spinning,
//!   pinned to one CPU and to two),
//!   and where a window-1 relay's time per event goes.

mod memory;
mod orch;
mod raw;
mod relay;
mod report;
mod throughput;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use e2e::bin_dir;
use orch::{Measured, Run, Transport, journal_name};
use relay::Shape;
use report::{percentile_us, thousands};

const LATENCY_RATE: u64 = 10_000;
pub const PAYLOAD: usize = 64;

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

struct Opts {
    n: u64,
    latency_n: u64,
    live: u64,
    churn: Vec<u64>,
    throughput: bool,
    latency: bool,
    memory: bool,
    /// Only these orchestrator throughput rows (1-based, in table order after
    /// the relays) and the relays they need; all when empty.
    rows: Vec<usize>,
}

fn opts(args: &[String]) -> Opts {
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        n: if quick { 20_000 } else { 200_000 },
        latency_n: if quick { 5_000 } else { 50_000 },
        live: if quick { 100 } else { 1_000 },
        churn: if quick {
            vec![500]
        } else {
            vec![5_000, 100_000]
        },
        throughput: !args.iter().any(|a| a == "--no-throughput"),
        latency: !args.iter().any(|a| a == "--no-latency"),
        memory: !args.iter().any(|a| a == "--no-memory"),
        rows: Vec::new(),
    };
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--live" => o.live = it.next().and_then(|v| v.parse().ok()).unwrap_or(o.live),
            "--churn" => {
                o.churn = it
                    .next()
                    .map(|v| v.split(',').filter_map(|k| k.parse().ok()).collect())
                    .unwrap_or_default();
            }
            "--rows" => {
                o.rows = it
                    .next()
                    .map(|v| v.split(',').filter_map(|k| k.parse().ok()).collect())
                    .unwrap_or_default();
            }
            a if !a.starts_with("--") => positional.extend(a.parse::<u64>().ok()),
            _ => {}
        }
    }
    if let Some(&n) = positional.first() {
        o.n = n;
    }
    if let Some(&n) = positional.get(1) {
        o.latency_n = n;
    }
    o.n = (o.n - o.n % 64).max(64);
    o
}

/// `orchestrator / connector / agents / shims` CPU µs per event, and the
/// orchestrator's context switches per event (its threads' wake-ups).
fn cpu_per_event(m: &Measured, count: u64) -> String {
    let cpu = ["orchestrator", "connector", "agents", "shims"]
        .iter()
        .map(|k| {
            format!(
                "{:.1}",
                m.cpu.get(k).copied().unwrap_or(0.0) * 1e6 / count as f64
            )
        })
        .collect::<Vec<_>>()
        .join(" / ");
    match m.cpu.get(orch::SWITCHES) {
        Some(n) => format!("{cpu} ({:.1})", n / count as f64),
        None => cpu,
    }
}

/// Adds a row to the table, and shows it on stderr at once.
fn push(table: &mut Vec<[String; 7]>, row: [String; 7]) {
    eprintln!("  → {}: {}", row[0], row[1]);
    table.push(row);
}

/// p50 / p99 / p999 / max of a run's latencies.
fn latency(m: &Measured) -> String {
    format!(
        "p50 {:.0} / p99 {:.0} / p999 {:.0} / max {:.0} µs",
        percentile_us(&m.latencies, 0.50),
        percentile_us(&m.latencies, 0.99),
        percentile_us(&m.latencies, 0.999),
        m.latencies.last().map_or(f64::NAN, |&x| x as f64 / 1e3),
    )
}

fn holds(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--raw-reader") {
        return raw::raw_reader();
    }
    if args.first().map(String::as_str) == Some("--raw-echo") {
        return raw::raw_echo();
    }
    let o = opts(&args);
    eprintln!("building (release) …");
    let dir = bin_dir();
    if !dir.ends_with("release") {
        eprintln!(
            "warning: {} is not a release build; run with --release",
            dir.display()
        );
    }
    let load_before = report::load();
    let n = o.n;
    // (what, measured, relay, ratio, target, holds, cpu)
    let mut table: Vec<[String; 7]> = Vec::new();

    let mut notes = Vec::new();
    if o.throughput {
        notes = throughput::rows(&mut table, n, &o.rows);
    }

    if o.latency {
        let ln = o.latency_n;
        for t in [Transport::Jsonl, Transport::Frames] {
            eprintln!(
                "latency: relay, {}, {LATENCY_RATE}/s offered, {ln} events …",
                t.name()
            );
            // The relay of the rows' own shape: one agent, one event in flight.
            let shape = Shape {
                window: 1,
                ..Shape::open(t)
            };
            let r = relay::measure(shape, ln, LATENCY_RATE, true);
            for durable in [true, false] {
                eprintln!(
                    "latency: orchestrator, {}, {} journal, {LATENCY_RATE}/s offered, {ln} events …",
                    t.name(),
                    journal_name(durable)
                );
                let m = orch::measure(&Run {
                    transport: t,
                    durable,
                    keys: 1,
                    count: ln,
                    rate: LATENCY_RATE,
                    stamp: true,
                    in_flight: 1,
                });
                let p99 = percentile_us(&m.latencies, 0.99);
                push(
                    &mut table,
                    [
                        format!(
                            "latency emit → agent receipt, {}, 1 key, {}, {} events/s offered ({} achieved)",
                            t.name(),
                            journal_name(durable),
                            thousands(LATENCY_RATE as f64),
                            thousands(m.events_per_sec)
                        ),
                        latency(&m),
                        latency(&r),
                        format!("p99 {:.1}×", p99 / percentile_us(&r.latencies, 0.99)),
                        if durable {
                            "p99 ≤ 1,000 µs"
                        } else {
                            "— (for comparison)"
                        }
                        .into(),
                        if durable {
                            holds(p99 <= 1_000.0)
                        } else {
                            "—"
                        }
                        .into(),
                        String::new(),
                    ],
                );
            }
        }
    }

    if o.memory {
        let mib = |k: u64| k as f64 / 1024.0;
        let mut rows = Vec::new();
        eprintln!("memory: idle, then {} live instances …", o.live);
        rows.extend(
            memory::idle_and_live(o.live)
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let target = if i == 0 { 16.0 } else { 48.0 };
                    (f, format!("≤ {target:.0} MiB"), target, None)
                }),
        );
        for &k in &o.churn {
            eprintln!("memory: {k} distinct keys come and go …");
            rows.push((
                memory::churn(k),
                "≤ 48 MiB, ≤ 200 fds".into(),
                48.0,
                Some(200),
            ));
        }
        for (f, target, max_mib, max_fds) in rows {
            let ok = mib(f.rss_kib) <= max_mib && max_fds.is_none_or(|m| f.fds <= m);
            push(
                &mut table,
                [
                    format!("orchestrator RSS, {} (took {:.0} s)", f.what, f.secs),
                    format!(
                        "{:.1} MiB, {} open fds (peak RSS while it ran {:.1} MiB)",
                        mib(f.rss_kib),
                        f.fds,
                        mib(f.peak_kib)
                    ),
                    "—".into(),
                    "—".into(),
                    target,
                    holds(ok).into(),
                    String::new(),
                ],
            );
        }
    }

    println!("## bench-throughput");
    println!();
    for (k, v) in report::machine() {
        println!("- {k}: {v}");
    }
    println!(
        "- load average before / after: {load_before} / {}",
        report::load()
    );
    println!(
        "- throughput rows: {} events each; latency rows: {} events",
        thousands(n as f64),
        thousands(o.latency_n as f64)
    );
    println!();
    println!(
        "| what | measured | relay, same run | ratio to relay | target (issue 14) | holds | CPU µs/event: orchestrator / connector / agents / shims (orchestrator context switches/event) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for row in &table {
        println!("| {} |", row.join(" | "));
    }
    if o.throughput {
        let frame = raw::emit_frame_bytes();
        let raw_frames = (n * 20).max(2_000_000);
        let raw = (0..3)
            .map(|_| raw::raw_baseline(frame, raw_frames, true))
            .fold(0.0, f64::max);
        let unbatched = raw::raw_baseline(frame, n.max(200_000), false);
        println!();
        println!(
            "Raw framed socketpair, {frame}-byte frames, no decoding: {} frames/s buffered, {} frames/s with one write(2) per frame.",
            thousands(raw),
            thousands(unbatched)
        );
        let rounds = (n / 2).max(20_000);
        println!();
        println!(
            "Raw round trip, one byte to another process and back (it blocks in read(2)), nothing else: round trips/s (µs each)."
        );
        println!();
        println!(
            "| channel | this side blocks | this side spins | both on CPU 0, blocking | on CPUs 0 and 1, blocking |"
        );
        println!("| --- | --- | --- | --- | --- |");
        for (what, socket) in [
            ("two pipes (jsonl's)", false),
            ("a socketpair (frames')", true),
        ] {
            let cells: Vec<String> = [
                (false, None),
                (true, None),
                (false, Some((0, 0))),
                (false, Some((0, 1))),
            ]
            .into_iter()
            .map(|(spin, pin)| {
                let r = raw::ping_pong(rounds, spin, socket, pin);
                format!("{} ({:.1} µs)", thousands(r), 1e6 / r)
            })
            .collect();
            println!("| {what} | {} |", cells.join(" | "));
        }
    }
    for note in &notes {
        println!();
        println!("{note}");
    }
    ExitCode::SUCCESS
}
