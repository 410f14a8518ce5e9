//! `audit.log`: security-relevant records, one JSON object a line.
//!
//! The audit log must outlive an attack on it, so it has limits of its own:
//! - more history than a process log: 10 files of 10 MiB (100 MiB) by default;
//! - each Connection may write [`AuditOptions::per_sec`] records a second
//!   (bursts of [`AuditOptions::burst`]); the excess is not written but
//!   counted, and summarized as one `audit_suppressed` record per Connection
//!   per [`AuditOptions::summary_every`], so a flood of rejected requests
//!   cannot rotate earlier records out;
//! - a record over [`AuditOptions::max_record`] bytes is refused and replaced
//!   by a small `audit_refused` record saying how big it was;
//! - nothing is lost silently: should the writer fall behind by
//!   [`AuditOptions::queue`] records, what did not fit is counted and an
//!   `audit_lost` record written as soon as there is room.
//!
//! The summaries are written by the log writer thread itself (see
//! [`super::writer::Periodic`]), so they cannot be refused in turn.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::writer::{Channel, Periodic, Rotation};
use super::{Bucket, timestamp};

/// The audit log's limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AuditOptions {
    /// Rotate once `audit.log` passes this size (default 10 MiB).
    pub max_bytes: u64,
    /// Rotated files kept (default 9: with the current one, 100 MiB in all).
    pub keep: u32,
    /// Largest record written, in bytes of JSON (default 16 KiB).
    pub max_record: usize,
    /// Sustained records per second and Connection (default 100).
    pub per_sec: f64,
    /// Records a Connection may write at once above that (default 1,000).
    pub burst: f64,
    /// How often suppressed records are summarized (default 10 s).
    pub summary_every: Duration,
    /// Records waiting for the writer before the excess is counted as lost (default 65,536).
    pub queue: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            keep: 9,
            max_record: 16 * 1024,
            per_sec: 100.0,
            burst: 1000.0,
            summary_every: Duration::from_secs(10),
            queue: 65_536,
        }
    }
}

/// What the audit log refused or lost since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditCounts {
    /// Records written (summaries not included).
    pub written: u64,
    /// Records over the size limit, replaced by `audit_refused`.
    pub refused: u64,
    /// Records over a Connection's rate, summarized by `audit_suppressed`.
    pub suppressed: u64,
    /// Records that did not fit in the writer's queue, reported by `audit_lost`.
    pub lost: u64,
}

/// The fields every audit record has (`null` when they do not apply to its
/// kind), besides `time` and `kind`.
pub const COMMON_FIELDS: [&str; 6] = [
    "requestId",
    "correlationId",
    "connection",
    "agent",
    "instanceKey",
    "outcome",
];

/// Appends security-relevant records to `audit.log`. Cloneable; never blocks.
#[derive(Clone, Debug)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    channel: Channel,
    shared: Arc<Shared>,
    opts: AuditOptions,
    path: PathBuf,
}

/// What `record` and the writer thread share.
#[derive(Debug, Default)]
struct Shared {
    limits: Mutex<HashMap<String, Limit>>,
    summary_every: Duration,
    written: AtomicU64,
    refused: AtomicU64,
    suppressed: AtomicU64,
    lost: AtomicU64,
    /// Lost and not yet reported.
    lost_unreported: AtomicU64,
}

#[derive(Debug)]
struct Limit {
    bucket: Bucket,
    /// Suppressed since the last summary, and when the first of them was.
    suppressed: u64,
    since: Option<Instant>,
}

