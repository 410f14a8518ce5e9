//! One agent instance: its queue, its deliveries in flight, its redeliveries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipc_proto::{
    AgentInit, DeliveredEvent, FromAgent, PROTOCOL_VERSION, Ping, ProtocolError, Ready, Shutdown,
    ToAgent,
};
use std::sync::atomic::Ordering;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::deliveries::{self, Deliveries};
use super::slots::{AgentSlots, InstanceShared};
use crate::bundle::Agent;
use crate::journal::Journal;
use crate::logs::LogSink;
use crate::operations::Operations;
use crate::status::ProcessStatus;
use crate::supervisor::{Link, Role, Served};

mod messages;
mod ops;
mod send;

/// An event waiting for (another) delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The event (boxed: an instance's queue allocates its first block of
    /// slots up front, and a slot this small keeps that block at ~256 bytes).
    pub event: Box<DeliveredEvent>,
    /// The attempt it will be delivered as (1 first).
    pub attempt: u32,
    /// It holds one of the `--max-pending` places (set by [`Slot::send`](super::Slot::send)),
    /// given back when it is acknowledged or dead-lettered.
    pub held: bool,
    /// Cluster mode: acknowledges it to JetStream (instead of the journal).
    pub receipt: Option<crate::cluster::Receipt>,
}

/// Everything one agent instance is made of.
#[derive(Debug)]
pub struct InstanceSetup {
    /// The Agent.
    pub agent: Agent,
    /// Its instance key.
    pub key: String,
    /// The Swarm it serves (for `init`).
    pub swarm: String,
    /// `state/agents/<agent>/<key>/`.
    pub state_dir: PathBuf,
    /// Where the router puts its events.
    pub queue: mpsc::Receiver<Pending>,
    /// Its log.
    pub log: LogSink,
    /// The journal.
    pub journal: Journal,
    /// Its status.
    pub status: Arc<ProcessStatus>,
    /// What its siblings know about it.
    pub shared: Arc<InstanceShared>,
    /// Its Agent's `maxInstances` slots.
    pub slots: Arc<AgentSlots>,
    /// Events recovered from the journal, delivered before anything new.
    pub backlog: Vec<Pending>,
    /// The `--max-pending` places, given back as events are done.
    pub pending_limit: Arc<tokio::sync::Semaphore>,
    /// Where its invokes go.
    pub operations: Arc<Operations>,
    /// Its Agent's own secrets, for `init`.
    pub secrets: Arc<ipc_proto::Secrets>,
    /// Its Agent's delivery limits as an apply changes them.
    pub live: tokio::sync::watch::Receiver<Arc<Agent>>,
}

/// The [`Role`] of one agent process per `(agent, instanceKey)`.
///
/// Deliveries go out in the order events were accepted, at most
/// `maxInFlight` unacknowledged at a time. Work the process did not finish
/// (it crashed, or nacked with `retry`) goes back to the front, so a
/// redelivered event still comes before later ones.
#[derive(Debug)]
pub struct InstanceRole {
    agent: Agent,
    key: String,
    swarm: String,
    state_dir: PathBuf,
    queue: mpsc::Receiver<Pending>,
    queue_open: bool,
    /// In flight and waiting for another attempt; goes before `queue`.
    deliveries: Deliveries,
    log: LogSink,
    journal: Journal,
    status: Arc<ProcessStatus>,
    shared: Arc<InstanceShared>,
    slots: Arc<AgentSlots>,
    /// This instance's running slot under `maxInstances`, while its process runs.
    permit: Option<OwnedSemaphorePermit>,
    pending_limit: Arc<tokio::sync::Semaphore>,
    operations: Arc<Operations>,
    /// Its invokes being governed now.
    invokes: Arc<std::sync::atomic::AtomicUsize>,
    /// Its process stayed stopped with nothing to do for `instanceTtl`.
    expired: bool,
    /// Its process named the `payload` feature in `ready`: deliveries carry `event.payload`.
    wants_payload: bool,
    /// Its Agent's delivery counters in `/metrics`.
    metrics: crate::metrics::AgentMetrics,
    /// Its Agent's own secrets, for `init`.
    secrets: Arc<ipc_proto::Secrets>,
    /// Its Agent's delivery limits as an apply changes them.
    live: tokio::sync::watch::Receiver<Arc<Agent>>,
}

