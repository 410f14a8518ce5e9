//! What operations keep, shared by every node: the first result of each
//! idempotency key (bucket `N-idempotency`) and the records of async jobs
//! (bucket `N-jobs`), both expiring after the longest `idempotencyTtl`;
//! and, while a key's first call runs, a claim on the key (a lease in
//! `N-leases`), so that a repeat on another node waits for its result
//! instead of calling too.

use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::lease::Lease;
use crate::journal::JournalError;

/// How often a repeat waiting for another node's call of its key looks
/// again (a KV read; the key's lease has no change to watch when it lapses).
const CLAIM_POLL: Duration = Duration::from_millis(50);

/// This node's claim on an idempotency key while it calls: renewed until
/// dropped, then released.
#[derive(Debug)]
pub struct KeyClaim {
    stop: CancellationToken,
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> JournalError {
    JournalError::Cluster(format!("{what}: {e}"))
}

/// A bucket key for `(connection, operation, key)`: any key, in the
/// characters a NATS key allows.
fn result_key(connection: &str, operation: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [connection, operation, key] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Cluster {
    /// Keeps the first result of `(connection, operation, key)`; a result
    /// another node kept first wins.
    pub async fn remember(
        &self,
        connection: &str,
        operation: &str,
        key: &str,
        result: Vec<u8>,
    ) -> Result<(), JournalError> {
        let mut value = millis(SystemTime::now()).to_be_bytes().to_vec();
        value.extend_from_slice(&result);
        let k = result_key(connection, operation, key);
        match self.inner.results.create(&k, value.into()).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                Ok(())
            }
            Err(e) => Err(err("cannot keep the idempotency record", e)),
        }
    }

    /// Claims `(connection, operation, key)` for this node's call, waiting
    /// while another node holds it (its call runs; a claim of a node that
    /// died lapses after the lease TTL). The caller looks for the first
    /// result again once it holds the claim. `None` when NATS cannot be
    /// asked: the call goes ahead unclaimed, as it does when the result
    /// cannot be read.
    pub async fn claim_key(
        &self,
        connection: &str,
        operation: &str,
        key: &str,
    ) -> Option<KeyClaim> {
        let k = format!("idempotency.{}", result_key(connection, operation, key));
        let (store, node, ttl) = (
            self.inner.leases.clone(),
            self.node().to_string(),
            self.lease_ttl(),
        );
        loop {
            if let Some(mut lease) = Lease::acquire(&store, &k, &node, ttl).await {
                let stop = CancellationToken::new();
                let done = stop.clone();
                tokio::spawn(async move {
                    let mut renew = tokio::time::interval(ttl / 5);
                    renew.tick().await;
                    loop {
                        tokio::select! {
                            () = done.cancelled() => break,
                            _ = renew.tick() => if !lease.renew(&store, &node, ttl).await {
                                return;
                            },
                        }
                    }
                    lease.release(&store).await;
                });
                return Some(KeyClaim { stop });
            }
            // Held by another node (its call runs), or let go just now: try
            // again shortly (not at once: a claim refused for another reason
            // must not spin).
            if let Err(e) = store.get(&k).await {
                tracing::warn!(connection, operation, "idempotency key not claimed: {e}");
                return None;
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
    }

    /// The result kept for `(connection, operation, key)`: when, and its JSON.
    pub async fn recall(
        &self,
        connection: &str,
        operation: &str,
        key: &str,
    ) -> Result<Option<(SystemTime, Vec<u8>)>, JournalError> {
        let k = result_key(connection, operation, key);
        let Some(value) = self
            .inner
            .results
            .get(k)
            .await
            .map_err(|e| err("cannot read the idempotency record", e))?
        else {
            return Ok(None);
        };
        let Some((at, json)) = value.split_first_chunk::<8>() else {
            return Ok(None);
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::from_be_bytes(*at));
        Ok(Some((at, json.to_vec())))
    }

    /// Writes a job's record (JSON).
    pub async fn put_job(&self, id: &str, record: Vec<u8>) -> Result<(), JournalError> {
        uuid::Uuid::parse_str(id).map_err(|_| JournalError::InvalidId(id.to_string()))?;
        self.inner
            .jobs
            .put(id, record.into())
            .await
            .map(|_| ())
            .map_err(|e| err("cannot keep the job record", e))
    }

    /// One job's record, if it is kept.
    pub async fn job(&self, id: &str) -> Result<Option<Vec<u8>>, JournalError> {
        uuid::Uuid::parse_str(id).map_err(|_| JournalError::InvalidId(id.to_string()))?;
        self.inner
            .jobs
            .get(id)
            .await
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| err("cannot read the job record", e))
    }

    /// Every job record kept, oldest first (job ids are UUIDv7: by time).
    pub async fn jobs(&self) -> Result<Vec<Vec<u8>>, JournalError> {
        let store = &self.inner.jobs;
        let mut keys: Vec<String> = store
            .keys()
            .await
            .map_err(|e| err("cannot list the jobs", e))?
            .try_collect()
            .await
            .map_err(|e| err("cannot list the jobs", e))?;
        keys.sort();
        let mut records = Vec::new();
        for key in keys {
            if let Ok(Some(v)) = store.get(key).await {
                records.push(v.to_vec());
            }
        }
        Ok(records)
    }
}
