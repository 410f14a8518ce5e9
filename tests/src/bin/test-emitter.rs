//! `test-emitter`: a frames connector (on connector-sdk) that emits the events
//! of a file and reports each answer on stdout.
//!
//! Config:
//! - `EVENTS`: path of a file of JSON `Event` objects, one per line (blank
//!   lines skipped).
//! - `CRASH_AFTER` = N (optional): the first run emits only the first N
//!   events, waits for their acks, leaves a marker in its state directory and
//!   exits 1. A run that finds the marker skips those N and emits the rest, so
//!   across the crash every event is emitted exactly once.
//!
//! All emits of a run are pipelined: each is queued before any answer is
//! awaited (the SDK sends them in call order, seq 1, 2, …). Answers are
//! printed as `ack <seq>` or `nack <seq> <kind> <message>` (or
//! `failed <seq> <error>`), then the process waits for `shutdown`.

use std::process::ExitCode;

use connector_sdk::{BoxError, Context, EmitError, Event};

const MARKER: &str = "test-emitter.crashed";

fn main() -> ExitCode {
    connector_sdk::run(|ctx: Context| async move {
        let path = ctx
            .config_value("EVENTS")
            .ok_or("config EVENTS is not set")?
            .to_owned();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let mut events = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let event: Event = serde_json::from_str(line)
                .map_err(|e| format!("{path}:{}: not an event: {e}", i + 1))?;
            events.push(event);
        }
        let crash_after: Option<usize> = match ctx.config_value("CRASH_AFTER") {
            Some(n) => Some(n.parse().map_err(|e| format!("CRASH_AFTER={n:?}: {e}"))?),
            None => None,
        };
        let marker = ctx.state_dir().join(MARKER);
        let (batch, crash) = match crash_after {
            Some(n) if marker.exists() => (events.split_off(n.min(events.len())), false),
            Some(n) => {
                events.truncate(n);
                (events, true)
            }
            None => (events, false),
        };
        println!(
            "emitting {} events (crash after them: {crash})",
            batch.len()
        );
        ctx.ready().await;

        let emitter = ctx.emitter();
        // Queue every emit before awaiting any answer: that is the pipelining.
        let pending: Vec<_> = batch.into_iter().map(|e| emitter.emit(e)).collect();
        for (i, answer) in pending.into_iter().enumerate() {
            let seq = i + 1;
            match answer.await {
                Ok(_) => println!("ack {seq}"),
                Err(EmitError::Nacked { kind, message }) => {
                    println!("nack {seq} {} {message}", kind.as_str())
                }
                Err(e) => println!("failed {seq} {e}"),
            }
        }

        if crash {
            std::fs::create_dir_all(ctx.state_dir())?;
            std::fs::write(&marker, b"crashed once\n")?;
            println!("crashing on purpose");
            std::process::exit(1);
        }
        println!("all answered; waiting for shutdown");
        ctx.shutdown().await;
        println!("shutdown received");
        Ok::<(), BoxError>(())
    })
}
