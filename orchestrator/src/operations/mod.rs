//! Operations: an agent invokes an operation of a Connection, the
//! orchestrator governs the call, the connector performs it.
//!
//! # Theory of operation
//!
//! [`Operations`] holds, per Connection, what its Connector declares (with
//! its JSON Schemas compiled once), what the Connection allows, its limits
//! and, while its connector process is ready, the channel to it
//! ([`ConnectionOps::attach`]). An `invoke` from an agent instance runs
//! [`Operations::invoke`] on its own task, in the order OPERATIONS.md draws:
//! policy → input size and schema → rate limits (the Agent's per instance,
//! the Connection's, a provider's 429 hold) → concurrency (`maxParallel`,
//! `maxQueue`, `overflow`) → `call` with a deadline → retries of the classes
//! the operation's `retry` names, with backoff → output schema, redactions,
//! size cap → the normalized response, one audit record and the counters.
//! A refusal before the call never reaches the connector.
//!
//! The connector answers each `call` with one `callResult`, which
//! [`ConnectionOps::resolve`] hands to the waiting invoke. A call whose
//! connector process exits is failed `transient` (and retried when the
//! operation says so: the restarted process serves the retry); one that
//! outlives its deadline is `timeout`, and the connector is sent `cancel`.
//!
//! What it never does: send an agent a Connection's secrets, or send the
//! connector an operation that policy or validation refused.

mod call;
mod checks;
mod circuit;
mod govern;
mod idempotency;
mod job_record;
mod job_takeup;
mod jobs;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipc_proto::{CallResult, ToConnector};
use tokio::sync::{Notify, Semaphore, oneshot};

#[doc(hidden)]
pub use checks::normalize_output;
pub use govern::Caller;
pub use jobs::{JobRecord, JobSummary, MAX_OPEN_JOBS};
pub use stats::OperationStats;

use crate::bundle::{Bundle, ConnectionOperations, InvokeGrant, OperationDecl};
use crate::connection::limit::TokenBucket;
use crate::journal::Journal;
use crate::logs::AuditLog;
use crate::supervisor::Outbox;

/// Limits across every Connection (`run --max-invocations-per-second`,
/// `--max-retries`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalLimits {
    /// Invokes let through per second in all, with a burst of one second's worth.
    pub invocations_per_second: Option<f64>,
    /// Retries of one invoke, at most, whatever an operation declares (default 10).
    pub max_retries: u32,
}

impl Default for GlobalLimits {
    fn default() -> Self {
        Self {
            invocations_per_second: None,
            max_retries: 10,
        }
    }
}

/// Per-instance rate buckets kept before the oldest are forgotten.
const MAX_INSTANCE_BUCKETS: usize = 100_000;

/// (connection, operation, idempotency key).
type IdempotencyKey = (String, String, String);

/// One declared operation with its schemas compiled.
struct Compiled {
    decl: OperationDecl,
    /// `orchestrator_operation_duration_seconds` of this operation.
    seconds: metrics::Histogram,
    input: Option<jsonschema::Validator>,
    output: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.decl.name)
            .finish()
    }
}

/// The channel to a ready connector process and its calls awaiting an answer.
#[derive(Debug)]
struct CallLink {
    outbox: Outbox<ToConnector>,
    pending: HashMap<String, oneshot::Sender<CallResult>>,
}

/// The circuit of one Connection's operations.
#[derive(Debug)]
struct CircuitState {
    failures: crate::supervisor::Circuit,
    /// Tripped: calls fail `unavailable` until then, then one probe goes through.
    open_until: Option<Instant>,
    /// A probe is in flight: others still fail fast.
    probing: bool,
    trips: u64,
}

/// One Connection's operations: declarations, policy, limits, channel, counters.
#[derive(Debug)]
pub struct ConnectionOps {
    name: String,
    connector: String,
    operations: BTreeMap<String, Compiled>,
    policy: ConnectionOperations,
    /// `maxParallel` calls in flight.
    slots: Arc<Semaphore>,
    /// Invokes waiting for a slot.
    waiting: Mutex<u32>,
    bucket: Mutex<Option<TokenBucket>>,
    /// A provider's 429 holds every call until then.
    hold_until: Mutex<Option<Instant>>,
    link: Mutex<Option<CallLink>>,
    /// Wakes calls waiting for a (re)started connector.
    attached: Notify,
    /// `circuit`: provider failures, and whether calls are held off.
    circuit: Option<Mutex<CircuitState>>,
    stats: Mutex<BTreeMap<String, stats::Counters>>,
}

