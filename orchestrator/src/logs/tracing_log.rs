//! `logs/orchestrator.log`: the orchestrator's own tracing output, written
//! and rotated like every other log (by the log writer thread, with control
//! characters escaped), never by a tokio worker.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::fmt::MakeWriter;

use super::writer::{Channel, Rotation};
use super::{LogOptions, QUEUE, escape_controls};

/// A `tracing_subscriber` writer for one rotating file.
#[derive(Clone, Debug)]
pub struct TracingLog {
    channel: Arc<Channel>,
    dropped: Arc<AtomicU64>,
    /// Keep ESC (the layer writes ANSI colours to a terminal).
    keep_esc: bool,
}

impl TracingLog {
    /// Opens `path` (0600) with `opts`' size and rotation (`max_line` and the
    /// flood limits do not apply: these are the orchestrator's own lines).
    pub fn open(path: &Path, opts: LogOptions) -> io::Result<Self> {
        let rotation = Rotation {
            max_bytes: opts.max_bytes,
            keep: opts.keep,
        };
        Ok(Self {
            channel: Arc::new(Channel::open(path, rotation, QUEUE, None)?),
            dropped: Arc::new(AtomicU64::new(0)),
            keep_esc: false,
        })
    }

    /// The process's stderr, written by the log writer thread too (a full
    /// pipe must not stop a tokio worker). `ansi`: the layer writes colours,
    /// so ESC is kept (tracing escapes it in what it formats itself).
    pub fn stderr(ansi: bool) -> io::Result<Self> {
        Ok(Self {
            channel: Arc::new(Channel::stderr(QUEUE)?),
            dropped: Arc::new(AtomicU64::new(0)),
            keep_esc: ansi,
        })
    }

    fn send(&self, event: &[u8]) {
        let text = String::from_utf8_lossy(event);
        let body = text.trim_end_matches('\n');
        if body.is_empty() {
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!(
                "{} {dropped} lines dropped (the log writer fell behind)\n",
                super::timestamp(std::time::SystemTime::now())
            );
            if !self.channel.send(note) {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        let line = if self.keep_esc {
            let parts: Vec<_> = body.split('\u{1b}').map(escape_controls).collect();
            format!("{}\n", parts.join("\u{1b}"))
        } else {
            format!("{}\n", escape_controls(body))
        };
        if !self.channel.send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Collects one event's bytes; sends them as one line when dropped.
#[derive(Debug)]
pub struct EventWriter<'a> {
    log: &'a TracingLog,
    buf: Vec<u8>,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        self.log.send(&self.buf);
    }
}

impl<'a> MakeWriter<'a> for TracingLog {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            log: self,
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// orchestrator.log rotates by size, and a forged line stays one line.
    #[test]
    fn rotates_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/orchestrator.log");
        let opts = LogOptions {
            max_bytes: 2000,
            keep: 2,
            ..Default::default()
        };
        let log = TracingLog::open(&path, opts).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(log.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..100 {
                tracing::info!("event number {i}");
            }
            tracing::warn!("child said: x\n2026-01-01T00:00:00Z INFO orchestrator exited");
        });
        crate::logs::flush();
        let rotated = |n| PathBuf::from(format!("{}.{n}", path.display()));
        assert!(rotated(1).exists() && rotated(2).exists());
        assert!(!rotated(3).exists(), "only `keep` rotated files stay");
        let current = std::fs::read_to_string(&path).unwrap();
        let last = current.lines().last().unwrap();
        assert!(
            last.ends_with("child said: x\\n2026-01-01T00:00:00Z INFO orchestrator exited"),
            "{current}"
        );
        assert!(!current.lines().any(|l| l.starts_with("2026-01-01")));
        for p in [path.clone(), rotated(1), rotated(2)] {
            assert!(std::fs::metadata(&p).unwrap().len() < 2200, "{p:?}");
        }
    }

    use std::path::PathBuf;
}
