//! `run --metrics ADDR`: the Prometheus text format on `GET /metrics`.
//!
//! Two kinds of figures, one recorder (`metrics` + `metrics-exporter-prometheus`):
//!
//! - what the orchestrator already counts for `status` — process states
//!   and restarts, each Connection's intake, the journal's counts, each
//!   operation's counters — is copied into the recorder when a scrape
//!   comes ([`refresh`]), so `status` and `/metrics` never disagree;
//! - what happens per event is recorded where it happens, through handles
//!   made once (a delivery, an ack, a nack, a dead letter per Agent; the
//!   emit → ack latency per Connection; the journal's commit latency and
//!   batch size; each operation's duration), so the hot path pays an atomic
//!   add, not a lookup.
//!
//! Without `--metrics` no recorder is installed and every handle is a no-op.
//! Names follow Prometheus conventions: `orchestrator_` prefix, `_total` for
//! counters, base units (`_seconds`). The README lists them.

use std::net::SocketAddr;
use std::sync::Arc;

use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::control::ControlContext;
use crate::status::{ProcessKind, ProcessState};

/// Histogram bounds for latencies, in seconds: 50 µs to 30 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 5.0, 30.0,
];

/// Every state a process can be in, for the one-hot `process_state` gauge.
const STATES: [ProcessState; 7] = [
    ProcessState::Starting,
    ProcessState::Ready,
    ProcessState::Backoff,
    ProcessState::Crashloop,
    ProcessState::Failed,
    ProcessState::Stopping,
    ProcessState::Stopped,
];

/// Installs the process-wide recorder. Call once, before anything makes a
/// handle (handles made before it stay no-ops).
pub fn install() -> Result<PrometheusHandle, String> {
    let builder = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("orchestrator_journal_batch_size".into()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 8192.0],
        )
        .map_err(|e| e.to_string())?;
    builder.install_recorder().map_err(|e| e.to_string())
}

/// Serves `/metrics` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    ctx: ControlContext,
    stop: CancellationToken,
) {
    let state = Arc::new((handle, ctx));
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(s): axum::extract::State<
                    Arc<(PrometheusHandle, ControlContext)>,
                >| async move {
                    refresh(&s.1);
                    s.0.run_upkeep();
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        s.0.render(),
                    )
                },
            ),
        )
        .with_state(state);
    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.cancelled().await;
    });
    if let Err(e) = served.await {
        tracing::warn!("metrics endpoint: {e}");
    }
}

/// Binds `addr` for [`serve`]; the address it got (for port 0) is the second value.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Copies what `status` counts into the recorder.
pub fn refresh(ctx: &ControlContext) {
    // Every Agent of the bundle, so one whose last instance went shows zeros.
    let mut agents: std::collections::BTreeMap<String, [u64; STATES.len()]> = ctx
        .router
        .agent_summaries()
        .into_iter()
        .map(|a| (a.name, [0; STATES.len()]))
        .collect();
    let mut agent_egress: std::collections::BTreeMap<String, crate::egress::EgressSnapshot> =
        Default::default();
    for row in ctx.registry.snapshot() {
        if let Some(e) = &row.egress {
            match row.kind {
                ProcessKind::Connection => egress("connection", &row.name, e),
                ProcessKind::Agent => {
                    let sum = agent_egress.entry(row.name.clone()).or_default();
                    sum.allowed += e.allowed;
                    sum.bytes_sent += e.bytes_sent;
                    sum.bytes_received += e.bytes_received;
                    for (r, n) in &e.refused {
                        *sum.refused.entry(r.clone()).or_default() += n;
                    }
                    for (r, n) in &e.failed {
                        *sum.failed.entry(r.clone()).or_default() += n;
                    }
                }
            }
        }
        match row.kind {
            ProcessKind::Connection => {
                let c = row.name.clone();
                counter!("orchestrator_process_restarts_total", "connection" => c.clone())
                    .absolute(row.restarts);
                counter!("orchestrator_process_protocol_errors_total", "connection" => c.clone())
                    .absolute(row.protocol_errors);
                gauge!("orchestrator_process_uptime_seconds", "connection" => c.clone())
                    .set(row.uptime_secs.unwrap_or(0.0));
                for s in STATES {
                    gauge!("orchestrator_connection_state", "connection" => c.clone(), "state" => state_name(s))
                        .set(if s == row.state { 1.0 } else { 0.0 });
                }
                counter!("orchestrator_connection_emits_total", "connection" => c.clone())
                    .absolute(row.events_in);
                if let Some(i) = &row.intake {
                    let set = |name: &'static str, v: u64| {
                        counter!(name, "connection" => c.clone()).absolute(v);
                    };
                    set("orchestrator_connection_accepted_total", i.accepted);
                    set("orchestrator_connection_nacked_total", i.nacked);
                    set("orchestrator_connection_duplicates_total", i.duplicates);
                    set(
                        "orchestrator_connection_quota_exceeded_total",
                        i.quota_exceeded,
                    );
                    set("orchestrator_connection_overloaded_total", i.overloaded);
                    set("orchestrator_connection_unmatched_total", i.unmatched);
                    set("orchestrator_connection_dropped_total", i.dropped);
                }
            }
            ProcessKind::Agent => {
                let counts = agents.entry(row.name.clone()).or_default();
                if let Some(n) = STATES.iter().position(|s| *s == row.state) {
                    counts[n] += 1;
                }
            }
        }
    }
    for (agent, counts) in agents {
        for (s, n) in STATES.iter().zip(counts) {
            gauge!("orchestrator_agent_instances", "agent" => agent.clone(), "state" => state_name(*s))
                .set(n as f64);
        }
    }
    for (agent, e) in &agent_egress {
        egress("agent", agent, e);
    }
    let j = ctx.journal.counts();
    counter!("orchestrator_journal_accepted_total").absolute(j.accepted);
    counter!("orchestrator_journal_duplicates_total").absolute(j.duplicates);
    counter!("orchestrator_journal_delivered_total").absolute(j.delivered);
    counter!("orchestrator_journal_dead_lettered_total").absolute(j.dead_lettered);
    gauge!("orchestrator_journal_pending_events").set(j.pending as f64);
    gauge!("orchestrator_journal_dead_letters").set(j.dead as f64);
    for (name, ops) in &ctx.operations.connections() {
        if !ops.declares_operations() {
            continue;
        }
        counter!("orchestrator_connection_circuit_trips_total", "connection" => name.clone())
            .absolute(ops.circuit_trips());
        gauge!("orchestrator_connection_degraded", "connection" => name.clone())
            .set(if ops.state() == "degraded" { 1.0 } else { 0.0 });
        for (op, s) in ops.stats() {
            let labels = [("connection", name.clone()), ("operation", op.clone())];
            counter!("orchestrator_operation_invocations_total", &labels).absolute(s.invocations);
            counter!("orchestrator_operation_retries_total", &labels).absolute(s.retries);
            gauge!("orchestrator_operation_in_flight", &labels).set(s.in_flight as f64);
            counter!("orchestrator_operation_outcomes_total", "connection" => name.clone(), "operation" => op.clone(), "outcome" => "ok")
                .absolute(s.ok);
            for (class, n) in &s.failed {
                counter!("orchestrator_operation_outcomes_total", "connection" => name.clone(), "operation" => op.clone(), "outcome" => class.clone())
                    .absolute(*n);
            }
        }
    }
}

