//! `orchestrator run`: wire a validated bundle into supervised processes.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bundle::{self, Bundle, Diagnostic};
use crate::journal::{Journal, JournalError, JournalOptions};
use crate::logs::{AuditLog, StateDir};
use crate::router::{AgentProgram, Pending, Router, RouterSetup};
use crate::status::Registry;

/// What `run` needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The bundle file or directory.
    pub bundle: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The orchestrator binary, to start children through its `__shim` (see
    /// [`crate::shim`]); `None` starts them directly (grandchildren may then
    /// outlive a `kill -9` of the orchestrator).
    pub shim: Option<PathBuf>,
    /// Where accepted events are kept.
    pub journal: JournalMode,
    /// How long delivered events stay in the journal, and dedupe keys count.
    pub retention: Retention,
    /// Accepted events not yet delivered, across every agent instance, at
    /// most (`--max-pending`): beyond it emits are refused (`overflow:
    /// reject`) or held (`wait`), like a full instance queue.
    pub max_pending: usize,
    /// Where lifecycle changes are told (stdout for `orchestrator run`).
    pub console: crate::console::Console,
    /// `--max-invocations-per-second` and `--max-retries`.
    pub operations: crate::operations::GlobalLimits,
    /// The uids (and gids) `sandbox.user: dynamic` hands out (`--uid-range`).
    pub uid_range: crate::sandbox::UidRange,
    /// `--metrics ADDR`: serve Prometheus metrics there.
    pub metrics: Option<std::net::SocketAddr>,
    /// Notified on SIGHUP: apply `bundle` again, as it is on disk now.
    pub reload: Option<Arc<tokio::sync::Notify>>,
    /// `--cluster`: share the swarm with other nodes through NATS JetStream.
    pub cluster: Option<crate::cluster::ClusterOptions>,
}

/// `--retention` and `--dedupe-ttl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Delivered events are compacted away after this long (default 10 min).
    pub delivered: std::time::Duration,
    /// A dedupe key makes a repeat a duplicate for this long (default 24 h).
    pub dedupe_ttl: std::time::Duration,
}

impl Default for Retention {
    fn default() -> Self {
        let d = JournalOptions::default();
        Self {
            delivered: d.retention,
            dedupe_ttl: d.dedupe_ttl,
        }
    }
}

/// `--journal`: durable on disk (the default), or in memory for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JournalMode {
    /// `journal.db` in the state directory: acked events survive any crash.
    #[default]
    Durable,
    /// Nothing on disk: fast, and NOT durable.
    Memory,
}

/// Why a run could not start, or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The bundle has errors; each names its place.
    #[error("invalid bundle ({} errors)", .0.len())]
    InvalidBundle(Vec<Diagnostic>),
    /// A secret could not be resolved.
    #[error("{0}")]
    Secret(String),
    /// A Connection's resolved config does not fit its Connector's schema.
    #[error("{0}")]
    Config(String),
    /// `--metrics`: the recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The journal could not be opened or read.
    #[error("journal: {0}")]
    Journal(#[source] JournalError),
    /// Cluster mode could not start.
    #[error(transparent)]
    Cluster(#[from] Box<crate::cluster::ClusterError>),
    /// The state directory could not be prepared.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why not.
        #[source]
        source: io::Error,
    },
}

/// Loads and fully checks a bundle, including that every entry can be executed.
pub fn load_checked(path: &Path) -> Result<(Bundle, BTreeMap<String, PathBuf>), Vec<Diagnostic>> {
    let bundle = bundle::load(path)?;
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let path_var = std::env::var_os("PATH");
    let resolve = |entry: &str| {
        bundle::resolve_entry(&bundle.root, entry, exe_dir.as_deref(), path_var.as_deref())
    };
    let errors = bundle::check_entries(&bundle, resolve);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut programs = BTreeMap::new();
    let entries = bundle
        .connectors
        .values()
        .map(|c| &c.program.entry)
        .chain(bundle.agents.values().map(|a| &a.program.entry));
    for entry in entries {
        if let Ok(p) = resolve(entry) {
            programs.insert(entry.clone(), p);
        }
    }
    Ok((bundle, programs))
}

