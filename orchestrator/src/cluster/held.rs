//! What runs under a held lease: a partition's consumer task, the fence
//! that stops it (or a Connection) when the lease runs out, and the stop.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::coordinator::Setup;
use super::lease::Lease;
use super::partition::consume;
use super::receipt::Outstanding;
use crate::reconcile::Reconciler;
use crate::router::Router;

/// What a node may hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Target {
    Partition(u32),
    Connection(String),
}

impl Target {
    pub(super) fn key(&self) -> String {
        match self {
            Target::Partition(p) => format!("partition.{p}"),
            Target::Connection(c) => format!("connection.{c}"),
        }
    }
}

/// A held lease and what runs under it.
pub(super) struct Held {
    pub lease: Lease,
    /// The partition's consumer (none for a Connection).
    pub consumer: Option<Consumer>,
    /// Being handed over: it is given up when the handover says so.
    pub releasing: bool,
}

pub(super) struct Consumer {
    pub stop: CancellationToken,
    /// Cancelled when its task has ended: no event can reach the router from it after.
    pub done: CancellationToken,
    pub outstanding: Arc<Outstanding>,
}

/// Starts consuming partition `p` into the router; `again` is the tally of
/// the consumer task that ended, when this one replaces it.
pub(super) fn start_consumer(setup: &Setup, p: u32, again: Option<Arc<Outstanding>>) -> Consumer {
    let (stop, done) = (CancellationToken::new(), CancellationToken::new());
    let outstanding = again.unwrap_or_default();
    let (cluster, router) = (setup.cluster.clone(), setup.router.clone());
    let (s, d, o) = (stop.clone(), done.clone(), outstanding.clone());
    tokio::spawn(async move {
        let _done = d.drop_guard();
        if let Err(e) = consume(cluster, router, p, s, o).await {
            tracing::warn!(partition = p, "cluster: {e}");
        }
    });
    Consumer {
        stop,
        done,
        outstanding,
    }
}

/// Stops what runs under a held lease the moment its validity runs out,
/// on a task of its own: the coordinator's loop may be slow (NATS
/// timeouts) but the fence is not, so no partition's agents or
/// Connection keep running after another node may have claimed them.
pub(super) fn fence(setup: &Setup, target: &Target, lease: &Lease, consumer: Option<&Consumer>) {
    let expiry = lease.expiry();
    let stop = consumer.map(|c| (c.stop.clone(), c.done.clone()));
    let (router, reconciler) = (setup.router.clone(), setup.reconciler.clone());
    let partitions = setup.cluster.partitions();
    let target = target.clone();
    tokio::spawn(async move {
        if !expiry.await {
            return;
        }
        tracing::warn!(lease = %target.key(), "cluster: lease not renewed in time: stopping what runs under it");
        let done = stop.map(|(stop, done)| {
            stop.cancel();
            done
        });
        stop_under(target, done, router, reconciler, partitions).await;
    });
}

/// Stops what runs under `target` at once: a partition's agent processes
/// (once its consumer task, whose end `done` tells, can hand out nothing
/// more), or a Connection's process.
pub(super) async fn stop_under(
    target: Target,
    done: Option<CancellationToken>,
    router: Router,
    reconciler: Reconciler,
    partitions: u32,
) {
    match target {
        Target::Partition(p) => {
            if let Some(done) = done {
                done.cancelled().await;
            }
            router
                .release_where(move |agent, key| super::partition_of(agent, key, partitions) == p)
                .await;
        }
        Target::Connection(name) => reconciler.place(&name, false).await,
    }
}