impl ConnectionOps {
    /// `connection`'s operations as `connector` declares them, schemas
    /// compiled (the bundle was validated: they compile).
    pub fn new(c: &crate::bundle::Connection, connector: &crate::bundle::Connector) -> Self {
        let compile = |s: &Option<serde_json::Value>| {
            s.as_ref().and_then(|s| jsonschema::validator_for(s).ok())
        };
        let operations = connector
            .operations
            .iter()
            .map(|d| {
                let compiled = Compiled {
                    seconds: crate::metrics::operation_seconds(&c.name, &d.name),
                    input: compile(&d.input),
                    output: compile(&d.output),
                    decl: d.clone(),
                };
                (d.name.clone(), compiled)
            })
            .collect();
        Self {
            name: c.name.clone(),
            connector: connector.name.clone(),
            operations,
            slots: Arc::new(Semaphore::new(c.operations.max_parallel.max(1) as usize)),
            waiting: Mutex::new(0),
            bucket: Mutex::new(
                c.operations
                    .rate_limit
                    .map(|l| TokenBucket::new(l, Instant::now())),
            ),
            hold_until: Mutex::new(None),
            policy: c.operations.clone(),
            link: Mutex::new(None),
            attached: Notify::new(),
            circuit: c.operations.circuit.as_ref().map(|config| {
                Mutex::new(CircuitState {
                    failures: crate::supervisor::Circuit::new(config),
                    open_until: None,
                    probing: false,
                    trips: 0,
                })
            }),
            stats: Mutex::new(BTreeMap::new()),
        }
    }

    /// The connector process is ready: calls go to it through `outbox`.
    pub fn attach(&self, outbox: Outbox<ToConnector>) {
        *self.link.lock().expect("ops lock") = Some(CallLink {
            outbox,
            pending: HashMap::new(),
        });
        self.attached.notify_waiters();
    }

    /// The connector process is gone: calls in flight fail (`transient`).
    pub fn detach(&self) {
        // Dropping the senders wakes every waiting invoke with an error.
        *self.link.lock().expect("ops lock") = None;
    }

    /// A `callResult` from the connector; false when no call has that id
    /// (answered too late, or never sent).
    pub fn resolve(&self, result: CallResult) -> bool {
        let waiter = self
            .link
            .lock()
            .expect("ops lock")
            .as_mut()
            .and_then(|l| l.pending.remove(&result.id));
        match waiter {
            Some(tx) => tx.send(result).is_ok(),
            None => false,
        }
    }

    /// `degraded` while its circuit is tripped, else `active`.
    pub fn state(&self) -> &'static str {
        match &self.circuit {
            Some(c) if c.lock().expect("ops lock").open_until.is_some() => "degraded",
            _ => "active",
        }
    }

    /// Times its circuit tripped.
    pub fn circuit_trips(&self) -> u64 {
        self.circuit
            .as_ref()
            .map_or(0, |c| c.lock().expect("ops lock").trips)
    }

    /// Its Connector declares at least one operation.
    pub fn declares_operations(&self) -> bool {
        !self.operations.is_empty()
    }

    /// Counters of every declared operation, used or not, for `status`.
    pub fn stats(&self) -> BTreeMap<String, OperationStats> {
        let stats = self.stats.lock().expect("ops lock");
        self.operations
            .keys()
            .map(|name| {
                let snapshot = stats.get(name).map(|c| c.snapshot()).unwrap_or_default();
                (name.clone(), snapshot)
            })
            .collect()
    }
}

