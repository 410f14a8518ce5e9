//! One node's share of the cluster: heartbeats, leases, and the partitions
//! and Connections it runs because of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::Cluster;
use super::held::{Held, Target, fence, start_consumer, stop_under};
use super::lease::{Lease, owner};
use super::partition::let_go;
pub use crate::bundle::Placement;
use crate::reconcile::Reconciler;
use crate::router::Router;
use crate::status::Registry;

/// How long a handover waits for the deliveries in hand to finish.
const DRAIN_WITHIN: Duration = Duration::from_secs(30);

enum Cmd {
    /// Stop taking events, wait for what is in hand (SIGTERM, step 1).
    Drain(oneshot::Sender<()>),
    /// Give everything up and stop (SIGTERM, last step).
    Leave(oneshot::Sender<()>),
    /// A handover finished: the lease may go.
    Released(Target),
}

/// The handle of a node's coordinator task.
#[derive(Debug, Clone)]
pub struct Coordinator {
    tx: mpsc::UnboundedSender<Cmd>,
}

/// What the coordinator works with.
#[derive(Debug)]
pub struct Setup {
    /// The cluster this node joined.
    pub cluster: Cluster,
    /// Where a partition's events go.
    pub router: Router,
    /// Starts and stops the Connections this node holds.
    pub reconciler: Reconciler,
    /// This node's rows, published for `status` on every node.
    pub registry: Arc<Registry>,
    /// Every enabled Connection that runs on one node at a time, and where it may run.
    pub connections: Vec<(String, Placement)>,
}

