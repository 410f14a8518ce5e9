//! Starting one agent instance's supervised task, and what happens when it ends.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::{
    AgentProgram, DispatchError, InstanceRole, InstanceSetup, InstanceShared, Pending, Router,
};
use crate::logs::LogSink;
use crate::status::{ProcessKind, ProcessStatus};
use crate::supervisor::{ChildSpec, Pin, Supervision, supervise};

/// An instance whose entry is in the table, about to be started.
pub(super) struct Launch<'a> {
    pub swarm: &'a str,
    pub agent: &'a str,
    pub key: &'a str,
    /// The Agent it runs.
    pub program: Arc<AgentProgram>,
    /// The receiving end of the queue in its table entry.
    pub queue: mpsc::Receiver<Pending>,
    /// Delivered before anything in the queue.
    pub backlog: Vec<Pending>,
    /// Stops it alone (a child of its Agent's `stop`).
    pub stop: tokio_util::sync::CancellationToken,
}

impl Router {
    /// Opens its log (off the async threads), registers its status and
    /// starts its supervised task. On failure its queue comes back, so the
    /// caller can take its entry out.
    ///
    /// Boxed: an instance's task comes back here when its Agent is replaced.
    pub(super) fn launch<'a>(
        &'a self,
        launch: Launch<'a>,
    ) -> BoxFuture<'a, Result<(), (DispatchError, mpsc::Receiver<Pending>)>> {
        Box::pin(self.launch_inner(launch))
    }

    async fn launch_inner(
        &self,
        launch: Launch<'_>,
    ) -> Result<(), (DispatchError, mpsc::Receiver<Pending>)> {
        let Launch {
            swarm,
            agent,
            key,
            program,
            queue,
            backlog,
            stop,
        } = launch;
        let shared = &*self.shared;
        let (status, control) = ProcessStatus::new(ProcessKind::Agent, agent, Some(key));
        let state_dir = shared.state.agent_state(agent, key);
        let log_path = shared.state.agent_log(agent, key);
        let log = {
            let (status, plan, dir) = (status.clone(), program.sandbox.clone(), state_dir.clone());
            tokio::task::spawn_blocking(move || {
                let log = LogSink::open(&log_path)?;
                if let Some(plan) = &plan {
                    crate::sandbox::grant_dir(plan, &dir, &log, &status);
                }
                Ok(log)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        let log = match log {
            Ok(log) => log,
            Err(e) => {
                let error = DispatchError::Log(agent.to_string(), key.to_string(), e);
                return Err((error, queue));
            }
        };

        shared.registry.add(status.clone());
        let instance = Arc::new(InstanceShared::default());
        program.slots.add(instance.clone());
        let role = InstanceRole::new(InstanceSetup {
            secrets: program.secrets.clone(),
            agent: (**program.live.borrow()).clone(),
            key: key.to_string(),
            swarm: swarm.to_string(),
            state_dir,
            queue,
            log: log.clone(),
            journal: shared.journal.clone(),
            status: status.clone(),
            shared: instance.clone(),
            slots: program.slots.clone(),
            backlog,
            pending_limit: shared.pending_limit.clone(),
            operations: shared.operations.clone(),
            live: program.live.subscribe(),
        });
        let p = &program.agent.program;
        let sup = Supervision {
            spec: ChildSpec {
                program: program.program.clone(),
                args: p.args.clone(),
                env: p.env.clone(),
                cwd: shared.cwd.clone(),
                protocol: p.protocol,
                max_frame_bytes: p.max_frame_bytes,
                max_protocol_errors: p.max_protocol_errors,
                shim: shared.shim.clone(),
                inherit_stdin: false,
                sandbox: program.sandbox.clone(),
                pin: p.entry_sha256.clone().map(|sha256| Pin {
                    sha256,
                    audit: shared.audit.clone(),
                    target: format!("agent/{agent}/{key}"),
                }),
            },
            restart: p.restart.clone(),
            health_interval: p.health_interval,
            log,
            status: status.clone(),
            control,
            stop: stop.clone(),
            kill_now: shared.kill_now.clone(),
            console: shared.console.clone(),
        };
        let router = self.clone();
        let (swarm, agent, key) = (swarm.to_string(), agent.to_string(), key.to_string());
        let tasks = program.tasks.clone();
        let task = tasks.track_future(async move {
            let role = supervise(role, sup).await;
            let ended = Ended {
                swarm: &swarm,
                agent: &agent,
                key: &key,
                status: &status,
                instance: &instance,
                program: &program,
                released: stop.is_cancelled(),
            };
            router.ended(ended, role).await;
        });
        shared.tracker.spawn(task);
        Ok(())
    }

    /// Its supervision is over. The run is stopping: the journal keeps what
    /// it had not delivered. Its Agent was replaced, disabled or removed by
    /// an apply: what is left goes on (see `reconfigure.rs`). It expired
    /// (`instanceTtl`): it leaves the table.
    async fn ended(&self, ended: Ended<'_>, role: InstanceRole) {
        if self.shared.stop.is_cancelled() {
            return;
        }
        let ran = Some((ended.status, ended.instance, &**ended.program));
        if ended.program.stop.is_cancelled() {
            let (leftovers, queue) = role.into_leftovers();
            self.retire(&ended, leftovers, queue).await;
        } else if ended.released {
            // Released (cluster mode): what it had goes back to the stream
            // with its receipts; the entry and the row go.
            self.take_entry(ended.agent, ended.key);
            self.shared.registry.remove(ended.status);
            ended.program.slots.remove(ended.instance);
            let (mut leftovers, queue) = role.into_leftovers();
            leftovers.extend(super::drain(queue).await);
            let held = leftovers.iter().filter(|p| p.held).count();
            self.shared.pending_limit.add_permits(held);
        } else if let Some(queue) = role.into_expired() {
            self.forget(ended.swarm, ended.agent, ended.key, ran, queue)
                .await;
        }
    }
}

/// An instance whose supervision has ended.
pub(super) struct Ended<'a> {
    pub swarm: &'a str,
    pub agent: &'a str,
    pub key: &'a str,
    pub status: &'a Arc<ProcessStatus>,
    pub instance: &'a Arc<InstanceShared>,
    pub program: &'a Arc<AgentProgram>,
    /// It was stopped alone by [`Router::release_where`].
    pub released: bool,
}
