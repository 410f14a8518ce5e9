//! Sending deliveries to an agent instance's process.

use std::sync::atomic::Ordering;

use ipc_proto::{Deliver, DeliveredEvent, ToAgent};
use tokio::time::Instant;

use super::{InstanceRole, Pending};
use crate::supervisor::Outbox;

impl InstanceRole {
    pub(super) fn send(&mut self, p: Pending, outbox: &Outbox<ToAgent>) {
        self.send_batch(vec![p], outbox);
    }

    /// Sends `first` and whatever else is queued that may go out now (room
    /// under `maxInFlight`, no retry waiting), in one write.
    pub(super) fn send_queued(&mut self, first: Pending, outbox: &Outbox<ToAgent>) {
        let mut batch = vec![first];
        while self.deliveries.room() > batch.len()
            && !self.deliveries.has_retries()
            && let Ok(p) = self.queue.try_recv()
        {
            batch.push(p);
        }
        self.send_batch(batch, outbox);
    }

    /// Delivers `batch`: each event is lent to its `deliver` message while
    /// it is encoded, not copied, and is in flight from then on.
    fn send_batch(&mut self, mut batch: Vec<Pending>, outbox: &Outbox<ToAgent>) {
        let lent: Vec<_> = batch.iter_mut().map(|p| self.lend(p)).collect();
        outbox.send_all(lent.iter().map(|(msg, _)| msg));
        for (mut p, (msg, payload)) in batch.into_iter().zip(lent) {
            if let ToAgent::Deliver(d) = msg {
                *p.event = d.event;
                if payload.is_some() {
                    p.event.payload = payload;
                }
            }
            self.sent(p);
        }
    }

    /// The `deliver` of `p`, with its event moved into it (and its payload
    /// held aside when the agent does not take payloads).
    fn lend(&self, p: &mut Pending) -> (ToAgent, Option<ipc_proto::Json>) {
        let mut event = std::mem::replace(&mut *p.event, empty_event());
        let payload = if self.wants_payload {
            None
        } else {
            event.payload.take()
        };
        let msg = ToAgent::Deliver(Deliver {
            id: event.id.clone(),
            attempt: p.attempt,
            event,
        });
        (msg, payload)
    }

    /// `p` was sent: it is in flight from now on.
    fn sent(&mut self, p: Pending) {
        // Later attempts are recorded (batched, cheap) so maxAttempts holds
        // across an orchestrator restart; a first attempt need not be, since
        // recovery counts one anyway.
        if p.attempt > 1 {
            if p.receipt.is_none() {
                self.journal.attempted(&p.event.id, p.attempt);
            }
            self.metrics.redeliveries.increment(1);
        }
        self.metrics.deliveries.increment(1);
        self.deliveries.sent(p, Instant::now());
        self.shared.touch();
        self.status
            .counters
            .events_in
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// An event with nothing in it (no allocation): what a [`Pending`] holds
/// while its event is lent to a `deliver`.
fn empty_event() -> DeliveredEvent {
    DeliveredEvent {
        id: String::new(),
        connection: String::new(),
        connector: String::new(),
        name: String::new(),
        message: None,
        properties: std::collections::BTreeMap::new(),
        instance_key: String::new(),
        received_at: String::new(),
        payload: None,
    }
}
