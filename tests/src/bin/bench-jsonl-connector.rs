//! `bench-jsonl-connector`: the connector side of `bench-throughput` over
//! jsonl, with nothing but std and serde_json (no SDK). The jsonl twin of
//! `bench-connector`: it emits a stream as fast as a window of unacked emits
//! allows (pipelined: a second thread reads the acks), or paced at a fixed rate.
//!
//! Config (`init.config`), as `bench-connector`'s:
//! - `COUNT` = N measured events, `KEYS` = K instance keys (`k0`…, round
//!   robin), `WINDOW` = most emits awaiting an answer (default 4096),
//!   `RATE` = events/s to offer (default 0: unpaced), `STAMP=true` puts the
//!   send time (CLOCK_REALTIME ns) in property `t`, `PAYLOAD` = the text's
//!   length in bytes (default 64), `KEY_PREFIX` (default `k`).
//! - `WARM_DIR`: first one `warm` event per key; then it waits until every
//!   agent instance has made its file in `WARM_DIR`, so process start-up is
//!   not measured.
//!
//! When every emit is answered it writes `<stateDir>/result.json`:
//! `{"count","acked","nacked","failed","firstEmitNs","lastAckNs"}`, then
//! waits for `shutdown` (or EOF).
//!
//! Emits are written in batches, one `write(2)` for all the window allows.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// What the reader thread has seen.
#[derive(Default)]
struct Answers {
    acked: u64,
    nacked: u64,
    last_ack_ns: u64,
    /// Stdin ended or `shutdown` came.
    done: bool,
}

impl Answers {
    fn answered(&self) -> u64 {
        self.acked + self.nacked
    }
}

type Shared = Arc<(Mutex<Answers>, Condvar)>;
type Out = Arc<Mutex<BufWriter<std::io::Stdout>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads acks, nacks, pings and `shutdown` from stdin until EOF.
fn reader(mut input: impl BufRead, shared: Shared, out: Out) {
    let (answers, cond) = &*shared;
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // The fast path: an ack is counted without parsing the line.
        if line.contains("\"type\":\"ack\"") {
            let mut a = lock(answers);
            a.acked += 1;
            a.last_ack_ns = now_ns();
            cond.notify_all();
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
            Some("ack") => {
                let mut a = lock(answers);
                a.acked += 1;
                a.last_ack_ns = now_ns();
                cond.notify_all();
            }
            Some("nack") => {
                let mut a = lock(answers);
                a.nacked += 1;
                a.last_ack_ns = now_ns();
                cond.notify_all();
            }
            Some("ping") => {
                let nonce = msg["nonce"].as_u64().unwrap_or_default();
                let mut o = lock(&out);
                let _ = writeln!(o, "{{\"type\":\"pong\",\"nonce\":{nonce}}}");
                let _ = o.flush();
            }
            Some("shutdown") => break,
            _ => eprintln!("orchestrator says: {}", line.trim_end()),
        }
    }
    lock(answers).done = true;
    cond.notify_all();
}

fn config<T: std::str::FromStr>(config: &Value, key: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match config[key].as_str() {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| format!("{key}={v:?}: {e}")),
    }
}

fn write_emit(
    o: &mut impl Write,
    seq: u64,
    text: &str,
    key: &str,
    stamp: Option<u64>,
) -> std::io::Result<()> {
    write!(
        o,
        "{{\"type\":\"emit\",\"seq\":{seq},\"event\":{{\"name\":\"item\",\"message\":{{\"type\":\"text\",\"text\":\"{text}\"}},"
    )?;
    if let Some(t) = stamp {
        write!(o, "\"properties\":{{\"t\":\"{t}\"}},")?;
    }
    writeln!(o, "\"instanceKey\":\"{key}\"}}}}")
}

/// Waits until at least `n` emits are answered; false if the reader ended first.
fn wait_answered(shared: &Shared, n: u64) -> bool {
    let (answers, cond) = &**shared;
    let mut a = lock(answers);
    while a.answered() < n && !a.done {
        a = cond.wait(a).unwrap_or_else(PoisonError::into_inner);
    }
    a.answered() >= n
}

