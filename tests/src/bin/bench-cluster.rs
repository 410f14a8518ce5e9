//! `bench-cluster`: the figures of issue 15 — events/s and latency of one
//! orchestrator on redb, one node on a single NATS server, and three nodes on
//! a three-server NATS cluster, in one run. Prints one table; asserts nothing.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! E2E_NO_BUILD=1 target/release/bench-cluster [N] [--keys K]
//! ```
//!
//! The programs are `bench-throughput`'s frames pair (`bench-connector`,
//! `bench-agent`): N events (default 20,000) over K keys (default 32), agent
//! instances warmed up before the clock starts, `maxInFlight: 16`,
//! `overflow: wait`, durable. Events/s is first emit to last receipt in any
//! agent. Latency is a second, paced run (1,000 events/s offered, 5,000
//! events, 1 key): receipt − send per event, CLOCK_REALTIME of one machine.
//! Every process (NATS servers included) shares this machine's cores: the
//! three-node row measures the protocol's cost, not three machines' worth.

#[path = "bench-throughput/orch.rs"]
#[allow(dead_code)]
mod orch;
#[path = "bench-throughput/report.rs"]
#[allow(dead_code)]
mod report;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use e2e::Harness;
use e2e::nats::{NatsCluster, NatsServer};
use orch::{Run, Transport, bundle, start, stop};
use report::{percentile_us, thousands};

/// The text of each event, in bytes (as in `bench-throughput`).
pub const PAYLOAD: usize = 64;

const DEADLINE: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(10);

/// Where the nodes of one row run.
enum Place<'a> {
    Redb,
    Nats(&'a str, usize),
}

struct Row {
    name: &'static str,
    events_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: u64 = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<u64>().is_ok())
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let keys: u64 = args
        .iter()
        .position(|a| a == "--keys")
        .and_then(|i| args.get(i + 1))
        .and_then(|k| k.parse().ok())
        .unwrap_or(32);
    let count = count - count % keys;
    // Builds the binaries unless E2E_NO_BUILD=1 (the e2e harness's rule).
    let dir = e2e::bin_dir();
    if !dir.ends_with("release") {
        eprintln!("warning: {} is not a release build", dir.display());
    }
    // `--three`: only the three-node row.
    let only_three = args.iter().any(|a| a == "--three");
    let mut rows = Vec::new();
    if !only_three {
        rows.push(measure_row(
            "1 node, redb journal",
            &Place::Redb,
            count,
            keys,
        ));
        let nats = NatsServer::start();
        let url = nats.url();
        rows.push(measure_row(
            "1 node, 1 NATS server",
            &Place::Nats(&url, 1),
            count,
            keys,
        ));
    }
    {
        let nats = NatsCluster::start(3);
        let urls = nats.urls();
        rows.push(measure_row(
            "3 nodes, 3 NATS servers (R3)",
            &Place::Nats(&urls, 3),
            count,
            keys,
        ));
    }
    println!();
    println!(
        "bench-cluster: {count} events over {keys} keys (frames, maxInFlight 16, durable); latency: 5,000 events at 1,000/s, 1 key"
    );
    for (k, v) in report::machine() {
        println!("  {k}: {v}");
    }
    println!();
    println!("| setup | events/s | latency p50 | latency p99 |");
    println!("| --- | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} µs | {:.0} µs |",
            r.name,
            thousands(r.events_per_sec),
            r.p50_us,
            r.p99_us
        );
    }
}

fn measure_row(name: &'static str, place: &Place<'_>, count: u64, keys: u64) -> Row {
    eprintln!("bench-cluster: {name}: throughput");
    let throughput = Run {
        transport: Transport::Frames,
        durable: true,
        keys,
        count,
        rate: 0,
        stamp: false,
        in_flight: 16,
    };
    let (events_per_sec, _) = run(place, &throughput, "tp");
    eprintln!("bench-cluster: {name}: latency");
    let paced = Run {
        transport: Transport::Frames,
        durable: true,
        keys: 1,
        count: 5_000,
        rate: 1_000,
        stamp: true,
        in_flight: 16,
    };
    let (_, latencies) = run(place, &paced, "lat");
    Row {
        name,
        events_per_sec,
        p50_us: percentile_us(&latencies, 0.50),
        p99_us: percentile_us(&latencies, 0.99),
    }
}

