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

/// A compare-and-set lost to another write (the key's revision was not the
/// one expected). async-nats knows the server's error code 10071 for it;
/// servers since 2.11 answer 10164 for the subject-sequence check instead.
pub fn conflict(e: &kv::UpdateError) -> bool {
    if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(js) = s.downcast_ref::<async_nats::jetstream::Error>()
            && matches!(js.error_code().0, 10_071 | 10_164)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// A key's last write as the bucket's stream leader has it (a plain KV read
/// may be answered by a replica that is behind, whose revision would make
/// the next compare-and-set fail).
#[derive(Debug)]
pub struct Latest {
    /// Its value; `None` when the last write deleted it.
    pub value: Option<bytes::Bytes>,
    pub revision: u64,
}

/// Reads `key` from the leader; `None` when it was never written.
pub async fn latest(store: &kv::Store, key: &str) -> Result<Option<Latest>, String> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let subject = format!("{}{key}", store.prefix);
    match store.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(msg) => {
            let deleted = msg
                .headers
                .get("KV-Operation")
                .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
            Ok(Some(Latest {
                value: (!deleted).then_some(msg.payload),
                revision: msg.sequence,
            }))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(format!("cannot read {key} in {}: {e}", store.name)),
    }
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

/// A view of a lease's validity that outlives the borrow of the lease.
#[derive(Debug, Clone)]
pub struct Validity(tokio::sync::watch::Receiver<Instant>);

impl Validity {
    /// Still surely ours (false once the lease is dropped or released).
    pub fn valid(&self) -> bool {
        self.0.has_changed().is_ok() && Instant::now() < *self.0.borrow()
    }
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
            Err(e) if conflict(&e) => {
                // Our own earlier renewal may have been stored with its
                // answer lost: a lease that still names us is ours (nobody
                // else writes a lease someone holds).
                match latest(store, &self.key).await {
                    Ok(Some(Latest {
                        value: Some(value),
                        revision,
                    })) if value.as_ref() == node.as_bytes() => {
                        self.revision = revision;
                        match self.write(store, node, ttl, started).await {
                            Ok(()) => true,
                            Err(e) => !conflict(&e),
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

    /// Tells, from another task, whether it is still surely ours.
    pub fn validity(&self) -> Validity {
        Validity(self.valid_until.subscribe())
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

    /// The server's answer to a compare-and-set that lost, as a client's update sees it.
    fn update_error(code: u64) -> kv::UpdateError {
        use async_nats::jetstream::context::{PublishError, PublishErrorKind};
        let answer =
            format!(r#"{{"code":400,"err_code":{code},"description":"wrong last sequence"}}"#);
        let js: async_nats::jetstream::Error = serde_json::from_str(&answer).unwrap();
        PublishError::with_source(PublishErrorKind::Other, js).into()
    }

    #[test]
    fn a_lost_compare_and_set_is_told_apart_from_trouble() {
        assert!(conflict(&update_error(10_164)), "servers since 2.11");
        assert!(conflict(&update_error(10_071)));
        assert!(conflict(&kv::UpdateError::new(
            kv::UpdateErrorKind::WrongLastRevision
        )));
        assert!(!conflict(&update_error(10_008)), "JetStream unavailable");
        assert!(!conflict(&kv::UpdateError::new(
            kv::UpdateErrorKind::TimedOut
        )));
    }

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