impl AuditLog {
    /// Opens `path` (`<state>/audit.log`) with the default limits.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        Self::open_with(&path, AuditOptions::default())
    }

    /// Opens `path` with `opts`.
    pub fn open_with(path: &Path, opts: AuditOptions) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            summary_every: opts.summary_every,
            ..Shared::default()
        });
        let rotation = Rotation {
            max_bytes: opts.max_bytes,
            keep: opts.keep,
        };
        let periodic: Arc<dyn Periodic> = shared.clone();
        let channel = Channel::open(path, rotation, opts.queue, Some(periodic))?;
        Ok(Self {
            inner: Arc::new(Inner {
                channel,
                shared,
                opts,
                path: path.to_path_buf(),
            }),
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// What was refused, suppressed or lost so far.
    pub fn counts(&self) -> AuditCounts {
        let s = &self.inner.shared;
        AuditCounts {
            written: s.written.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            suppressed: s.suppressed.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
        }
    }

    /// Writes one record (a JSON object; `time` is added); `record` must not
    /// hold a secret. Its `connection` field, if any, is what the rate limit counts by.
    pub fn record(&self, record: Value) {
        let inner = &*self.inner;
        let shared = &*inner.shared;
        let mut record = record;
        let connection = record
            .get("connection")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !self.admit(&connection) {
            shared.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = timestamp(SystemTime::now());
        if let Some(map) = record.as_object_mut() {
            map.insert("time".into(), now.clone().into());
            // One schema for every record: the common fields are always
            // there (null when they do not apply), then the kind's own.
            for key in COMMON_FIELDS {
                map.entry(key).or_insert(Value::Null);
            }
        }
        let mut line = record.to_string();
        if line.len() > inner.opts.max_record {
            let refused = shared.refused.fetch_add(1, Ordering::Relaxed) + 1;
            // The kind only if it is short: it came from the connector too.
            let kind = record
                .get("kind")
                .and_then(Value::as_str)
                .filter(|k| k.len() <= 64);
            line = json!({
                "time": now,
                "connection": connection,
                "kind": "audit_refused",
                "reason": "too_large",
                "refusedKind": kind,
                "bytes": line.len(),
                "limit": inner.opts.max_record,
                "refusedSoFar": refused,
            })
            .to_string();
        } else {
            shared.written.fetch_add(1, Ordering::Relaxed);
        }
        line.push('\n');
        if !inner.channel.send(line) {
            shared.lost.fetch_add(1, Ordering::Relaxed);
            shared.lost_unreported.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes a token from `connection`'s bucket, or counts the record as suppressed.
    fn admit(&self, connection: &str) -> bool {
        let opts = &self.inner.opts;
        let now = Instant::now();
        let mut limits = self
            .inner
            .shared
            .limits
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !limits.contains_key(connection) {
            let limit = Limit {
                bucket: Bucket::new(opts.per_sec, opts.burst),
                suppressed: 0,
                since: None,
            };
            limits.insert(connection.to_string(), limit);
        }
        let Some(limit) = limits.get_mut(connection) else {
            return false;
        };
        if limit.bucket.take(now) {
            return true;
        }
        limit.suppressed += 1;
        limit.since.get_or_insert(now);
        false
    }
}

impl Periodic for Shared {
    fn due(&self, now: Instant, all: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let time = timestamp(SystemTime::now());
        let lost = self.lost_unreported.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let record = json!({
                "time": time,
                "kind": "audit_lost",
                "reason": "queue_full",
                "lost": lost,
            });
            lines.push(format!("{record}\n"));
        }
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let mut due: Vec<(&String, &mut Limit)> = limits
            .iter_mut()
            .filter(|(_, l)| {
                l.suppressed > 0
                    && (all
                        || l.since
                            .is_some_and(|s| now.duration_since(s) >= self.summary_every))
            })
            .collect();
        due.sort_by(|a, b| a.0.cmp(b.0));
        for (connection, limit) in due {
            let record = json!({
                "time": time,
                "connection": connection,
                "kind": "audit_suppressed",
                "reason": "rate_limit",
                "suppressed": limit.suppressed,
                "sinceSecs": limit.since.map(|s| now.duration_since(s).as_secs_f64()),
            });
            lines.push(format!("{record}\n"));
            limit.suppressed = 0;
            limit.since = None;
        }
        lines
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