/// Every Connection's operations and every Agent's grants: shared by the
/// connection roles (which attach their channel), the agent instances
/// (which invoke) and the control socket (which reports).
#[derive(Debug)]
pub struct Operations {
    /// By Connection; an apply puts and removes them.
    connections: std::sync::RwLock<BTreeMap<String, Arc<ConnectionOps>>>,
    /// Each Agent's `spec.invoke`; an apply changes them.
    grants: std::sync::RwLock<BTreeMap<String, Vec<InvokeGrant>>>,
    instance_buckets: Mutex<HashMap<(String, String, String), TokenBucket>>,
    /// `--max-invocations-per-second`.
    global_bucket: Mutex<Option<TokenBucket>>,
    /// `--max-retries`.
    max_retries: u32,
    audit: AuditLog,
    /// Where idempotency records are kept.
    journal: Journal,
    /// One turn at a time per (connection, operation, idempotency key): a
    /// concurrent repeat waits for the first, then gets its result.
    turns: Mutex<HashMap<IdempotencyKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Jobs not yet settled, by id, with what cancels them.
    open_jobs: Mutex<HashMap<String, tokio_util::sync::CancellationToken>>,
    /// Where `job.*` events go (set once the router exists; cleared at shutdown).
    router: Mutex<Option<crate::router::Router>>,
    /// Cluster mode: invokes of Connections running elsewhere go there;
    /// idempotency and job records and `job.*` events live in NATS.
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

impl Operations {
    /// The operations of `bundle`, with every schema compiled (the bundle
    /// was validated: they compile).
    pub fn new(
        bundle: &Bundle,
        audit: AuditLog,
        journal: Journal,
        limits: GlobalLimits,
    ) -> Arc<Self> {
        let connections = bundle
            .connections
            .iter()
            .map(|c| {
                let ops = ConnectionOps::new(c, &bundle.connectors[&c.connector]);
                (c.name.clone(), Arc::new(ops))
            })
            .collect();
        let grants = bundle
            .agents
            .values()
            .map(|a| (a.name.clone(), a.invoke.clone()))
            .collect();
        Arc::new(Self {
            connections: std::sync::RwLock::new(connections),
            grants: std::sync::RwLock::new(grants),
            instance_buckets: Mutex::new(HashMap::new()),
            global_bucket: Mutex::new(limits.invocations_per_second.map(|rate| {
                let limit = crate::bundle::RateLimit {
                    per_second: rate,
                    burst: rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
                };
                TokenBucket::new(limit, Instant::now())
            })),
            max_retries: limits.max_retries,
            audit,
            journal,
            turns: Mutex::new(HashMap::new()),
            open_jobs: Mutex::new(HashMap::new()),
            router: Mutex::new(None),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Cluster mode (set once, before any invoke).
    pub fn set_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// Lets settled jobs send their events through `router` (`None`: stop sending).
    pub fn set_router(&self, router: Option<crate::router::Router>) {
        *self.router.lock().expect("ops lock") = router;
    }

    /// Every Connection's operations, by name.
    pub fn connections(&self) -> Vec<(String, Arc<ConnectionOps>)> {
        let connections = self.connections.read().expect("ops lock");
        connections
            .iter()
            .map(|(name, ops)| (name.clone(), ops.clone()))
            .collect()
    }

    /// The operations of the Connection called `name`.
    pub fn connection(&self, name: &str) -> Option<Arc<ConnectionOps>> {
        let connections = self.connections.read().expect("ops lock");
        connections.get(name).cloned()
    }

    /// An apply's new operations of a Connection: calls from now on are
    /// governed by them. A connector process attached to the old ones stays
    /// attached, with its calls in flight, and the counters carry over;
    /// calls already past their checks finish under the old limits.
    pub fn put_connection(&self, ops: ConnectionOps) {
        let mut connections = self.connections.write().expect("ops lock");
        if let Some(old) = connections.get(&ops.name) {
            *ops.link.lock().expect("ops lock") = old.link.lock().expect("ops lock").take();
            *ops.stats.lock().expect("ops lock") =
                std::mem::take(&mut *old.stats.lock().expect("ops lock"));
            ops.attached.notify_waiters();
        }
        connections.insert(ops.name.clone(), Arc::new(ops));
    }

    /// A Connection an apply removed.
    pub fn remove_connection(&self, name: &str) {
        self.connections.write().expect("ops lock").remove(name);
    }

    /// An Agent's `spec.invoke` after an apply (`None`: the Agent is gone).
    pub fn set_grants(&self, agent: &str, grants: Option<Vec<InvokeGrant>>) {
        let mut all = self.grants.write().expect("ops lock");
        match grants {
            Some(g) => all.insert(agent.to_string(), g),
            None => all.remove(agent),
        };
    }
}
