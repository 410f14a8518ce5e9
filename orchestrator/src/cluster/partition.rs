//! One owned partition: its consumer, and the receipts of its events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::{AckKind, Acker};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Cluster, StoredEvent};
use crate::bundle::Overflow;
use crate::journal::RouteRecord;
use crate::router::{DispatchError, Pending, Router};

/// How long JetStream waits for an ack before it delivers an event again
/// to the same owner (a delivery lost inside a live node).
const ACK_WAIT: Duration = Duration::from_secs(600);

/// Events of one partition handed to agents and not yet acknowledged, at most.
const MAX_ACK_PENDING: i64 = 20_000;

/// Events of one partition that are with an agent instance and not yet done.
#[derive(Debug, Default)]
pub(super) struct Outstanding {
    count: AtomicUsize,
    zero: Notify,
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
    /// The agent acknowledged the event: it leaves the stream.
    pub fn delivered(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.0.acker.ack().await {
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
    let stream = inner
        .js
        .get_stream(names.events_stream())
        .await
        .map_err(|e| format!("cannot open stream {}: {e}", names.events_stream()))?;
    let name = names.consumer(p);
    // A fresh consumer: whatever the last owner left unacknowledged comes
    // again; what it may have handed to an agent is marked as a redelivery.
    let maybe_delivered = match stream.consumer_info(&name).await {
        Ok(info) => {
            let upto = info.delivered.stream_sequence;
            stream
                .delete_consumer(&name)
                .await
                .map_err(|e| format!("cannot reset consumer {name}: {e}"))?;
            upto
        }
        Err(_) => 0,
    };
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
        .create_consumer(config)
        .await
        .map_err(|e| format!("cannot create consumer {name}: {e}"))?;
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
            msg = messages.next() => msg,
        };
        let msg = match msg {
            None => return Err(format!("consumer {name} ended")),
            Some(Err(e)) => {
                tracing::warn!(partition = p, "cluster: pulling: {e}");
                continue;
            }
            Some(Ok(msg)) => msg,
        };
        let (seq, delivered) = match msg.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(_) => (0, 1),
        };
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
        if seq <= maybe_delivered {
            attempt = attempt.max(2);
        }
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
