//! Supervision: spawn, handshake, serve, stop, restart, for any kind of child.
//!
//! # Theory of operation
//!
//! Each supervised process is one task running [`supervise`], which owns the
//! `Child`, its [`Link`] and its restart state; what the child is *for* is a
//! [`Role`] (a Connection's connector, or one agent instance) that handles
//! its messages. Others see it through its [`ProcessStatus`] and talk to it
//! with [`Control`] requests. One life of a child:
//!
//! 1. `spawn.rs` starts it in its own process group with a built environment
//!    and its transport (an inherited socketpair for `frames`, stdin/stdout
//!    for `jsonl`); its other output goes to its log file.
//! 2. The handshake sends `init` and waits for `ready` within `startTimeout`;
//!    a `ready` that names another protocol version is refused for good.
//! 3. [`Role::serve`] handles messages until the channel closes. Meanwhile
//!    this task pings it every `healthInterval` (three unanswered pings: hung,
//!    killed), and watches for the exit, a stop and a manual restart.
//! 4. A stop sends `shutdown`, waits `stop.grace`, sends SIGTERM to the
//!    group, waits `stop.termGrace`, then SIGKILL. A second signal to the
//!    orchestrator (`kill_now`) skips straight to SIGKILL.
//! 5. After an exit the restart policy decides: restart after a backoff
//!    (reset once a run lasted `resetAfter`); trip the crash-loop circuit
//!    after too many failures in its window and probe again every cooldown;
//!    wait in `failed` for a manual restart (permanent exit codes, exec
//!    failures, a protocol mismatch); or stay stopped until the role has work.
//!    A failure writes a crash record (cause and the last 64 KiB of stderr)
//!    to the child's log.
//!
//! A child's failure never leaves this task: one child cannot take the
//! orchestrator or a sibling down.

mod backoff;
mod circuit;
mod exit;
mod lines;
mod link;
mod outbox;
mod pin;
mod process;
mod read;
mod session;
mod spawn;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_proto::Ready;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

pub use backoff::RestartBackoff;
pub use circuit::Circuit;
pub use exit::ExitCause;
pub use link::{Link, LinkOptions};
pub use outbox::Outbox;
pub use pin::{Pin, sha256_file};
pub use process::{Process, STDERR_TAIL_BYTES, StderrTail};
pub use spawn::{CHILD_IPC_FD, ChildSpec, Spawned, child_env, program_pid, spawn};

use crate::bundle::RestartPolicy;
use crate::console::Console;
use crate::logs::LogSink;
use crate::status::{Control, ProcessState, ProcessStatus};
use session::{Handshake, SessionEnd, handshake, serve_until_exit, stop_unready};

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
    /// The answer to a message that could not be decoded but whose `seq`
    /// could be read (a connector's emit: a nack); `None` sends `error`.
    fn reject(seq: u64, message: String) -> Option<Self::Out> {
        let _ = (seq, message);
        None
    }
    /// A `ping` message.
    fn ping(nonce: u64) -> Self::Out;
    /// The nonce of `msg`, if it is a `pong`.
    fn pong(msg: &Self::In) -> Option<u64>;
    /// The `ready` inside `msg`, if it is one.
    fn ready(msg: &Self::In) -> Option<&Ready>;
    /// The child said `ready` (with these features), before [`Role::serve`].
    fn on_ready(&mut self, ready: &Ready) {
        let _ = ready;
    }
    /// A message that came before `ready`; `Err` names why it may not.
    fn before_ready(&mut self, msg: Self::In) -> Result<(), String>;
    /// Handles a ready child's messages until its channel closes. Once `stop`
    /// is cancelled it takes no new work but keeps serving, so replies to work
    /// in hand still arrive. Dropped when the process is gone.
    fn serve(
        &mut self,
        link: &mut Link<Self::In, Self::Out>,
        stop: &CancellationToken,
    ) -> impl Future<Output = Served> + Send;
    /// Called before each spawn; waits until the child may run (an agent
    /// waits for a slot under `maxInstances`). False: stop instead.
    fn before_spawn(&mut self, stop: &CancellationToken) -> impl Future<Output = bool> + Send;
    /// The process is gone: take back work it had not finished.
    fn exited(&mut self);
    /// The child stopped and the policy does not restart it: wait until there
    /// is work for a new process (true), or until `stop` or for good (false:
    /// supervision ends).
    fn wait_for_work(&mut self, stop: &CancellationToken) -> impl Future<Output = bool> + Send;
}

/// Why [`Role::serve`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// The channel closed: the child is exiting.
    Closed,
    /// The role has nothing to do: stop the child gracefully, and start it
    /// again only when [`Role::wait_for_work`] says so.
    Idle,
    /// The child stopped doing its work (a delivery timed out): kill it and
    /// restart it by policy, like a hung child.
    Unresponsive(String),
}

