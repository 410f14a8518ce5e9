//! One run of a child: the handshake, serving it, and stopping it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_proto::PROTOCOL_VERSION;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, sleep_until};

use super::{ExitCause, Link, Role, Served, Spawned, Supervision};
use crate::status::{Control, ProcessState};

/// How long a closed channel may precede the exit (or an exit the last messages) before we act.
const EXIT_SETTLE: Duration = Duration::from_secs(2);

/// Unanswered pings that make a child hung.
pub const MISSED_PINGS: u64 = 3;

pub enum Handshake {
    Ready,
    Stopped,
    Failed(String),
    Incompatible(String),
}

pub enum SessionEnd {
    /// It exited (or closed its channel) by itself.
    Exited,
    /// We stopped it because the orchestrator is stopping.
    Stopped,
    /// We stopped it for a manual restart.
    Restart,
    /// We stopped it because its role was idle.
    Idle,
    /// We killed it: this many pings went unanswered.
    Hung(u64),
    /// We killed it: its role said it stopped doing its work.
    Unresponsive(String),
    /// We killed it: it does not read what it is sent.
    NotReading(String),
}

pub async fn handshake<R: Role>(
    role: &mut R,
    link: &mut Link<R::In, R::Out>,
    sup: &Supervision,
) -> Handshake {
    if !link.outbox.send(role.init()) {
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
                            link.violation(reason.clone());
                            Handshake::Incompatible(reason)
                        }
                        _ => {
                            role.on_ready(ready);
                            Handshake::Ready
                        }
                    };
                }
                if let Err(why) = role.before_ready(msg)
                    && !link.violation(why)
                {
                    return Handshake::Failed("too many bad messages before ready".into());
                }
            }
        }
    }
}

/// Serves a ready child until it exits, pinging it, and stopping it on request.
pub async fn serve_until_exit<R: Role>(
    role: &mut R,
    s: &mut Spawned<R::In, R::Out>,
    sup: &mut Supervision,
) -> SessionEnd {
    let outbox = s.link.outbox.clone();
    let stalled = outbox.stalled();
    tokio::pin!(stalled);
    let pid = s.process.pid();
    let status = sup.status.clone();
    // Serving stops taking new work on its own token: the orchestrator's stop, or a manual restart.
    let stop_serving = sup.stop.child_token();
    let serve = role.serve(&mut s.link, &stop_serving);
    tokio::pin!(serve);

    let mut health = interval(sup.health_interval.unwrap_or(Duration::from_secs(3600)));
    health.set_missed_tick_behavior(MissedTickBehavior::Delay);
    health.reset();
    let pinging = sup.health_interval.is_some();

    let mut stopping: Option<SessionEnd> = None;
    let mut serving = true;
    let mut killed = false;
    let mut escalation = Escalation::Term;
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let deadline = sleep_until(far);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            served = &mut serve, if serving => {
                serving = false;
                match served {
                    Served::Idle if stopping.is_none() => {
                        stopping = Some(SessionEnd::Idle);
                        begin_stop::<R>(&outbox, sup, &stop_serving, deadline.as_mut());
                        continue;
                    }
                    Served::Unresponsive(why) => {
                        sup.log.note(&format!("unresponsive: {why}; killing the process group"));
                        let _ = s.process.reap().await;
                        return SessionEnd::Unresponsive(why);
                    }
                    _ => {}
                }
                // The channel closed: the process should be on its way out.
                if tokio::time::timeout(EXIT_SETTLE, s.process.exited()).await.is_err() {
                    sup.log.note("channel closed but the process lives on: killing it");
                    kill_group(pid);
                }
                return stopping.unwrap_or(SessionEnd::Exited);
            }
            why = &mut stalled => {
                // Nothing we send it is read: waiting on it would stall
                // whoever sends (acks, pings, shutdown). It is a protocol failure.
                status.counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
                sup.log.note(&format!("not reading its input ({why}); killing the process group"));
                let _ = s.process.reap().await;
                return SessionEnd::NotReading(why);
            }
            _ = s.process.exited() => {
                // Let the role take what the child wrote before it died.
                if serving {
                    let _ = tokio::time::timeout(EXIT_SETTLE, &mut serve).await;
                }
                return stopping.unwrap_or(SessionEnd::Exited);
            }
            _ = health.tick(), if pinging && stopping.is_none() => {
                let sent = status.counters.pings_sent.load(Ordering::Relaxed);
                let answered = status.counters.last_pong.load(Ordering::Relaxed);
                let missed = sent.saturating_sub(answered);
                if missed >= MISSED_PINGS {
                    sup.log.note(&format!("hung: {missed} pings unanswered; killing the process group"));
                    let _ = s.process.reap().await;
                    return SessionEnd::Hung(missed);
                }
                status.counters.pings_sent.store(sent + 1, Ordering::Relaxed);
                outbox.send(R::ping(sent + 1));
            }
            c = sup.control.recv(), if stopping.is_none() => {
                if c == Some(Control::Restart) {
                    sup.log.note("manual restart: stopping the current process");
                    stopping = Some(SessionEnd::Restart);
                    begin_stop::<R>(&outbox, sup, &stop_serving, deadline.as_mut());
                }
            }
            _ = sup.stop.cancelled(), if stopping.is_none() => {
                stopping = Some(SessionEnd::Stopped);
                begin_stop::<R>(&outbox, sup, &stop_serving, deadline.as_mut());
            }
            _ = &mut deadline, if stopping.is_some() => {
                match escalation {
                    Escalation::Term => {
                        sup.log.note("no exit within the grace period: SIGTERM to the process group");
                        signal_group(pid, libc::SIGTERM);
                        deadline.as_mut().reset(Instant::now() + sup.restart.stop.term_grace);
                        escalation = Escalation::Kill;
                    }
                    Escalation::Kill => {
                        sup.log.note("no exit after SIGTERM: SIGKILL to the process group");
                        kill_group(pid);
                        deadline.as_mut().reset(far);
                    }
                }
            }
            // Whatever state it is in: the orchestrator is going now.
            _ = sup.kill_now.cancelled(), if !killed => {
                killed = true;
                sup.log.note("killed at once: the orchestrator got a second signal");
                stop_serving.cancel();
                stopping.get_or_insert(SessionEnd::Stopped);
                kill_group(pid);
                deadline.as_mut().reset(far);
            }
        }
    }
}

