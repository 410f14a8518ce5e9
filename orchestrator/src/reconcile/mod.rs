//! Desired state: `orchestrator diff` and `apply` (and SIGHUP) bring a
//! running orchestrator to a changed bundle without stopping what did not
//! change.
//!
//! # Theory of operation
//!
//! The new bundle is loaded and checked exactly as `run` checks one, and
//! every enabled child's config and secrets are resolved; any problem
//! refuses the whole apply and nothing changes. [`plan::plan`] compares
//! the specs (as JSON, places aside) and the digests of the resolved
//! values, and says what happens to each child. Then, one apply at a time:
//!
//! 1. Agents first, so a Connection's new rules find their Agent: added
//!    ones join the router; changed ones are replaced (their instances stop
//!    gracefully and hand what they had not delivered to instances of the
//!    new program); ones whose limits changed take them up in place.
//! 2. Connections: changed routing and limits are swapped in place; the
//!    ones to stop or restart are stopped gracefully together (intake
//!    keeps committing and acking what the connector still emits while it
//!    shuts down), then restarted or started with their new spec.
//! 3. Removed Agents go last (no rule routes to them any more); what their
//!    instances had not delivered is dead-lettered, saying so.
//!
//! Every apply is an audit record (`apply`, with the changes and who asked),
//! and each rotated secret one more (`credential_rotated`, key, never value).

pub mod plan;
mod runtime;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use plan::{Action, ChildAction, Plan, ResourceChange};
pub use runtime::{Deps, Resolved, Runtime, resolve};

use crate::bundle::{Bundle, Diagnostic};
use crate::router::{AgentProgram, Pending};
use crate::run::RunError;

/// How long an apply waits for a Connection it (re)started to be ready.
const STARTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Why an apply (or a diff) was refused; the running state is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The new bundle has errors; each names its place.
    #[error("invalid bundle ({} errors)", .0.len())]
    Invalid(Vec<Diagnostic>),
    /// A value could not be resolved, or a config does not fit its schema.
    #[error("{0}")]
    Refused(String),
}

/// The running bundle, one apply at a time (the control socket and SIGHUP share it).
#[derive(Clone, Debug)]
pub struct Reconciler {
    runtime: Arc<tokio::sync::Mutex<Runtime>>,
}

impl Reconciler {
    /// Takes charge of `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime: Arc::new(tokio::sync::Mutex::new(runtime)),
        }
    }

    /// What an apply of the bundle at `path` would do.
    pub async fn diff(&self, path: &Path) -> Result<Plan, ApplyError> {
        let (new, _, resolved) = load(path).await?;
        let runtime = self.runtime.lock().await;
        Ok(plan::plan(
            &runtime.bundle,
            &new,
            &runtime.digests,
            &resolved.digests,
        ))
    }

    /// Brings the running orchestrator to the bundle at `path`; `by` says
    /// who asked, for the audit record.
    pub async fn apply(&self, path: &Path, by: &str) -> Result<Plan, ApplyError> {
        if self.runtime.lock().await.deps.cluster.is_some() {
            return Err(ApplyError::Refused(
                "apply is not available in cluster mode: every node runs the same bundle; restart the nodes one by one with the new one".into(),
            ));
        }
        let (new, programs, resolved) = load(path).await?;
        // Its files (and the Secret files it reads) are hidden from every
        // sandboxed child started from now on, like the first bundle's.
        crate::sandbox::hide_bundle_files(path, crate::sandbox::secret_files(&new));
        let mut runtime = self.runtime.lock().await;
        let plan = plan::plan(&runtime.bundle, &new, &runtime.digests, &resolved.digests);
        if plan.is_empty() {
            return Ok(plan);
        }
        tracing::info!(bundle = %path.display(), by, "applying: {} resources differ", plan.resources.len());
        runtime.converge(new, programs, resolved, &plan).await?;
        audit(&runtime, &plan, path, by);
        Ok(plan)
    }

    /// Cluster mode: runs Connection `name` here, or stops it here.
    pub async fn place(&self, name: &str, here: bool) {
        self.runtime.lock().await.place(name, here).await;
    }

    /// Holds off every apply until the guard is dropped (the run is ending).
    pub async fn hold(&self) -> tokio::sync::OwnedMutexGuard<Runtime> {
        self.runtime.clone().lock_owned().await
    }
}

