//! `connector-cli`: each non-empty line on stdin becomes a `user_message` event.
//!
//! Config: `USER` (default `local`) names the speaker; events carry
//! `instanceKey: "cli:<USER>"` and `message: {"type":"text","text": <line>}`.
//!
//! It speaks `frames` only: with `jsonl`, stdin would be the protocol channel.
//! At end of input it waits for every pending answer, then for `shutdown`:
//! it never exits by itself, so a supervisor does not restart it in a loop.
//! A refused line is written to stderr with the reason.

use std::process::ExitCode;

use connector_sdk::{BoxError, Context, Event, Message, ipc_proto::IPC_FD_ENV};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::io::{AsyncBufReadExt, BufReader};

fn main() -> ExitCode {
    if std::env::var_os(IPC_FD_ENV).is_none() {
        eprintln!(
            "connector-cli: {IPC_FD_ENV} is not set; this connector needs `protocol: frames`"
        );
    }
    connector_sdk::run(run)
}

async fn run(ctx: Context) -> Result<(), BoxError> {
    let user = ctx.config_value("USER").unwrap_or("local");
    let instance_key = format!("cli:{user}");
    ctx.ready().await;

    let emitter = ctx.emitter();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // Emits are queued in line order as they are read; answers are awaited
    // alongside. No more lines are read while a window's worth of them wait
    // for answers, so a slow orchestrator slows the reading, not the memory.
    let window = emitter.window();
    let mut pending = FuturesOrdered::new();
    let mut line_no = 0u64;
    let mut eof = false;
    let shutdown = ctx.shutdown();
    tokio::pin!(shutdown);
    while !eof || !pending.is_empty() {
        // Answers first: one that came before `shutdown` is reported before
        // the connector exits on it.
        tokio::select! {
            biased;
            Some((n, answer)) = pending.next() => {
                if let Err(e) = answer {
                    eprintln!("connector-cli: line {n} not accepted: {e}");
                }
            }
            () = &mut shutdown => return Ok(()),
            line = lines.next_line(), if !eof && pending.len() < window => match line? {
                Some(line) => {
                    line_no += 1;
                    let text = line.trim_end_matches('\r');
                    if text.trim().is_empty() {
                        continue;
                    }
                    let event = Event {
                        name: "user_message".into(),
                        message: Some(Message::text(text)),
                        instance_key: Some(instance_key.clone()),
                        ..Event::default()
                    };
                    let answer = emitter.emit(event);
                    pending.push_back(async move { (line_no, answer.await) });
                }
                None => eof = true,
            },
        }
    }
    shutdown.await;
    Ok(())
}
