//! A Connection's connector process: the front door of every event.
//!
//! For each `emit`: check it against the Connector's declared events (nack
//! `validation_error` otherwise), record it in the journal, ack it, route it
//! through the Connection's ingress rules and hand it to the router. The ack
//! goes out only after the journal has the event; routing an accepted event
//! can wait for room in its instance's queue, and while it waits no further
//! emits are read, so a full queue slows the connector down (backpressure).
//! With `overflow: reject` (the default) a full queue instead nacks the emit
//! `overloaded`, and `rateLimit` nacks `quota_exceeded`: every refusal is a
//! nack and a counter, nothing is dropped silently.

mod limit;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use limit::TokenBucket;

use ipc_proto::{
    ConnectorInit, DeliveredEvent, Emit, EmitAck, EmitNack, FromConnector, NackError, NackKind,
    PROTOCOL_VERSION, Ping, ProtocolError, Ready, Secrets, Shutdown, ToConnector,
};
use tokio_util::sync::CancellationToken;

use crate::bundle::{Connection, Connector, Swarm};
use crate::ingress::{self, Decision};
use crate::journal::Journal;
use crate::logs::{AuditLog, LogSink, timestamp_secs};
use crate::router::{DispatchError, Pending, Router};
use crate::status::ProcessStatus;
use crate::supervisor::{Link, Outbox, Role, Served};

/// Event counters of one Connection.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Emits accepted.
    pub accepted: AtomicU64,
    /// Emits nacked (any kind).
    pub nacked: AtomicU64,
    /// Accepted events no rule matched (routed to the entryAgent or dropped).
    pub unmatched: AtomicU64,
    /// Accepted events dropped by `unmatched: drop`.
    pub dropped: AtomicU64,
    /// Emits nacked `quota_exceeded` by the rate limit.
    pub quota_exceeded: AtomicU64,
    /// Emits nacked `overloaded` because the instance's queue was full.
    pub overloaded: AtomicU64,
}

/// Everything a Connection's role needs, fixed for the life of the run.
#[derive(Debug)]
pub struct ConnectionContext {
    /// The Connection.
    pub connection: Connection,
    /// Its Connector.
    pub connector: Connector,
    /// The Swarm it is bound to.
    pub swarm: Swarm,
    /// Resolved secrets, sent only in `init`.
    pub secrets: Secrets,
    /// `state/connections/<name>/`.
    pub state_dir: PathBuf,
    /// Its log.
    pub log: LogSink,
    /// Its counters.
    pub counters: Arc<ConnectionCounters>,
    /// Its process status (events in/out).
    pub status: Arc<ProcessStatus>,
    /// The journal.
    pub journal: Arc<Journal>,
    /// The audit log.
    pub audit: AuditLog,
    /// Where routed events go.
    pub router: Router,
}

/// The [`Role`] of a connector process.
#[derive(Debug)]
pub struct ConnectionRole {
    ctx: Arc<ConnectionContext>,
    /// Rules whose missing key property has been warned about already.
    warned_rules: HashSet<usize>,
    /// `spec.rateLimit`.
    rate_limit: Option<TokenBucket>,
}

impl ConnectionRole {
    /// A role for `ctx`.
    pub fn new(ctx: Arc<ConnectionContext>) -> Self {
        let rate_limit = ctx
            .connection
            .rate_limit
            .map(|l| TokenBucket::new(l, Instant::now()));
        Self {
            ctx,
            warned_rules: HashSet::new(),
            rate_limit,
        }
    }

    async fn nack(&self, outbox: &Outbox<ToConnector>, seq: u64, kind: NackKind, message: String) {
        let ctx = &*self.ctx;
        ctx.counters.nacked.fetch_add(1, Ordering::Relaxed);
        ctx.log
            .note(&format!("nack seq {seq} ({}): {message}", kind.as_str()));
        let error = NackError { kind, message };
        outbox
            .send(ToConnector::Nack(EmitNack { seq, error }))
            .await;
    }