/// Loads and checks the bundle at `path` and resolves its values, off the async threads.
async fn load(path: &Path) -> Result<(Bundle, BTreeMap<String, PathBuf>, Resolved), ApplyError> {
    let path = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || {
        let (bundle, programs) = crate::run::load_checked(&path).map_err(ApplyError::Invalid)?;
        let resolved = resolve(&bundle).map_err(|e| ApplyError::Refused(e.to_string()))?;
        Ok((bundle, programs, resolved))
    })
    .await;
    loaded.unwrap_or_else(|e| Err(ApplyError::Refused(format!("cannot load the bundle: {e}"))))
}

fn audit(runtime: &Runtime, plan: &Plan, path: &Path, by: &str) {
    let audit = &runtime.deps.audit;
    let now = crate::logs::timestamp(std::time::SystemTime::now());
    let children: Vec<&ChildAction> = plan
        .children
        .iter()
        .filter(|c| c.action != Action::Keep)
        .collect();
    audit.record(serde_json::json!({
        "time": now,
        "kind": "apply",
        "outcome": "applied",
        "by": by,
        "bundle": path.display().to_string(),
        "changes": plan.resources,
        "children": children,
    }));
    for child in &plan.children {
        let (kind, name) = child.target.split_once('/').unwrap_or(("", ""));
        for key in &child.rotated {
            let mut record = serde_json::json!({
                "time": now,
                "kind": "credential_rotated",
                "outcome": "restarted",
                "key": key,
            });
            record[kind] = serde_json::Value::String(name.to_string());
            audit.record(record);
        }
    }
}