/// Runs the bundle until `stop` is cancelled, then stops every child
/// gracefully: connections first (no new events), then agent instances (so
/// deliveries in hand can finish). `kill_now` kills whatever is left at once.
pub async fn run(
    opts: RunOptions,
    stop: CancellationToken,
    kill_now: CancellationToken,
) -> Result<(), RunError> {
    let (bundle, programs) = load_checked(&opts.bundle).map_err(RunError::InvalidBundle)?;
    // Every enabled child's config and secrets, before anything starts.
    let mut resolved = crate::reconcile::resolve(&bundle)?;
    raise_open_files_limit();
    // Before anything makes a metric handle: handles made earlier stay no-ops.
    let metrics = match opts.metrics {
        Some(addr) => Some((addr, crate::metrics::install().map_err(RunError::Metrics)?)),
        None => None,
    };
    let state =
        StateDir::create(&opts.state_dir, bundle.agents.keys()).map_err(|source| RunError::Io {
            what: "cannot prepare the state directory",
            path: opts.state_dir.clone(),
            source,
        })?;
    let (root, uids, path) = (opts.state_dir.clone(), opts.uid_range, opts.bundle.clone());
    let secret_files = crate::sandbox::secret_files(&bundle);
    // Resolves paths, lists the bundle's files, looks up the accounts in the uid range.
    let _ = tokio::task::spawn_blocking(move || {
        crate::sandbox::configure(&root, &path, secret_files, uids)
    })
    .await;
    let journal_options = JournalOptions {
        retention: opts.retention.delivered,
        dedupe_ttl: opts.retention.dedupe_ttl,
        idempotency_ttl: bundle
            .connections
            .iter()
            .map(|c| c.operations.idempotency_ttl)
            .max()
            .unwrap_or(std::time::Duration::from_secs(24 * 3600)),
        ..JournalOptions::default()
    };
    let keep_results = journal_options.idempotency_ttl;
    let journal = match opts.journal {
        JournalMode::Durable => open_journal(&state.journal(), journal_options).await?,
        JournalMode::Memory => {
            tracing::warn!("journal in memory: accepted events are lost if the orchestrator stops");
            Journal::memory(journal_options).map_err(RunError::Journal)?
        }
    };
    let cluster = match &opts.cluster {
        Some(options) => {
            let options = crate::cluster::ClusterOptions {
                keep_results,
                ..options.clone()
            };
            Some(join_cluster(options, &opts.bundle).await?)
        }
        None => None,
    };
    let audit = AuditLog::open(state.audit_log()).map_err(|source| RunError::Io {
        what: "cannot open",
        path: state.audit_log(),
        source,
    })?;
    crate::egress::set_audit(audit.clone());

    let operations = crate::operations::Operations::new(
        &bundle,
        audit.clone(),
        journal.clone(),
        opts.operations,
    );
    if let Some(cluster) = &cluster {
        operations.set_cluster(cluster.clone());
    }
    let registry = Arc::new(Registry::default());
    let agent_stop = CancellationToken::new();
    let agent_tasks = TaskTracker::new();
    let mut agents = BTreeMap::new();
    for a in bundle.agents.values() {
        let secrets = resolved.agents.remove(&a.name).unwrap_or_default();
        let program = programs[&a.program.entry].clone();
        let agent = AgentProgram::new(a.clone(), program, secrets);
        agents.insert(a.name.clone(), agent);
    }
    let router = Router::new(RouterSetup {
        agents,
        state: state.clone(),
        cwd: bundle.root.clone(),
        shim: opts.shim.clone(),
        journal: journal.clone(),
        registry: registry.clone(),
        tracker: agent_tasks.clone(),
        stop: agent_stop.clone(),
        kill_now: kill_now.clone(),
        max_pending: opts.max_pending,
        console: opts.console.clone(),
        operations: operations.clone(),
        audit: audit.clone(),
    });

    // What the journal holds from an earlier run is queued before any
    // connection starts, so nothing new can overtake it. (In cluster mode
    // events live in NATS; the partitions' owners deliver them.)
    if cluster.is_none() {
        recover(&journal, &router, &bundle).await?;
    } else if let Ok(left) = journal.pending()
        && !left.is_empty()
    {
        tracing::warn!(
            events = left.len(),
            "journal.db holds undelivered events of a single-node run: cluster mode does not deliver them (run once without --cluster to deliver them)"
        );
    }
    // Settled jobs send their `job.*` events through the router; jobs an
    // earlier run left are taken up (their calls wait for the connections).
    operations.set_router(Some(router.clone()));
    operations.resume_jobs().await.map_err(RunError::Journal)?;

    let connection_stop = CancellationToken::new();
    let connection_tasks = TaskTracker::new();
    let deps = crate::reconcile::Deps {
        state: state.clone(),
        journal: journal.clone(),
        audit: audit.clone(),
        router: router.clone(),
        operations: operations.clone(),
        registry: registry.clone(),
        shim: opts.shim.clone(),
        console: opts.console.clone(),
        kill_now: kill_now.clone(),
        stop: connection_stop.clone(),
        tracker: connection_tasks.clone(),
        cluster: cluster.clone(),
    };
    let (connections, agents_count) = (bundle.connections.len(), bundle.agents.len());
    let movable: Vec<(String, bundle::Placement)> = bundle
        .connections
        .iter()
        .filter(|c| c.enabled && c.placement != bundle::Placement::Every)
        .map(|c| (c.name.clone(), c.placement.clone()))
        .collect();
    let runtime = crate::reconcile::Runtime::start(bundle, programs, resolved, deps)?;
    let reconciler = crate::reconcile::Reconciler::new(runtime);
    let coordinator = cluster.clone().map(|cluster| {
        crate::cluster::Coordinator::start(crate::cluster::Setup {
            cluster,
            router: router.clone(),
            reconciler: reconciler.clone(),
            registry: registry.clone(),
            connections: movable,
        })
    });
    let control_stop = CancellationToken::new();

    let listener =
        crate::control::bind(&state.control_socket()).map_err(|source| RunError::Io {
            what: "cannot listen on",
            path: state.control_socket(),
            source,
        })?;
    let control = crate::control::ControlContext {
        registry: registry.clone(),
        journal: journal.clone(),
        router: router.clone(),
        operations: operations.clone(),
        reconciler: reconciler.clone(),
        cluster: cluster.clone(),
    };
    let metrics_task = match metrics {
        Some((addr, handle)) => {
            let (listener, local) =
                crate::metrics::bind(addr)
                    .await
                    .map_err(|source| RunError::Io {
                        what: "cannot serve metrics on",
                        path: PathBuf::from(addr.to_string()),
                        source,
                    })?;
            let written = state.root().join("metrics.address");
            if let Err(source) = std::fs::write(&written, format!("{local}\n")) {
                return Err(RunError::Io {
                    what: "cannot write",
                    path: written,
                    source,
                });
            }
            tracing::info!("metrics on http://{local}/metrics");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                handle,
                control.clone(),
                control_stop.clone(),
            )))
        }
        None => None,
    };
    let control_task = tokio::spawn(crate::control::serve(
        listener,
        control,
        control_stop.clone(),
    ));
    tracing::info!(
        connections,
        agents = agents_count,
        state_dir = %state.root().display(),
        "running"
    );

    // SIGHUP applies the bundle the run started with, as it is now.
    let reload_task = opts.reload.clone().map(|reload| {
        let (reconciler, path, stop) = (reconciler.clone(), opts.bundle.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = reload.notified() => {}
                    _ = stop.cancelled() => return,
                }
                reload_bundle(&reconciler, &path).await;
            }
        })
    });
    stop.cancelled().await;
    if let Some(task) = reload_task {
        let _ = task.await;
    }
    tracing::info!("stopping: connections first, then agent instances");
    if let Some(coordinator) = &coordinator {
        // Cluster mode: take no more events from the partitions and let the
        // deliveries in hand finish; the leases stay ours until `leave`.
        coordinator.drain().await;
    }
    // No apply runs from here on (one under way finishes first).
    let _held = reconciler.hold().await;
    connection_stop.cancel();
    connection_tasks.close();
    // A second signal kills every child at once, whatever state it is in
    // (each supervisor watches `kill_now`): agents need not wait their turn.
    tokio::select! {
        _ = connection_tasks.wait() => {}
        _ = kill_now.cancelled() => {}
    }
    agent_stop.cancel();
    agent_tasks.close();
    agent_tasks.wait().await;
    if let Some(coordinator) = &coordinator {
        // Every agent process of this node has stopped: its partitions and
        // Connections may go to the other nodes now.
        coordinator.leave().await;
    }
    operations.set_router(None);
    control_stop.cancel();
    let _ = control_task.await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    crate::sandbox::cleanup();
    let counts = journal.counts();
    if let Err(e) = journal.flush().await {
        tracing::error!("journal: final flush failed: {e}");
    }
    tracing::info!(
        accepted = counts.accepted,
        duplicates = counts.duplicates,
        delivered = counts.delivered,
        dead_lettered = counts.dead_lettered,
        pending = counts.pending,
        "stopped"
    );
    Ok(())
}

