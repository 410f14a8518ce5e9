//! `test-feeder`: a frames connector (on connector-sdk) that follows a file
//! and emits every JSON `Event` appended to it, so a test can send an event
//! at the moment it chooses.
//!
//! Config `FEED`: the file to follow (it may not exist yet). It is read from
//! its start, every 5 ms; each complete non-empty line is one event. Lines:
//! `emit <n> <text>` when an event is emitted (its `n` counts from 1 in this
//! process), then `ack <n> <text>` or `nack <n> <kind> <message>` (or
//! `failed <n> <error>`) when the orchestrator answers. Emits are pipelined.
//! It waits for `shutdown` and never exits by itself; a restarted process
//! reads the file from its start again.

use std::io::{Read, Seek, SeekFrom};
use std::process::ExitCode;
use std::time::Duration;

use connector_sdk::{BoxError, Context, EmitError, Event};
use futures::StreamExt;
use futures::stream::FuturesOrdered;

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(5);

/// Complete lines appended to `path` since `offset` (which it advances).
fn new_lines(path: &str, offset: &mut u64, partial: &mut Vec<u8>) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return vec![];
    };
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(*offset)).is_err() || file.read_to_end(&mut buf).is_err() {
        return vec![];
    }
    *offset += buf.len() as u64;
    partial.extend_from_slice(&buf);
    let Some(last_nl) = partial.iter().rposition(|b| *b == b'\n') else {
        return vec![];
    };
    let complete: Vec<u8> = partial.drain(..=last_nl).collect();
    String::from_utf8_lossy(&complete)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn text_of(event: &Event) -> String {
    event
        .message
        .as_ref()
        .and_then(|m| m.as_text())
        .unwrap_or_default()
        .to_string()
}

fn main() -> ExitCode {
    connector_sdk::run(|ctx: Context| async move {
        let path = ctx
            .config_value("FEED")
            .ok_or("config FEED is not set")?
            .to_owned();
        ctx.ready().await;
        println!("following {path}");
        let emitter = ctx.emitter();
        let shutdown = ctx.shutdown();
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(POLL);
        let (mut offset, mut partial, mut n) = (0u64, Vec::new(), 0u64);
        let mut pending = FuturesOrdered::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    for line in new_lines(&path, &mut offset, &mut partial) {
                        n += 1;
                        let event: Event = match serde_json::from_str(&line) {
                            Ok(e) => e,
                            Err(e) => {
                                println!("bad {n} {e}");
                                continue;
                            }
                        };
                        let text = text_of(&event);
                        println!("emit {n} {text}");
                        let answer = emitter.emit(event);
                        let seq = n;
                        pending.push_back(async move { (seq, text, answer.await) });
                    }
                }
                Some((seq, text, answer)) = pending.next() => match answer {
                    Ok(_) => println!("ack {seq} {text}"),
                    Err(EmitError::Nacked { kind, message }) => {
                        println!("nack {seq} {} {message}", kind.as_str())
                    }
                    Err(e) => println!("failed {seq} {e}"),
                },
            }
        }
        println!("shutdown received");
        Ok::<(), BoxError>(())
    })
}
