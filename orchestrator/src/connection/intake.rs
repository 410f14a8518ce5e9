//! One emit's way in: check, limit, route, reserve, journal, ack, hand over.
//!
//! Emits are pipelined: each one's journal write is started as soon as it is
//! read, and the next emit is read without waiting for the commit, so many
//! emits share one group commit (one fsync). Commits complete in order, and
//! acks go out in that order, each only after its event is durable. An event
//! without a dedupe key goes to its agent while its commit is under way (the
//! fsync is not in the delivery's latency); one with a dedupe key waits for
//! the commit, which tells whether it is a duplicate, and so do the events
//! after it until it is handed over (order).

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use ipc_proto::{DeliveredEvent, Emit, EmitAck, EmitNack, NackError, NackKind, ToConnector};

use super::ConnectionRole;
use super::pipeline::{Commit, InFlight, Pipeline, oldest};
use crate::ingress::{self, Decision};
use crate::journal::{Accepted, JournalError, RouteRecord};
use crate::logs::timestamp_secs;
use crate::router::{DispatchError, Pending};
use crate::supervisor::Outbox;

impl ConnectionRole {
    pub(super) fn nack(
        &self,
        outbox: &Outbox<ToConnector>,
        seq: u64,
        kind: NackKind,
        message: String,
    ) {
        outbox.send(self.nack_msg(seq, kind, message));
    }

    /// A nack, counted and logged.
    fn nack_msg(&self, seq: u64, kind: NackKind, message: String) -> ToConnector {
        let ctx = &*self.ctx;
        ctx.status.intake.nacked.fetch_add(1, Ordering::Relaxed);
        ctx.log
            .note(&format!("nack seq {seq} ({}): {message}", kind.as_str()));
        let error = NackError { kind, message };
        ToConnector::Nack(EmitNack { seq, error })
    }

    /// Takes an emit in: refuses it with a nack, or starts its journal write
    /// and appends it to `pipeline`.
    pub(super) async fn on_emit(
        &mut self,
        emit: Emit,
        outbox: &Outbox<ToConnector>,
        pipeline: &mut Pipeline,
    ) {
        let started = Instant::now();
        let ctx = self.ctx.clone();
        ctx.status
            .counters
            .events_in
            .fetch_add(1, Ordering::Relaxed);
        if let Err(message) = ingress::check_event(&ctx.connector, &emit.event) {
            return self.nack(outbox, emit.seq, NackKind::ValidationError, message);
        }
        let routing = ctx.routing();
        if routing.connection.rate_limit != self.rate_limit_of {
            // An apply changed it: a fresh bucket at the new rate.
            self.rate_limit_of = routing.connection.rate_limit;
            self.rate_limit = self
                .rate_limit_of
                .map(|l| super::TokenBucket::new(l, Instant::now()));
        }
        if let Some(bucket) = &mut self.rate_limit
            && let Err(wait) = bucket.take(Instant::now())
        {
            ctx.status
                .intake
                .quota_exceeded
                .fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "rate limit of Connection/{} exceeded; a token is free in {} ms",
                ctx.connection.name,
                wait.as_millis().max(1)
            );
            return self.nack(outbox, emit.seq, NackKind::QuotaExceeded, message);
        }
        let decision = ingress::route(&routing.connection, &routing.swarm, &emit.event);
        // Room in the instance's queue is reserved before the event is
        // accepted, so an accepted event always has a place to go. (In
        // cluster mode the partition's owner, maybe another node, does that.)
        let slot = match &decision {
            Decision::Drop => None,
            Decision::Deliver(_) if ctx.cluster.is_some() => None,
            Decision::Deliver(route) => {
                // While waiting for room (`overflow: wait`), keep finishing the
                // commits in the pipeline: their reserved places may be what
                // fills the queue, and they are only used once acked.
                let router = ctx.router.clone();
                let reserve = router.reserve(
                    &routing.swarm.name,
                    &route.agent,
                    &route.instance_key,
                    routing.connection.overflow,
                );
                tokio::pin!(reserve);
                let reserved = loop {
                    tokio::select! {
                        biased;
                        r = &mut reserve => break r,
                        result = oldest(pipeline), if !pipeline.is_empty() => {
                            self.committed_all(pipeline, result, outbox);
                        }
                    }
                };
                match reserved {
                    Ok(slot) => Some(slot),
                    Err(DispatchError::Overloaded(..)) => {
                        ctx.status.intake.overloaded.fetch_add(1, Ordering::Relaxed);
                        let message = format!(
                            "the queue of agent instance {}/{} is full",
                            route.agent, route.instance_key
                        );
                        return self.nack(outbox, emit.seq, NackKind::Overloaded, message);
                    }
                    Err(e @ DispatchError::TooManyPending(_)) => {
                        ctx.status.intake.overloaded.fetch_add(1, Ordering::Relaxed);
                        return self.nack(outbox, emit.seq, NackKind::Overloaded, e.to_string());
                    }
                    Err(e) => {
                        return self.nack(outbox, emit.seq, NackKind::Transient, e.to_string());
                    }
                }
            }
        };
        let mut event = emit.event;
        bound_payload(&ctx, &mut event);
        let delivered = DeliveredEvent {
            id: uuid::Uuid::now_v7().to_string(),
            connection: ctx.connection.name.clone(),
            connector: ctx.connector.name.clone(),
            name: event.name,
            message: event.message,
            properties: event.properties,
            instance_key: match &decision {
                Decision::Deliver(route) => route.instance_key.clone(),
                Decision::Drop => String::new(),
            },
            received_at: timestamp_secs(SystemTime::now()),
            payload: event.payload,
        };
        let route = match &decision {
            Decision::Drop => {
                ctx.status.intake.unmatched.fetch_add(1, Ordering::Relaxed);
                ctx.status.intake.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
            Decision::Deliver(route) => {
                if route.rule.is_none() {
                    ctx.status.intake.unmatched.fetch_add(1, Ordering::Relaxed);
                }
                if route.key_fell_back && route.rule.is_some_and(|r| self.warned_rules.insert(r)) {
                    let msg = format!(
                        "ingress rule {}: instanceKeyProperty is absent from event '{}'; using the event's own instanceKey",
                        route.rule.unwrap_or_default(),
                        delivered.name
                    );
                    ctx.log.note(&msg);
                    tracing::warn!(connection = %ctx.connection.name, "{msg}");
                }
                Some(RouteRecord {
                    agent: route.agent.clone(),
                    swarm: routing.swarm.name.clone(),
                })
            }
        };
        // Only a dedupe key can make the journal refuse an event it can
        // store, so an event without one is handed over while its commit is
        // under way, unless an earlier one still waits (order). The ack to
        // the connector still waits for the commit; a crash or a failed
        // commit before it means the connector sends the event again, which
        // at-least-once allows.
        let early = emit.dedupe_key.is_none() && pipeline.holding() == 0;
        let commit: Commit = match (&ctx.cluster, route) {
            (Some(cluster), Some(route)) => {
                Box::pin(cluster.accept(route, delivered.clone(), emit.dedupe_key))
            }
            // Nothing routes it: there is nothing to store for any node.
            (Some(_), None) => Box::pin(std::future::ready(Ok(Accepted::New))),
            (None, route) => Box::pin(ctx.journal.accept_ref(&delivered, route, emit.dedupe_key)),
        };
        let delivery = match slot {
            Some(slot) if early => {
                slot.send(Pending {
                    event: Box::new(delivered),
                    attempt: 1,
                    held: false,
                    receipt: None,
                });
                None
            }
            slot => slot.map(|slot| Box::new((slot, delivered))),
        };
        pipeline.push_back(InFlight {
            seq: emit.seq,
            at: started,
            commit,
            delivery,
        });
    }

