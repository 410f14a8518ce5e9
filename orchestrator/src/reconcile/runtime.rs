//! The running children of a bundle: each Connection's supervised process
//! (or its `disabled` row), started, stopped and restarted one by one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipc_proto::Secrets;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::plan::Digests;
use crate::bundle::{self, Bundle, Connection, Placement};
use crate::connection::{ConnectionContext, ConnectionRole, Routing};
use crate::journal::Journal;
use crate::logs::{AuditLog, LogSink, StateDir};
use crate::operations::Operations;
use crate::router::Router;
use crate::run::RunError;
use crate::status::{ProcessKind, ProcessStatus, Registry};
use crate::supervisor::{ChildSpec, Supervision, supervise};

/// What every Connection's process is started with, whatever the bundle.
#[derive(Clone, Debug)]
pub struct Deps {
    /// The state directory.
    pub state: StateDir,
    /// The journal.
    pub journal: Journal,
    /// `audit.log`.
    pub audit: AuditLog,
    /// Where routed events go.
    pub router: Router,
    /// Every Connection's operations.
    pub operations: Arc<Operations>,
    /// Every process's status.
    pub registry: Arc<Registry>,
    /// The shim children are started through.
    pub shim: Option<PathBuf>,
    /// The terminal of `run`.
    pub console: crate::console::Console,
    /// Kills every child at once.
    pub kill_now: CancellationToken,
    /// Stops every Connection gracefully (each has a child token of it).
    pub stop: CancellationToken,
    /// Connection tasks run under it.
    pub tracker: TaskTracker,
    /// Cluster mode: events go to NATS, and a Connection runs here only
    /// while this node holds it (see [`Runtime::place`]).
    pub cluster: Option<crate::cluster::Cluster>,
}

/// A Connection's resolved `spec.config` and secrets.
pub type ConnectionValues = (BTreeMap<String, String>, Secrets);

/// The values a bundle's enabled children are started with, and their digests.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Each enabled Connection's `spec.config` and secrets.
    pub connections: BTreeMap<String, ConnectionValues>,
    /// Each enabled Agent's secrets.
    pub agents: BTreeMap<String, Secrets>,
    /// Their hashes, by `Kind/name`.
    pub digests: BTreeMap<String, Digests>,
}

/// Resolves every enabled child's config and secrets (environment, files,
/// Secret resources) and checks each resolved config against its
/// Connector's schema. The first failure refuses the whole bundle.
pub fn resolve(bundle: &Bundle) -> Result<Resolved, RunError> {
    let env = |name: &str| std::env::var(name).ok();
    let read = |path: &Path| read_regular(path);
    let mut out = Resolved::default();
    for c in bundle.connections.iter().filter(|c| c.enabled) {
        let connector = &bundle.connectors[&c.connector];
        let secrets = bundle::resolve_secrets(bundle, c, &env, &read).map_err(RunError::Secret)?;
        let config = bundle::resolve_config(bundle, c, &env, &read).map_err(RunError::Secret)?;
        bundle::check_resolved(&c.name, connector, &config).map_err(RunError::Config)?;
        let digests = digests(&secrets, &config);
        out.digests
            .insert(format!("Connection/{}", c.name), digests);
        out.connections
            .insert(c.name.clone(), (config, Secrets(secrets)));
    }
    for a in bundle.agents.values().filter(|a| a.enabled) {
        let secrets =
            bundle::resolve_agent_secrets(bundle, a, &env, &read).map_err(RunError::Secret)?;
        let digests = digests(&secrets, &BTreeMap::new());
        out.digests.insert(format!("Agent/{}", a.name), digests);
        out.agents.insert(a.name.clone(), Secrets(secrets));
    }
    Ok(out)
}

/// A secret file's text; a FIFO or a device (which would hold the start or
/// an apply forever) is refused.
fn read_regular(path: &Path) -> std::io::Result<String> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    std::fs::read_to_string(path)
}

fn digests(secrets: &BTreeMap<String, String>, config: &BTreeMap<String, String>) -> Digests {
    let hash = |parts: &[&str]| -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0]);
        }
        h.finalize().into()
    };
    let mut all = Sha256::new();
    for (k, v) in config {
        all.update(hash(&[k, v]));
    }
    Digests {
        secrets: secrets
            .iter()
            .map(|(k, v)| (k.clone(), hash(&[k, v])))
            .collect(),
        config: all.finalize().into(),
    }
}

/// One Connection of the running bundle.
#[derive(Debug)]
pub(super) struct Child {
    /// Its status row (a disabled one's says `disabled`).
    pub status: Arc<ProcessStatus>,
    /// Its process, unless it is disabled.
    pub running: Option<Running>,
}

#[derive(Debug)]
pub(super) struct Running {
    pub ctx: Arc<ConnectionContext>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Every Connection's child of the running bundle.
#[derive(Debug)]
pub struct Runtime {
    /// The bundle running now.
    pub bundle: Bundle,
    /// Each entry's resolved program.
    pub programs: BTreeMap<String, PathBuf>,
    /// The digests of the values its children were started with.
    pub digests: BTreeMap<String, Digests>,
    pub(super) children: BTreeMap<String, Child>,
    pub(super) deps: Deps,
    /// Cluster mode: each Connection that runs on one node at a time, with
    /// the values to start it with whenever this node takes it over.
    movable: BTreeMap<String, Option<ConnectionValues>>,
}

impl Runtime {
    /// Starts every Connection of `bundle` (a disabled one gets its row only).
    pub fn start(
        bundle: Bundle,
        programs: BTreeMap<String, PathBuf>,
        mut resolved: Resolved,
        deps: Deps,
    ) -> Result<Self, RunError> {
        let mut runtime = Self {
            bundle,
            programs,
            digests: std::mem::take(&mut resolved.digests),
            children: BTreeMap::new(),
            deps,
            movable: BTreeMap::new(),
        };
        for c in runtime.bundle.connections.clone() {
            let values = resolved.connections.remove(&c.name);
            let here = runtime.deps.cluster.is_none() || c.placement == Placement::Every;
            if here || !c.enabled {
                runtime.start_connection(&c, values)?;
            } else {
                runtime.movable.insert(c.name.clone(), values);
            }
        }
        Ok(runtime)
    }

