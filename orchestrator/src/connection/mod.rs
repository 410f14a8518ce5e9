//! A Connection's connector process: the front door of every event.
//!
//! For each `emit` (see `intake.rs`): check it against the Connector's declared
//! events (nack `validation_error`), take a `rateLimit` token (nack
//! `quota_exceeded`), route it through the Connection's ingress rules, reserve
//! room in its agent instance's queue (`overflow: reject` nacks `overloaded`;
//! `wait` holds the connector until there is room: backpressure), write it to
//! the journal, and only once that write is durable ack it and put it in the
//! reserved place. A `dedupeKey` seen before is acked as a duplicate and not
//! delivered again. Every refusal is a nack and a counter; nothing is dropped
//! silently.

mod intake;
pub(crate) mod limit;
mod pipeline;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use limit::TokenBucket;
use pipeline::Pipeline;

use ipc_proto::{
    ConnectorInit, EmitNack, FromConnector, NackError, NackKind, PROTOCOL_VERSION, Ping,
    ProtocolError, Ready, Secrets, Shutdown, ToConnector,
};
use tokio_util::sync::CancellationToken;

use crate::bundle::{Connection, Connector, Swarm};
use crate::journal::Journal;
use crate::logs::{AuditLog, LogSink};
use crate::router::Router;
use crate::status::ProcessStatus;
use crate::supervisor::{Link, Role, Served};

/// Everything a Connection's role needs: fixed for the life of its process,
/// but for its routing and limits, which an apply may change in place.
#[derive(Debug)]
pub struct ConnectionContext {
    /// The Connection as its process was started (its ingress rules, swarm
    /// and limits as they are now: [`ConnectionContext::routing`]).
    pub connection: Connection,
    /// Its Connector.
    pub connector: Connector,
    /// Ingress rules, Swarm, `rateLimit` and `overflow` now.
    pub routing: std::sync::RwLock<Arc<Routing>>,
    /// Resolved `spec.config`, sent in `init`.
    pub config: std::collections::BTreeMap<String, String>,
    /// Resolved secrets, sent only in `init`.
    pub secrets: Secrets,
    /// `state/connections/<name>/`.
    pub state_dir: PathBuf,
    /// Its log.
    pub log: LogSink,
    /// Its process status (events in/out, intake counts).
    pub status: Arc<ProcessStatus>,
    /// The journal.
    pub journal: Journal,
    /// The audit log.
    pub audit: AuditLog,
    /// Where routed events go.
    pub router: Router,
    /// The terminal of `run`: the connector's own info and warnings show there.
    pub console: crate::console::Console,
    /// Every Connection's operations: this one's calls go out through this role's channel.
    pub operations: Arc<crate::operations::Operations>,
    /// Cluster mode: accepted events go to NATS JetStream instead of the journal.
    pub cluster: Option<crate::cluster::Cluster>,
}

/// What an apply may change in a running Connection without a restart.
#[derive(Debug)]
pub struct Routing {
    /// The Connection (its `ingress`, `rateLimit`, `overflow` are read from here).
    pub connection: Connection,
    /// The Swarm it is bound to.
    pub swarm: Swarm,
}

impl ConnectionContext {
    /// Its routing and limits now.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.read().expect("routing lock").clone()
    }

    /// An apply's new routing and limits: the next emit is routed by them.
    pub fn set_routing(&self, routing: Routing) {
        *self.routing.write().expect("routing lock") = Arc::new(routing);
    }

    /// Its operations now (an apply may have replaced them).
    fn ops(&self) -> Option<Arc<crate::operations::ConnectionOps>> {
        self.operations.connection(&self.connection.name)
    }
}

/// The [`Role`] of a connector process.
#[derive(Debug)]
pub struct ConnectionRole {
    ctx: Arc<ConnectionContext>,
    /// Rules whose missing key property has been warned about already.
    warned_rules: HashSet<usize>,
    /// `spec.rateLimit`, and the limit it was made for (an apply may change it).
    rate_limit: Option<TokenBucket>,
    rate_limit_of: Option<crate::bundle::RateLimit>,
    /// `orchestrator_emit_ack_seconds` of this Connection.
    emit_ack: metrics::Histogram,
}

impl ConnectionRole {
    /// A role for `ctx`.
    pub fn new(ctx: Arc<ConnectionContext>) -> Self {
        let rate_limit_of = ctx.routing().connection.rate_limit;
        Self {
            emit_ack: crate::metrics::emit_ack_seconds(&ctx.connection.name),
            ctx,
            warned_rules: HashSet::new(),
            rate_limit: rate_limit_of.map(|l| TokenBucket::new(l, Instant::now())),
            rate_limit_of,
        }
    }
}

