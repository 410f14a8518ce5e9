//! What every supervised process is doing, for `orchestrator status`.
//!
//! Each process has one [`ProcessStatus`], written by the task that
//! supervises it (state changes, rare) and by its hot paths (counters,
//! atomics), and read by the control socket when someone asks. Nothing polls
//! it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::logs::timestamp;

mod intake;
mod render;

use crate::sandbox::LimitReport;
use intake::connection_state;
pub use intake::{ConnectionDetails, IntakeCounters, IntakeSnapshot};
pub use render::{last_crash_record, render_detail, render_idle_agents, render_table};

/// Connection or agent instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessKind {
    /// A Connection's connector process.
    Connection,
    /// One agent instance.
    Agent,
}

/// Where a process is in its life (docs/architecture.md, Supervision and restart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Spawned, waiting for `ready`.
    Starting,
    /// Serving.
    Ready,
    /// Waiting out a restart delay.
    Backoff,
    /// Too many failures in the circuit window: waiting out the cooldown before a probe.
    Crashloop,
    /// A permanent failure: waits for a manual restart or a bundle change.
    Failed,
    /// Being stopped.
    Stopping,
    /// Not running, and not going to be until there is a reason.
    Stopped,
}

/// A control request for one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Restart now, forgetting backoff and circuit.
    Restart,
}

/// Hot-path counters of one process.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events (emits or deliveries) received from / sent to the process.
    pub events_in: AtomicU64,
    /// Events accepted from it (connection) / acknowledged by it (agent).
    pub events_out: AtomicU64,
    /// Bad messages from it.
    pub protocol_errors: AtomicU64,
    /// The program's pid, 0 when not running.
    pub pid: AtomicU64,
    /// Its process group (the shim's pid, or the program's without a shim), 0 when not running.
    pub pgid: AtomicU64,
    /// It runs through the shim, so the program is the group leader's child.
    pub shimmed: std::sync::atomic::AtomicBool,
    /// Pings sent in the current run.
    pub pings_sent: AtomicU64,
    /// The nonce of the last pong received in the current run.
    pub last_pong: AtomicU64,
}

#[derive(Debug)]
struct Info {
    state: ProcessState,
    restarts: u64,
    ready_at: Option<SystemTime>,
    last_exit: Option<String>,
    last_error: Option<String>,
    last_success_at: Option<SystemTime>,
    health_checked_at: Option<SystemTime>,
    sandbox: Vec<LimitReport>,
    /// The connector said its credentials were refused (or exited 77): why.
    credential_expired: Option<String>,
    /// Declared with `enabled: false`.
    disabled: bool,
    /// A Connection's connector version, config schema and limits.
    details: Option<ConnectionDetails>,
}

/// The status of one supervised process.
#[derive(Debug)]
pub struct ProcessStatus {
    /// Connection or agent.
    pub kind: ProcessKind,
    /// The Connection's or Agent's name.
    pub name: String,
    /// The agent instance's key.
    pub instance_key: Option<String>,
    /// Hot-path counters.
    pub counters: Counters,
    /// A connection's intake counts (all zero for an agent instance).
    pub intake: IntakeCounters,
    /// What its egress proxy did (sandbox network mode `egress`).
    pub egress: Arc<crate::egress::Counters>,
    info: Mutex<Info>,
    control: mpsc::Sender<Control>,
    /// Woken at every change of state.
    state_changed: tokio::sync::Notify,
}

impl ProcessStatus {
    /// A new status in `stopped` (nothing runs until its supervisor starts
    /// it), and the receiver for its control requests.
    pub fn new(
        kind: ProcessKind,
        name: &str,
        instance_key: Option<&str>,
    ) -> (Arc<Self>, mpsc::Receiver<Control>) {
        let (control, rx) = mpsc::channel(4);
        let status = Self {
            kind,
            name: name.to_string(),
            instance_key: instance_key.map(str::to_string),
            counters: Counters::default(),
            intake: IntakeCounters::default(),
            egress: Arc::default(),
            info: Mutex::new(Info {
                state: ProcessState::Stopped,
                restarts: 0,
                ready_at: None,
                last_exit: None,
                last_error: None,
                last_success_at: None,
                health_checked_at: None,
                sandbox: Vec::new(),
                credential_expired: None,
                disabled: false,
                details: None,
            }),
            control,
            state_changed: tokio::sync::Notify::new(),
        };
        (Arc::new(status), rx)
    }

    /// `connection/<name>` or `agent/<name>/<instanceKey>`.
    pub fn target(&self) -> String {
        match (&self.kind, &self.instance_key) {
            (ProcessKind::Agent, Some(key)) => format!("agent/{}/{key}", self.name),
            (ProcessKind::Agent, None) => format!("agent/{}", self.name),
            (ProcessKind::Connection, _) => format!("connection/{}", self.name),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Info)) {
        f(&mut self.info.lock().expect("status lock"));
    }

