//! The accept loop every HTTP connector runs: at most `MAX_CONNECTIONS`
//! connections at once (the excess closed at accept, counted and logged),
//! each served by hyper's HTTP/1 with keep-alive under the time limits of
//! `deadline`, until the orchestrator says `shutdown`.
//!
//! The limits are what keeps a slow or hostile client from holding the
//! connector: without them 500 connections sending headers a byte at a time
//! were held open indefinitely, and a few hundred idle ones exhausted the
//! file descriptors so nobody else got in.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use connector_sdk::{BoxError, Context};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::deadline::{BodyDeadline, Deadlined, IdleWhenSent, PhaseCell};
use crate::listen::Limits;

/// How often, at most, refused connections are logged (each log line carries the count).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// After an accept error that is not about one connection (out of file
/// descriptors), wait this long before accepting again instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` under `limits` until the orchestrator says
/// `shutdown`; then stops accepting, lets requests in progress finish
/// (within the granted grace period) and closes idle connections.
pub async fn serve(
    ctx: &Context,
    listener: TcpListener,
    router: Router,
    limits: Limits,
) -> Result<(), BoxError> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let stop = ctx.shutdown_token();
    let connections = TaskTracker::new();
    let mut refused = Throttled::default();
    let mut accept_errors = Throttled::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors, usually: logged at most every
                // REFUSAL_LOG_EVERY, not at every retry.
                accept_errors.note(|n| {
                    ctx.warn(format!(
                        "cannot accept a connection: {e} ({n} accept errors since start)"
                    ))
                });
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed at once: a client over the cap holds nothing.
            drop(stream);
            let max = limits.max_connections;
            refused.note(|n| {
                ctx.warn(format!(
                    "refused a connection: {max} open, the MAX_CONNECTIONS cap ({n} refused since start)"
                ))
            });
            continue;
        };
        let router = router.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            serve_one(stream, router, limits, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(ctx.grace(), connections.wait())
        .await
        .is_err()
    {
        ctx.warn("requests still in progress at the end of the grace period were cut");
    }
    Ok(())
}

/// Accept errors that concern one connection only (it was reset before
/// being accepted): the next accept is fine.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// One connection: HTTP/1 with keep-alive, reads under the phase deadlines,
/// request bodies under `BODY_TIMEOUT`; on shutdown, finish the request in
/// progress and close.
async fn serve_one(stream: TcpStream, router: Router, limits: Limits, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let phase = PhaseCell::accepted();
    let io = TokioIo::new(Deadlined::new(stream, phase.clone(), limits));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        phase.busy();
        let req = req.map(|body| BodyDeadline::new(body, limits.body_timeout));
        let answer = router.clone().call(req);
        let phase = phase.clone();
        async move {
            let response = match answer.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| IdleWhenSent::new(body, phase)))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // The deadlines above replace hyper's own header timer.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        // A timed-out or broken connection just ends: nothing to report per client.
        _ = conn.as_mut() => {}
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Something that can happen many times a second (a refused connection, an
/// accept error): counted, and reported at most every [`REFUSAL_LOG_EVERY`]
/// with the count so far.
#[derive(Debug, Default)]
struct Throttled {
    total: u64,
    reported_at: Option<Instant>,
}

impl Throttled {
    fn note(&mut self, report: impl FnOnce(u64)) {
        self.total += 1;
        let due = self
            .reported_at
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY);
        if due {
            self.reported_at = Some(Instant::now());
            report(self.total);
        }
    }
}
