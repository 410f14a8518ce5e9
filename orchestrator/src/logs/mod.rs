//! Per-process log files and the state-directory layout.
//!
//! Every child writes to its own file (DESIGN.md, State directory); each line
//! gets a UTC timestamp and the stream it came from. Writing never blocks the
//! child: lines go through a bounded queue to one writer task per file, and a
//! line that finds the queue full is counted and reported as "N lines
//! dropped" when there is room again.

mod layout;
pub mod read;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::sync::mpsc;

pub use layout::{StateDir, escape_key, unescape_key};

/// Lines waiting for one file's writer before new ones are dropped.
const QUEUE: usize = 8192;

/// A cloneable handle that appends time-stamped lines to one log file.
#[derive(Clone, Debug)]
pub struct LogSink {
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
    path: Arc<Path>,
}

impl LogSink {
    /// Opens `path` for appending (creating its directory) and starts its writer task.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_lines(file, rx));
        Ok(Self {
            tx,
            dropped,
            path: path.into(),
        })
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, `<timestamp> <source> <text>`.
    pub fn line(&self, source: &str, text: &str) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!(
                "{} orchestrator {dropped} lines dropped\n",
                timestamp(SystemTime::now())
            );
            if self.tx.try_send(note).is_err() {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        let text = text.trim_end_matches(['\n', '\r']);
        let line = format!("{} {source} {text}\n", timestamp(SystemTime::now()));
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A note from the orchestrator about this process (spawned, exited, restarting).
    pub fn note(&self, text: &str) {
        self.line("orchestrator", text);
    }
}

async fn write_lines(file: File, mut rx: mpsc::Receiver<String>) {
    let mut out = BufWriter::new(file);
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for line in batch.drain(..) {
            if out.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
        // Flush when the queue is drained, so `tail -f` sees lines promptly.
        if rx.is_empty() && out.flush().is_err() {
            return;
        }
    }
    let _ = out.flush();
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