/// Invokes of one instance governed at once, at most.
const MAX_INVOKES_IN_FLIGHT: usize = 1024;

impl InstanceRole {
    /// A role for one instance, fed by its queue.
    pub fn new(setup: InstanceSetup) -> Self {
        let InstanceSetup {
            agent,
            key,
            swarm,
            state_dir,
            queue,
            log,
            journal,
            status,
            shared,
            slots,
            backlog,
            pending_limit,
            operations,
            secrets,
            mut live,
        } = setup;
        live.mark_unchanged();
        let mut deliveries = Deliveries::new(agent.max_in_flight, agent.max_attempts);
        for p in backlog {
            deliveries.hold(p, Instant::now());
        }
        Self {
            key,
            swarm,
            state_dir,
            queue,
            queue_open: true,
            deliveries,
            log,
            journal,
            status,
            shared,
            slots,
            permit: None,
            pending_limit,
            operations,
            invokes: Arc::default(),
            expired: false,
            wants_payload: false,
            metrics: crate::metrics::AgentMetrics::new(&agent.name),
            secrets,
            live,
            agent,
        }
    }

    /// An apply changed its Agent's delivery limits: they hold from now on.
    fn take_up_limits(&mut self) {
        let agent = self.live.borrow_and_update().clone();
        self.deliveries
            .set_limits(agent.max_in_flight, agent.max_attempts);
        self.log.note(&format!(
            "limits changed by an apply: maxInFlight {}, maxAttempts {}, deliveryTimeout {}",
            agent.max_in_flight,
            agent.max_attempts,
            humantime::format_duration(agent.delivery_timeout)
        ));
        self.agent = (*agent).clone();
    }

    /// What it had not delivered when its Agent was replaced, disabled or
    /// removed by an apply (oldest first), and its queue with what came after.
    pub fn into_leftovers(mut self) -> (Vec<Pending>, mpsc::Receiver<Pending>) {
        (self.deliveries.take_all(), self.queue)
    }

    /// The queue of an instance that expired (`instanceTtl`): its
    /// supervision has ended and it is to be removed. `None` otherwise.
    pub fn into_expired(self) -> Option<mpsc::Receiver<Pending>> {
        self.expired.then_some(self.queue)
    }

    /// Nothing queued, waiting for a retry, or in flight.
    fn is_idle(&self) -> bool {
        self.deliveries.is_empty() && self.queue.is_empty()
    }
}

impl Role for InstanceRole {
    type In = FromAgent;
    type Out = ToAgent;

    fn init(&mut self) -> ToAgent {
        ToAgent::Init(AgentInit {
            protocol: PROTOCOL_VERSION,
            agent: self.agent.name.clone(),
            instance_key: self.key.clone(),
            swarm: self.swarm.clone(),
            state_dir: self.state_dir.display().to_string(),
            secrets: (*self.secrets).clone(),
        })
    }

    fn shutdown(grace: Duration) -> ToAgent {
        ToAgent::Shutdown(Shutdown {
            grace_ms: grace.as_millis() as u64,
        })
    }

    fn error(message: String) -> ToAgent {
        ToAgent::Error(ProtocolError { message })
    }

    fn ping(nonce: u64) -> ToAgent {
        ToAgent::Ping(Ping { nonce })
    }

    fn pong(msg: &FromAgent) -> Option<u64> {
        match msg {
            FromAgent::Pong(p) => Some(p.nonce),
            _ => None,
        }
    }

    fn ready(msg: &FromAgent) -> Option<&Ready> {
        match msg {
            FromAgent::Ready(r) => Some(r),
            _ => None,
        }
    }

    fn on_ready(&mut self, ready: &Ready) {
        self.wants_payload = ready.has_feature(ipc_proto::FEATURE_PAYLOAD);
    }

    fn before_ready(&mut self, msg: FromAgent) -> Result<(), String> {
        match msg {
            FromAgent::Log(l) => {
                self.log.line(l.level.as_str(), &l.message);
                Ok(())
            }
            other => Err(format!("'{}' before 'ready'", other.tag())),
        }
    }