/// One supervised child: what to run and how to keep it.
#[derive(Debug)]
pub struct Supervision {
    /// How to start it.
    pub spec: ChildSpec,
    /// The restart policy.
    pub restart: RestartPolicy,
    /// Ping period; `None` = no health checks.
    pub health_interval: Option<Duration>,
    /// Its log file.
    pub log: LogSink,
    /// Its status, which this task keeps current.
    pub status: Arc<ProcessStatus>,
    /// Manual control requests (`orchestrator restart`).
    pub control: mpsc::Receiver<Control>,
    /// Cancelled to stop it gracefully.
    pub stop: CancellationToken,
    /// Cancelled to kill it at once.
    pub kill_now: CancellationToken,
    /// Where its lifecycle changes are told (the terminal of `run`).
    pub console: Console,
}

/// What ended a wait between runs.
enum Wake {
    /// Time to start again.
    Start,
    /// A manual restart: start now, forgetting past failures.
    Restart,
    /// The orchestrator is stopping.
    Stop,
}

/// Runs `role`'s child under `sup` until `sup.stop` is cancelled, or the role
/// has no more work ([`Role::wait_for_work`] says false), and the child is
/// gone. Gives the role back.
pub async fn supervise<R: Role>(mut role: R, mut sup: Supervision) -> R {
    let mut backoff = RestartBackoff::new(&sup.restart.backoff, None);
    let mut circuit = Circuit::new(&sup.restart.circuit);
    let status = sup.status.clone();
    let log = sup.log.clone();
    let target = status.target();
    let console = sup.console.clone();
    // A lifecycle change: in its log, and on the terminal.
    let say = |text: &str| {
        log.note(text);
        console.line(&target, text);
    };
    loop {
        if sup.stop.is_cancelled() {
            break;
        }
        if !role.before_spawn(&sup.stop).await {
            break;
        }
        status.set_state(ProcessState::Starting);
        status.counters.pings_sent.store(0, Ordering::Relaxed);
        status.counters.last_pong.store(0, Ordering::Relaxed);
        let opts = LinkOptions {
            unit: "",
            max_errors: sup.spec.max_protocol_errors,
            make_error: R::error,
            make_reject: R::reject,
            log: log.clone(),
            status: status.clone(),
        };
        let spawned = match pin::check_pin(&sup.spec).await {
            Ok(()) => spawn::<R::In, R::Out>(&sup.spec, &log, opts, R::pong),
            Err(e) => Err(e),
        };
        let (cause, ran_for) = match spawned {
            Err(e) => (
                ExitCause::ExecFailed(e.kind(), e.to_string()),
                Duration::ZERO,
            ),
            Ok(mut s) => {
                status
                    .counters
                    .pid
                    .store(u64::from(s.process.pid()), Ordering::Relaxed);
                status
                    .counters
                    .pgid
                    .store(u64::from(s.process.pid()), Ordering::Relaxed);
                say(&format!(
                    "started {} (process group {})",
                    sup.spec.program.display(),
                    s.process.pid()
                ));
                let outcome = run_once(&mut role, &mut s, &mut sup).await;
                // Whatever the program left behind in its group goes too,
                // before the leader is reaped and its pid (the group's id) freed.
                let _ = s.process.reap().await;
                role.exited();
                status.counters.pid.store(0, Ordering::Relaxed);
                status.counters.pgid.store(0, Ordering::Relaxed);
                match outcome {
                    Outcome::Stopped => break,
                    Outcome::Idle => {
                        // Its channel, pidfd and pipes go now, not when it
                        // next starts: an idle instance may wait for days.
                        drop(s);
                        status.set_state(ProcessState::Stopped);
                        say("idle: stopped until the next event");
                        let wake = tokio::select! {
                            more = role.wait_for_work(&sup.stop) => if more { Wake::Start } else { Wake::Stop },
                            c = sup.control.recv() => if c.is_some() { Wake::Restart } else { Wake::Stop },
                        };
                        if matches!(wake, Wake::Stop) {
                            break;
                        }
                        continue;
                    }
                    Outcome::Restart => {
                        backoff.reset();
                        circuit.reset();
                        status.restarted();
                        continue;
                    }
                    Outcome::Exited(cause, ran_for) => {
                        let _ =
                            tokio::time::timeout(Duration::from_millis(500), &mut s.stderr_done)
                                .await;
                        exit::crash_record(&log, &status, &cause, &s.stderr_tail);
                        let text = match (&cause, status.snapshot().last_error) {
                            (ExitCause::FailedStart(_), Some(e)) => {
                                format!("exited: failed start: {e}")
                            }
                            (_, Some(e)) if e != cause.to_string() => {
                                format!("exited: {cause} ({e})")
                            }
                            _ => format!("exited: {cause}"),
                        };
                        console.line(&target, &text);
                        (cause, ran_for)
                    }
                }
            }
        };
        if matches!(cause, ExitCause::ExecFailed(..)) {
            say(&format!("{}: {cause}", sup.spec.program.display()));
            status.set_exit(cause.to_string(), Some(cause.to_string()));
        }

        let wake = if cause.is_permanent(&sup.restart) {
            status.set_state(ProcessState::Failed);
            say(
                "failed: not restarting until a manual restart (`orchestrator restart`) or a bundle change",
            );
            wait(&mut sup, None).await
        } else if !cause.wants_restart(sup.restart.policy) {
            status.set_state(ProcessState::Stopped);
            say("stopped: the restart policy does not restart it");
            tokio::select! {
                more = role.wait_for_work(&sup.stop) => if more { Wake::Start } else { Wake::Stop },
                c = sup.control.recv() => if c.is_some() { Wake::Restart } else { Wake::Stop },
            }
        } else {
            if ran_for >= sup.restart.reset_after {
                backoff.reset();
                circuit.reset();
            }
            if circuit.failure(Instant::now()) {
                status.set_state(ProcessState::Crashloop);
                let cooldown = circuit.cooldown();
                let msg = format!(
                    "crash loop: {} failures within {}; next probe in {}",
                    circuit.count(),
                    humantime::format_duration(sup.restart.circuit.window),
                    humantime::format_duration(cooldown)
                );
                say(&msg);
                status.set_error(msg);
                wait(&mut sup, Some(cooldown)).await
            } else {
                status.set_state(ProcessState::Backoff);
                let delay = backoff.next_delay();
                say(&format!(
                    "restarting in {}",
                    humantime::format_duration(round_ms(delay))
                ));
                wait(&mut sup, Some(delay)).await
            }
        };
        match wake {
            Wake::Stop => break,
            Wake::Start => status.restarted(),
            Wake::Restart => {
                say("manual restart");
                backoff.reset();
                circuit.reset();
                status.restarted();
            }
        }
    }
    status.set_state(ProcessState::Stopped);
    role
}

