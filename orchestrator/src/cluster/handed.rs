//! How far a partition's owners may have handed its events to agents.
//!
//! A watermark per partition in `N-meta` (key `handed.<p>`): a stream
//! sequence, raised (compare-and-set, never lowered by a raise) before an
//! event above it is handed to an agent. A new owner marks every event up
//! to it `attempt: 2`. It does not rely on the consumer's own record of
//! what it delivered: JetStream replicates that after the fact, and the
//! consumer's new leader can be behind when its leader server dies.
//!
//! Raises go [`AHEAD`] of the sequence that needs one, and the next one
//! starts in the background when half of that is used, so that handing
//! out rarely waits for NATS. An owner that lets a partition go in order
//! (a handover, a stop) lowers it to what was handed out indeed. The
//! price: after a failover (an owner that died or lost its lease), up to
//! `AHEAD` stream sequences past the last event handed out are marked
//! `attempt: 2` though no agent saw them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_nats::jetstream::kv;

use super::lease::{conflict, latest};

/// How far past the sequence that needs it a raise goes.
pub(super) const AHEAD: u64 = 4_096;

/// Tries of one raise whose compare-and-set keeps losing to another writer.
const TRIES: usize = 8;

/// One partition's watermark, as this owner knows it.
#[derive(Debug)]
pub(super) struct Watermark {
    store: kv::Store,
    key: String,
    /// Stored in NATS: events up to it may be handed out.
    confirmed: AtomicU64,
    /// A raise runs in the background.
    raising: AtomicBool,
    /// Told when a background raise ends.
    raised: tokio::sync::Notify,
}

/// The value stored under a key, read from the stream's leader (a KV
/// read may be answered by a replica that is behind).
struct Stored {
    value: u64,
    /// The revision to compare against; `None` when the key was never written.
    revision: Option<u64>,
}

impl Watermark {
    pub fn new(store: kv::Store, p: u32) -> Self {
        Self {
            store,
            key: format!("handed.{p}"),
            confirmed: AtomicU64::new(0),
            raising: AtomicBool::new(false),
            raised: tokio::sync::Notify::new(),
        }
    }

    /// Reads the stored watermark (0 when there is none); what is handed
    /// out up to it needs no raise.
    pub async fn read(&self) -> Result<u64, String> {
        let value = self.stored().await?.value;
        self.confirmed.fetch_max(value, Ordering::AcqRel);
        Ok(value)
    }

    /// Resolves once `seq` may be handed out: at once when the stored
    /// watermark covers it (starting the next raise early when it soon will
    /// not), otherwise after a raise.
    pub async fn cover(self: &Arc<Self>, seq: u64) -> Result<(), String> {
        let confirmed = self.confirmed.load(Ordering::Acquire);
        if seq > confirmed {
            return self.raise(seq.saturating_add(AHEAD)).await;
        }
        if seq.saturating_add(AHEAD / 2) > confirmed && !self.raising.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.raise(seq.saturating_add(AHEAD)).await {
                    tracing::debug!(key = %this.key, "cluster: early watermark raise: {e}");
                }
                this.raising.store(false, Ordering::Release);
                this.raised.notify_waiters();
            });
        }
        Ok(())
    }

    /// Stores at least `to`.
    async fn raise(&self, to: u64) -> Result<(), String> {
        let stored = self.store_unless(to, |stored| stored >= to).await?;
        self.confirmed.fetch_max(stored, Ordering::AcqRel);
        Ok(())
    }

    /// Lowers the stored watermark to `to` (the owner lets the partition
    /// go: nothing above `to` was handed out), once no raise runs.
    pub async fn settle(&self, to: u64) -> Result<(), String> {
        loop {
            let raised = self.raised.notified();
            tokio::pin!(raised);
            raised.as_mut().enable();
            if !self.raising.load(Ordering::Acquire) {
                break;
            }
            raised.await;
        }
        self.store_unless(to, |stored| stored <= to).await.map(drop)
    }

    /// Stores `to` (compare-and-set on what it read) unless what is stored
    /// already `will_do`; resolves to what is stored then.
    async fn store_unless(&self, to: u64, will_do: impl Fn(u64) -> bool) -> Result<u64, String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!("cannot store {} in {}: {e}", self.key, self.store.name)
        };
        for _ in 0..TRIES {
            let stored = self.stored().await?;
            if will_do(stored.value) {
                return Ok(stored.value);
            }
            // Revision 0: only if the key has never been written.
            let revision = stored.revision.unwrap_or(0);
            match self
                .store
                .update(&self.key, to.to_string().into(), revision)
                .await
            {
                Ok(_) => return Ok(to),
                // Another writer came between (an earlier owner's late
                // raise, or our own in the background): read again.
                Err(e) if conflict(&e) => {}
                Err(e) => return Err(failed(&e)),
            }
        }
        Err(failed(&"other writers kept coming between"))
    }

    async fn stored(&self) -> Result<Stored, String> {
        let Some(latest) = latest(&self.store, &self.key).await? else {
            return Ok(Stored {
                value: 0,
                revision: None,
            });
        };
        let value = match latest.value {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{} in {} is not a sequence", self.key, self.store.name))?,
        };
        Ok(Stored {
            value,
            revision: Some(latest.revision),
        })
    }
}
