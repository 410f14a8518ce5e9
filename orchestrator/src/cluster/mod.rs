//! Cluster mode: several orchestrator nodes share one swarm through NATS
//! JetStream (`orchestrator run --cluster URL --node NAME`).
//!
//! # Theory of operation
//!
//! **What lives in NATS.** For a cluster name `N` (`--cluster-name`):
//! - stream `N-events`, subjects `N.events.<partition>`: every accepted
//!   event, with its route. Work-queue retention: an event leaves the
//!   stream when an agent has acknowledged it. `dedupeKey` becomes the
//!   message id (`Nats-Msg-Id`, scoped by connection), so JetStream's
//!   duplicate window drops a repeat whichever node it reaches.
//! - stream `N-dlq`, subject `N.dlq`: dead letters.
//! - key-value buckets `N-nodes` (one heartbeat per live node, expiring
//!   after the lease TTL), `N-leases` (who owns which partition and which
//!   Connection, which idempotency key's first call runs where, which node
//!   took up a job of a node that is gone; same TTL), `N-status` (each node's status rows),
//!   `N-meta` (the partition count, fixed when the cluster is first used,
//!   and each partition's watermark, below),
//!   `N-idempotency` and `N-jobs` (what operations keep).
//! - subjects `N.invoke.<connection>`: an invoke of a Connection that runs
//!   on another node is a NATS request to the node that runs it.
//!
//! **The path of one event.** The node that runs a Connection routes each
//! emit by the Connection's ingress rules as a single node does, hashes
//! `(agent, instanceKey)` to one of P partitions, publishes the event to
//! that partition's subject and acks the connector once JetStream has
//! acked the publish (stored on a quorum of its replicas). The node that
//! owns the partition consumes it through a durable consumer and hands
//! each event to its router, which keeps one agent process per
//! `(agent, instanceKey)` exactly as a single node does; the event is
//! acknowledged to JetStream when the agent acks it, or moved to `N-dlq`
//! when its attempts are spent.
//!
//! **Ownership.** Every node heartbeats into `N-nodes`. Each partition
//! and each single-placed Connection goes to the live node that ranks it
//! highest (rendezvous hashing), so ownership spreads evenly and moves
//! only as far as it must when a node joins or leaves. A node claims what
//! is its own with a lease in `N-leases` (create-if-absent), renews it
//! (compare-and-set on its revision) every TTL/5, and stops using it on
//! its own as soon as a renewal has not succeeded for TTL − 1 s, before
//! anyone else can claim it. A node killed with `-9` therefore gives its
//! partitions up after the TTL; a node stopped with SIGTERM (or one that
//! sees a new node rank higher) hands over at once: it stops taking
//! events, lets the deliveries in hand finish, stops the agent processes
//! of that partition, then deletes the lease.
//!
//! **Redelivery after failover.** A new owner deletes the partition's
//! consumer and creates it afresh: every event still in the stream (not
//! acknowledged) comes again, and those up to the partition's watermark
//! are marked `attempt: 2` (they may have reached an agent). An owner
//! raises the watermark (`handed.<p>` in `N-meta`) before it hands out an
//! event above it; see `handed.rs`.
//!
//! **What it never does.** It never acks a connector before JetStream has
//! the event; it never runs a partition's agents without holding its
//! lease; it never trusts a message from the stream to be well-formed (a
//! bad one is logged, counted and acknowledged away).

mod coordinator;
mod dlq;
mod handed;
mod held;
mod invoke;
mod jobs;
mod join;
mod lease;
mod partition;
mod publish;
mod receipt;
mod records;
mod status;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use sha2::{Digest, Sha256};

pub use coordinator::{Coordinator, Setup};
pub use publish::Publisher;
pub use receipt::Receipt;

use crate::journal::RouteRecord;

/// What `--cluster` and its companions say.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// NATS servers (`nats://host:port`).
    pub urls: Vec<String>,
    /// This node's name (`--node`), unique in the cluster.
    pub node: String,
    /// Separates several swarms on one NATS (`--cluster-name`).
    pub name: String,
    /// Partitions of (agent, instanceKey), when the cluster is new.
    pub partitions: u32,
    /// How long a lease (and a node's heartbeat) outlives its last renewal.
    pub lease_ttl: Duration,
    /// How long idempotency results and job records are kept (the longest
    /// `idempotencyTtl` of the bundle).
    pub keep_results: Duration,
}

