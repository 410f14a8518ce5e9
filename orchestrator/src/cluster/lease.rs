//! Leases in the `N-leases` bucket, and who should hold what.

use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::time::Instant;

/// The live node that ranks `what` highest (rendezvous hashing): the same
/// answer on every node that sees the same live set, and when a node joins
/// or leaves only what it wins or loses moves.
pub fn owner<'a>(nodes: impl IntoIterator<Item = &'a str>, what: &str) -> Option<&'a str> {
    nodes
        .into_iter()
        .max_by_key(|node| (score(node, what), *node))
}

fn score(node: &str, what: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0xff]).chain(what.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV alone clusters on similar inputs; a final mix spreads them.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// A held lease: its key and the revision our last write made.
#[derive(Debug)]
pub struct Lease {
    pub key: String,
    revision: u64,
    /// Until when it is surely still ours (the TTL less a margin, from the
    /// start of the last successful write); watched by its fence.
    valid_until: tokio::sync::watch::Sender<Instant>,
}

/// How long before the server would expire a lease its holder stops using it.
const MARGIN: Duration = Duration::from_millis(1500);

impl Lease {
    /// Claims `key` for `node` if nobody holds it.
    pub async fn acquire(store: &kv::Store, key: &str, node: &str, ttl: Duration) -> Option<Lease> {
        let started = Instant::now();
        match store.create(key, node.to_string().into()).await {
            Ok(revision) => Some(Lease {
                key: key.to_string(),
                revision,
                valid_until: tokio::sync::watch::Sender::new(started + ttl.saturating_sub(MARGIN)),
            }),
            Err(_) => None,
        }
    }

    /// Renews it; `false` when it is no longer ours (someone else's write
    /// came between, or it expired).
    pub async fn renew(&mut self, store: &kv::Store, node: &str, ttl: Duration) -> bool {
        let started = Instant::now();
        match self.write(store, node, ttl, started).await {
            Ok(()) => true,
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // Our own earlier renewal may have been stored with its
                // answer lost: a lease that still names us is ours (nobody
                // else writes a lease someone holds).
                match store.entry(self.key.clone()).await {
                    Ok(Some(entry))
                        if entry.operation == kv::Operation::Put
                            && entry.value.as_ref() == node.as_bytes() =>
                    {
                        self.revision = entry.revision;
                        match self.write(store, node, ttl, started).await {
                            Ok(()) => true,
                            Err(e) => e.kind() != kv::UpdateErrorKind::WrongLastRevision,
                        }
                    }
                    _ => false,
                }
            }
            // NATS unreachable: still ours until `valid_until`.
            Err(e) => {
                tracing::warn!(lease = %self.key, "cluster: lease renewal failed: {e}");
                true
            }
        }
    }

    /// Writes our name over our last revision; on success it is valid for
    /// the TTL (less the margin) from `started`.
    async fn write(
        &mut self,
        store: &kv::Store,
        node: &str,
        ttl: Duration,
        started: Instant,
    ) -> Result<(), kv::UpdateError> {
        let revision = store
            .update(&self.key, node.to_string().into(), self.revision)
            .await?;
        self.revision = revision;
        self.valid_until
            .send_replace(started + ttl.saturating_sub(MARGIN));
        Ok(())
    }

    /// Still surely ours.
    pub fn valid(&self) -> bool {
        Instant::now() < *self.valid_until.borrow()
    }

    /// Resolves `true` when the lease stops being surely ours without having
    /// been let go (no renewal in time), `false` once it is released or
    /// dropped. Independent of whoever renews it, so a stalled renewer
    /// cannot keep a stale owner working.
    pub fn expiry(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let mut valid = self.valid_until.subscribe();
        async move {
            loop {
                let until = *valid.borrow_and_update();
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {
                        if *valid.borrow() <= Instant::now() {
                            return true;
                        }
                    }
                    changed = valid.changed() => {
                        if changed.is_err() {
                            return false;
                        }
                    }
                }
            }
        }
    }

    /// Gives it up (only if it is still ours).
    pub async fn release(self, store: &kv::Store) {
        if let Err(e) = store
            .delete_expect_revision(&self.key, Some(self.revision))
            .await
        {
            tracing::debug!(lease = %self.key, "cluster: lease release: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_and_moves_little() {
        let three = ["a", "b", "c"];
        let owners: Vec<&str> = (0..300)
            .map(|p| owner(three, &format!("partition-{p}")).unwrap())
            .collect();
        for n in three {
            let c = owners.iter().filter(|o| **o == n).count();
            assert!((70..130).contains(&c), "{n} owns {c} of 300");
        }
        // Node c leaves: only what c owned moves.
        for (p, before) in owners.iter().enumerate() {
            let after = owner(["a", "b"], &format!("partition-{p}")).unwrap();
            if *before != "c" {
                assert_eq!(after, *before, "partition {p} moved needlessly");
            }
        }
        assert_eq!(owner(Vec::<&str>::new(), "x"), None);
    }
}