    async fn on_emit(&mut self, emit: Emit, link: &mut Link<FromConnector, ToConnector>) {
        let ctx = self.ctx.clone();
        ctx.status
            .counters
            .events_in
            .fetch_add(1, Ordering::Relaxed);
        if let Err(message) = ingress::check_event(&ctx.connector, &emit.event) {
            return self
                .nack(&link.outbox, emit.seq, NackKind::ValidationError, message)
                .await;
        }
        if let Some(bucket) = &mut self.rate_limit
            && let Err(wait) = bucket.take(Instant::now())
        {
            ctx.counters.quota_exceeded.fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "rate limit of Connection/{} exceeded; a token is free in {} ms",
                ctx.connection.name,
                wait.as_millis().max(1)
            );
            return self
                .nack(&link.outbox, emit.seq, NackKind::QuotaExceeded, message)
                .await;
        }
        let decision = ingress::route(&ctx.connection, &ctx.swarm, &emit.event);
        // Room in the instance's queue is reserved before the event is
        // accepted, so an accepted event always has a place to go.
        let slot = match &decision {
            Decision::Drop => None,
            Decision::Deliver(route) => {
                match ctx
                    .router
                    .reserve(
                        &ctx.swarm.name,
                        &route.agent,
                        &route.instance_key,
                        ctx.connection.overflow,
                    )
                    .await
                {
                    Ok(slot) => Some(slot),
                    Err(DispatchError::Overloaded(..)) => {
                        ctx.counters.overloaded.fetch_add(1, Ordering::Relaxed);
                        let message = format!(
                            "the queue of agent instance {}/{} is full",
                            route.agent, route.instance_key
                        );
                        return self
                            .nack(&link.outbox, emit.seq, NackKind::Overloaded, message)
                            .await;
                    }
                    Err(e) => {
                        return self
                            .nack(&link.outbox, emit.seq, NackKind::Transient, e.to_string())
                            .await;
                    }
                }
            }
        };
        let event = emit.event;
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
        };
        ctx.journal.accepted(&delivered);
        ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
        ctx.status.success();
        link.outbox
            .send(ToConnector::Ack(EmitAck {
                seq: emit.seq,
                duplicate: None,
            }))
            .await;

        let (route, slot) = match (decision, slot) {
            (Decision::Deliver(route), Some(slot)) => (route, slot),
            _ => {
                ctx.counters.unmatched.fetch_add(1, Ordering::Relaxed);
                ctx.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if route.rule.is_none() {
            ctx.counters.unmatched.fetch_add(1, Ordering::Relaxed);
        }
        if route.key_fell_back && route.rule.is_some_and(|r| self.warned_rules.insert(r)) {
            let rule = route.rule.unwrap_or_default();
            let msg = format!(
                "ingress rule {rule}: instanceKeyProperty is absent from event '{}'; using the event's own instanceKey",
                delivered.name
            );
            ctx.log.note(&msg);
            tracing::warn!(connection = %ctx.connection.name, "{msg}");
        }
        slot.send(Pending {
            event: delivered,
            attempt: 1,
        });
    }
}

impl Role for ConnectionRole {
    type In = FromConnector;
    type Out = ToConnector;

    fn init(&mut self) -> ToConnector {
        let ctx = &self.ctx;
        ToConnector::Init(ConnectorInit {
            protocol: PROTOCOL_VERSION,
            connector: ctx.connector.name.clone(),
            connection: ctx.connection.name.clone(),
            config: ctx.connection.config.clone(),
            secrets: ctx.secrets.clone(),
            state_dir: ctx.state_dir.display().to_string(),
        })
    }

    fn shutdown(grace: Duration) -> ToConnector {
        ToConnector::Shutdown(Shutdown {
            grace_ms: grace.as_millis() as u64,
        })
    }

    fn error(message: String) -> ToConnector {
        ToConnector::Error(ProtocolError { message })
    }

    fn ping(nonce: u64) -> ToConnector {
        ToConnector::Ping(Ping { nonce })
    }

    fn pong(msg: &FromConnector) -> Option<u64> {
        match msg {
            FromConnector::Pong(p) => Some(p.nonce),
            _ => None,
        }
    }

    fn ready(msg: &FromConnector) -> Option<&Ready> {
        match msg {
            FromConnector::Ready(r) => Some(r),
            _ => None,
        }
    }

    fn before_ready(&mut self, msg: FromConnector) -> Result<(), String> {
        match msg {
            FromConnector::Log(l) => {
                self.ctx.log.line(l.level.as_str(), &l.message);
                Ok(())
            }
            FromConnector::Audit(a) => {
                self.audit(a);
                Ok(())
            }
            other => Err(format!("'{}' before 'ready'", other.tag())),
        }
    }

    async fn serve(
        &mut self,
        link: &mut Link<FromConnector, ToConnector>,
        _stop: &CancellationToken,
    ) -> Served {
        // Emits keep being accepted while the connector shuts down: it may be
        // flushing what its source already handed it.
        while let Some(msg) = link.recv().await {
            match msg {
                FromConnector::Emit(emit) => self.on_emit(emit, link).await,
                FromConnector::Log(l) => self.ctx.log.line(l.level.as_str(), &l.message),
                FromConnector::Audit(a) => self.audit(a),
                FromConnector::Pong(_) => {}
                FromConnector::Ready(_) => {
                    if !link.violation("'ready' sent twice".into()).await {
                        return Served::Closed;
                    }
                }
            }
        }
        Served::Closed
    }

    async fn before_spawn(&mut self, _stop: &CancellationToken) -> bool {
        true
    }

    fn exited(&mut self) {}

    async fn wait_for_work(&mut self, stop: &CancellationToken) -> bool {
        // A connector that stopped by policy stays stopped until the run ends.
        stop.cancelled().await;
        false
    }
}

impl ConnectionRole {
    fn audit(&self, a: ipc_proto::Audit) {
        let ctx = &self.ctx;
        ctx.audit.record(serde_json::json!({
            "connection": ctx.connection.name,
            "connector": ctx.connector.name,
            "kind": a.kind,
            "scheme": a.scheme,
            "reason": a.reason,
        }));
    }
}
