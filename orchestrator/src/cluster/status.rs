//! Every node's status rows, shared through the `N-status` bucket so that
//! `orchestrator status` on any node shows the whole cluster.

use futures::TryStreamExt;

use super::Cluster;
use crate::status::ProcessSnapshot;

/// A node's rows larger than this are cut (the bucket's values stay small;
/// the node's own `status` still shows everything).
const MAX_ROWS_BYTES: usize = 512 * 1024;

impl Cluster {
    /// Publishes this node's rows (each marked with its name).
    pub(crate) async fn publish_status(&self, mut rows: Vec<ProcessSnapshot>) {
        for row in &mut rows {
            row.node = Some(self.node().to_string());
        }
        let mut body = serde_json::to_vec(&rows).unwrap_or_default();
        while body.len() > MAX_ROWS_BYTES && !rows.is_empty() {
            let keep = rows.len() * 3 / 4;
            rows.truncate(keep);
            body = serde_json::to_vec(&rows).unwrap_or_default();
        }
        if let Err(e) = self.inner.status.put(self.node(), body.into()).await {
            tracing::debug!("cluster: cannot publish status: {e}");
        }
    }

    /// The rows other live nodes published (at most a few seconds old).
    pub async fn peer_status(&self) -> Vec<ProcessSnapshot> {
        let store = &self.inner.status;
        let keys: Vec<String> = match store.keys().await {
            Ok(keys) => keys.try_collect().await.unwrap_or_default(),
            Err(_) => return Vec::new(),
        };
        let mut rows = Vec::new();
        for key in keys.into_iter().filter(|k| k != self.node()) {
            if let Ok(Some(value)) = store.get(key.clone()).await {
                match serde_json::from_slice::<Vec<ProcessSnapshot>>(&value) {
                    Ok(theirs) => rows.extend(theirs.into_iter().map(|mut r| {
                        r.node = Some(key.clone());
                        r
                    })),
                    Err(e) => tracing::debug!("cluster: status of node {key} unreadable: {e}"),
                }
            }
        }
        rows
    }

    /// Takes this node's rows out (it is leaving).
    pub(crate) async fn clear_status(&self) {
        let _ = self.inner.status.purge(self.node()).await;
    }
}
