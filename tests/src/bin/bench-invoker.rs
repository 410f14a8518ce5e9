//! `bench-invoker`: the agent side of `bench-invoke` (frames, on
//! `connector_sdk::agent`). On its one delivery it invokes `noop` of the
//! Connection the event came through: `WARM` invokes first (not measured),
//! then for each K in `IN_FLIGHT` (comma-separated, default `1,16`) `N`
//! invokes (default 20,000) with K in flight, timing each from the
//! `ctx.invoke(..)` call to its response (monotonic clock). Then it writes
//! `<stateDir>/result.json`: `{"rows": [{"inFlight", "n", "errors", "secs",
//! "latencyNs": [sorted]}]}` and acks.

use std::process::ExitCode;
use std::time::Instant;

use connector_sdk::agent::{AgentContext, HandlerError};
use connector_sdk::ipc_proto::Deliver;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` invokes with `k` in flight: (seconds, errors, sorted latencies in ns).
async fn run(ctx: &AgentContext, connection: &str, n: usize, k: usize) -> (f64, u64, Vec<u64>) {
    let mut latencies = Vec::with_capacity(n);
    let mut errors = 0u64;
    let mut pending = FuturesUnordered::new();
    let call = |ctx: &AgentContext| {
        let started = Instant::now();
        let request = ctx.invoke(connection, "noop", json!({}));
        async move { (request.await.is_ok(), started.elapsed().as_nanos() as u64) }
    };
    let start = Instant::now();
    let mut sent = 0;
    while sent < n.min(k.max(1)) {
        pending.push(call(ctx));
        sent += 1;
    }
    while let Some((ok, ns)) = pending.next().await {
        if !ok {
            errors += 1;
        }
        latencies.push(ns);
        if sent < n {
            pending.push(call(ctx));
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    (secs, errors, latencies)
}

async fn handle(ctx: AgentContext, d: Deliver) -> Result<(), HandlerError> {
    let n = env_num("N", 20_000);
    let warm = env_num("WARM", 2_000);
    let in_flight: Vec<usize> = std::env::var("IN_FLIGHT")
        .unwrap_or_else(|_| "1,16".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let connection = d.event.connection.clone();
    let _ = run(&ctx, &connection, warm, 16).await;
    let mut rows: Vec<Value> = Vec::new();
    for k in in_flight {
        let (secs, errors, latencies) = run(&ctx, &connection, n, k).await;
        rows.push(json!({
            "inFlight": k, "n": n, "errors": errors, "secs": secs, "latencyNs": latencies,
        }));
    }
    let dir = ctx.state_dir();
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("result.json.tmp");
    std::fs::write(&tmp, json!({ "rows": rows }).to_string())?;
    std::fs::rename(tmp, dir.join("result.json"))?;
    Ok(())
}

fn main() -> ExitCode {
    connector_sdk::agent::run(handle)
}