/// Why cluster mode could not start, or an operation on NATS failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A `--cluster` URL does not parse.
    #[error("--cluster: '{url}' is not a NATS server address: {source}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// No server answered.
    #[error("cannot reach NATS at {urls}: {source}")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// Why not.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A stream or bucket could not be created or opened.
    #[error("NATS JetStream: cannot set up {what}: {message}")]
    Setup {
        /// The stream or bucket.
        what: String,
        /// Why not.
        message: String,
    },
    /// Another node runs a different bundle.
    #[error(
        "node '{node}' runs bundle {ours}, but node '{other}' of cluster '{cluster}' runs bundle {theirs}: every node must run the same bundle"
    )]
    BundleDiffers {
        /// This node.
        node: String,
        /// Its bundle hash.
        ours: String,
        /// The other node.
        other: String,
        /// Its bundle hash.
        theirs: String,
        /// The cluster name.
        cluster: String,
    },
    /// Another live node has this node's name.
    #[error(
        "node name '{0}' is already taken by a live node of the cluster (its heartbeat is fresh); pick another --node"
    )]
    NameTaken(String),
    /// This machine's clock and NATS's disagree.
    #[error(
        "this machine's clock is {skew_ms} ms away from the NATS server's: leases need clocks within {max_ms} ms (run NTP)"
    )]
    Clock {
        /// How far.
        skew_ms: i128,
        /// The most allowed.
        max_ms: u64,
    },
    /// `--cluster-name` or `--node` is not usable as a NATS name.
    #[error("{what} '{value}' must be 1-64 characters of A-Z a-z 0-9 _ -")]
    BadName {
        /// Which flag.
        what: &'static str,
        /// Its value.
        value: String,
    },
}

/// Names of the cluster's streams, buckets and subjects.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    pub cluster: String,
}

impl Names {
    fn events_stream(&self) -> String {
        format!("{}-events", self.cluster)
    }
    fn dlq_stream(&self) -> String {
        format!("{}-dlq", self.cluster)
    }
    fn dlq_subject(&self) -> String {
        format!("{}.dlq", self.cluster)
    }
    fn partition_subject(&self, p: u32) -> String {
        format!("{}.events.{p}", self.cluster)
    }
    fn consumer(&self, p: u32) -> String {
        format!("p{p}")
    }
}

/// A node's connection to the cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: ClusterOptions,
    names: Names,
    client: async_nats::Client,
    js: jetstream::Context,
    meta: kv::Store,
    nodes: kv::Store,
    leases: kv::Store,
    status: kv::Store,
    results: kv::Store,
    jobs: kv::Store,
    partitions: u32,
    bundle_hash: String,
    publisher: Publisher,
    /// Messages from the stream that did not decode (acknowledged away).
    bad_messages: AtomicU64,
    /// The Connections whose invokes this node serves (it runs them).
    serving:
        std::sync::Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
    /// Counts reconnections to NATS and messages the client dropped.
    interruptions: Arc<tokio::sync::watch::Sender<u64>>,
}

/// One event as it is stored in the events stream.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredEvent {
    pub route: RouteRecord,
    pub event: ipc_proto::DeliveredEvent,
}

/// One dead letter as it is stored in the dlq stream.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredDeadLetter {
    pub route: RouteRecord,
    pub event: ipc_proto::DeliveredEvent,
    pub attempts: u32,
    pub error: String,
    pub node: String,
    pub at: String,
}

/// The bundle's identity: a hash of its file's bytes (every node must run the same text).
pub fn bundle_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The partition of `(agent, key)` among `partitions`: FNV-1a, the same on every node.
pub fn partition_of(agent: &str, key: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in agent.bytes().chain([0u8]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(h % u64::from(partitions.max(1))).unwrap_or(0)
}

impl Cluster {
    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.opts.node
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.inner.opts.name
    }

    /// The bundle hash this node runs.
    pub fn bundle_hash(&self) -> &str {
        &self.inner.bundle_hash
    }

    /// Partitions of (agent, instanceKey).
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        self.inner.opts.lease_ttl
    }

    /// Stores `event` (routed by `route`) in its partition; resolves once
    /// JetStream has it (or found it a duplicate). Started at call time, in
    /// call order.
    pub fn accept(
        &self,
        route: RouteRecord,
        event: ipc_proto::DeliveredEvent,
        dedupe_key: Option<String>,
    ) -> publish::Commit {
        let p = partition_of(&route.agent, &event.instance_key, self.inner.partitions);
        let subject = self.inner.names.partition_subject(p);
        // The message id makes a publish sent again harmless: a dedupe key
        // (scoped by connection) when the connector gave one, else the
        // event's own id.
        let msg_id = Some(match dedupe_key {
            Some(k) => format!("{}/{k}", event.connection),
            None => event.id.clone(),
        });
        let record = StoredEvent { route, event };
        self.inner.publisher.publish(subject, msg_id, &record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // The same on every node and every run: a change here moves every key.
        assert_eq!(
            partition_of("echo", "k1", 32),
            partition_of("echo", "k1", 32)
        );
        assert_ne!(
            partition_of("echo", "k1", 1 << 30),
            partition_of("ech", "ok1", 1 << 30)
        );
        let mut counts = [0u32; 8];
        for k in 0..8000 {
            counts[partition_of("a", &format!("k{k}"), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
