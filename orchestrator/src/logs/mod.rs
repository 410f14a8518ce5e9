//! Per-process log files and the state-directory layout.
//!
//! Every child writes to its own file (docs/architecture.md, The state directory); each line
//! gets a UTC timestamp and the stream it came from. Writing never blocks the
//! child nor a tokio worker: lines go through a bounded queue to the one log
//! writer thread (`writer.rs`). Control characters in a line are escaped
//! ([`escape_controls`]), so nothing a child writes can start a line of its
//! own. A line longer than [`LogOptions::max_line`] is cut and marked; a child
//! that floods is held to [`LogOptions::lines_per_sec`] (with a burst), and
//! what is refused — by the rate limit or a full queue — is counted and
//! reported as one "N lines dropped" line when there is room again. Files
//! rotate by size: `x.log` becomes `x.log.1`, older ones shift up to
//! `x.log.<keep>`. Every file is created 0600 ([`private`]).

mod audit;
mod escape;
mod layout;
pub mod lock;
pub mod private;
pub mod read;
mod tracing_log;
mod writer;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

pub use audit::{AuditCounts, AuditLog, AuditOptions};
pub use escape::escape_controls;
pub use layout::{StateDir, escape_key, unescape_key};
pub use tracing_log::TracingLog;
pub use writer::flush;

use writer::{Channel, Rotation};

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
    channel: Arc<Channel>,
    dropped: Arc<AtomicU64>,
    bucket: Arc<Mutex<Bucket>>,
    max_line: usize,
    path: Arc<Path>,
}

/// A token bucket: `rate` a second, `burst` at once.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            tokens: burst,
            rate,
            burst,
            at: Instant::now(),
        }
    }

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

    /// Opens `path` for appending (0600; its directory created 0700) and
    /// hands it to the log writer thread. Needs no runtime.
    pub fn open_with(path: &Path, opts: LogOptions) -> io::Result<Self> {
        Self::with_channel(path, opts, Channel::open)
    }

    fn with_channel(
        path: &Path,
        opts: LogOptions,
        open: impl FnOnce(
            &Path,
            Rotation,
            usize,
            Option<Arc<dyn writer::Periodic>>,
        ) -> io::Result<Channel>,
    ) -> io::Result<Self> {
        let rotation = Rotation {
            max_bytes: opts.max_bytes,
            keep: opts.keep,
        };
        let dropped = Arc::new(AtomicU64::new(0));
        let report: Arc<dyn writer::Periodic> = Arc::new(DropReport(dropped.clone()));
        let channel = open(path, rotation, QUEUE, Some(report))?;
        Ok(Self {
            channel: Arc::new(channel),
            dropped,
            bucket: Arc::new(Mutex::new(Bucket::new(opts.lines_per_sec, opts.burst))),
            max_line: opts.max_line,
            path: path.into(),
        })
    }

    /// Like [`LogSink::open`], touching no disk here: the writer thread
    /// creates the directory and opens the file (for callers on a tokio
    /// worker or under a lock, such as an agent instance's start). Should
    /// that fail, the reason goes to stderr and the lines are lost.
    pub fn open_deferred(path: &Path, opts: LogOptions) -> io::Result<Self> {
        Self::with_channel(path, opts, Channel::open_deferred)
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its process is stopped and may stay so a long time (an idle agent
    /// instance): the file is flushed and closed, freeing its descriptor and
    /// buffer, and opened again by the next line.
    pub fn release(&self) {
        self.channel.release();
    }

    /// Appends one line, `<timestamp> <source> <text>`, unless the flood limit refuses it.
    pub fn line(&self, source: &str, text: &str) {
        let admitted = self
            .bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(Instant::now());
        if !admitted {
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
            && !self
                .channel
                .send(format!("{now} orchestrator {dropped} lines dropped\n"))
        {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        let text = text.trim_end_matches(['\n', '\r']);
        let source = escape_controls(source);
        let line = if text.len() > self.max_line {
            let mut cut = self.max_line;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!(
                "{now} {source} {} [line cut at {} bytes]\n",
                escape_controls(&text[..cut]),
                self.max_line
            )
        } else {
            format!("{now} {source} {}\n", escape_controls(text))
        };
        if !self.channel.send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reports a sink's dropped lines from the writer thread too, so that a
/// flood followed by silence is not left unreported.
#[derive(Debug)]
struct DropReport(Arc<AtomicU64>);

impl writer::Periodic for DropReport {
    fn due(&self, _now: Instant, _all: bool) -> Vec<String> {
        match self.0.swap(0, Ordering::Relaxed) {
            0 => vec![],
            n => vec![format!(
                "{} orchestrator {n} lines dropped\n",
                timestamp(SystemTime::now())
            )],
        }
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-27T10:30:00.123Z`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// RFC 3339 UTC to the second, as in docs/protocol.md's `receivedAt`.
pub fn timestamp_secs(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests;