    async fn serve(
        &mut self,
        link: &mut Link<FromAgent, ToAgent>,
        stop: &CancellationToken,
    ) -> Served {
        let dir = self.state_dir.clone();
        let created = tokio::task::spawn_blocking(move || std::fs::create_dir_all(dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = created {
            self.log
                .note(&format!("cannot create {}: {e}", self.state_dir.display()));
        }
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        // One timer for the life of the loop, moved only when something is
        // due earlier than it is set for: a timer made (and registered with
        // the runtime's wheel) on every turn cost more than the delivery.
        // Firing early is harmless: the loop looks again and sets it anew.
        let timer = tokio::time::sleep_until(far);
        tokio::pin!(timer);
        loop {
            if self.live.has_changed().unwrap_or(false) {
                self.take_up_limits();
            }
            let idle_timeout = self.agent.idle_timeout;
            let delivery_timeout = self.agent.delivery_timeout;
            let stopping = stop.is_cancelled();
            while !stopping && let Some(p) = self.deliveries.next_retry(Instant::now()) {
                self.send(p, &link.outbox);
            }
            if let Some(late) = self.deliveries.overdue(Instant::now(), delivery_timeout) {
                return Served::Unresponsive(format!(
                    "event {} (attempt {}) not acknowledged within {}",
                    late.event.id,
                    late.attempt,
                    humantime::format_duration(delivery_timeout)
                ));
            }
            let take_new = !stopping
                && self.queue_open
                && !self.deliveries.has_retries()
                && self.deliveries.has_room();
            let idle = !stopping && self.is_idle();
            self.shared.idle.store(idle, Ordering::Relaxed);
            let idle_until = match idle_timeout {
                Some(t) if idle => *self.shared.last_used.lock().expect("instance lock") + t,
                _ => far,
            };
            let wake = self
                .deliveries
                .next_wake(delivery_timeout)
                .unwrap_or(far)
                .min(idle_until);
            if wake < timer.deadline() {
                timer.as_mut().reset(wake);
            }
            tokio::select! {
                msg = link.recv() => match msg {
                    Some(msg) => {
                        if !self.on_message(msg, link) {
                            return Served::Closed;
                        }
                    }
                    None => return Served::Closed,
                },
                p = self.queue.recv(), if take_new => match p {
                    Some(p) => self.send_queued(p, &link.outbox),
                    None => self.queue_open = false,
                },
                _ = stop.cancelled(), if !stopping => {}
                // `changed` marks the new limits seen: take them up here.
                Ok(()) = self.live.changed() => self.take_up_limits(),
                _ = &mut timer => {
                    timer.as_mut().reset(far);
                    if idle && idle_timeout.is_some() && Instant::now() >= idle_until {
                        self.shared.idle.store(false, Ordering::Relaxed);
                        return Served::Idle;
                    }
                }
                _ = self.shared.evict.notified(), if idle => {
                    self.shared.idle.store(false, Ordering::Relaxed);
                    self.log.note("making room for another instance (maxInstances)");
                    return Served::Idle;
                }
            }
        }
    }

    async fn before_spawn(&mut self, stop: &CancellationToken) -> bool {
        match self.slots.acquire(&self.shared, stop).await {
            Ok(permit) => {
                self.permit = permit;
                true
            }
            Err(()) => false,
        }
    }

    fn exited(&mut self) {
        // The process is gone: its slot is free for a sibling.
        self.permit = None;
        self.shared.idle.store(false, Ordering::Relaxed);
        // Unanswered deliveries go back first, in their order.
        for p in self.deliveries.take_back(Instant::now()) {
            self.dead_letter(p, "agent process exited before acknowledging".into());
        }
    }

    async fn wait_for_work(&mut self, stop: &CancellationToken) -> bool {
        if !self.deliveries.is_empty() {
            return true;
        }
        // Stopped with nothing to do, perhaps for long: its log file need
        // not stay open meanwhile (one descriptor per idle instance adds up).
        self.log.release();
        tokio::select! {
            _ = tokio::time::sleep(self.agent.instance_ttl), if self.queue_open && self.queue.is_empty() => {
                self.log.note(&format!(
                    "stopped with nothing to do for {} (instanceTtl): removed",
                    humantime::format_duration(self.agent.instance_ttl)
                ));
                self.expired = true;
                false
            }
            p = self.queue.recv(), if self.queue_open => match p {
                Some(p) => {
                    // Not sent yet: it goes out first once the new process is ready.
                    self.deliveries.hold(p, Instant::now());
                    true
                }
                None => false,
            },
            _ = stop.cancelled() => false,
        }
    }
}
