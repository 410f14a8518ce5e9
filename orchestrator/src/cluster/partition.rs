//! One owned partition: its consumer, and the receipts of its events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::message::AckKind;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::handed::Watermark;
use super::lease::Validity;
use super::receipt::{Outstanding, Receipt, Sighting};
use super::{Cluster, StoredEvent};
use crate::bundle::Overflow;
use crate::router::{DispatchError, Pending, Router};

/// How long JetStream waits for an ack before it sends an event again to
/// the same owner: a message lost on its way (a server that died with it)
/// comes again after this, as attempt 2. One still with an agent is
/// recognised as in hand and skipped.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Events of one partition handed to agents and not yet acknowledged, at most.
const MAX_ACK_PENDING: i64 = 20_000;

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
        tracing::info!(
            partition = p,
            "cluster: let go without a lease surely ours: the watermark stays ahead, \
             and the next owner delivers up to it as attempt 2"
        );
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
    let mut next_delivery: Option<u64> = None;
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
        let (seq, delivered, dseq) = match msg.info() {
            Ok(info) => (info.stream_sequence, info.delivered, info.consumer_sequence),
            Err(_) => (0, 1, 0),
        };
        // Deliveries to this one puller are numbered without gaps: a gap is
        // a message lost on its way (a server that died with it). Handing
        // out what follows would break the order per key: start over with
        // a fresh consumer, which brings the lost one first.
        if let Some(expected) = next_delivery
            && dseq != expected
        {
            return Err(format!(
                "consumer {name}: delivery {expected} never arrived (then came {dseq}): starting over"
            ));
        }
        next_delivery = Some(dseq + 1);
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
        let sighting = outstanding.sight(seq);
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
        let receipt = Receipt::new(acker, seq, route.clone(), &cluster, &outstanding);
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
                    .acker()
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
