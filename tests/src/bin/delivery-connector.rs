//! `delivery-connector`: a frames connector (on connector-sdk) for the
//! delivery tests. It emits a stream of events, pipelined under a bounded
//! window, optionally paced and with dedupe keys, and records every answer
//! in a file (not the process log, which drops lines past 2,000/s).
//!
//! Config:
//! - `COUNT` = N: emit events 0..N, each named `item`, text `<PREFIX><i>`
//!   (`PREFIX` default `e-`), property `i`, instanceKey `k<i mod KEYS>`
//!   (`KEYS` default 1).
//! - `EVENTS` (instead of `COUNT`): a file of lines
//!   `{"event": <Event JSON>, "dedupeKey": "…"}` (the key optional); line i
//!   (from 0) is event i.
//! - `DEDUPE=true`: with `COUNT`, event i carries dedupe key `dk-<i>`.
//! - `RATE` = events/s to pace the emits at (default 0: as fast as the
//!   window lets).
//! - `WINDOW` = emits awaiting their answer at most (default 1024).
//! - `ONCE=true`: emit only in the first run (a marker in the state directory
//!   remembers); a later run emits nothing.
//! - `HOLD_AT` = K: before emit K, wait until a file `go` exists in the state
//!   directory (a test's gate: what it does while the stream is held happens
//!   mid-stream however slow the machine is).
//!
//! Every run appends to `<stateDir>/answers.log`: `start pid=<pid>`, then per
//! answer `ack <i> new`, `ack <i> dup`, `nack <i> <kind>` or `failed <i>
//! <error>`, and `done` when every emit is answered. The process then waits
//! for `shutdown`. Each line is one `write(2)`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use connector_sdk::{BoxError, Context, EmitError, Event, Message};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde_json::Value;
use tokio::time::Instant;

const MARKER: &str = "delivery-connector.emitted";

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
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

/// The events to emit, each with its dedupe key.
fn events(ctx: &Context) -> Result<VecDeque<(Event, Option<String>)>, BoxError> {
    if let Some(path) = ctx.config_value("EVENTS") {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let mut out = VecDeque::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
            let event: Event = serde_json::from_value(v["event"].clone())
                .map_err(|e| format!("{path}:{}: not an event: {e}", n + 1))?;
            let key = v["dedupeKey"].as_str().map(str::to_owned);
            out.push_back((event, key));
        }
        return Ok(out);
    }
    let count: u64 = number(ctx, "COUNT", 0)?;
    let keys: u64 = number(ctx, "KEYS", 1)?;
    let prefix = ctx.config_value("PREFIX").unwrap_or("e-").to_owned();
    let dedupe = ctx.config_value("DEDUPE") == Some("true");
    Ok((0..count)
        .map(|i| {
            let event = Event {
                name: "item".into(),
                message: Some(Message::text(format!("{prefix}{i}"))),
                properties: [("i".to_string(), i.to_string())].into(),
                instance_key: Some(format!("k{}", i % keys.max(1))),
                payload: None,
            };
            (event, dedupe.then(|| format!("dk-{i}")))
        })
        .collect())
}

fn main() -> ExitCode {
    connector_sdk::run(|ctx: Context| async move {
        let answers = ctx.state_dir().join("answers.log");
        std::fs::create_dir_all(ctx.state_dir())?;
        append(&answers, &format!("start pid={}", std::process::id()))?;
        let marker = ctx.state_dir().join(MARKER);
        let once = ctx.config_value("ONCE") == Some("true");
        let mut todo = if once && marker.exists() {
            VecDeque::new()
        } else {
            events(&ctx)?
        };
        let rate: f64 = number(&ctx, "RATE", 0.0)?;
        let window: usize = number(&ctx, "WINDOW", 1024)?;
        let hold_at: Option<u64> = ctx
            .config_value("HOLD_AT")
            .map(|_| number(&ctx, "HOLD_AT", 0))
            .transpose()?;
        let gate = ctx.state_dir().join("go");
        ctx.ready().await;

        let emitter = ctx.emitter();
        let start = Instant::now();
        let mut pending = FuturesOrdered::new();
        let mut i = 0u64;
        while !todo.is_empty() || !pending.is_empty() {
            let room = pending.len() < window.max(1) && !todo.is_empty();
            let due = if rate > 0.0 {
                start + Duration::from_secs_f64(i as f64 / rate)
            } else {
                start
            };
            tokio::select! {
                biased;
                Some((n, answer)) = pending.next() => {
                    let line = match answer {
                        Ok(connector_sdk::Accepted { duplicate: true }) => format!("ack {n} dup"),
                        Ok(_) => format!("ack {n} new"),
                        Err(EmitError::Nacked { kind, .. }) => format!("nack {n} {}", kind.as_str()),
                        Err(e) => format!("failed {n} {e}"),
                    };
                    append(&answers, &line)?;
                }
                _ = tokio::time::sleep_until(due), if room => {
                    if hold_at == Some(i) && !gate.exists() {
                        // Answers keep being recorded meanwhile; polled, as
                        // the gate is a file the test writes.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let Some((event, key)) = todo.pop_front() else { continue };
                    let answer = match key {
                        Some(k) => futures::future::Either::Left(emitter.emit_with_key(event, k)),
                        None => futures::future::Either::Right(emitter.emit(event)),
                    };
                    let n = i;
                    pending.push_back(async move { (n, answer.await) });
                    i += 1;
                }
            }
        }
        if once {
            std::fs::write(&marker, b"emitted\n")?;
        }
        append(&answers, "done")?;
        ctx.shutdown().await;
        Ok::<(), BoxError>(())
    })
}
