//! Supervision: spawn, handshake, serve, stop, restart, for any kind of child.
//!
//! # Theory of operation
//!
//! Each supervised process is one task running [`supervise`], which owns the
//! `Child`, its [`Link`] and its restart state; what the child is *for* is a
//! [`Role`] (a Connection's connector, or one agent instance) that handles
//! its messages. One life of a child:
//!
//! 1. [`spawn`] starts it in its own process group with a built environment
//!    and its transport (an inherited socketpair for `frames`, stdin/stdout
//!    for `jsonl`); its other output goes to its log file.
//! 2. The handshake sends `init` and waits for `ready` within `startTimeout`;
//!    a `ready` that names another protocol version is refused for good.
//! 3. [`Role::serve`] handles messages until the channel closes. Meanwhile
//!    this task watches for the process to exit and for a stop request.
//! 4. A stop sends `shutdown`, waits `stop.grace`, sends SIGTERM to the
//!    group, waits `stop.termGrace`, then SIGKILL. A second signal to the
//!    orchestrator (`kill_now`) skips straight to SIGKILL.
//! 5. After an exit the restart policy decides: restart after a backoff
//!    (reset once a run lasted `resetAfter`), wait in place for a manual
//!    restart (permanent exit codes, exec failures, a protocol mismatch), or
//!    stay stopped until the role has work again.
//!
//! A child's failure is recorded in its log and never leaves this task: one
//! child cannot take the orchestrator or a sibling down.

mod backoff;
mod exit;
mod lines;
mod link;
mod spawn;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipc_proto::{PROTOCOL_VERSION, Ready};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

pub use backoff::RestartBackoff;
pub use exit::ExitCause;
pub use link::{Link, LinkOptions, Outbox};
pub use spawn::{CHILD_IPC_FD, ChildSpec, Spawned, child_env, spawn};

use crate::bundle::RestartPolicy;
use crate::logs::LogSink;

/// How long a closed channel may precede the exit (or an exit the last messages) before we act.
const EXIT_SETTLE: Duration = Duration::from_secs(2);

/// Counters of one supervised child, shared with whoever reports on it.
#[derive(Debug, Default)]
pub struct ProcessCounters {
    /// Frames or lines that did not decode, or messages the child may not send.
    pub protocol_errors: AtomicU64,
    /// Restarts so far.
    pub restarts: AtomicU64,
    /// The current pid, 0 when not running.
    pub pid: AtomicU64,
}

/// What a kind of child does with its channel. Implemented by connections and agent instances.
pub trait Role: Send + 'static {
    /// What the child sends.
    type In: DeserializeOwned + Send + 'static;
    /// What the child receives.
    type Out: Serialize + Send + 'static;

    /// The `init` message for a new process of this child.
    fn init(&mut self) -> Self::Out;
    /// A `shutdown` message.
    fn shutdown(grace: Duration) -> Self::Out;
    /// An `error` message.
    fn error(message: String) -> Self::Out;
    /// The `ready` inside `msg`, if it is one.
    fn ready(msg: &Self::In) -> Option<&Ready>;
    /// A message that came before `ready`; `Err` names why it may not.
    fn before_ready(&mut self, msg: Self::In) -> Result<(), String>;
    /// Handles a ready child's messages until its channel closes. Once `stop`
    /// is cancelled it takes no new work but keeps serving, so replies to work
    /// in hand still arrive. Dropped when the process is gone.
    fn serve(
        &mut self,
        link: &mut Link<Self::In, Self::Out>,
        stop: &CancellationToken,
    ) -> impl Future<Output = ()> + Send;
    /// The process is gone: take back work it had not finished.
    fn exited(&mut self);
    /// The child stopped and the policy does not restart it: wait until there
    /// is work for a new process (true) or until `stop` (false).
    fn wait_for_work(&mut self, stop: &CancellationToken) -> impl Future<Output = bool> + Send;
}

/// One supervised child: what to run and how to keep it.
#[derive(Debug)]
pub struct Supervision {
    /// How to start it.
    pub spec: ChildSpec,
    /// The restart policy.
    pub restart: RestartPolicy,
    /// Its log file.
    pub log: LogSink,
    /// Its counters.
    pub counters: Arc<ProcessCounters>,
    /// Cancelled to stop it gracefully.
    pub stop: CancellationToken,
    /// Cancelled to kill it at once.
    pub kill_now: CancellationToken,
}

