//! What an apply does to the Agents: add one, replace one (its instances
//! restart with the new program), change its limits in place, disable or
//! remove one, and enable one again.
//!
//! An instance whose Agent is replaced stops gracefully (deliveries in
//! flight may still be acknowledged within its grace); what it had not
//! delivered, and what was queued for it, goes to a new instance of the new
//! program first, ahead of anything reserved later. A removed Agent's
//! leftovers go to the dead-letter queue ("removed by an apply"); a disabled
//! one's stay in the journal, and are delivered when it is enabled again.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::launch::{Ended, Launch};
use super::{AgentProgram, Instance, Pending, Router, drain};
use crate::bundle::Agent;

impl Router {
    /// Adds an Agent the router does not have.
    pub fn add_agent(&self, program: AgentProgram) {
        let program = self.adopt(program);
        let mut agents = self.shared.agents.write().expect("router lock");
        agents.insert(program.agent.name.clone(), program);
    }

    /// Puts `program` in place of its Agent's current one, and waits until
    /// the old one's instances have stopped and handed on what they held.
    pub async fn replace_agent(&self, program: AgentProgram) {
        let program = self.adopt(program);
        let old = {
            let mut agents = self.shared.agents.write().expect("router lock");
            agents.insert(program.agent.name.clone(), program)
        };
        if let Some(old) = old {
            retire_all(&old).await;
        }
    }

    /// Removes an Agent, and waits until its instances have stopped; what
    /// they had not delivered is dead-lettered.
    pub async fn remove_agent(&self, name: &str) {
        let old = {
            let mut agents = self.shared.agents.write().expect("router lock");
            agents.remove(name)
        };
        if let Some(old) = old {
            retire_all(&old).await;
        }
    }

    /// New delivery limits for an Agent's running and future instances.
    pub fn update_limits(&self, agent: Agent) {
        if let Some(program) = self.program(&agent.name) {
            program.live.send_replace(Arc::new(agent));
        }
    }

    /// Hands an enabled Agent the events the journal kept for it while it
    /// was disabled.
    pub async fn resume_agent(&self, name: &str, kept: Vec<(String, String, Pending)>) {
        let mut groups: Vec<(String, String, Vec<Pending>)> = Vec::new();
        for (swarm, key, p) in kept {
            match groups.iter_mut().find(|(s, k, _)| *s == swarm && *k == key) {
                Some((_, _, backlog)) => backlog.push(p),
                None => groups.push((swarm, key, vec![p])),
            }
        }
        for (swarm, key, backlog) in groups {
            if let Err(e) = self.recover(&swarm, name, &key, backlog).await {
                tracing::error!("agent instance {name}/{key}: events kept while disabled: {e}");
            }
        }
    }

    fn adopt(&self, mut program: AgentProgram) -> Arc<AgentProgram> {
        program.stop = self.shared.stop.child_token();
        Arc::new(program)
    }

    /// An instance of a replaced, disabled or removed Agent has stopped:
    /// its leftovers go on.
    pub(super) async fn retire(
        &self,
        ended: &Ended<'_>,
        leftovers: Vec<Pending>,
        queue: mpsc::Receiver<Pending>,
    ) {
        let Ended {
            swarm,
            agent,
            key,
            status,
            instance,
            program: old,
            ..
        } = *ended;
        self.shared.registry.remove(status);
        old.slots.remove(instance);
        let current = self.program(agent);
        match current.filter(|p| p.agent.enabled && !Arc::ptr_eq(p, old)) {
            Some(program) => {
                // The new queue takes the entry first: what is reserved
                // from now on comes after what is left.
                let (tx, rx) = mpsc::channel(program.agent.max_queue.max(1) as usize);
                let entry = Instance::new(tx, &program);
                let stop = entry.stop.clone();
                {
                    let mut instances = self.shared.instances.lock().expect("router lock");
                    let keys = instances.entry(agent.to_string()).or_default();
                    keys.insert(key.to_string(), entry);
                }
                let mut backlog = leftovers;
                backlog.extend(drain(queue).await);
                if backlog.is_empty() {
                    // Nothing to do: a process starts on its next event.
                    self.forget(swarm, agent, key, None, rx).await;
                    return;
                }
                let launch = Launch {
                    swarm,
                    agent,
                    key,
                    program,
                    queue: rx,
                    backlog,
                    stop,
                };
                if let Err((e, rx)) = self.launch(launch).await {
                    // Its events stay in the journal, for the next start.
                    tracing::error!("agent instance {agent}/{key}: not restarted: {e}");
                    self.forget(swarm, agent, key, None, rx).await;
                }
            }
            None => {
                self.take_entry(agent, key);
                let removed = self.program(agent).is_none();
                let mut rest = leftovers;
                rest.extend(drain(queue).await);
                for p in rest {
                    if p.held {
                        self.shared.pending_limit.add_permits(1);
                    }
                    if removed {
                        self.dead_letter_removed(agent, p).await;
                    }
                    // Disabled: the journal keeps it until the Agent is enabled.
                }
            }
        }
    }

    async fn dead_letter_removed(&self, agent: &str, p: Pending) {
        let reason = format!("agent '{agent}' removed by an apply");
        crate::metrics::AgentMetrics::new(agent)
            .dead_letters
            .increment(1);
        let attempts = p.attempt.saturating_sub(1);
        if let Some(receipt) = &p.receipt {
            if let Err(e) = receipt.dead_letter(&p.event, attempts, &reason).await {
                tracing::error!(event = %p.event.id, "dead letter not recorded: {e}");
            }
            return;
        }
        if let Err(e) = self
            .shared
            .journal
            .dead_letter(&p.event.id, attempts, &reason)
            .await
        {
            tracing::error!(event = %p.event.id, "dead letter not recorded: {e}");
        }
    }
}

/// Stops every instance of `old` and waits for them to hand on what they held.
async fn retire_all(old: &AgentProgram) {
    old.stop.cancel();
    old.tasks.close();
    old.tasks.wait().await;
}
