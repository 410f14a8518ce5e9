//! One owned partition: its consumer, and the receipts of its events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::message::{AckKind, Acker};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::handed::Watermark;
use super::lease::Validity;
use super::{Cluster, StoredEvent};
use crate::bundle::Overflow;
use crate::journal::RouteRecord;
use crate::router::{DispatchError, Pending, Router};

/// How long JetStream waits for an ack before it sends an event again to
/// the same owner: a message lost on its way (a server that died with it)
/// comes again after this, as attempt 2. One still with an agent is
/// recognised as in hand and skipped.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Events of one partition handed to agents and not yet acknowledged, at most.
const MAX_ACK_PENDING: i64 = 20_000;

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
    watermark: std::sync::OnceLock<Arc<Watermark>>,
    /// The highest stream sequence this owner handed to its router.
    handed_max: std::sync::atomic::AtomicU64,
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
enum Sighting {
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

/// Hands partition `p`'s watermark on as it is, no longer ahead: up to
/// what this owner or an earlier one handed out. For an owner whose
/// consumer task has ended, while `lease` is still surely its own (a next
/// owner must not read a value that is lowered after); the next owner then
/// delivers what is left above it as first attempts.
pub(super) async fn let_go(p: u32, outstanding: &Outstanding, lease: &Validity) {
    let Some(watermark) = outstanding.watermark.get() else {
        return;
    };
    if !lease.valid() {
        return;
    }
    let upto = outstanding
        .last_owner_upto
        .load(Ordering::Acquire)
        .max(outstanding.handed_max.load(Ordering::Acquire));
    if let Err(e) = watermark.settle(upto).await {
        tracing::debug!(partition = p, "cluster: the watermark stays ahead: {e}");
    }
}

/// Consumes partition `p` into `router` until `stop` is cancelled. Events
/// are handed over in stream order; each holds a [`Receipt`] counted in
/// `outstanding` until its agent is done with it.
pub(super) async fn consume(
    cluster: Cluster,
    router: Router,
    p: u32,
    stop: CancellationToken,
    outstanding: Arc<Outstanding>,
) -> Result<(), String> {
    let inner = &cluster.inner;
    let names = &inner.names;
    let mut interrupted = inner.interruptions.subscribe();
    let stream = inner
        .js
        .get_stream(names.events_stream())
        .await
        .map_err(|e| format!("cannot open stream {}: {e}", names.events_stream()))?;
    let name = names.consumer(p);
    // Events up to the partition's watermark may have reached an agent
    // with an earlier owner: they come as attempt 2. Read once per claim
    // (a restart of the consumer task keeps what the claim read). What
    // this owner handed out itself is told apart by `seen`.
    let watermark = outstanding
        .watermark
        .get_or_init(|| Arc::new(Watermark::new(inner.meta.clone(), p)))
        .clone();
    if !outstanding.created.load(Ordering::Acquire) {
        let upto = watermark.read().await?;
        outstanding
            .last_owner_upto
            .fetch_max(upto, Ordering::AcqRel);
        tracing::debug!(partition = p, upto, "cluster: claiming");
    }
    // Always a fresh consumer: whatever is unacknowledged comes again, in
    // stream order.
    match stream.consumer_info(&name).await {
        Ok(_) => stream
            .delete_consumer(&name)
            .await
            .map(drop)
            .map_err(|e| format!("cannot reset consumer {name}: {e}"))?,
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read consumer {name}: {e}")),
    }
    let maybe_delivered = outstanding.last_owner_upto.load(Ordering::Acquire);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: names.partition_subject(p),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        max_deliver: -1,
        ..Default::default()
    };
    let consumer = stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|e| format!("cannot create consumer {name}: {e}"))?;
    outstanding.created.store(true, Ordering::Release);
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| format!("cannot pull from consumer {name}: {e}"))?;
    tracing::debug!(partition = p, maybe_delivered, "cluster: consuming");
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            // Pulled messages may have been lost: start over with a fresh
            // consumer, in stream order (see `ACK_WAIT` for the rest).
            _ = interrupted.changed() => {
                return Err(format!("consumer {name}: the NATS connection was interrupted: starting over"));
            }
            msg = messages.next() => msg,
        };
        let msg = match msg {
            None => return Err(format!("consumer {name} ended")),
            // A broken pull may have lost messages the server counts as
            // delivered (they would come again only after ACK_WAIT, behind
            // later ones): start over with a fresh consumer, in stream order.
            Some(Err(e)) => return Err(format!("pulling from consumer {name}: {e}")),
            Some(Ok(msg)) => msg,
        };
        let (seq, delivered) = match msg.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(_) => (0, 1),
        };
        // Recorded before it may reach an agent (unrecorded, it stays in
        // the stream: the fresh consumer of a restart brings it again).
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            covered = watermark.cover(seq) => covered?,
        }
        let record = match serde_json::from_slice::<StoredEvent>(&msg.payload) {
            Ok(record) => record,
            Err(e) => {
                inner.bad_messages.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    partition = p,
                    seq,
                    "cluster: a message of stream {} is not an event ({e}): removed",
                    names.events_stream()
                );
                let _ = msg.ack_with(AckKind::Term).await;
                continue;
            }
        };
        let mut attempt = u32::try_from(delivered.max(1)).unwrap_or(u32::MAX);
        let resent = msg
            .headers
            .as_ref()
            .is_some_and(|h| h.get(super::publish::RESENT).is_some());
        if seq <= maybe_delivered || resent {
            attempt = attempt.max(2);
        }
        let sighting = outstanding
            .seen
            .lock()
            .map_or(Sighting::New, |mut s| s.sight(seq));
        match sighting {
            Sighting::InHand => {
                tracing::debug!(
                    partition = p,
                    seq,
                    "cluster: sent again while in hand: skipped"
                );
                continue;
            }
            Sighting::Again => attempt = attempt.max(2),
            Sighting::New => {}
        }
        outstanding.handed_max.fetch_max(seq, Ordering::AcqRel);
        tracing::trace!(partition = p, seq, id = %record.event.id, key = %record.event.instance_key, attempt, ?sighting, "cluster: handing out");
        let StoredEvent { route, event } = record;
        let (_, acker) = msg.split();
        outstanding.count.fetch_add(1, Ordering::AcqRel);
        let receipt = Receipt(Arc::new(ReceiptInner {
            acker,
            seq,
            route: route.clone(),
            cluster: cluster.clone(),
            outstanding: outstanding.clone(),
        }));
        let reserve = router.reserve(
            &route.swarm,
            &route.agent,
            &event.instance_key,
            Overflow::Wait,
        );
        let reserved = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            r = reserve => r,
        };
        match reserved {
            Ok(slot) => slot.send(Pending {
                event: Box::new(event),
                attempt,
                held: false,
                receipt: Some(receipt),
            }),
            Err(e @ DispatchError::UnknownAgent(_)) => {
                let error = format!("{e}: no longer in the bundle");
                if let Err(e) = receipt.dead_letter(&event, attempt, &error).await {
                    tracing::error!(partition = p, "cluster: {e}");
                }
            }
            Err(e @ DispatchError::Disabled(_)) => {
                // Kept in the stream until the Agent is enabled again.
                tracing::debug!(partition = p, "cluster: {e}: event kept");
                let _ = receipt
                    .0
                    .acker
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(30))))
                    .await;
            }
            Err(e) => {
                tracing::warn!(
                    partition = p,
                    "cluster: cannot hand over event {}: {e}",
                    event.id
                );
                return Ok(());
            }
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