    /// The oldest emit's commit finished with `result`: answers it, and
    /// every later one whose commit is done too (a group commit finishes
    /// many at once), in order, in one write to the connector.
    pub(super) fn committed_all(
        &mut self,
        pipeline: &mut Pipeline,
        result: Result<Accepted, JournalError>,
        outbox: &Outbox<ToConnector>,
    ) {
        let Some(done) = pipeline.pop_front() else {
            return;
        };
        let mut replies = vec![self.committed(done, result)];
        while let Some(result) = pipeline.front_ready() {
            if let Some(done) = pipeline.pop_front() {
                replies.push(self.committed(done, result));
            }
        }
        outbox.send_all(replies);
    }

    /// The oldest emit's commit finished: its ack (or nack); its event is
    /// handed over.
    fn committed(&mut self, done: InFlight, result: Result<Accepted, JournalError>) -> ToConnector {
        let ctx = &*self.ctx;
        match result {
            Ok(Accepted::New) => {
                self.emit_ack.record(done.at.elapsed().as_secs_f64());
                ctx.status.intake.accepted.fetch_add(1, Ordering::Relaxed);
                ctx.status.success();
                if let Some((slot, event)) = done.delivery.map(|d| *d) {
                    slot.send(Pending {
                        event: Box::new(event),
                        attempt: 1,
                        held: false,
                        receipt: None,
                    });
                }
                ToConnector::Ack(EmitAck {
                    seq: done.seq,
                    duplicate: None,
                })
            }
            Ok(Accepted::Duplicate { original_id }) => {
                ctx.status.intake.duplicates.fetch_add(1, Ordering::Relaxed);
                ctx.log.note(&format!(
                    "seq {} is a duplicate of event {original_id}: not delivered again",
                    done.seq
                ));
                // A repeated delivery id is a security-relevant fact (a
                // replay, or a source retrying): it goes to the audit log.
                ctx.audit.record(serde_json::json!({
                    "connection": ctx.connection.name,
                    "connector": ctx.connector.name,
                    "kind": "duplicate_delivery",
                    "reason": "dedupe_key_seen",
                    "original": original_id,
                }));
                ToConnector::Ack(EmitAck {
                    seq: done.seq,
                    duplicate: Some(true),
                })
            }
            Err(e) => {
                tracing::error!(connection = %ctx.connection.name, "journal write failed: {e}");
                self.nack_msg(
                    done.seq,
                    NackKind::Transient,
                    format!("the journal could not store the event: {e}"),
                )
            }
        }
    }
}

/// Keeps an event's `payload` within the Connector's `maxPayloadBytes`: a
/// larger one is dropped (the event itself is still accepted), the event
/// says so with `payloadTruncated: "true"`, and the connection's log says
/// how large it was.
fn bound_payload(ctx: &super::ConnectionContext, event: &mut ipc_proto::Event) {
    let Some(payload) = &event.payload else {
        return;
    };
    let mut size = ByteCount(0);
    let size = serde_json::to_writer(&mut size, &payload.0).map_or(usize::MAX, |()| size.0);
    let max = ctx.connector.max_payload_bytes;
    if u64::try_from(size).unwrap_or(u64::MAX) <= max {
        return;
    }
    event.payload = None;
    event
        .properties
        .insert("payloadTruncated".into(), "true".into());
    let msg = format!(
        "event '{}': payload of {size} bytes is over maxPayloadBytes of Connector/{} ({max}); dropped it",
        event.name, ctx.connector.name
    );
    ctx.log.note(&msg);
    tracing::warn!(connection = %ctx.connection.name, "{msg}");
}

/// Counts what is written to it: a payload's size, without a copy of it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
