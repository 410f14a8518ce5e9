//! Idempotency: one turn at a time per key, and the first result kept in the journal.

use std::sync::Arc;
use std::time::Duration;

use super::Operations;

/// What a successful invoke hands back: data, warnings, redactions, truncated, provider status.
pub(super) type Success = (
    serde_json::Value,
    Vec<String>,
    Vec<String>,
    bool,
    Option<u16>,
);

/// The turn of one idempotency key; the last one out removes its lock.
pub(super) struct Turn<'a> {
    ops: &'a Operations,
    key: (String, String, String),
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = self.ops.turns.lock().expect("ops lock");
        // Held by the map and this turn's lock only: nobody waits for it.
        if turns
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            turns.remove(&self.key);
        }
    }
}

impl Operations {
    /// Waits for the turn of an idempotency key; the guard ends it.
    pub(super) async fn turn(&self, key: &(String, String, String)) -> Turn<'_> {
        let lock = {
            let mut turns = self.turns.lock().expect("ops lock");
            turns.entry(key.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        Turn {
            ops: self,
            key: key.clone(),
            _guard: guard,
        }
    }

    /// The first result of `key`, if one was kept within `ttl`.
    pub(super) async fn recall(
        &self,
        key: &(String, String, String),
        ttl: Duration,
    ) -> Option<Success> {
        let found = match self.cluster.get() {
            Some(cluster) => cluster.recall(&key.0, &key.1, &key.2).await,
            None => {
                let (journal, k) = (self.journal.clone(), key.clone());
                tokio::task::spawn_blocking(move || journal.recall(&k.0, &k.1, &k.2))
                    .await
                    .ok()?
            }
        };
        let (at, bytes) = match found {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("idempotency record unreadable: {e}");
                return None;
            }
        };
        if at.elapsed().unwrap_or_default() > ttl {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let strings = |f: &str| -> Vec<String> {
            v[f].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut warnings = strings("warnings");
        warnings.push("the first result for this idempotencyKey, not called again".into());
        Some((
            v["data"].clone(),
            warnings,
            strings("redactionsApplied"),
            v["truncated"].as_bool().unwrap_or(false),
            v["providerStatus"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok()),
        ))
    }
}