impl ConnectionRole {
    /// `status` from the connector: `credential_expired` shows in `status`
    /// (and is audited) until it says `active` or a new process gets ready.
    fn on_status(&mut self, s: ipc_proto::ConnectorStatus) {
        let ctx = &self.ctx;
        match s.state.as_str() {
            ipc_proto::STATE_CREDENTIAL_EXPIRED => {
                let why = s
                    .message
                    .unwrap_or_else(|| "the provider refused the credentials".into());
                ctx.log.note(&format!("credential expired: {why}"));
                tracing::warn!(connection = %ctx.connection.name, "credential expired: {why}");
                ctx.audit.record(serde_json::json!({
                    "time": crate::logs::timestamp(std::time::SystemTime::now()),
                    "kind": "credential_expired",
                    "connection": ctx.connection.name,
                    "connector": ctx.connector.name,
                }));
                ctx.status.set_credential_expired(Some(why));
            }
            ipc_proto::STATE_ACTIVE => ctx.status.set_credential_expired(None),
            other => ctx.log.note(&format!(
                "status '{other}' from the connector is not one this orchestrator knows; ignored"
            )),
        }
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
            config: ctx.config.clone(),
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

    fn reject(seq: u64, message: String) -> Option<ToConnector> {
        let error = NackError {
            kind: NackKind::ValidationError,
            message,
        };
        Some(ToConnector::Nack(EmitNack { seq, error }))
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

    fn on_ready(&mut self, _ready: &Ready) {
        // A process that got ready has working credentials until it says not.
        self.ctx.status.set_credential_expired(None);
    }

    fn before_ready(&mut self, msg: FromConnector) -> Result<(), String> {
        match msg {
            FromConnector::Log(l) => {
                self.log(&l);
                Ok(())
            }
            FromConnector::Audit(a) => {
                self.audit(a);
                Ok(())
            }
            // Credentials refused at start-up: said before it could be ready.
            FromConnector::Status(s) => {
                self.on_status(s);
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
        let outbox = link.outbox.clone();
        // Calls go out through this process's channel while it serves.
        if let Some(ops) = self.ctx.ops() {
            ops.attach(outbox.clone());
        }
        let mut pipeline = Pipeline::new();
        let mut open = true;
        while open || !pipeline.is_empty() {
            tokio::select! {
                biased;
                result = pipeline::oldest(&mut pipeline), if !pipeline.is_empty() => {
                    self.committed_all(&mut pipeline, result, &outbox);
                }
                msg = link.recv(), if open && pipeline.len() < pipeline::MAX_PIPELINE => match msg {
                    // The connector is gone, but what it handed over is
                    // committed below and delivered all the same.
                    None => open = false,
                    // Two emits in flight with one seq: its ack could not say which.
                    Some(FromConnector::Emit(emit)) if pipeline.contains(emit.seq) => {
                        let why = format!("emit seq {} while an emit with that seq is in flight", emit.seq);
                        if !link.violation(why) {
                            open = false;
                        }
                    }
                    Some(FromConnector::Emit(emit)) => self.on_emit(emit, &outbox, &mut pipeline).await,
                    Some(FromConnector::Log(l)) => self.log(&l),
                    Some(FromConnector::Audit(a)) => self.audit(a),
                    Some(FromConnector::Status(s)) => self.on_status(s),
                    Some(FromConnector::Pong(_)) => {}
                    Some(FromConnector::CallResult(r)) => {
                        let id = r.id.clone();
                        if !self.ctx.ops().is_some_and(|ops| ops.resolve(r)) {
                            // Too late (after its deadline) or never asked: noted, not an error.
                            self.ctx.log.note(&format!("callResult for call {id}, which is not waiting (too late?)"));
                        }
                    }
                    Some(FromConnector::Ready(_)) => {
                        if !link.violation("'ready' sent twice".into()) {
                            open = false;
                        }
                    }
                },
            }
        }
        self.detach();
        Served::Closed
    }

    async fn before_spawn(&mut self, _stop: &CancellationToken) -> bool {
        true
    }

    fn exited(&mut self) {
        // Calls in flight to a process that is gone fail now, not at their deadline.
        self.detach();
    }

    async fn wait_for_work(&mut self, stop: &CancellationToken) -> bool {
        // A connector that stopped by policy stays stopped until the run ends.
        stop.cancelled().await;
        false
    }
}

impl ConnectionRole {
    fn detach(&self) {
        if let Some(ops) = self.ctx.ops() {
            ops.detach();
        }
    }

    /// A `log` message: into its log; info and above on the terminal too
    /// (what it listens on, why it cannot start).
    fn log(&self, l: &ipc_proto::Log) {
        self.ctx.log.line(l.level.as_str(), &l.message);
        if l.level >= ipc_proto::LogLevel::Info {
            let target = format!("connection/{}", self.ctx.connection.name);
            self.ctx.console.line(&target, &l.message);
        }
    }

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
