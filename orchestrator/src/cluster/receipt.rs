//! What a partition's owner keeps of the events it handed out: the tally
//! of those with an agent, the sequences it has seen, and each event's
//! receipt that acknowledges it to JetStream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::message::{AckKind, Acker};
use tokio::sync::Notify;

use super::Cluster;
use super::handed::Watermark;
use crate::journal::RouteRecord;

/// Events of one partition that are with an agent instance and not yet done.
#[derive(Debug, Default)]
pub(super) struct Outstanding {
    count: AtomicUsize,
    zero: Notify,
    /// This owner's consumer exists (after a fresh start): a restart of the
    /// consumer task keeps it instead of resetting it.
    pub created: std::sync::atomic::AtomicBool,
    /// Earlier owners may have handed events up to this stream sequence to
    /// agents (0: this owner started from a clean slate).
    pub last_owner_upto: std::sync::atomic::AtomicU64,
    /// The partition's watermark, from the claim on.
    pub watermark: std::sync::OnceLock<Arc<Watermark>>,
    /// The highest stream sequence this owner handed to its router.
    pub handed_max: std::sync::atomic::AtomicU64,
    /// Stream sequences handed out by this owner: those in hand now, and
    /// the last [`SEEN`] handed out at all.
    seen: std::sync::Mutex<Seen>,
}

/// Sequences remembered as handed out, per partition and owner.
const SEEN: usize = 65_536;

#[derive(Debug, Default)]
struct Seen {
    in_hand: std::collections::HashSet<u64>,
    recent: std::collections::HashSet<u64>,
    order: std::collections::VecDeque<u64>,
}

/// What to do with a message of the partition, by what this owner handed out.
#[derive(Debug, PartialEq)]
pub(super) enum Sighting {
    /// Not seen: hand it out.
    New,
    /// Handed out before and done (or dropped): a redelivery.
    Again,
    /// Still in hand: JetStream sent it again meanwhile (a consumer leader
    /// change); the receipt in hand will ack it.
    InHand,
}

impl Seen {
    fn sight(&mut self, seq: u64) -> Sighting {
        if self.in_hand.contains(&seq) {
            return Sighting::InHand;
        }
        self.in_hand.insert(seq);
        if self.recent.contains(&seq) {
            return Sighting::Again;
        }
        self.recent.insert(seq);
        self.order.push_back(seq);
        if self.order.len() > SEEN
            && let Some(old) = self.order.pop_front()
        {
            self.recent.remove(&old);
        }
        Sighting::New
    }
}

impl Outstanding {
    /// Resolves when nothing is outstanding, or after `within`; `true` when drained.
    pub async fn drained(&self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        loop {
            let zero = self.zero.notified();
            tokio::pin!(zero);
            zero.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, zero).await.is_err() {
                return self.count.load(Ordering::Acquire) == 0;
            }
        }
    }

    /// Now outstanding.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// What to do with stream sequence `seq`, by what this owner handed out.
    pub fn sight(&self, seq: u64) -> Sighting {
        self.seen.lock().map_or(Sighting::New, |mut s| s.sight(seq))
    }
}

/// What acknowledges one event to JetStream once its agent is done with it.
/// Dropped without [`delivered`](Receipt::delivered) or
/// [`dead_letter`](Receipt::dead_letter) (the process stopped with it in
/// hand), the event stays in the stream for the partition's next owner.
#[derive(Clone)]
pub struct Receipt(Arc<ReceiptInner>);

struct ReceiptInner {
    acker: Acker,
    seq: u64,
    route: RouteRecord,
    cluster: Cluster,
    outstanding: Arc<Outstanding>,
}

impl Drop for ReceiptInner {
    fn drop(&mut self) {
        if let Ok(mut seen) = self.outstanding.seen.lock() {
            seen.in_hand.remove(&self.seq);
        }
        if self.outstanding.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.outstanding.zero.notify_waiters();
        }
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt").field("seq", &self.0.seq).finish()
    }
}

impl PartialEq for Receipt {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Receipt {}

impl Receipt {
    /// The receipt of the message `acker` acknowledges, counted in `outstanding` while it lives.
    pub(super) fn new(
        acker: Acker,
        seq: u64,
        route: RouteRecord,
        cluster: &Cluster,
        outstanding: &Arc<Outstanding>,
    ) -> Self {
        outstanding.count.fetch_add(1, Ordering::AcqRel);
        Self(Arc::new(ReceiptInner {
            acker,
            seq,
            route,
            cluster: cluster.clone(),
            outstanding: outstanding.clone(),
        }))
    }

    pub(super) fn acker(&self) -> &Acker {
        &self.0.acker
    }

    /// The agent acknowledged the event: it leaves the stream. The ack is
    /// confirmed by the server before the receipt is let go, so a partition
    /// drained for a handover has nothing left to come again.
    pub fn delivered(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            // A lost answer (a NATS server going away) is tried again: an
            // ack that never lands means a redelivery.
            let mut delay = Duration::from_millis(200);
            let mut result = this.0.acker.double_ack().await;
            for _ in 0..5 {
                if result.is_ok() {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
                result = this.0.acker.double_ack().await;
            }
            if let Err(e) = result {
                tracing::warn!(
                    seq = this.0.seq,
                    "cluster: ack to JetStream failed (the event will come again): {e}"
                );
            }
        });
    }

    /// Its attempts are spent: to the cluster's dead-letter stream, then out of the partition.
    pub fn dead_letter(
        &self,
        event: &ipc_proto::DeliveredEvent,
        attempts: u32,
        error: &str,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let this = self.clone();
        let (event, error) = (event.clone(), error.to_string());
        async move {
            let inner = &this.0;
            inner
                .cluster
                .put_dead_letter(inner.route.clone(), event, attempts, &error)
                .await?;
            inner
                .acker
                .ack_with(AckKind::Ack)
                .await
                .map_err(|e| format!("dead letter stored, but its ack failed: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_seen_again_is_a_redelivery_or_skipped_while_in_hand() {
        let mut seen = Seen::default();
        assert_eq!(seen.sight(7), Sighting::New);
        assert_eq!(seen.sight(7), Sighting::InHand, "still with an agent");
        seen.in_hand.remove(&7);
        assert_eq!(seen.sight(7), Sighting::Again, "handed out before");
        seen.in_hand.clear();
        for seq in 100..100 + SEEN as u64 {
            assert_eq!(seen.sight(seq), Sighting::New);
            seen.in_hand.remove(&seq);
        }
        assert_eq!(seen.recent.len(), SEEN, "bounded");
        assert_eq!(seen.sight(7), Sighting::New, "forgotten past the bound");
    }
}
