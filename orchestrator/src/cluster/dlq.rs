//! The cluster's dead letters (stream `N-dlq`): what `orchestrator dlq`
//! lists, replays and drops on any node.

use std::time::{Duration, SystemTime};

use super::{Cluster, StoredDeadLetter, StoredEvent, partition_of};
use crate::journal::DeadLetter;

/// Dead letters listed at most (the oldest first).
const MAX_LISTED: u64 = 10_000;

impl Cluster {
    /// Stores a dead letter in the cluster's dead-letter stream.
    pub async fn put_dead_letter(
        &self,
        route: crate::journal::RouteRecord,
        event: ipc_proto::DeliveredEvent,
        attempts: u32,
        error: &str,
    ) -> Result<(), String> {
        let record = StoredDeadLetter {
            route,
            event,
            attempts,
            error: error.to_string(),
            node: self.node().to_string(),
            at: crate::logs::timestamp(SystemTime::now()),
        };
        let payload = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let publish =
            async_nats::jetstream::message::PublishMessage::build().payload(payload.into());
        let ack = self
            .inner
            .js
            .send_publish(self.inner.names.dlq_subject(), publish)
            .await
            .map_err(|e| format!("cannot publish the dead letter: {e}"))?;
        ack.await
            .map(|_| ())
            .map_err(|e| format!("NATS did not store the dead letter: {e}"))
    }

    /// The dead letters, oldest first, each with its sequence in the stream.
    pub async fn dead_letters(&self) -> Result<Vec<(u64, DeadLetter)>, String> {
        let i = &self.inner;
        let name = i.names.dlq_stream();
        let stream =
            i.js.get_stream(&name)
                .await
                .map_err(|e| format!("cannot open stream {name}: {e}"))?;
        let state = stream
            .get_info()
            .await
            .map_err(|e| format!("cannot read stream {name}: {e}"))?
            .state;
        let mut letters = Vec::new();
        if state.messages == 0 {
            return Ok(letters);
        }
        let last = state
            .last_sequence
            .min(state.first_sequence.saturating_add(MAX_LISTED));
        for seq in state.first_sequence..=last {
            // A gap is a dead letter replayed or dropped already.
            let Ok(msg) = stream.get_raw_message(seq).await else {
                continue;
            };
            match serde_json::from_slice::<StoredDeadLetter>(&msg.payload) {
                Ok(d) => {
                    let at = msg.time.unix_timestamp_nanos();
                    let dead_at = SystemTime::UNIX_EPOCH
                        + Duration::from_nanos(u64::try_from(at).unwrap_or(0));
                    letters.push((
                        seq,
                        DeadLetter {
                            event: d.event,
                            route: d.route,
                            attempts: d.attempts,
                            error: d.error,
                            dead_at,
                        },
                    ));
                }
                Err(e) => tracing::warn!(
                    seq,
                    "cluster: a message of {name} is not a dead letter: {e}"
                ),
            }
        }
        Ok(letters)
    }

    /// Delivers dead letters again, first attempt (`id`, or every one):
    /// back into their partition, then out of the dead-letter stream.
    pub async fn replay(&self, id: Option<&str>) -> Result<Vec<String>, String> {
        let letters = self.dead_letters().await?;
        let chosen: Vec<_> = letters
            .into_iter()
            .filter(|(_, d)| id.is_none_or(|id| d.event.id == id))
            .collect();
        if let (Some(id), true) = (id, chosen.is_empty()) {
            return Err(format!("{id}: no such event in the dead-letter queue"));
        }
        let mut ids = Vec::new();
        for (seq, d) in chosen {
            let event_id = d.event.id.clone();
            let p = partition_of(&d.route.agent, &d.event.instance_key, self.partitions());
            let record = StoredEvent {
                route: d.route,
                event: d.event,
            };
            let subject = self.inner.names.partition_subject(p);
            self.inner
                .publisher
                .publish(subject, None, &record)
                .await
                .map_err(|e| format!("{event_id}: {e}"))?;
            self.delete_dead(seq).await?;
            ids.push(event_id);
        }
        Ok(ids)
    }

    /// Removes dead letter `id` for good.
    pub async fn drop_dead(&self, id: &str) -> Result<(), String> {
        let letters = self.dead_letters().await?;
        let Some((seq, _)) = letters.iter().find(|(_, d)| d.event.id == id) else {
            return Err(format!("{id}: no such event in the dead-letter queue"));
        };
        self.delete_dead(*seq).await
    }

    async fn delete_dead(&self, seq: u64) -> Result<(), String> {
        let name = self.inner.names.dlq_stream();
        let stream = self
            .inner
            .js
            .get_stream(&name)
            .await
            .map_err(|e| format!("cannot open stream {name}: {e}"))?;
        stream
            .delete_message(seq)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot remove message {seq} of {name}: {e}"))
    }
}