enum Handshake {
    Ready,
    Stopped,
    Failed(String),
    Incompatible(String),
}

/// Runs `role`'s child under `sup` until `sup.stop` is cancelled and the child is gone.
pub async fn supervise<R: Role>(mut role: R, sup: Supervision) {
    let mut backoff = RestartBackoff::new(&sup.restart.backoff, None);
    let log = &sup.log;
    while !sup.stop.is_cancelled() {
        let opts = LinkOptions {
            unit: "",
            max_errors: sup.spec.max_protocol_errors,
            make_error: R::error,
            log: log.clone(),
            counters: sup.counters.clone(),
        };
        let mut s = match spawn::<R::In, R::Out>(&sup.spec, log, opts) {
            Ok(s) => s,
            Err(e) => {
                let cause = ExitCause::ExecFailed(e.kind(), e.to_string());
                log.note(&format!("{}: {cause}", sup.spec.program.display()));
                if cause.is_permanent(&sup.restart) {
                    log.note(
                        "not restarting: the executable cannot be run; fix the entry and restart",
                    );
                    sup.stop.cancelled().await;
                    return;
                }
                if !pause(&mut backoff, &sup).await {
                    return;
                }
                continue;
            }
        };
        sup.counters.pid.store(u64::from(s.pid), Ordering::Relaxed);
        log.note(&format!(
            "started {} (pid {})",
            sup.spec.program.display(),
            s.pid
        ));

        let (cause, ran_for) = match handshake(&mut role, &mut s.link, &sup).await {
            Handshake::Ready => {
                let ready_at = Instant::now();
                log.note("ready");
                let stopped = serve_until_exit(&mut role, &mut s, &sup).await;
                if stopped {
                    role.exited();
                    sup.counters.pid.store(0, Ordering::Relaxed);
                    return;
                }
                (exit_cause(&mut s).await, ready_at.elapsed())
            }
            Handshake::Stopped => {
                stop_child(&mut s, &sup).await;
                role.exited();
                return;
            }
            Handshake::Failed(reason) => {
                kill_group(s.pid);
                let exited = exit_cause(&mut s).await;
                // An exit with a code of its own says more than "no ready".
                let cause = match exited {
                    ExitCause::Exited(code) if code != 0 => exited,
                    _ => ExitCause::FailedStart(reason),
                };
                (cause, Duration::ZERO)
            }
            Handshake::Incompatible(reason) => {
                kill_group(s.pid);
                let _ = s.child.wait().await;
                role.exited();
                sup.counters.pid.store(0, Ordering::Relaxed);
                log.note(&format!("not restarting: {reason}"));
                sup.stop.cancelled().await;
                return;
            }
        };
        role.exited();
        sup.counters.pid.store(0, Ordering::Relaxed);
        log.note(&format!("exited: {cause}"));

        if cause.is_permanent(&sup.restart) {
            log.note("not restarting: permanent failure; fix the configuration and restart");
            sup.stop.cancelled().await;
            return;
        }
        if !cause.wants_restart(sup.restart.policy) {
            log.note("stopped; the restart policy does not restart it");
            if !role.wait_for_work(&sup.stop).await {
                return;
            }
            backoff.reset();
            continue;
        }
        if ran_for >= sup.restart.reset_after {
            backoff.reset();
        }
        if !pause(&mut backoff, &sup).await {
            return;
        }
    }
}