    /// Cluster mode: starts Connection `name` here (this node took it
    /// over), or stops it (another node takes it).
    pub async fn place(&mut self, name: &str, here: bool) {
        if here {
            let Some(values) = self.movable.get(name).cloned() else {
                return;
            };
            let conn = self.bundle.connections.iter().find(|c| c.name == name);
            let Some(c) = conn.cloned().filter(|_| !self.children.contains_key(name)) else {
                return;
            };
            if let Err(e) = self.start_connection(&c, values) {
                tracing::error!("cluster: cannot start connection {name}: {e}");
            }
        } else if self.movable.contains_key(name) {
            self.stop_connection(name).await;
        }
    }

    /// Starts `c` with its resolved `values`; `None` (or `enabled: false`)
    /// only registers its `disabled` row.
    pub(super) fn start_connection(
        &mut self,
        c: &Connection,
        values: Option<(BTreeMap<String, String>, Secrets)>,
    ) -> Result<(), RunError> {
        let deps = &self.deps;
        let bundle = &self.bundle;
        let connector = bundle.connectors[&c.connector].clone();
        let (status, control) = ProcessStatus::new(ProcessKind::Connection, &c.name, None);
        status.set_details(crate::status::ConnectionDetails::of(c, &connector));
        let Some((config, secrets)) = values.filter(|_| c.enabled) else {
            status.set_disabled(true);
            deps.registry.add(status.clone());
            let child = Child {
                status,
                running: None,
            };
            self.children.insert(c.name.clone(), child);
            return Ok(());
        };
        if let Some(cluster) = &deps.cluster {
            // Invokes of it from other nodes come here while it runs here.
            cluster.serve(&c.name, deps.operations.clone());
        }
        let swarm = bundle.swarms[&c.swarm].clone();
        let log_path = deps.state.connection_log(&c.name);
        let log = LogSink::open(&log_path).map_err(|source| RunError::Io {
            what: "cannot open",
            path: log_path,
            source,
        })?;
        let state_dir = deps.state.connection_state(&c.name);
        std::fs::create_dir_all(&state_dir).map_err(|source| RunError::Io {
            what: "cannot create",
            path: state_dir.clone(),
            source,
        })?;
        let restart = c
            .restart
            .clone()
            .unwrap_or_else(|| connector.program.restart.clone());
        let spec = ChildSpec {
            program: self.programs[&connector.program.entry].clone(),
            args: connector.program.args.clone(),
            env: connector.program.env.clone(),
            cwd: bundle.root.clone(),
            protocol: connector.program.protocol,
            max_frame_bytes: connector.program.max_frame_bytes,
            max_protocol_errors: connector.program.max_protocol_errors,
            shim: deps.shim.clone(),
            inherit_stdin: connector.stdin,
            sandbox: crate::sandbox::plan_for(connector.program.sandbox.as_ref()),
            pin: connector
                .program
                .entry_sha256
                .clone()
                .map(|sha256| crate::supervisor::Pin {
                    sha256,
                    audit: deps.audit.clone(),
                    target: format!("connection/{}", c.name),
                }),
        };
        if let Some(plan) = &spec.sandbox {
            crate::sandbox::grant_dir(plan, &state_dir, &log, &status);
        }
        deps.registry.add(status.clone());
        let health_interval = connector.program.health_interval;
        let ctx = Arc::new(ConnectionContext {
            connection: c.clone(),
            connector,
            routing: std::sync::RwLock::new(Arc::new(Routing {
                connection: c.clone(),
                swarm,
            })),
            config,
            secrets,
            state_dir,
            log: log.clone(),
            status: status.clone(),
            journal: deps.journal.clone(),
            audit: deps.audit.clone(),
            router: deps.router.clone(),
            console: deps.console.clone(),
            operations: deps.operations.clone(),
            cluster: deps.cluster.clone(),
        });
        let stop = deps.stop.child_token();
        let sup = Supervision {
            spec,
            restart,
            health_interval,
            log,
            status: status.clone(),
            control,
            stop: stop.clone(),
            kill_now: deps.kill_now.clone(),
            console: deps.console.clone(),
        };
        let role = ConnectionRole::new(ctx.clone());
        let task = deps.tracker.spawn(async move {
            supervise(role, sup).await;
        });
        let running = Running { ctx, stop, task };
        let child = Child {
            status,
            running: Some(running),
        };
        self.children.insert(c.name.clone(), child);
        Ok(())
    }

    /// Takes Connection `name` out: its process (if it runs) stops
    /// gracefully — the connector is told to shut down, what it emits
    /// meanwhile is still taken in and acked — and its row goes.
    pub(super) fn stop_connection(
        &mut self,
        name: &str,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let child = self.children.remove(name);
        let registry = self.deps.registry.clone();
        if let Some(cluster) = &self.deps.cluster {
            cluster.stop_serving(name);
        }
        async move {
            let Some(child) = child else {
                return;
            };
            if let Some(running) = child.running {
                running.stop.cancel();
                let _ = running.task.await;
            }
            registry.remove(&child.status);
        }
    }
}