fn run() -> Result<(), String> {
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(64 << 10, stdin);
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading init: {e}"))?;
    let init: Value = serde_json::from_str(&line).map_err(|e| format!("init is not json: {e}"))?;
    let cfg = &init["config"];
    let count: u64 = config(cfg, "COUNT", 0)?;
    let keys: u64 = config(cfg, "KEYS", 1u64)?.max(1);
    let window: u64 = config(cfg, "WINDOW", 4096u64)?.max(1);
    let rate: f64 = config(cfg, "RATE", 0.0)?;
    let payload: usize = config(cfg, "PAYLOAD", 64)?;
    let prefix: String = config(cfg, "KEY_PREFIX", "k".to_owned())?;
    let stamp = cfg["STAMP"] == "true";
    let warm_dir = cfg["WARM_DIR"].as_str().map(PathBuf::from);
    let state_dir = PathBuf::from(init["stateDir"].as_str().unwrap_or("."));
    let text = "x".repeat(payload);

    let out: Out = Arc::new(Mutex::new(BufWriter::with_capacity(
        256 << 10,
        std::io::stdout(),
    )));
    {
        let mut o = lock(&out);
        o.write_all(b"{\"type\":\"ready\",\"protocol\":1}\n")
            .and_then(|()| o.flush())
            .map_err(|e| format!("writing ready: {e}"))?;
    }
    let shared: Shared = Arc::default();
    let reader_thread = {
        let (shared, out) = (shared.clone(), out.clone());
        std::thread::spawn(move || reader(input, shared, out))
    };
    let io = |e: std::io::Error| format!("writing to stdout: {e}");

    let mut seq = 0u64;
    if let Some(dir) = &warm_dir {
        {
            let mut o = lock(&out);
            for k in 0..keys {
                seq += 1;
                write_emit(&mut *o, seq, "warm", &format!("{prefix}{k}"), None).map_err(io)?;
            }
            o.flush().map_err(io)?;
        }
        if !wait_answered(&shared, seq) {
            return Err("stdin ended before the warm emits were answered".into());
        }
        let all_up = || (0..keys).all(|k| dir.join(format!("{prefix}{k}")).exists());
        while !all_up() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let base = seq;

    let first_emit_ns = now_ns();
    let start = Instant::now();
    let mut sent = 0u64;
    let key_names: Vec<String> = (0..keys).map(|k| format!("{prefix}{k}")).collect();
    while sent < count {
        let due = if rate > 0.0 {
            ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(count)
        } else {
            count
        };
        let answered = lock(&shared.0).answered() - base;
        let room = window - (sent - answered).min(window);
        let n = room.min(due - sent);
        if n == 0 {
            if room == 0 {
                // The window is full: wait for its oldest emit's answer.
                if !wait_answered(&shared, base + sent - window + 1) {
                    return Err("stdin ended with emits unanswered".into());
                }
            } else {
                // Paced, and the next emit is not due yet.
                let until = start + Duration::from_secs_f64(sent as f64 / rate);
                let now = Instant::now();
                if until > now {
                    std::thread::sleep(until - now);
                }
            }
            continue;
        }
        let mut o = lock(&out);
        for _ in 0..n {
            let key = &key_names[(sent % keys) as usize];
            seq += 1;
            write_emit(&mut *o, seq, &text, key, stamp.then(now_ns)).map_err(io)?;
            sent += 1;
        }
        o.flush().map_err(io)?;
    }
    if !wait_answered(&shared, base + count) {
        return Err("stdin ended with emits unanswered".into());
    }
    let (acked, nacked, last_ack_ns) = {
        let a = lock(&shared.0);
        (a.acked - base, a.nacked, a.last_ack_ns)
    };
    let result = serde_json::json!({
        "count": count,
        "acked": acked,
        "nacked": nacked,
        "failed": 0,
        "firstEmitNs": first_emit_ns,
        "lastAckNs": last_ack_ns,
    });
    std::fs::create_dir_all(&state_dir)
        .and_then(|()| std::fs::write(state_dir.join("result.json.tmp"), result.to_string()))
        .and_then(|()| {
            std::fs::rename(
                state_dir.join("result.json.tmp"),
                state_dir.join("result.json"),
            )
        })
        .map_err(|e| format!("result in {}: {e}", state_dir.display()))?;
    let _ = reader_thread.join();
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-jsonl-connector: {e}");
            ExitCode::FAILURE
        }
    }
}
