//! The instance table: one agent process per `(agent, instanceKey)`.
//!
//! # Theory of operation
//!
//! [`Router::reserve`] looks the pair up; the first event for a pair starts
//! a supervised agent instance (an [`InstanceRole`] under [`supervise`](crate::supervisor::supervise)) with
//! its own bounded queue of `maxQueue` events. Events then flow through that
//! queue in the order they were accepted. A connection reserves an event's
//! place before accepting it; a full queue refuses (`overflow: reject`) or
//! makes it wait, which holds up the connection that sent the event
//! (backpressure). Events recovered from the journal at start go in through
//! [`Router::recover`]. An instance whose process exits is restarted (or,
//! when idle, started again on its next event) by its supervisor; one whose
//! process has been stopped with nothing to do for the Agent's `instanceTtl`
//! is removed from the table, the status registry and its Agent's slots, and
//! its log is closed. A reservation that races with that removal finds the
//! old queue closed and starts a new instance; an event that made it into
//! the old queue first is handed to the new one.

mod deliveries;
mod instance;
mod launch;
mod reconfigure;
mod slots;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use instance::{InstanceRole, InstanceSetup, Pending};
use launch::Launch;
pub use slots::{AgentSlots, InstanceShared};

use crate::bundle::{Agent, Overflow};
use crate::journal::Journal;
use crate::logs::StateDir;
use crate::status::{ProcessStatus, Registry};

/// Why an event could not be handed to an agent instance.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The agent is not in the bundle.
    #[error("agent '{0}' does not exist")]
    UnknownAgent(String),
    /// The instance is gone because the orchestrator is stopping.
    #[error("agent instance {0}/{1} is stopping")]
    Stopping(String, String),
    /// `--max-pending` events are accepted and not yet delivered (`overflow: reject`).
    #[error("{0} events are waiting for delivery (--max-pending)")]
    TooManyPending(usize),
    /// The instance's queue is full (`overflow: reject`).
    #[error("the queue of agent instance {0}/{1} is full")]
    Overloaded(String, String),
    /// Its log could not be opened.
    #[error("cannot open the log of agent instance {0}/{1}: {2}")]
    Log(String, String, #[source] std::io::Error),
    /// The Agent is declared with `enabled: false`.
    #[error("agent '{0}' is disabled")]
    Disabled(String),
}

/// Room reserved in one instance's queue for one event.
#[derive(Debug)]
pub struct Slot {
    permit: mpsc::OwnedPermit<Pending>,
    /// One of the `--max-pending` places; given back if the slot goes unused.
    held: OwnedSemaphorePermit,
}

impl Slot {
    /// Puts the event in the reserved place. Its `--max-pending` place goes
    /// with it, and comes back when it is acknowledged or dead-lettered.
    pub fn send(self, mut pending: Pending) {
        self.held.forget();
        pending.held = true;
        self.permit.send(pending);
    }
}

/// An Agent ready to be started: its resource and its resolved program.
#[derive(Debug)]
pub struct AgentProgram {
    /// The Agent resource as its instances were started (program, `maxQueue`,
    /// `maxInstances`); the limits an apply may change live are in `live`.
    pub agent: Agent,
    /// The resolved entry.
    pub program: PathBuf,
    /// Its `maxInstances` slots, shared by its instances.
    pub slots: Arc<AgentSlots>,
    /// Its sandbox plan on this machine, if it has a sandbox section.
    pub sandbox: Option<Arc<crate::sandbox::SandboxPlan>>,
    /// Its `spec.secrets`, resolved at start; sent in each instance's `init`.
    pub secrets: Arc<ipc_proto::Secrets>,
    /// The Agent as it is now: an apply that changes only its delivery
    /// limits sends the new one here, and its running instances take it up.
    pub live: tokio::sync::watch::Sender<Arc<Agent>>,
    /// Stops its instances: cancelled when an apply replaces, disables or
    /// removes it (a child of the router's `stop` once it is in a router).
    stop: CancellationToken,
    /// Its instances' tasks, so an apply can wait for them to be gone.
    tasks: TaskTracker,
}