enum Outcome {
    /// Stopped on request; nothing more to do.
    Stopped,
    /// Stopped because the role was idle.
    Idle,
    /// Stopped for a manual restart.
    Restart,
    /// It ended by itself (or was killed as hung), after running this long since `ready`.
    Exited(ExitCause, Duration),
}

/// One run of a spawned child: handshake, serve, exit.
async fn run_once<R: Role>(
    role: &mut R,
    s: &mut Spawned<R::In, R::Out>,
    sup: &mut Supervision,
) -> Outcome {
    let status = &sup.status;
    match handshake(role, &mut s.link, sup).await {
        Handshake::Ready => {}
        Handshake::Stopped => {
            stop_unready(s, sup).await;
            return Outcome::Stopped;
        }
        Handshake::Failed(reason) => {
            let exited = session::exit_cause(s).await;
            // An exit code of its own says more than "no ready".
            let cause = match exited {
                ExitCause::Exited(code) if code != 0 => exited,
                ExitCause::Oom => exited,
                _ => ExitCause::FailedStart(reason),
            };
            return Outcome::Exited(cause, Duration::ZERO);
        }
        Handshake::Incompatible(reason) => {
            let _ = s.process.reap().await;
            return Outcome::Exited(ExitCause::Incompatible(reason), Duration::ZERO);
        }
    }
    let ready_at = Instant::now();
    status.set_state(ProcessState::Ready);
    // Through the shim, the program is the group leader's child; by `ready` it surely exists.
    let pid = if sup.spec.shim.is_some() {
        spawn::program_pid(s.process.pid()).unwrap_or(s.process.pid())
    } else {
        s.process.pid()
    };
    status.counters.pid.store(u64::from(pid), Ordering::Relaxed);
    let ready = format!("ready (pid {pid})");
    sup.log.note(&ready);
    sup.console.line(&status.target(), &ready);
    let end = serve_until_exit(role, s, sup).await;
    let ran_for = ready_at.elapsed();
    match end {
        SessionEnd::Stopped => Outcome::Stopped,
        SessionEnd::Idle => Outcome::Idle,
        SessionEnd::Restart => Outcome::Restart,
        SessionEnd::Hung(missed) => Outcome::Exited(ExitCause::Hung(missed), ran_for),
        SessionEnd::Unresponsive(why) => Outcome::Exited(ExitCause::Unresponsive(why), ran_for),
        SessionEnd::NotReading(why) => Outcome::Exited(ExitCause::NotReading(why), ran_for),
        SessionEnd::Exited => Outcome::Exited(session::exit_cause(s).await, ran_for),
    }
}

/// Waits `delay` (or forever), a manual restart, or the stop.
async fn wait(sup: &mut Supervision, delay: Option<Duration>) -> Wake {
    let timer = async {
        match delay {
            Some(d) => sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = timer => Wake::Start,
        c = sup.control.recv() => match c {
            Some(Control::Restart) => Wake::Restart,
            None => Wake::Stop,
        },
        _ = sup.stop.cancelled() => Wake::Stop,
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