/// One run of `spec` on the row's nodes: events/s and the sorted latencies.
fn run(place: &Place<'_>, spec: &Run, tag: &str) -> (f64, Vec<u64>) {
    let warm_dir = tempfile::tempdir().expect("warm dir");
    let hold = warm_dir.path().join("go");
    // The Connection's config (the first WARM_DIR; the agent's env has one too).
    let text = bundle(spec, Some(warm_dir.path()), "").replacen(
        "WARM_DIR: \"",
        &format!("HOLD_FILE: \"{}\"\n    WARM_DIR: \"", hold.display()),
        1,
    );
    let nodes: Vec<Harness> = match place {
        Place::Redb => vec![Harness::new()],
        Place::Nats(_, n) => (0..*n).map(|_| Harness::new()).collect(),
    };
    let mut children: Vec<Child> = Vec::new();
    for (i, h) in nodes.iter().enumerate() {
        let child = match place {
            Place::Redb => start(h, &text, true, &[]),
            Place::Nats(urls, _) => {
                let node = format!("n{i}");
                // A cluster name per run: every run starts from empty streams.
                let cluster = format!("bench-{tag}-{}", std::process::id());
                let args = [
                    "--cluster",
                    urls,
                    "--node",
                    &node,
                    "--cluster-name",
                    &cluster,
                ];
                start(h, &text, true, &args)
            }
        };
        children.push(child);
    }
    if let Place::Nats(_, n) = place
        && *n > 1
    {
        // Partitions move while nodes join; an instance that moved mid-run
        // would split its count over two nodes.
        wait_until_shared_out(&mut children, &nodes);
    }
    std::fs::write(&hold, b"").expect("hold file");
    let states: Vec<PathBuf> = nodes.iter().map(Harness::state).collect();
    let conn_result = wait_for_file("the connector's result", &mut children, || {
        states
            .iter()
            .map(|s| s.join("state/connections/bench/result.json"))
            .find(|p| p.exists())
    });
    let agent_dirs: Vec<PathBuf> = (0..spec.keys)
        .map(|k| {
            wait_for_file(&format!("the result of agent k{k}"), &mut children, || {
                states
                    .iter()
                    .map(|s| s.join(format!("state/agents/sink/k{k}")))
                    .find(|d| d.join("result.json").exists())
            })
        })
        .collect();
    let measured = collect(&conn_result, &agent_dirs, spec.count);
    for child in &mut children {
        stop(child);
    }
    measured
}

/// Waits until every node holds some partitions and together they hold
/// all of them (each node's last `this node holds N of P partitions` line).
fn wait_until_shared_out(children: &mut [Child], nodes: &[Harness]) {
    let held = |h: &Harness| -> Option<(u32, u32)> {
        let stderr = h.stderr();
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.contains("this node holds "))?;
        let (_, rest) = line.split_once("this node holds ")?;
        let mut words = rest.split_whitespace();
        let n = words.next()?.parse().ok()?;
        let of = words.nth(1)?.parse().ok()?;
        Some((n, of))
    };
    wait_for_file("the nodes to share out the partitions", children, || {
        let all: Option<Vec<(u32, u32)>> = nodes.iter().map(held).collect();
        let all = all?;
        let total = all.first()?.1;
        (all.iter().all(|&(n, _)| n > 0) && all.iter().map(|&(n, _)| n).sum::<u32>() == total)
            .then(PathBuf::new)
    });
}

/// Polls `found` until it gives a path (panics past [`DEADLINE`], or when a node exits).
fn wait_for_file(
    what: &str,
    children: &mut [Child],
    mut found: impl FnMut() -> Option<PathBuf>,
) -> PathBuf {
    let start = std::time::Instant::now();
    loop {
        if let Some(p) = found() {
            return p;
        }
        for c in children.iter_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("a node exited ({status}) before the run finished");
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// Events/s from the connector's first emit to the last receipt, and the
/// sorted latencies the agents recorded (`bench-throughput`'s reading).
fn collect(conn_result: &Path, agent_dirs: &[PathBuf], count: u64) -> (f64, Vec<u64>) {
    let m = orch::collect(conn_result, agent_dirs, count, Default::default());
    (m.events_per_sec, m.latencies)
}
