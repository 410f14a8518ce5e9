//! `bench-connector`: the connector side of `bench-throughput` (frames, on
//! connector-sdk). It emits a stream as fast as a bounded window of unacked
//! emits allows (pipelined: it never waits for one ack before the next
//! emit), or paced at a fixed rate, and records how long the acks took.
//!
//! Config:
//! - `COUNT` = N measured events, `KEYS` = K instance keys (`k0`…, round
//!   robin), `WINDOW` = most emits awaiting an answer (default 4096),
//!   `RATE` = events/s to offer (default 0: unpaced), `STAMP=true` puts the
//!   send time (CLOCK_REALTIME ns) in property `t`, `PAYLOAD` = the text's
//!   length in bytes (default 64).
//! - `WARM_DIR`: first one `warm` event per key; then it waits until every
//!   agent instance has made its file in `WARM_DIR` (see `bench-agent`), so
//!   process start-up is not measured.
//! - `HOLD_FILE`: it emits nothing until this file exists (`bench-cluster`
//!   creates it once the nodes have shared out the partitions, so no agent
//!   instance moves to another node mid-run).
//!
//! When every emit is answered it writes `<stateDir>/result.json`:
//! `{"count","acked","nacked","failed","firstEmitNs","lastAckNs"}`, then
//! waits for `shutdown`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connector_sdk::{BoxError, Context, EmitError, Event, Message};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn number<T: std::str::FromStr>(ctx: &Context, key: &str, default: T) -> Result<T, BoxError>
where
    T::Err: std::fmt::Display,
{
    match ctx.config_value(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| format!("{key}={v:?}: {e}").into()),
    }
}

fn event(text: &str, key: String, stamp: Option<u64>) -> Event {
    Event {
        name: "item".into(),
        message: Some(Message::text(text)),
        properties: stamp
            .map(|t| [("t".to_string(), t.to_string())].into())
            .unwrap_or_default(),
        instance_key: Some(key),
        payload: None,
    }
}

fn main() -> ExitCode {
    connector_sdk::run(|ctx: Context| async move {
        let count: u64 = number(&ctx, "COUNT", 0)?;
        let keys: u64 = number(&ctx, "KEYS", 1)?.max(1);
        let window: usize = number(&ctx, "WINDOW", 4096)?.max(1);
        let rate: f64 = number(&ctx, "RATE", 0.0)?;
        let payload: usize = number(&ctx, "PAYLOAD", 64)?;
        let stamp = ctx.config_value("STAMP") == Some("true");
        let warm_dir = ctx.config_value("WARM_DIR").map(PathBuf::from);
        let hold = ctx.config_value("HOLD_FILE").map(PathBuf::from);
        let text = "x".repeat(payload);
        ctx.ready().await;
        let emitter = ctx.emitter();
        if let Some(hold) = &hold {
            while !hold.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        if let Some(dir) = &warm_dir {
            let warm: Vec<_> = (0..keys)
                .map(|k| emitter.emit(event("warm", format!("k{k}"), None)))
                .collect();
            for w in warm {
                w.await?;
            }
            let all_up = || (0..keys).all(|k| dir.join(format!("k{k}")).exists());
            while !all_up() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        let (mut acked, mut nacked, mut failed) = (0u64, 0u64, 0u64);
        let mut last_ack_ns = 0;
        let mut pending = FuturesUnordered::new();
        let first_emit_ns = now_ns();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count || !pending.is_empty() {
            // Emit everything due (all of it, unpaced) that the window allows.
            let due = if rate > 0.0 {
                ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(count)
            } else {
                count
            };
            while sent < due && pending.len() < window {
                let t = stamp.then(now_ns);
                pending.push(emitter.emit(event(&text, format!("k{}", sent % keys), t)));
                sent += 1;
            }
            let next_due = start + Duration::from_secs_f64((sent as f64) / rate.max(1e-9));
            let wait_for_time = rate > 0.0 && sent < count && pending.len() < window;
            tokio::select! {
                biased;
                Some(answer) = pending.next() => {
                    match answer {
                        Ok(_) => acked += 1,
                        Err(EmitError::Nacked { .. }) => nacked += 1,
                        Err(_) => failed += 1,
                    }
                    last_ack_ns = now_ns();
                    // Take every answer already there before emitting again.
                    while let Some(Some(answer)) = futures::FutureExt::now_or_never(pending.next()) {
                        match answer {
                            Ok(_) => acked += 1,
                            Err(EmitError::Nacked { .. }) => nacked += 1,
                            Err(_) => failed += 1,
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_due), if wait_for_time => {}
            }
        }
        let result = serde_json::json!({
            "count": count,
            "acked": acked,
            "nacked": nacked,
            "failed": failed,
            "firstEmitNs": first_emit_ns,
            "lastAckNs": last_ack_ns,
        });
        let dir = ctx.state_dir();
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("result.json.tmp"), result.to_string())?;
        std::fs::rename(dir.join("result.json.tmp"), dir.join("result.json"))?;
        ctx.shutdown().await;
        Ok::<(), BoxError>(())
    })
}