impl Coordinator {
    /// Starts the coordinator: the first tick claims what is this node's.
    pub fn start(setup: Setup) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = State {
            setup,
            held: BTreeMap::new(),
            tx: tx.clone(),
            draining: false,
            reported: (0, Vec::new()),
            live: 0,
        };
        tokio::spawn(state.run(rx));
        Self { tx }
    }

    /// Stops taking events and waits (at most 30 s) until the deliveries in
    /// hand are done. Leases are kept (and renewed) until [`leave`](Self::leave).
    pub async fn drain(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Drain(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Gives every lease up and takes this node out of the cluster (its
    /// agent processes must be stopped by now).
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Leave(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct State {
    setup: Setup,
    held: BTreeMap<Target, Held>,
    tx: mpsc::UnboundedSender<Cmd>,
    /// Draining for a stop: nothing new is claimed.
    draining: bool,
    /// What this node holds as last logged, and the live nodes then.
    reported: (usize, Vec<String>),
    live: usize,
}

impl State {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let period = self.setup.cluster.lease_ttl() / 5;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick().await,
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Cmd::Released(target)) => self.released(&target).await,
                    Some(Cmd::Drain(done)) => {
                        self.drain().await;
                        let _ = done.send(());
                    }
                    Some(Cmd::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                },
            }
        }
    }

    /// Renewals first, then heartbeat and status, then every target: claim,
    /// hand over or fence.
    async fn tick(&mut self) {
        let cluster = self.setup.cluster.clone();
        self.renew_all().await;
        self.fence_expired();
        // Each step is bounded by a fifth of the TTL, so that a slow NATS
        // cannot hold off the next renewal until the leases expire.
        let bound = cluster.lease_ttl() / 5;
        match tokio::time::timeout(bound, cluster.heartbeat()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cluster: heartbeat failed: {e}"),
            Err(_) => tracing::warn!("cluster: heartbeat timed out"),
        }
        let rows = self.setup.registry.snapshot();
        let _ = tokio::time::timeout(bound, cluster.publish_status(rows)).await;
        if self.draining {
            // Stopping: keep what is held until `leave`, claim nothing.
            return;
        }
        let listed = tokio::time::timeout(bound, cluster.live_nodes())
            .await
            .unwrap_or_else(|_| {
                Err(super::ClusterError::Setup {
                    what: "the node list".into(),
                    message: "timed out".into(),
                })
            });
        let live = match listed {
            Ok(nodes) => {
                let mut names: Vec<String> = nodes.into_iter().map(|(n, _)| n).collect();
                if !names.iter().any(|n| n == cluster.node()) {
                    names.push(cluster.node().to_string());
                }
                names
            }
            Err(e) => {
                tracing::warn!("cluster: cannot list nodes: {e}");
                self.fence_expired();
                return;
            }
        };
        for target in self.targets() {
            let mine = self.is_mine(&target, &live);
            self.step(target, mine).await;
        }
        self.fence_expired();
        self.live = live.len();
        self.report();
    }

    /// Logs what this node holds when it changed (claims and fences in a
    /// tick, handovers when they finish).
    fn report(&mut self) {
        let now = self.summary();
        if now == self.reported {
            return;
        }
        let (partitions, connections) = &now;
        tracing::info!(
            nodes = self.live,
            "cluster: this node holds {} of {} partitions{}{}",
            partitions,
            self.setup.cluster.partitions(),
            if connections.is_empty() {
                ""
            } else {
                " and connections "
            },
            connections.join(", ")
        );
        self.reported = now;
    }

    /// Partitions held, and the Connections held.
    fn summary(&self) -> (usize, Vec<String>) {
        let mut partitions = 0;
        let mut connections = Vec::new();
        for target in self.held.keys() {
            match target {
                Target::Partition(_) => partitions += 1,
                Target::Connection(name) => connections.push(name.clone()),
            }
        }
        (partitions, connections)
    }

    fn targets(&self) -> Vec<Target> {
        let partitions = (0..self.setup.cluster.partitions()).map(Target::Partition);
        let connections = self
            .setup
            .connections
            .iter()
            .map(|(name, _)| Target::Connection(name.clone()));
        partitions.chain(connections).collect()
    }

    fn is_mine(&self, target: &Target, live: &[String]) -> bool {
        let me = self.setup.cluster.node();
        let eligible: Vec<&str> = match target {
            Target::Partition(_) => live.iter().map(String::as_str).collect(),
            Target::Connection(name) => {
                let placement = self
                    .setup
                    .connections
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| p);
                match placement {
                    Some(Placement::Nodes(nodes)) => live
                        .iter()
                        .filter(|n| nodes.contains(n))
                        .map(String::as_str)
                        .collect(),
                    _ => live.iter().map(String::as_str).collect(),
                }
            }
        };
        owner(eligible, &target.key()) == Some(me)
    }

    async fn step(&mut self, target: Target, mine: bool) {
        let cluster = self.setup.cluster.clone();
        let (store, node, ttl) = (&cluster.inner.leases, cluster.node(), cluster.lease_ttl());
        match self.held.get_mut(&target) {
            Some(held) => {
                // Partitions follow the ranking (they rebalance when a node
                // joins); a Connection stays where it runs until that node
                // goes (moving it would restart its connector for nothing).
                let moves = matches!(target, Target::Partition(_));
                if !mine && moves && !held.releasing {
                    held.releasing = true;
                    self.hand_over(&target);
                } else if let Some(c) = &held.consumer
                    && c.done.is_cancelled()
                    && !held.releasing
                    && let Target::Partition(p) = target
                {
                    // Its consumer failed (NATS hiccup): start it again.
                    // What it handed out is still counted by the same tally.
                    let outstanding = c.outstanding.clone();
                    let consumer = start_consumer(&self.setup, p, Some(outstanding));
                    fence(&self.setup, &target, &held.lease, Some(&consumer));
                    held.consumer = Some(consumer);
                }
            }
            None if mine => {
                let key = target.key();
                let claim = Lease::acquire(store, &key, node, ttl);
                let Ok(Some(lease)) = tokio::time::timeout(ttl / 5, claim).await else {
                    return;
                };
                tracing::debug!(lease = %lease.key, "cluster: claimed");
                let consumer = match &target {
                    Target::Partition(p) => Some(start_consumer(&self.setup, *p, None)),
                    Target::Connection(name) => {
                        self.setup.reconciler.place(name, true).await;
                        None
                    }
                };
                fence(&self.setup, &target, &lease, consumer.as_ref());
                let held = Held {
                    lease,
                    consumer,
                    releasing: false,
                };
                self.held.insert(target, held);
            }
            None => {}
        }
    }

    /// Gives `target` up in order: no new events, the ones in hand done,
    /// the processes stopped; then the lease goes (on `Released`).
    fn hand_over(&self, target: &Target) {
        tracing::debug!(lease = %target.key(), "cluster: handing over");
        let tx = self.tx.clone();
        let target = target.clone();
        let held = &self.held[&target];
        let consumer = held
            .consumer
            .as_ref()
            .map(|c| (c.stop.clone(), c.done.clone(), c.outstanding.clone()));
        let validity = held.lease.validity();
        let (router, reconciler) = (self.setup.router.clone(), self.setup.reconciler.clone());
        let partitions = self.setup.cluster.partitions();
        let client = self.setup.cluster.inner.client.clone();
        tokio::spawn(async move {
            match &target {
                Target::Partition(p) => {
                    if let Some((stop, done, outstanding)) = consumer {
                        stop.cancel();
                        done.cancelled().await;
                        if !outstanding.drained(DRAIN_WITHIN).await {
                            tracing::warn!(
                                partition = p,
                                left = outstanding.count(),
                                "cluster: handover: deliveries still in hand; they will come again"
                            );
                        }
                        let_go(*p, &outstanding, &validity).await;
                    }
                    let p = *p;
                    router
                        .release_where(move |agent, key| {
                            super::partition_of(agent, key, partitions) == p
                        })
                        .await;
                    let _ = client.flush().await;
                }
                Target::Connection(name) => reconciler.place(name, false).await,
            }
            let _ = tx.send(Cmd::Released(target));
        });
    }

    async fn released(&mut self, target: &Target) {
        if let Some(held) = self.held.remove(target) {
            held.lease.release(&self.setup.cluster.inner.leases).await;
            tracing::debug!(lease = %target.key(), "cluster: handed over");
        }
        self.report();
    }

    /// A lease is no longer surely ours: stop what runs under it at once.
    fn lost(&mut self, target: &Target) {
        let Some(held) = self.held.remove(target) else {
            return;
        };
        let partitions = self.setup.cluster.partitions();
        let done = held.consumer.map(|c| {
            c.stop.cancel();
            c.done
        });
        let (router, reconciler) = (self.setup.router.clone(), self.setup.reconciler.clone());
        let target = target.clone();
        tokio::spawn(async move {
            stop_under(target, done, router, reconciler, partitions).await;
        });
    }

    fn fence_expired(&mut self) {
        let expired: Vec<Target> = self
            .held
            .iter()
            .filter(|(_, h)| !h.lease.valid())
            .map(|(t, _)| t.clone())
            .collect();
        for target in expired {
            // Its fence has stopped what ran under it already.
            self.lost(&target);
        }
    }

    async fn drain(&mut self) {
        self.draining = true;
        let mut waits = Vec::new();
        for held in self.held.values() {
            if let Some(c) = &held.consumer {
                c.stop.cancel();
                waits.push((c.done.clone(), c.outstanding.clone()));
            }
        }
        // Leases keep being renewed meanwhile: this task is busy, so renew here.
        let until = tokio::time::Instant::now() + DRAIN_WITHIN;
        for (done, o) in waits {
            while tokio::time::Instant::now() < until {
                let left = until - tokio::time::Instant::now();
                let step = left.min(self.setup.cluster.lease_ttl() / 5);
                if done.is_cancelled() && o.drained(step).await {
                    break;
                }
                if !done.is_cancelled() {
                    let _ = tokio::time::timeout(step, done.cancelled()).await;
                }
                self.renew_all().await;
                let _ = self.setup.cluster.heartbeat().await;
            }
        }
    }

    /// Renews every lease at once (each bounded by TTL/3: a slow NATS must
    /// not make one renewal wait for another); one found taken is lost.
    async fn renew_all(&mut self) {
        let cluster = self.setup.cluster.clone();
        let (store, node, ttl) = (&cluster.inner.leases, cluster.node(), cluster.lease_ttl());
        let renewals = self.held.iter_mut().map(|(target, held)| async move {
            let renew = held.lease.renew(store, node, ttl);
            // A timeout is not a loss: the lease stays ours until it is not valid.
            let kept = tokio::time::timeout(ttl / 3, renew).await.unwrap_or(true);
            (!kept).then(|| target.clone())
        });
        let lost: Vec<Target> = futures::future::join_all(renewals)
            .await
            .into_iter()
            .flatten()
            .collect();
        for target in lost {
            tracing::warn!(lease = %target.key(), "cluster: lease lost");
            self.lost(&target);
        }
    }

    async fn leave(&mut self) {
        let cluster = self.setup.cluster.clone();
        let _ = cluster.inner.client.flush().await;
        // Stopping the agent processes may have taken long enough (a slow
        // machine, a long grace) for the last renewal to be near the end of
        // its validity: renew first, so each partition is let go in order
        // (its watermark lowered) rather than left for the next owner to
        // mark attempt 2.
        self.renew_all().await;
        for (target, held) in std::mem::take(&mut self.held) {
            if let (Target::Partition(p), Some(c)) = (&target, &held.consumer)
                && c.done.is_cancelled()
            {
                let_go(*p, &c.outstanding, &held.lease.validity()).await;
            }
            held.lease.release(&cluster.inner.leases).await;
        }
        cluster.clear_status().await;
        let _ = cluster.inner.nodes.purge(cluster.node()).await;
        let _ = cluster.inner.client.flush().await;
    }
}