impl Runtime {
    /// Carries out `plan` (from this runtime's bundle to `new`).
    async fn converge(
        &mut self,
        new: Bundle,
        programs: BTreeMap<String, PathBuf>,
        mut resolved: Resolved,
        plan: &Plan,
    ) -> Result<(), ApplyError> {
        let deps = self.deps.clone();
        let io = |e: std::io::Error| ApplyError::Refused(format!("state directory: {e}"));
        crate::logs::StateDir::create(deps.state.root(), new.agents.keys()).map_err(io)?;
        let old = std::mem::replace(&mut self.bundle, new);
        self.programs = programs;
        let new = self.bundle.clone();

        // 1. Agents that are added, changed or disabled.
        for agent in new.agents.values() {
            let target = format!("agent/{}", agent.name);
            let action = plan.action(&target);
            let mut program = || {
                let secrets = resolved.agents.remove(&agent.name).unwrap_or_default();
                AgentProgram::new(
                    agent.clone(),
                    self.programs[&agent.program.entry].clone(),
                    secrets,
                )
            };
            match action {
                Action::Keep | Action::Stop => {}
                Action::Update => deps.router.update_limits(agent.clone()),
                Action::Start if old.agents.contains_key(&agent.name) => {
                    // Enabled again: what the journal kept for it comes first.
                    let kept = kept_for(&deps.journal, &agent.name).await;
                    deps.router.replace_agent(program()).await;
                    deps.router.resume_agent(&agent.name, kept).await;
                }
                Action::Start => deps.router.add_agent(program()),
                Action::Restart | Action::Disable => {
                    if old.agents.contains_key(&agent.name) {
                        deps.router.replace_agent(program()).await;
                    } else {
                        deps.router.add_agent(program());
                    }
                }
            }
            deps.operations
                .set_grants(&agent.name, Some(agent.invoke.clone()));
        }

        // 2. Connections: in place, then stopped together, then started.
        let mut stops = Vec::new();
        for child in &plan.children {
            let Some(name) = child.target.strip_prefix("connection/") else {
                continue;
            };
            let conn = new.connections.iter().find(|c| c.name == name);
            match (child.action, conn) {
                (Action::Update, Some(c)) => {
                    let connector = &new.connectors[&c.connector];
                    if let Some(child) = self.children.get(name) {
                        if let Some(running) = &child.running {
                            running.ctx.set_routing(crate::connection::Routing {
                                connection: c.clone(),
                                swarm: new.swarms[&c.swarm].clone(),
                            });
                        }
                        let details = crate::status::ConnectionDetails::of(c, connector);
                        child.status.set_details(details);
                    }
                    // New operations limits: a fresh ConnectionOps (it inherits the channel).
                    let before = old.connections.iter().find(|o| o.name == name);
                    if before.is_none_or(|o| o.operations != c.operations) {
                        deps.operations
                            .put_connection(crate::operations::ConnectionOps::new(c, connector));
                    }
                }
                (Action::Restart | Action::Stop | Action::Disable, _) => {
                    stops.push(self.stop_connection(name));
                }
                _ => {}
            }
        }
        futures::future::join_all(stops).await;
        for child in &plan.children {
            let Some(name) = child.target.strip_prefix("connection/") else {
                continue;
            };
            let conn = new.connections.iter().find(|c| c.name == name).cloned();
            match (child.action, conn) {
                (Action::Restart | Action::Start | Action::Disable, Some(c)) => {
                    let connector = &self.bundle.connectors[&c.connector];
                    deps.operations
                        .put_connection(crate::operations::ConnectionOps::new(&c, connector));
                    let values = resolved.connections.remove(&c.name);
                    self.start_connection(&c, values)
                        .map_err(|e| ApplyError::Refused(e.to_string()))?;
                }
                (Action::Stop, _) => deps.operations.remove_connection(name),
                _ => {}
            }
        }

        // Started and restarted Connections are up (or say why not) before
        // the apply answers: the next request finds them listening.
        let started: Vec<_> = plan
            .children
            .iter()
            .filter(|c| matches!(c.action, Action::Restart | Action::Start))
            .filter_map(|c| c.target.strip_prefix("connection/"))
            .filter_map(|name| self.children.get(name))
            .filter(|child| child.running.is_some())
            .map(|child| child.status.clone())
            .collect();
        futures::future::join_all(started.iter().map(|s| s.wait_started(STARTED_WITHIN))).await;

        // 3. Agents that are gone.
        for name in old.agents.keys() {
            if !self.bundle.agents.contains_key(name) {
                deps.router.remove_agent(name).await;
                deps.operations.set_grants(name, None);
            }
        }
        self.digests = std::mem::take(&mut resolved.digests);
        Ok(())
    }
}

/// The events the journal kept for a disabled Agent: `(swarm, key, event)`,
/// in acceptance order.
async fn kept_for(
    journal: &crate::journal::Journal,
    agent: &str,
) -> Vec<(String, String, Pending)> {
    let journal = journal.clone();
    let agent = agent.to_string();
    let pending = tokio::task::spawn_blocking(move || journal.pending()).await;
    let events = match pending {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => {
            tracing::error!("journal: cannot read the events kept for agent {agent}: {e}");
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };
    events
        .into_iter()
        .filter(|je| je.route.agent == agent)
        .map(|je| {
            let key = je.event.instance_key.clone();
            let pending = Pending {
                event: Box::new(je.event),
                attempt: je.attempts.max(1) + 1,
                held: false,
                receipt: None,
            };
            (je.route.swarm, key, pending)
        })
        .collect()
}

impl From<RunError> for ApplyError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::InvalidBundle(d) => ApplyError::Invalid(d),
            other => ApplyError::Refused(other.to_string()),
        }
    }
}
