//! What an agent instance's process says: acks, nacks, logs, invokes and
//! job requests; and what becomes of an event that is done or dead.

use ipc_proto::{FromAgent, ToAgent};
use tokio::time::Instant;

use super::deliveries::{self, Nacked};
use super::{InstanceRole, Pending};
use crate::supervisor::Link;

impl InstanceRole {
    /// An event is done (acknowledged or dead-lettered): its `--max-pending`
    /// place, if it held one, is free again.
    pub(super) fn done(&self, p: &Pending) {
        if p.held {
            self.pending_limit.add_permits(1);
        }
    }

    pub(super) fn dead_letter(&mut self, p: Pending, error: String) {
        self.done(&p);
        self.metrics.dead_letters.increment(1);
        let msg = format!(
            "event {} dead-lettered after {} attempts: {error}",
            p.event.id, p.attempt
        );
        self.log.note(&msg);
        tracing::warn!(agent = %self.agent.name, instance = %self.key, "{msg}");
        // The journal keeps it until `dlq replay` or `dlq drop`; a failed
        // write leaves it pending, so it is delivered again after a restart.
        let log = self.log.clone();
        if let Some(receipt) = &p.receipt {
            let write = receipt.dead_letter(&p.event, p.attempt, &error);
            tokio::spawn(async move {
                if let Err(e) = write.await {
                    log.note(&format!("dead letter not recorded: {e}"));
                }
            });
            return;
        }
        let write = self.journal.dead_letter(&p.event.id, p.attempt, &error);
        tokio::spawn(async move {
            if let Err(e) = write.await {
                log.note(&format!("dead letter not recorded: {e}"));
            }
        });
    }

    pub(super) fn on_message(
        &mut self,
        msg: FromAgent,
        link: &mut Link<FromAgent, ToAgent>,
    ) -> bool {
        match msg {
            FromAgent::Ack(ack) => match self.deliveries.acked(&ack.id) {
                Some(p) => {
                    self.done(&p);
                    self.metrics.acks.increment(1);
                    match &p.receipt {
                        Some(receipt) => receipt.delivered(),
                        None => self.journal.delivered(&ack.id),
                    }
                    self.status.success();
                    self.shared.touch();
                }
                None => {
                    return link.violation(format!("ack for '{}', which is not in flight", ack.id));
                }
            },
            FromAgent::Nack(nack) => {
                self.metrics.nacks.increment(1);
                match self.deliveries.nacked(&nack.id, nack.retry, Instant::now()) {
                    Nacked::Retry(attempt) => {
                        let delay = humantime::format_duration(deliveries::retry_delay(attempt));
                        self.log.note(&format!(
                            "event {} nacked (attempt {}): {}; attempt {attempt} in {delay}",
                            nack.id,
                            attempt - 1,
                            nack.error
                        ));
                    }
                    Nacked::Dead(p) => self.dead_letter(*p, nack.error),
                    Nacked::Unknown => {
                        return link
                            .violation(format!("nack for '{}', which is not in flight", nack.id));
                    }
                }
            }
            FromAgent::Log(l) => self.log.line(l.level.as_str(), &l.message),
            FromAgent::Pong(_) => {}
            FromAgent::Invoke(invoke) => self.invoke(invoke, &link.outbox),
            FromAgent::JobGet(q) => self.job_request(q.id, q.job_id, false, &link.outbox),
            FromAgent::JobCancel(q) => self.job_request(q.id, q.job_id, true, &link.outbox),
            FromAgent::Ready(_) => return link.violation("'ready' sent twice".into()),
        }
        true
    }
}