    /// The current state.
    pub fn state(&self) -> ProcessState {
        self.info.lock().expect("status lock").state
    }

    /// Moves to `state`.
    pub fn set_state(&self, state: ProcessState) {
        self.update(|i| {
            i.state = state;
            if state == ProcessState::Ready {
                i.ready_at = Some(SystemTime::now());
            } else if state != ProcessState::Stopping {
                i.ready_at = None;
            }
        });
        self.state_changed.notify_waiters();
    }

    /// Waits (at most `within`) until its process is past starting: ready,
    /// or backing off, failed, in a crash loop. `apply` returns once the
    /// children it started are there, so the next request finds them up.
    pub async fn wait_started(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let changed = self.state_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !matches!(self.state(), ProcessState::Starting | ProcessState::Stopped) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Records how the last run ended, and the error text that goes with it.
    pub fn set_exit(&self, exit: String, error: Option<String>) {
        self.update(|i| {
            i.last_exit = Some(exit);
            if error.is_some() {
                i.last_error = error;
            }
        });
    }

    /// Records an error that did not end the process.
    pub fn set_error(&self, error: String) {
        self.update(|i| i.last_error = Some(error));
    }

    /// Records each sandbox limit with its mechanism or why it is not enforced.
    pub fn set_sandbox(&self, report: Vec<LimitReport>) {
        self.update(|i| i.sandbox = report);
    }

    /// The connector's credentials were refused (`Some(why)`), or work again (`None`).
    pub fn set_credential_expired(&self, why: Option<String>) {
        self.update(|i| i.credential_expired = why);
    }

    /// A Connection declared with `enabled: false`: `disabled` in `status`.
    pub fn set_disabled(&self, disabled: bool) {
        self.update(|i| i.disabled = disabled);
    }

    /// A Connection's connector version, config schema and limits, for `status`.
    pub fn set_details(&self, details: ConnectionDetails) {
        self.update(|i| i.details = Some(details));
    }

    /// Counts one restart.
    pub fn restarted(&self) {
        self.update(|i| i.restarts += 1);
    }

    /// Records a successful unit of work (an accepted emit, an acked delivery).
    pub fn success(&self) {
        self.counters.events_out.fetch_add(1, Ordering::Relaxed);
        // A coarse clock is enough here; avoid the lock on every event.
        let now = SystemTime::now();
        if let Ok(mut i) = self.info.try_lock() {
            i.last_success_at = Some(now);
        }
    }

    /// Records a pong.
    pub fn health_checked(&self) {
        self.update(|i| i.health_checked_at = Some(SystemTime::now()));
    }

    /// Asks the supervising task for a control action; false if it is gone.
    pub fn request(&self, control: Control) -> bool {
        self.control.try_send(control).is_ok()
    }

    /// A serializable snapshot.
    pub fn snapshot(&self) -> ProcessSnapshot {
        let i = self.info.lock().expect("status lock");
        let mut pid = self.counters.pid.load(Ordering::Relaxed);
        let pgid = self.counters.pgid.load(Ordering::Relaxed);
        // Before `ready` only the shim's pid is known; its child is the program.
        if pid != 0 && pid == pgid && self.counters.shimmed.load(Ordering::Relaxed) {
            pid = crate::supervisor::program_pid(pgid as u32).map_or(pid, u64::from);
        }
        ProcessSnapshot {
            kind: self.kind,
            name: self.name.clone(),
            instance_key: self.instance_key.clone(),
            target: self.target(),
            pid: (pid != 0).then_some(pid as u32),
            pgid: (pgid != 0).then_some(pgid as u32),
            state: i.state,
            restarts: i.restarts,
            uptime_secs: i
                .ready_at
                .and_then(|t| t.elapsed().ok())
                .map(|d| d.as_secs_f64()),
            last_exit: i.last_exit.clone(),
            last_error: i.last_error.clone(),
            last_success_at: i.last_success_at.map(timestamp),
            health_checked_at: i.health_checked_at.map(timestamp),
            events_in: self.counters.events_in.load(Ordering::Relaxed),
            events_out: self.counters.events_out.load(Ordering::Relaxed),
            protocol_errors: self.counters.protocol_errors.load(Ordering::Relaxed),
            intake: (self.kind == ProcessKind::Connection).then(|| self.intake.snapshot()),
            sandbox: i.sandbox.clone(),
            egress: self.egress.snapshot(),
            operations: None,
            operations_state: None,
            circuit_trips: None,
            connection_state: (self.kind == ProcessKind::Connection)
                .then(|| connection_state(&i).to_string()),
            details: i.details.clone(),
            node: None,
        }
    }
}

/// One row of `orchestrator status --json` (documented in the README; stable).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSnapshot {
    /// `connection` or `agent`.
    pub kind: ProcessKind,
    /// The Connection's or Agent's name.
    pub name: String,
    /// The agent instance's key (`null` for connections).
    pub instance_key: Option<String>,
    /// `connection/<name>` or `agent/<name>/<instanceKey>`: what `logs` and `restart` take.
    pub target: String,
    /// The program's pid while running.
    pub pid: Option<u32>,
    /// Its process group while running: what stop signals are sent to.
    pub pgid: Option<u32>,
    /// The state.
    pub state: ProcessState,
    /// Restarts so far.
    pub restarts: u64,
    /// Seconds since `ready`, while ready.
    pub uptime_secs: Option<f64>,
    /// How the last run ended (`exit code 1`, `killed by signal 9 (SIGKILL)`, `hung: …`, …).
    pub last_exit: Option<String>,
    /// The last error: a failed start, a protocol error, the crash's last stderr line.
    pub last_error: Option<String>,
    /// When the last event was accepted (connection) or acknowledged (agent).
    pub last_success_at: Option<String>,
    /// When the last pong arrived.
    pub health_checked_at: Option<String>,
    /// Emits received (connection) or deliveries sent (agent).
    pub events_in: u64,
    /// Emits accepted (connection) or deliveries acknowledged (agent).
    pub events_out: u64,
    /// Bad messages received from it.
    pub protocol_errors: u64,
    /// For a connection: what became of its emits (`null` for agents).
    pub intake: Option<IntakeSnapshot>,
    /// Each sandbox limit: `{limit, value, enforced, mechanism, note?}`,
    /// the mechanism being `not enforced: <why>` when it is not; empty
    /// without a sandbox section.
    #[serde(default)]
    pub sandbox: Vec<LimitReport>,
    /// In sandbox network mode `egress`: its proxy's connections allowed,
    /// refused and failed by reason, and bytes each way (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<crate::egress::EgressSnapshot>,
    /// For a connection whose Connector declares operations: per operation,
    /// invocations, outcomes, retries, in flight and latency (`null` otherwise).
    #[serde(default)]
    pub operations: Option<BTreeMap<String, crate::operations::OperationStats>>,
    /// For a connection with operations: `active`, or `degraded` while its
    /// circuit is open (the process itself may be perfectly `ready`).
    #[serde(default)]
    pub operations_state: Option<String>,
    /// Times that circuit tripped.
    #[serde(default)]
    pub circuit_trips: Option<u64>,
    /// A Connection's state as an operator asks it: `provisioning` (starting
    /// or waiting to restart), `active`, `degraded` (crash loop, or its
    /// operations' circuit open), `error` (failed), `credential_expired`
    /// (the connector said its credentials were refused, or exited 77),
    /// `stopped`, `disabled` (declared with `enabled: false`). `None` for
    /// agent instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
    /// A Connection's connector version, config schema version and limits.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<ConnectionDetails>,
    /// Cluster mode: the node the process runs on (absent on a single node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One Agent of the bundle in `status`: so an Agent with no instance yet
/// still shows (`agent/echo (no instances)`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AgentSummary {
    /// The Agent's name.
    pub name: String,
    /// Its instances in the table now.
    pub instances: usize,
    /// Declared with `enabled: false`: it starts no instance.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// Every process of a run, by target.
#[derive(Debug, Default)]
pub struct Registry {
    processes: Mutex<BTreeMap<String, Arc<ProcessStatus>>>,
}

impl Registry {
    /// Adds a process.
    pub fn add(&self, status: Arc<ProcessStatus>) {
        self.processes
            .lock()
            .expect("registry lock")
            .insert(status.target(), status);
    }