/// Joins the cluster with the bundle at `path`, saying so on stderr.
async fn join_cluster(
    options: crate::cluster::ClusterOptions,
    path: &Path,
) -> Result<crate::cluster::Cluster, RunError> {
    let bytes = bundle::source_bytes(path).map_err(|source| RunError::Io {
        what: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    let hash = crate::cluster::bundle_hash(&bytes);
    let cluster = crate::cluster::Cluster::join(options, hash)
        .await
        .map_err(Box::new)?;
    tracing::info!(
        "joined cluster {} as node {} (bundle hash {}, {} partitions)",
        cluster.name(),
        cluster.node(),
        cluster.bundle_hash(),
        cluster.partitions()
    );
    Ok(cluster)
}

/// SIGHUP: applies the run's bundle as it is on disk now; a refusal is
/// told on the terminal and in the log, and changes nothing.
async fn reload_bundle(reconciler: &crate::reconcile::Reconciler, path: &Path) {
    tracing::info!("SIGHUP: applying {}", path.display());
    match reconciler.apply(path, "SIGHUP").await {
        Ok(plan) if plan.is_empty() => tracing::info!("SIGHUP: no differences"),
        Ok(plan) => {
            for line in plan.render().lines().filter(|l| !l.is_empty()) {
                tracing::info!("applied: {line}");
            }
        }
        Err(crate::reconcile::ApplyError::Invalid(errors)) => {
            for e in &errors {
                tracing::error!("SIGHUP: {e}");
            }
            tracing::error!(
                "SIGHUP: the bundle is invalid ({} errors): nothing changed",
                errors.len()
            );
        }
        Err(e) => tracing::error!("SIGHUP: {e}: nothing changed"),
    }
}

/// Raises the soft limit of open files to the hard one: every agent instance
/// holds a few descriptors (its channel, its pipes, its log), and a desktop's
/// usual soft limit of 1,024 would stop the orchestrator at a few hundred.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read the open files limit: {e}"),
    }
}

