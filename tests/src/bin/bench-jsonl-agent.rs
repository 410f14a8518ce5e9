//! `bench-jsonl-agent`: the agent side of `bench-throughput` over jsonl, with
//! nothing but std and serde_json (no SDK): it acks every `deliver` at once
//! and counts. The jsonl twin of `bench-agent`.
//!
//! Environment (the Agent's `spec.env`):
//! - `EXPECT` = how many measured events this instance gets; once it has them
//!   it writes `<stateDir>/result.json` (`{"key","count","firstNs","lastNs"}`,
//!   CLOCK_REALTIME nanoseconds of the first and last receipt) and, if any
//!   event carried a send time, `<stateDir>/latency.bin` (one little-endian
//!   u64 of receive − send nanoseconds per event).
//! - `WARM_DIR`: an event whose text is `warm` is not counted; the instance
//!   creates `<WARM_DIR>/<instanceKey>` instead, so the connector knows every
//!   instance is up before it starts measuring.
//!
//! Acks are written through a buffer that is flushed whenever stdin has
//! nothing more buffered: one `write(2)` for every deliver read in one `read(2)`.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

#[derive(Default)]
struct Tally {
    count: u64,
    first_ns: u64,
    last_ns: u64,
    latencies: Vec<u64>,
    written: bool,
}

fn write_result(dir: &Path, key: &str, t: &Tally) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if !t.latencies.is_empty() {
        let bytes: Vec<u8> = t.latencies.iter().flat_map(|l| l.to_le_bytes()).collect();
        std::fs::write(dir.join("latency.bin"), bytes)?;
    }
    let json = serde_json::json!({
        "key": key,
        "count": t.count,
        "firstNs": t.first_ns,
        "lastNs": t.last_ns,
    });
    let tmp = dir.join("result.json.tmp");
    std::fs::write(&tmp, json.to_string())?;
    std::fs::rename(tmp, dir.join("result.json"))
}

/// The value of the first `"name":"…"` in `line`, when it has no escapes
/// (ids and stamps never do).
fn string_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = line.find(&key)? + key.len();
    let len = line[start..].find('"')?;
    let value = &line[start..start + len];
    (!value.contains('\\')).then_some(value)
}

fn run() -> Result<(), String> {
    let expect: u64 = std::env::var("EXPECT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let warm_dir = std::env::var_os("WARM_DIR").map(PathBuf::from);
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(64 << 10, stdin.lock());
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 << 10, stdout.lock());

    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading init: {e}"))?;
    let init: Value = serde_json::from_str(&line).map_err(|e| format!("init is not json: {e}"))?;
    if init["type"] != "init" {
        return Err(format!("expected init, got {}", line.trim_end()));
    }
    let key = init["instanceKey"].as_str().unwrap_or_default().to_owned();
    let state_dir = PathBuf::from(init["stateDir"].as_str().unwrap_or("."));
    out.write_all(b"{\"type\":\"ready\",\"protocol\":1}\n")
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing ready: {e}"))?;

    let mut t = Tally::default();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading stdin: {e}")),
        }
        let now = now_ns();
        // The fast path, as a C agent would take it: a deliver is acked by
        // its id without parsing the whole line (`id` and `event.id` are equal,
        // so the first `"id":"` is the one, whatever the field order).
        if line.contains("\"type\":\"deliver\"")
            && let Some(id) = string_field(&line, "id")
        {
            out.write_all(b"{\"type\":\"ack\",\"id\":\"")
                .and_then(|()| out.write_all(id.as_bytes()))
                .and_then(|()| out.write_all(b"\"}\n"))
                .map_err(|e| format!("writing an ack: {e}"))?;
            if line.contains("\"text\":\"warm\"") {
                if let Some(dir) = &warm_dir {
                    std::fs::create_dir_all(dir)
                        .and_then(|()| std::fs::write(dir.join(&key), b""))
                        .map_err(|e| format!("warm file in {}: {e}", dir.display()))?;
                }
            } else {
                if t.count == 0 {
                    t.first_ns = now;
                }
                t.count += 1;
                t.last_ns = now;
                if let Some(sent) = string_field(&line, "t").and_then(|s| s.parse::<u64>().ok()) {
                    t.latencies.push(now.saturating_sub(sent));
                }
                if t.count >= expect && !t.written {
                    t.written = true;
                    write_result(&state_dir, &key, &t)
                        .map_err(|e| format!("result in {}: {e}", state_dir.display()))?;
                }
            }
            if input.buffer().is_empty() {
                out.flush().map_err(|e| format!("flushing: {e}"))?;
            }
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("bad line ({e}): {}", line.trim_end());
                continue;
            }
        };
        match msg["type"].as_str() {
            Some("ping") => {
                let nonce = msg["nonce"].as_u64().unwrap_or_default();
                writeln!(out, "{{\"type\":\"pong\",\"nonce\":{nonce}}}")
                    .map_err(|e| format!("writing a pong: {e}"))?;
            }
            Some("shutdown") => {
                out.flush().map_err(|e| format!("flushing: {e}"))?;
                return Ok(());
            }
            Some("error") => eprintln!("orchestrator says: {}", line.trim_end()),
            _ => eprintln!("ignored: {}", line.trim_end()),
        }
        if input.buffer().is_empty() {
            out.flush().map_err(|e| format!("flushing: {e}"))?;
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-jsonl-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