    /// Removes `status`, if it is the one registered under its target.
    pub fn remove(&self, status: &Arc<ProcessStatus>) {
        let mut procs = self.processes.lock().expect("registry lock");
        let target = status.target();
        if procs.get(&target).is_some_and(|p| Arc::ptr_eq(p, status)) {
            procs.remove(&target);
        }
    }

    /// Processes registered.
    pub fn len(&self) -> usize {
        self.processes.lock().expect("registry lock").len()
    }

    /// No process is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Snapshots of every process, connections first, each group by name.
    pub fn snapshot(&self) -> Vec<ProcessSnapshot> {
        let procs = self.processes.lock().expect("registry lock");
        let mut rows: Vec<ProcessSnapshot> = procs.values().map(|p| p.snapshot()).collect();
        rows.sort_by(|a, b| {
            (a.kind, &a.name, &a.instance_key).cmp(&(b.kind, &b.name, &b.instance_key))
        });
        rows
    }

    /// The processes a target names: `connection/<name>`, `agent/<name>` (all
    /// its instances) or `agent/<name>/<instanceKey>`.
    pub fn matching(&self, target: &str) -> Vec<Arc<ProcessStatus>> {
        let procs = self.processes.lock().expect("registry lock");
        procs
            .values()
            .filter(|p| {
                let t = p.target();
                t == target
                    || (p.kind == ProcessKind::Agent && t.starts_with(&format!("{target}/")))
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests;
