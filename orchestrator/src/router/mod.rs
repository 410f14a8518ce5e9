//! The instance table: one agent process per `(agent, instanceKey)`.
//!
//! # Theory of operation
//!
//! [`Router::reserve`] looks the pair up; the first event for a pair starts
//! a supervised agent instance (an [`InstanceRole`] under [`supervise`]) with
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
mod slots;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use instance::{InstanceRole, InstanceSetup, Pending};
pub use slots::{AgentSlots, InstanceShared};

use crate::bundle::{Agent, Overflow};
use crate::journal::Journal;
use crate::logs::{LogSink, StateDir};
use crate::status::{ProcessKind, ProcessStatus, Registry};
use crate::supervisor::{ChildSpec, Pin, Supervision, supervise};

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
    /// The Agent resource.
    pub agent: Agent,
    /// The resolved entry.
    pub program: PathBuf,
    /// Its `maxInstances` slots, shared by its instances.
    pub slots: Arc<AgentSlots>,
    /// Its sandbox plan on this machine, if it has a sandbox section.
    pub sandbox: Option<Arc<crate::sandbox::SandboxPlan>>,
    /// Its `spec.secrets`, resolved at start; sent in each instance's `init`.
    pub secrets: Arc<ipc_proto::Secrets>,
}

impl AgentProgram {
    /// `agent` run from `program`, its instances given `secrets` in `init`.
    pub fn new(agent: Agent, program: PathBuf, secrets: ipc_proto::Secrets) -> Self {
        let slots = Arc::new(AgentSlots::new(agent.max_instances));
        let sandbox = crate::sandbox::plan_for(agent.program.sandbox.as_ref());
        Self {
            agent,
            program,
            slots,
            sandbox,
            secrets: Arc::new(secrets),
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
    agents: BTreeMap<String, AgentProgram>,
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
        let shared = Shared {
            agents,
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
        let instances = self.shared.instances.lock().expect("router lock");
        self.shared
            .agents
            .keys()
            .map(|name| crate::status::AgentSummary {
                name: name.clone(),
                instances: instances.get(name).map_or(0, HashMap::len),
            })
            .collect()
    }

    /// Agent instances in the table.
    pub fn instances(&self) -> usize {
        let instances = self.shared.instances.lock().expect("router lock");
        instances.values().map(HashMap::len).sum()
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
    /// Its log is opened off the async threads and outside the table's lock.
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
        let shared = &*self.shared;
        let program = shared
            .agents
            .get(agent)
            .ok_or_else(|| DispatchError::UnknownAgent(agent.to_string()))?;
        let (status, control) = ProcessStatus::new(ProcessKind::Agent, agent, Some(key));
        let state_dir = shared.state.agent_state(agent, key);
        let log_path = shared.state.agent_log(agent, key);
        let log = {
            let (status, plan, dir) = (status.clone(), program.sandbox.clone(), state_dir.clone());
            tokio::task::spawn_blocking(move || {
                let log = LogSink::open(&log_path)?;
                if let Some(plan) = &plan {
                    crate::sandbox::grant_dir(plan, &dir, &log, &status);
                }
                Ok(log)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| DispatchError::Log(agent.to_string(), key.to_string(), e))?
        };

        let (tx, rx) = mpsc::channel(program.agent.max_queue.max(1) as usize);
        let existing = {
            let mut instances = shared.instances.lock().expect("router lock");
            let keys = instances.entry(agent.to_string()).or_default();
            match keys.get(key) {
                Some(instance) => Some(instance.queue.clone()),
                None => {
                    keys.insert(key.to_string(), Instance { queue: tx.clone() });
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

        shared.registry.add(status.clone());
        let instance_shared = Arc::new(InstanceShared::default());
        program.slots.add(instance_shared.clone());
        let role = InstanceRole::new(InstanceSetup {
            secrets: program.secrets.clone(),
            agent: program.agent.clone(),
            key: key.to_string(),
            swarm: swarm.to_string(),
            state_dir,
            queue: rx,
            log: log.clone(),
            journal: shared.journal.clone(),
            status: status.clone(),
            shared: instance_shared.clone(),
            slots: program.slots.clone(),
            backlog,
            pending_limit: shared.pending_limit.clone(),
            operations: shared.operations.clone(),
        });
        let p = &program.agent.program;
        let sup = Supervision {
            spec: ChildSpec {
                program: program.program.clone(),
                args: p.args.clone(),
                env: p.env.clone(),
                cwd: shared.cwd.clone(),
                protocol: p.protocol,
                max_frame_bytes: p.max_frame_bytes,
                max_protocol_errors: p.max_protocol_errors,
                shim: shared.shim.clone(),
                inherit_stdin: false,
                sandbox: program.sandbox.clone(),
                pin: p.entry_sha256.clone().map(|sha256| Pin {
                    sha256,
                    audit: shared.audit.clone(),
                    target: format!("agent/{agent}/{key}"),
                }),
            },
            restart: p.restart.clone(),
            health_interval: p.health_interval,
            log,
            status: status.clone(),
            control,
            stop: shared.stop.child_token(),
            kill_now: shared.kill_now.clone(),
            console: shared.console.clone(),
        };
        let router = self.clone();
        let (swarm, agent, key) = (swarm.to_string(), agent.to_string(), key.to_string());
        shared.tracker.spawn(async move {
            let role = supervise(role, sup).await;
            if let Some(queue) = role.into_expired() {
                let gone = Gone {
                    status,
                    instance: instance_shared,
                    queue,
                };
                router.remove(&swarm, &agent, &key, gone).await;
            }
        });
        Ok(tx)
    }

    /// Removes an instance that expired from the table, the registry and its
    /// Agent's slots. Events that reached its queue after it decided to go
    /// (a reservation made just before) go to a new instance.
    async fn remove(&self, swarm: &str, agent: &str, key: &str, gone: Gone) {
        let Gone {
            status,
            instance,
            mut queue,
        } = gone;
        {
            let mut instances = self.shared.instances.lock().expect("router lock");
            if let Some(keys) = instances.get_mut(agent) {
                keys.remove(key);
                if keys.is_empty() {
                    instances.remove(agent);
                }
            }
        }
        self.shared.registry.remove(&status);
        if let Some(program) = self.shared.agents.get(agent) {
            program.slots.remove(&instance);
        }
        // Closed, the queue takes no new reservation; those made before still land.
        queue.close();
        let mut late = Vec::new();
        while let Some(p) = queue.recv().await {
            late.push(p);
        }
        if late.is_empty() {
            return;
        }
        if let Err(e) = self.recover(swarm, agent, key, late).await {
            tracing::error!("agent instance {agent}/{key}: events queued while it expired: {e}");
        }
    }
}

/// What an expired instance leaves to be cleaned up.
struct Gone {
    status: Arc<ProcessStatus>,
    instance: Arc<InstanceShared>,
    queue: mpsc::Receiver<Pending>,
}