fn begin_stop<R: Role>(
    outbox: &super::Outbox<R::Out>,
    sup: &Supervision,
    stop_serving: &tokio_util::sync::CancellationToken,
    deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) {
    sup.status.set_state(ProcessState::Stopping);
    stop_serving.cancel();
    let grace = sup.restart.stop.grace;
    outbox.send(R::shutdown(grace));
    deadline.reset(Instant::now() + grace);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escalation {
    Term,
    Kill,
}

/// Stops a child that never became ready: it gets no `shutdown`, only signals.
pub async fn stop_unready<In, Out>(s: &mut Spawned<In, Out>, sup: &Supervision) {
    signal_group(s.process.pid(), libc::SIGTERM);
    tokio::select! {
        _ = s.process.exited() => {}
        _ = sleep(sup.restart.stop.term_grace) => {}
        _ = sup.kill_now.cancelled() => {}
    }
    let _ = s.process.reap().await;
}

/// Reaps the child (killing what is left of its group first) and says why it ended.
pub async fn exit_cause<In, Out>(s: &mut Spawned<In, Out>) -> ExitCause {
    let cause = match s.process.reap().await {
        Ok(status) => ExitCause::from_status(status),
        Err(e) => return ExitCause::ExecFailed(e.kind(), format!("wait failed: {e}")),
    };
    // The memory cgroup's own count settles what an exit code can only suggest:
    // a program may exit 251 by itself, and a shim killed outright says nothing.
    let oom_kills = s
        .cgroups
        .as_ref()
        .and_then(|g| g.memory())
        .map_or(0, |(version, dir)| crate::sandbox::oom_kills(version, &dir));
    match cause {
        ExitCause::Oom if oom_kills == 0 => ExitCause::Exited(crate::sandbox::OOM_EXIT),
        ExitCause::Signaled(libc::SIGKILL) if oom_kills > 0 => ExitCause::Oom,
        cause => cause,
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

/// SIGKILL to the child's whole process group.
pub fn kill_group(pid: u32) {
    signal_group(pid, libc::SIGKILL);
}
