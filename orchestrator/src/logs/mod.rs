//! Per-process log files and the state-directory layout.
//!
//! Every child writes to its own file (DESIGN.md, State directory); each line
//! gets a UTC timestamp and the stream it came from. Writing never blocks the
//! child: lines go through a bounded queue to one writer task per file. A
//! line longer than [`LogOptions::max_line`] is cut and marked; a child that
//! floods is held to [`LogOptions::lines_per_sec`] (with a burst), and what is
//! refused — by the rate limit or a full queue — is counted and reported as
//! one "N lines dropped" line when there is room again. Files rotate by size:
//! `x.log` becomes `x.log.1`, older ones shift up to `x.log.<keep>`.

mod layout;
pub mod read;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

pub use layout::{StateDir, escape_key, unescape_key};

/// Lines waiting for one file's writer before new ones are dropped.
const QUEUE: usize = 8192;

/// Size, rotation and flood limits of one log file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogOptions {
    /// Rotate once the file passes this size (default 10 MiB).
    pub max_bytes: u64,
    /// Rotated files kept (default 5).
    pub keep: u32,
    /// Longest line kept; the rest is cut and marked (default 16 KiB).
    pub max_line: usize,
    /// Sustained lines per second before lines are dropped (default 2,000).
    pub lines_per_sec: f64,
    /// Lines that may come at once above the sustained rate (default 10,000).
    pub burst: f64,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
            max_line: 16 * 1024,
            lines_per_sec: 2000.0,
            burst: 10_000.0,
        }
    }
}

/// A cloneable handle that appends time-stamped lines to one log file.
#[derive(Clone, Debug)]
pub struct LogSink {
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
    bucket: Arc<Mutex<Bucket>>,
    max_line: usize,
    path: Arc<Path>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl LogSink {
    /// Opens `path` with the default limits.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with(path, LogOptions::default())
    }

    /// Opens `path` for appending (creating its directory) and starts its writer task.
    pub fn open_with(path: &Path, opts: LogOptions) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            size,
            opts,
        };
        tokio::spawn(writer.run(rx));
        let bucket = Bucket {
            tokens: opts.burst,
            rate: opts.lines_per_sec,
            burst: opts.burst,
            at: Instant::now(),
        };
        Ok(Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            bucket: Arc::new(Mutex::new(bucket)),
            max_line: opts.max_line,
            path: path.into(),
        })
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, `<timestamp> <source> <text>`, unless the flood limit refuses it.
    pub fn line(&self, source: &str, text: &str) {
        if !self.bucket.lock().expect("log bucket").take(Instant::now()) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.write(source, text);
    }

    /// A note from the orchestrator about this process (spawned, exited,
    /// restarting): never refused by the flood limit.
    pub fn note(&self, text: &str) {
        self.write("orchestrator", text);
    }

    fn write(&self, source: &str, text: &str) {
        let now = timestamp(SystemTime::now());
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0
            && self
                .tx
                .try_send(format!("{now} orchestrator {dropped} lines dropped\n"))
                .is_err()
        {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        let text = text.trim_end_matches(['\n', '\r']);
        let line = if text.len() > self.max_line {
            let mut cut = self.max_line;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!(
                "{now} {source} {} [line cut at {} bytes]\n",
                &text[..cut],
                self.max_line
            )
        } else {
            format!("{now} {source} {text}\n")
        };
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    opts: LogOptions,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<String>) {
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 256).await > 0 {
            for line in batch.drain(..) {
                if self.out.write_all(line.as_bytes()).is_err() {
                    return;
                }
                self.size += line.len() as u64;
                if self.size >= self.opts.max_bytes && self.rotate().is_err() {
                    return;
                }
            }
            // Flush when the queue is drained, so `logs -f` sees lines promptly.
            if rx.is_empty() && self.out.flush().is_err() {
                return;
            }
        }
        let _ = self.out.flush();
    }

    /// `x.log` → `x.log.1` → … → `x.log.<keep>` (dropped beyond), then a fresh `x.log`.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = std::fs::remove_file(numbered(self.opts.keep.max(1)));
        for n in (1..self.opts.keep.max(1)).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(&self.path, numbered(1))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T10:30:00.123Z`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// RFC 3339 UTC to the second, as in PROTOCOL.md's `receivedAt`.
pub fn timestamp_secs(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Appends security-relevant records to `audit.log`, one JSON object a line.
#[derive(Clone, Debug)]
pub struct AuditLog {
    sink: LogSink,
}

impl AuditLog {
    /// Opens `<state>/audit.log`.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        Ok(Self {
            sink: LogSink::open(&path)?,
        })
    }

    /// Writes one record; `record` must not hold a secret.
    pub fn record(&self, record: serde_json::Value) {
        let mut record = record;
        if let Some(map) = record.as_object_mut() {
            map.insert("time".into(), timestamp(SystemTime::now()).into());
        }
        // The sink prefixes a timestamp and source; audit lines are pure JSON.
        let line = format!("{record}\n");
        if self.sink.tx.try_send(line).is_err() {
            self.sink.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