/// Waits out the next backoff delay; false when stopped meanwhile.
async fn pause(backoff: &mut RestartBackoff, sup: &Supervision) -> bool {
    let delay = backoff.next_delay();
    sup.log.note(&format!(
        "restarting in {}",
        humantime::format_duration(round_ms(delay))
    ));
    tokio::select! {
        _ = sleep(delay) => {
            sup.counters.restarts.fetch_add(1, Ordering::Relaxed);
            true
        }
        _ = sup.stop.cancelled() => false,
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

async fn handshake<R: Role>(
    role: &mut R,
    link: &mut Link<R::In, R::Out>,
    sup: &Supervision,
) -> Handshake {
    if !link.outbox.send(role.init()).await {
        return Handshake::Failed("channel closed before init".into());
    }
    let timeout = sup.restart.start_timeout;
    let deadline = sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                return Handshake::Failed(format!("no ready within {}", humantime::format_duration(timeout)));
            }
            _ = sup.stop.cancelled() => return Handshake::Stopped,
            msg = link.recv() => {
                let Some(msg) = msg else {
                    return Handshake::Failed("channel closed before ready".into());
                };
                if let Some(ready) = R::ready(&msg) {
                    return match ready.protocol {
                        Some(v) if v != PROTOCOL_VERSION => {
                            let reason = format!(
                                "child speaks protocol version {v}; this orchestrator speaks {PROTOCOL_VERSION}"
                            );
                            link.violation(reason.clone()).await;
                            Handshake::Incompatible(reason)
                        }
                        _ => Handshake::Ready,
                    };
                }
                if let Err(why) = role.before_ready(msg)
                    && !link.violation(why).await
                {
                    return Handshake::Failed("too many bad messages before ready".into());
                }
            }
        }
    }
}

/// Serves a ready child until it exits. True when the exit was our stop.
async fn serve_until_exit<R: Role>(
    role: &mut R,
    s: &mut Spawned<R::In, R::Out>,
    sup: &Supervision,
) -> bool {
    let outbox = s.link.outbox.clone();
    let pid = s.pid;
    let serve = role.serve(&mut s.link, &sup.stop);
    tokio::pin!(serve);
    let mut stopping = false;
    let mut escalation = Escalation::None;
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let deadline = sleep_until(far);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut serve => {
                // The channel closed: the process should be on its way out.
                if tokio::time::timeout(EXIT_SETTLE, s.child.wait()).await.is_err() {
                    sup.log.note("channel closed but the process lives on: killing it");
                    kill_group(pid);
                }
                return stopping;
            }
            _ = s.child.wait() => {
                // Let the role take what the child wrote before it died.
                let _ = tokio::time::timeout(EXIT_SETTLE, &mut serve).await;
                return stopping;
            }
            _ = sup.stop.cancelled(), if !stopping => {
                stopping = true;
                let grace = sup.restart.stop.grace;
                outbox.send(R::shutdown(grace)).await;
                deadline.as_mut().reset(Instant::now() + grace);
                escalation = Escalation::Term;
            }
            _ = &mut deadline, if stopping => {
                match escalation {
                    Escalation::Term => {
                        sup.log.note("no exit within the grace period: SIGTERM");
                        signal_group(pid, libc::SIGTERM);
                        deadline.as_mut().reset(Instant::now() + sup.restart.stop.term_grace);
                        escalation = Escalation::Kill;
                    }
                    Escalation::Kill | Escalation::None => {
                        sup.log.note("no exit after SIGTERM: SIGKILL");
                        kill_group(pid);
                        deadline.as_mut().reset(far);
                    }
                }
            }
            _ = sup.kill_now.cancelled(), if escalation != Escalation::None || stopping => {
                kill_group(pid);
                deadline.as_mut().reset(far);
                escalation = Escalation::None;
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escalation {
    None,
    Term,
    Kill,
}

/// Stops a child that never became ready: it gets no `shutdown`, only signals.
async fn stop_child<In, Out>(s: &mut Spawned<In, Out>, sup: &Supervision) {
    signal_group(s.pid, libc::SIGTERM);
    tokio::select! {
        _ = s.child.wait() => {}
        _ = sleep(sup.restart.stop.term_grace) => kill_group(s.pid),
        _ = sup.kill_now.cancelled() => kill_group(s.pid),
    }
    let _ = s.child.wait().await;
}

async fn exit_cause<In, Out>(s: &mut Spawned<In, Out>) -> ExitCause {
    match s.child.wait().await {
        Ok(status) => ExitCause::from_status(status),
        Err(e) => ExitCause::ExecFailed(e.kind(), format!("wait failed: {e}")),
    }
}

fn signal_group(pid: u32, signal: i32) {
    if pid == 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals the process group the child
    // leads (it was spawned with process_group(0)); no memory is involved.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

fn kill_group(pid: u32) {
    signal_group(pid, libc::SIGKILL);
}