impl AgentProgram {
    /// `agent` run from `program`, its instances given `secrets` in `init`.
    pub fn new(agent: Agent, program: PathBuf, secrets: ipc_proto::Secrets) -> Self {
        let slots = Arc::new(AgentSlots::new(agent.max_instances));
        let sandbox = crate::sandbox::plan_for(agent.program.sandbox.as_ref());
        let (live, _) = tokio::sync::watch::channel(Arc::new(agent.clone()));
        Self {
            agent,
            program,
            slots,
            sandbox,
            secrets: Arc::new(secrets),
            live,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}

/// What a [`Router`] is made of.
#[derive(Debug)]
pub struct RouterSetup {
    /// Every Agent, by name.
    pub agents: BTreeMap<String, AgentProgram>,
    /// The state directory (logs and per-instance state).
    pub state: StateDir,
    /// Working directory of agent processes (the bundle root).
    pub cwd: PathBuf,
    /// The shim to start agents through.
    pub shim: Option<PathBuf>,
    /// The journal.
    pub journal: Journal,
    /// Where instances register their status.
    pub registry: Arc<Registry>,
    /// Instances run under it.
    pub tracker: TaskTracker,
    /// Stops every instance gracefully.
    pub stop: CancellationToken,
    /// Kills every instance at once.
    pub kill_now: CancellationToken,
    /// Accepted events not yet delivered, across every instance, at most.
    pub max_pending: usize,
    /// Where instances' lifecycle changes are told.
    pub console: crate::console::Console,
    /// Where instances' invokes go.
    pub operations: Arc<crate::operations::Operations>,
    /// `audit.log`, for pinned programs that do not match.
    pub audit: crate::logs::AuditLog,
}

/// Cloneable handle to the instance table.
#[derive(Clone, Debug)]
pub struct Router {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Every Agent by name; an apply adds, replaces and removes them.
    agents: std::sync::RwLock<BTreeMap<String, Arc<AgentProgram>>>,
    /// By agent, then instance key: looked up by `&str` on every event, no allocation.
    instances: Mutex<HashMap<String, HashMap<String, Instance>>>,
    state: StateDir,
    cwd: PathBuf,
    shim: Option<PathBuf>,
    journal: Journal,
    registry: Arc<Registry>,
    tracker: TaskTracker,
    stop: CancellationToken,
    kill_now: CancellationToken,
    /// Places for accepted, undelivered events (`--max-pending`).
    pending_limit: Arc<Semaphore>,
    max_pending: usize,
    console: crate::console::Console,
    operations: Arc<crate::operations::Operations>,
    audit: crate::logs::AuditLog,
}

#[derive(Debug)]
struct Instance {
    queue: mpsc::Sender<Pending>,
    /// Stops this instance alone (cluster mode: its partition moved away).
    stop: CancellationToken,
}

impl Instance {
    /// An entry for an instance of `program`, fed by `queue`.
    fn new(queue: mpsc::Sender<Pending>, program: &AgentProgram) -> Self {
        Self {
            queue,
            stop: program.stop.child_token(),
        }
    }
}

impl Router {
    /// A router for `setup.agents`; instances run under `setup.tracker` and stop with `setup.stop`.
    pub fn new(setup: RouterSetup) -> Self {
        let RouterSetup {
            agents,
            state,
            cwd,
            shim,
            journal,
            registry,
            tracker,
            stop,
            kill_now,
            max_pending,
            console,
            operations,
            audit,
        } = setup;
        let agents = agents
            .into_iter()
            .map(|(name, mut program)| {
                program.stop = stop.child_token();
                (name, Arc::new(program))
            })
            .collect();
        let shared = Shared {
            agents: std::sync::RwLock::new(agents),
            instances: Mutex::new(HashMap::new()),
            state,
            cwd,
            shim,
            journal,
            registry,
            tracker,
            stop,
            kill_now,
            pending_limit: Arc::new(Semaphore::new(max_pending.clamp(1, Semaphore::MAX_PERMITS))),
            max_pending,
            console,
            operations,
            audit,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Reserves room for one event in the queue of `agent`'s instance `key`
    /// (starting the instance if it is new): at once or `Overloaded` with
    /// `Overflow::Reject`, waiting for room with `Overflow::Wait`. Reserving
    /// before the event is journaled means an accepted event always has a place.
    pub async fn reserve(
        &self,
        swarm: &str,
        agent: &str,
        key: &str,
        overflow: Overflow,
    ) -> Result<Slot, DispatchError> {
        let stopping = || DispatchError::Stopping(agent.to_string(), key.to_string());
        let total = self.shared.pending_limit.clone();
        let held = match overflow {
            Overflow::Reject => total
                .try_acquire_owned()
                .map_err(|_| DispatchError::TooManyPending(self.shared.max_pending))?,
            Overflow::Wait => total.acquire_owned().await.map_err(|_| stopping())?,
        };
        // A queue closes when its instance expires (`instanceTtl`) between
        // the lookup and the reservation: the next lookup starts a new one.
        for _ in 0..3 {
            let queue = self.queue_for(swarm, agent, key).await?;
            let permit = match overflow {
                Overflow::Reject => match queue.try_reserve_owned() {
                    Ok(permit) => Some(permit),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        return Err(DispatchError::Overloaded(agent.into(), key.into()));
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => None,
                },
                Overflow::Wait => queue.reserve_owned().await.ok(),
            };
            match permit {
                Some(permit) => return Ok(Slot { permit, held }),
                None if self.shared.stop.is_cancelled() => break,
                None => continue,
            }
        }
        Err(stopping())
    }

    /// Starts the instance `key` of `agent` with events recovered from the
    /// journal (or left in the queue of an instance that expired), which it
    /// delivers before anything new. An instance that exists already gets
    /// them queued.
    pub async fn recover(
        &self,
        swarm: &str,
        agent: &str,
        key: &str,
        backlog: Vec<Pending>,
    ) -> Result<(), DispatchError> {
        match self.lookup(agent, key) {
            None => {
                self.start_instance(swarm, agent, key, backlog).await?;
            }
            Some(queue) => {
                for p in backlog {
                    queue
                        .send(p)
                        .await
                        .map_err(|_| DispatchError::Stopping(agent.to_string(), key.to_string()))?;
                }
            }
        }
        Ok(())
    }

    /// Every Agent and how many instances it has.
    pub fn agent_summaries(&self) -> Vec<crate::status::AgentSummary> {
        let agents = self.shared.agents.read().expect("router lock");
        let instances = self.shared.instances.lock().expect("router lock");
        agents
            .iter()
            .map(|(name, program)| crate::status::AgentSummary {
                name: name.clone(),
                instances: instances.get(name).map_or(0, HashMap::len),
                disabled: !program.agent.enabled,
            })
            .collect()
    }

    /// Agent instances in the table.
    pub fn instances(&self) -> usize {
        let instances = self.shared.instances.lock().expect("router lock");
        instances.values().map(HashMap::len).sum()
    }

    /// The Agent called `name`, as it runs now.
    pub fn program(&self, name: &str) -> Option<Arc<AgentProgram>> {
        let agents = self.shared.agents.read().expect("router lock");
        agents.get(name).cloned()
    }

    fn lookup(&self, agent: &str, key: &str) -> Option<mpsc::Sender<Pending>> {
        let instances = self.shared.instances.lock().expect("router lock");
        let instance = instances.get(agent)?.get(key)?;
        Some(instance.queue.clone())
    }

    async fn queue_for(
        &self,
        swarm: &str,
        agent: &str,
        key: &str,
    ) -> Result<mpsc::Sender<Pending>, DispatchError> {
        match self.lookup(agent, key) {
            Some(queue) => Ok(queue),
            None => self.start_instance(swarm, agent, key, Vec::new()).await,
        }
    }

    /// Starts the instance with `backlog` and returns its queue; if another
    /// caller started it meanwhile, the backlog goes into that one's queue.
    ///
    /// Boxed: an instance's task may come back here when it expires.
    fn start_instance<'a>(
        &'a self,
        swarm: &'a str,
        agent: &'a str,
        key: &'a str,
        backlog: Vec<Pending>,
    ) -> BoxFuture<'a, Result<mpsc::Sender<Pending>, DispatchError>> {
        Box::pin(self.start_instance_inner(swarm, agent, key, backlog))
    }

    async fn start_instance_inner(
        &self,
        swarm: &str,
        agent: &str,
        key: &str,
        backlog: Vec<Pending>,
    ) -> Result<mpsc::Sender<Pending>, DispatchError> {
        let program = self
            .program(agent)
            .ok_or_else(|| DispatchError::UnknownAgent(agent.to_string()))?;
        if !program.agent.enabled {
            return Err(DispatchError::Disabled(agent.to_string()));
        }
        let (tx, rx) = mpsc::channel(program.agent.max_queue.max(1) as usize);
        let instance = Instance::new(tx.clone(), &program);
        let stop = instance.stop.clone();
        let existing = {
            let mut instances = self.shared.instances.lock().expect("router lock");
            let keys = instances.entry(agent.to_string()).or_default();
            match keys.get(key) {
                Some(instance) => Some(instance.queue.clone()),
                None => {
                    keys.insert(key.to_string(), instance);
                    None
                }
            }
        };
        if let Some(queue) = existing {
            for p in backlog {
                queue
                    .send(p)
                    .await
                    .map_err(|_| DispatchError::Stopping(agent.to_string(), key.to_string()))?;
            }
            return Ok(queue);
        }
        let launch = Launch {
            swarm,
            agent,
            key,
            program,
            queue: rx,
            backlog,
            stop,
        };
        match self.launch(launch).await {
            Ok(()) => Ok(tx),
            Err((e, rx)) => {
                // Its entry goes; what was reserved in it meanwhile finds a new one.
                self.forget(swarm, agent, key, None, rx).await;
                Err(e)
            }
        }
    }

    /// Takes an instance's entry out of the table (and its status row and
    /// slot, when it had them). Events that reached its queue meanwhile (a
    /// reservation made just before) go to a new instance.
    async fn forget(
        &self,
        swarm: &str,
        agent: &str,
        key: &str,
        ran: Option<(&Arc<ProcessStatus>, &Arc<InstanceShared>, &AgentProgram)>,
        queue: mpsc::Receiver<Pending>,
    ) {
        self.take_entry(agent, key);
        if let Some((status, instance, program)) = ran {
            self.shared.registry.remove(status);
            program.slots.remove(instance);
        }
        let late = drain(queue).await;
        if late.is_empty() {
            return;
        }
        if let Err(e) = self.recover(swarm, agent, key, late).await {
            tracing::error!("agent instance {agent}/{key}: events queued while it went away: {e}");
        }
    }

    /// Stops every instance whose `(agent, key)` matches, and resolves once
    /// they have left the table (cluster mode: a partition moves to
    /// another node). What they held and had not delivered is dropped: the
    /// cluster's stream still has it for the partition's next owner.
    pub async fn release_where(&self, matches: impl Fn(&str, &str) -> bool) {
        let stopped: Vec<(String, String, mpsc::Sender<Pending>)> = {
            let instances = self.shared.instances.lock().expect("router lock");
            instances
                .iter()
                .flat_map(|(agent, keys)| keys.iter().map(move |(key, i)| (agent, key, i)))
                .filter(|(agent, key, _)| matches(agent, key))
                .map(|(agent, key, i)| {
                    i.stop.cancel();
                    (agent.clone(), key.clone(), i.queue.clone())
                })
                .collect()
        };
        for (agent, key, queue) in stopped {
            // Its task takes the entry out as it ends; the queue closes then.
            tokio::select! {
                _ = queue.closed() => {}
                _ = self.shared.stop.cancelled() => return,
            }
            drop((agent, key));
        }
    }

    fn take_entry(&self, agent: &str, key: &str) {
        let mut instances = self.shared.instances.lock().expect("router lock");
        if let Some(keys) = instances.get_mut(agent) {
            keys.remove(key);
            if keys.is_empty() {
                instances.remove(agent);
            }
        }
    }
}

/// Closes `queue` (it takes no new reservation; those made before still
/// land) and takes out everything in it.
async fn drain(mut queue: mpsc::Receiver<Pending>) -> Vec<Pending> {
    queue.close();
    let mut late = Vec::new();
    while let Some(p) = queue.recv().await {
        late.push(p);
    }
    late
}
