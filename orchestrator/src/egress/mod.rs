//! Egress by host name: `sandbox.network.mode: egress`.
//!
//! # Theory of operation
//!
//! A child in `egress` mode gets a network namespace of its own with only
//! `lo` (see [`crate::sandbox`]): it can reach no address outside it, no
//! resolver, and no port of the orchestrator's host. Before exec, the shim's
//! child binds `127.0.0.1:0` in that namespace and hands the listening
//! socket to the orchestrator over an inherited unix socket (fd
//! [`EGRESS_FD`], see `handoff.rs`), and sets `HTTPS_PROXY`, `HTTP_PROXY`
//! and `ALL_PROXY` (and their lowercase forms) to `http://127.0.0.1:<port>`,
//! `NO_PROXY` removed. The orchestrator accepts on that listener: every
//! connection the child makes to its proxy arrives here, and nothing else
//! can leave its namespace.
//!
//! The proxy (`proxy.rs`) speaks HTTP/1.1 `CONNECT host:port` (a tunnel,
//! for HTTPS) and absolute-form `http://` requests (forwarded in origin
//! form, one checked upstream connection per request). For each it:
//!
//! 1. matches the host against `allowHosts` (exact, or `*.suffix` for any
//!    name below it) and the port against `allowPorts`; a literal IP must be
//!    listed itself;
//! 2. resolves the name itself (the child cannot);
//! 3. refuses every address that is loopback, private (RFC 1918, RFC 4193),
//!    link-local, multicast, CGNAT, reserved or a cloud metadata address,
//!    unless a CIDR of `allowCidrs` holds it;
//! 4. connects to an address that passed, the one it checked: a DNS answer
//!    that changes afterwards is never followed.
//!
//! A refusal is a `403` (the reason in its body and `X-Egress-Refused`),
//! an `egress_refused` audit record (process, host, port, reason, the
//! addresses when one was refused) and a count by reason; an upstream that
//! cannot be resolved or reached is a `502`, counted as `failed`. Bytes
//! each way are counted on the upstream side. The counters are in the
//! process's `status` row (`egress`) and in `/metrics`.
//!
//! The name is resolved once per request, and only the addresses of that
//! one answer are checked and connected to.
//!
//! For tests only, `ORCHESTRATOR_EGRESS_RESOLVE` replaces the resolver
//! (`resolve.rs`): `name=ip,name=ip1|ip2`, where `ip1|ip2` answers `ip1`
//! to the first lookup of the name and `ip2` to every later one (a DNS
//! answer that changes); a name it does not list does not resolve.

mod counters;
mod handoff;
mod inbound;
mod policy;
mod proxy;
mod resolve;

use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tokio::sync::Semaphore;

pub use counters::{Counters, EgressSnapshot};
pub use handoff::{EGRESS_FD, Handoff, hand_over};
pub use policy::{Cidr, Policy, Refusal, blocked_class, normalize_host};
pub use resolve::RESOLVE_ENV;
use resolve::resolve;

use crate::logs::AuditLog;
use crate::status::{ProcessKind, ProcessStatus};

/// Connections one child may have open through its proxy at once; more
/// are closed as they arrive (and counted as refused, `too_many_connections`).
const MAX_CONNECTIONS: usize = 256;

/// The run's audit log, while it runs (taken back by [`clear_audit`], so
/// the log closes, with its last summaries, when the run drops it).
static AUDIT: Mutex<Option<AuditLog>> = Mutex::new(None);

/// Where refusals are recorded (`audit.log`); called once per run.
pub fn set_audit(audit: AuditLog) {
    *AUDIT.lock().expect("audit lock") = Some(audit);
}

/// Lets go of the audit log at the end of a run.
pub fn clear_audit() {
    AUDIT.lock().expect("audit lock").take();
}

fn audit(record: serde_json::Value) {
    let log = AUDIT.lock().expect("audit lock").clone();
    match log {
        Some(a) => a.record(record),
        None => tracing::warn!("egress refused (no audit log): {record}"),
    }
}

/// One child as its proxy knows it.
#[derive(Debug)]
struct Child {
    policy: Arc<Policy>,
    target: String,
    connection: Option<String>,
    agent: Option<String>,
    instance_key: Option<String>,
    counters: Arc<Counters>,
    status: Arc<ProcessStatus>,
}

/// Serves the proxy of the child that was just started with `handoff`'s
/// other end: receives its listener, accepts on it until the child is gone.
pub fn start(handoff: Handoff, policy: Arc<Policy>, status: &Arc<ProcessStatus>) {
    let sock = handoff.into_parent();
    status.egress.enable();
    let child = Arc::new(Child {
        policy,
        target: status.target(),
        connection: (status.kind == ProcessKind::Connection).then(|| status.name.clone()),
        agent: (status.kind == ProcessKind::Agent).then(|| status.name.clone()),
        instance_key: status.instance_key.clone(),
        counters: status.egress.clone(),
        status: status.clone(),
    });
    tokio::spawn(async move {
        if let Err(e) = run(sock, child.clone()).await {
            tracing::warn!("{}: egress proxy: {e}", child.target);
        }
    });
}

async fn run(sock: std::os::unix::net::UnixStream, child: Arc<Child>) -> std::io::Result<()> {
    sock.set_nonblocking(true)?;
    // SAFETY: the AsyncFd owns the socket, which stays open and the same fd
    // until it is dropped.
    let sock = unsafe { AsyncFd::register(sock) }.map_err(std::io::Error::from)?;
    let (listener, ns) = loop {
        let mut ready = sock.readable().await?;
        match ready.try_io(|s| handoff::receive(s.get_ref())) {
            Ok(Ok(handoff::Received::Listener(fd, _port, ns))) => break (fd, ns),
            Ok(Ok(handoff::Received::Closed)) => return Ok(()),
            Ok(Ok(handoff::Received::Other)) | Err(_) => {}
            Ok(Err(e)) => return Err(e),
        }
    };
    let listener = std::net::TcpListener::from(listener);
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stop_inbound = stop.clone().drop_guard();
    if let (false, Some(ns)) = (child.policy.publish.is_empty(), ns) {
        let target: Arc<str> = child.target.clone().into();
        if let Err(why) = inbound::serve(target, &child.policy.publish, ns, stop).await {
            tracing::error!("{}: {why}", child.target);
            child.status.set_error(why);
        }
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of fds, say: do not spin on it.
                        tracing::warn!("{}: egress proxy: accept: {e}", child.target);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    child.counters.refused("too_many_connections");
                    continue;
                };
                let child = child.clone();
                tokio::spawn(async move {
                    proxy::serve(child, stream).await;
                    drop(slot);
                });
            }
            gone = closed(&sock) => return gone,
        }
    }
}

/// Resolves when every copy of the child's end is closed (the child, its
/// shim and init are gone): the listener is dropped with it.
async fn closed(sock: &AsyncFd<std::os::unix::net::UnixStream>) -> std::io::Result<()> {
    loop {
        let mut ready = sock.readable().await?;
        match ready.try_io(|s| handoff::receive(s.get_ref())) {
            Ok(Ok(handoff::Received::Closed)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(_)) | Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