/// The egress proxy's counts of one Connection, or of an Agent's instances together.
fn egress(label: &'static str, name: &str, e: &crate::egress::EgressSnapshot) {
    let name = name.to_owned();
    counter!("orchestrator_egress_allowed_total", label => name.clone()).absolute(e.allowed);
    for (reason, n) in &e.refused {
        counter!("orchestrator_egress_refused_total", label => name.clone(), "reason" => reason.clone())
            .absolute(*n);
    }
    for (reason, n) in &e.failed {
        counter!("orchestrator_egress_failed_total", label => name.clone(), "reason" => reason.clone())
            .absolute(*n);
    }
    counter!("orchestrator_egress_bytes_total", label => name.clone(), "direction" => "sent")
        .absolute(e.bytes_sent);
    counter!("orchestrator_egress_bytes_total", label => name, "direction" => "received")
        .absolute(e.bytes_received);
}

fn state_name(s: ProcessState) -> &'static str {
    match s {
        ProcessState::Starting => "starting",
        ProcessState::Ready => "ready",
        ProcessState::Backoff => "backoff",
        ProcessState::Crashloop => "crashloop",
        ProcessState::Failed => "failed",
        ProcessState::Stopping => "stopping",
        ProcessState::Stopped => "stopped",
    }
}

/// What an agent instance records per delivery, made once per instance.
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    /// Deliveries sent (every attempt).
    pub deliveries: Counter,
    /// Deliveries after the first attempt.
    pub redeliveries: Counter,
    /// Deliveries acknowledged.
    pub acks: Counter,
    /// Deliveries nacked.
    pub nacks: Counter,
    /// Events dead-lettered.
    pub dead_letters: Counter,
}

impl AgentMetrics {
    /// The handles for `agent`.
    pub fn new(agent: &str) -> Self {
        let c = |name: &'static str| counter!(name, "agent" => agent.to_owned());
        Self {
            deliveries: c("orchestrator_agent_deliveries_total"),
            redeliveries: c("orchestrator_agent_redeliveries_total"),
            acks: c("orchestrator_agent_acks_total"),
            nacks: c("orchestrator_agent_nacks_total"),
            dead_letters: c("orchestrator_agent_dead_letters_total"),
        }
    }
}

/// The emit → ack latency of `connection` (accepted emits, from decode to ack).
pub fn emit_ack_seconds(connection: &str) -> Histogram {
    histogram!("orchestrator_emit_ack_seconds", "connection" => connection.to_owned())
}

/// The duration of invokes of `operation` of `connection`, whatever their outcome.
pub fn operation_seconds(connection: &str, operation: &str) -> Histogram {
    histogram!("orchestrator_operation_duration_seconds", "connection" => connection.to_owned(), "operation" => operation.to_owned())
}

/// The journal's commit latency and batch size.
pub fn journal() -> (Histogram, Histogram) {
    (
        histogram!("orchestrator_journal_commit_seconds"),
        histogram!("orchestrator_journal_batch_size"),
    )
}