/// Opens the durable journal. `orchestrator dlq …` run while no orchestrator
/// answered on the socket opens the file itself for a moment; wait that out
/// (a few seconds at most) instead of failing the start.
async fn open_journal(path: &Path, options: JournalOptions) -> Result<Journal, RunError> {
    let patience = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Journal::open(path, options.clone()) {
            Err(JournalError::Open {
                source: redb::DatabaseError::DatabaseAlreadyOpen,
                ..
            }) if tokio::time::Instant::now() < patience => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            result => return result.map_err(RunError::Journal),
        }
    }
}

/// Hands every accepted-but-undelivered event from the journal back to its
/// agent instance, by the route recorded when it was accepted (a changed
/// bundle does not re-route old events). An event whose agent is gone from
/// the bundle goes to the dead-letter queue, saying so.
async fn recover(journal: &Journal, router: &Router, bundle: &Bundle) -> Result<(), RunError> {
    let pending = journal.pending().map_err(RunError::Journal)?;
    if pending.is_empty() {
        return Ok(());
    }
    tracing::info!(
        events = pending.len(),
        "recovering accepted events from the journal"
    );
    // Grouped by instance, each group in acceptance order.
    let mut backlogs: BTreeMap<(String, String, String), Vec<Pending>> = BTreeMap::new();
    for je in pending {
        if bundle
            .agents
            .get(&je.route.agent)
            .is_some_and(|a| !a.enabled)
        {
            // Disabled: the journal keeps it until an apply enables the Agent.
            continue;
        }
        if !bundle.agents.contains_key(&je.route.agent) {
            let reason = format!("agent '{}' no longer exists in the bundle", je.route.agent);
            tracing::warn!(event = %je.event.id, "{reason}: dead-lettered");
            journal
                .dead_letter(&je.event.id, je.attempts, &reason)
                .await
                .map_err(RunError::Journal)?;
            continue;
        }
        let key = (
            je.route.swarm.clone(),
            je.route.agent.clone(),
            je.event.instance_key.clone(),
        );
        // The last attempt may have reached the agent before the crash
        // without its mark being written (first attempts are not recorded at
        // all): count it, so a possible duplicate always has attempt > 1.
        let attempt = je.attempts.max(1) + 1;
        backlogs.entry(key).or_default().push(Pending {
            event: Box::new(je.event),
            attempt,
            held: false,
            receipt: None,
        });
    }
    for ((swarm, agent, key), backlog) in backlogs {
        if let Err(e) = router.recover(&swarm, &agent, &key, backlog).await {
            tracing::error!("recovery of agent instance {agent}/{key} failed: {e}");
        }
    }
    Ok(())
}
