//! The control socket: how `status`, `restart` and `dlq` talk to a running orchestrator.
//!
//! # Theory of operation
//!
//! `run` listens on `control.sock` in the state directory (a Unix socket,
//! through `interprocess`). A client connects, writes one JSON request line,
//! reads one JSON response line, and the connection closes. Requests are
//! [`Request`]s, answers are [`Response`]s; both are documented in the README
//! and stable. A malformed request gets an error response, never a crash.
//! Only the owner can connect: the socket is created mode 0600. A client
//! waits at most `ORCHESTRATOR_CONTROL_TIMEOUT` (default 30 s) for an answer.
//!
//! The dead-letter verbs also work without a running orchestrator: the CLI
//! then opens the journal itself ([`dlq::offline`]).

mod client;
pub mod dlq;

use std::io;
use std::path::Path;
use std::sync::Arc;

use interprocess::local_socket::tokio::{Listener, Stream, prelude::*};
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

pub use client::{
    ClientError, connect_error_means_not_running, request, request_within, timeout_from_env,
};
pub use dlq::DlqEntry;

use crate::journal::Journal;
use crate::router::Router;
use crate::status::{Control, ProcessSnapshot, Registry};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// How long a client has to send its request.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "camelCase")]
pub enum Request {
    /// Every process's status.
    Status,
    /// A manual restart of the processes a target names.
    Restart {
        /// `connection/<name>`, `agent/<name>` or `agent/<name>/<instanceKey>`.
        target: String,
    },
    /// The dead-letter queue.
    DlqList,
    /// Deliver dead letters again: one by id, or all (`id: null`).
    DlqReplay {
        /// The event id; `None` for every dead letter.
        id: Option<String>,
    },
    /// Remove one dead letter for good.
    DlqDrop {
        /// The event id.
        id: String,
    },
    /// Run an operation of a Connection as the operator (the same governed
    /// path as an agent's invoke; every operation the Connection allows).
    #[serde(rename_all = "camelCase")]
    Invoke {
        /// The Connection.
        connection: String,
        /// The operation.
        operation: String,
        /// Its input.
        #[serde(default)]
        input: serde_json::Value,
        /// Passed to the connector with every attempt.
        #[serde(default)]
        idempotency_key: Option<String>,
        /// The most to wait for the whole invoke.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Every job of an async operation the journal keeps.
    JobsList,
    /// One job.
    JobGet {
        /// The job id.
        id: String,
    },
    /// Cancel a job that has not settled.
    JobCancel {
        /// The job id.
        id: String,
    },
    /// What `apply` of a bundle would do.
    Diff {
        /// The bundle file or directory, as an absolute path.
        bundle: String,
    },
    /// Bring the running orchestrator to a bundle.
    Apply {
        /// The bundle file or directory, as an absolute path.
        bundle: String,
    },
}

/// What the orchestrator answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `status`: every process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<ProcessSnapshot>>,
    /// For `invoke`: the result, as an agent would get it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ipc_proto::InvokeResult>,
    /// For `status`: every Agent of the bundle and how many instances it has now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<crate::status::AgentSummary>>,
    /// For `restart`: the targets restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted: Option<Vec<String>>,
    /// For `dlqList`: the dead letters, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<Vec<DlqEntry>>,
    /// For `dlqReplay` and `dlqDrop`: the event ids handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// For `jobsList`, `jobGet` and `jobCancel`: the jobs, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<crate::operations::JobSummary>>,
    /// For `diff` and `apply`: what differs and what happens to each child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::reconcile::Plan>,
    /// For `diff` and `apply` of an invalid bundle: each error as `validate` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<String>>,
}

impl Response {
    /// A refusal.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            ..Default::default()
        }
    }

    fn ok() -> Self {
        Self {
            ok: true,
            ..Default::default()
        }
    }
}

/// What the control socket can reach in a running orchestrator.
#[derive(Clone, Debug)]
pub struct ControlContext {
    /// Every process.
    pub registry: Arc<Registry>,
    /// The journal.
    pub journal: Journal,
    /// For replays.
    pub router: Router,
    /// For the operations' counters.
    pub operations: Arc<crate::operations::Operations>,
    /// For `diff` and `apply`.
    pub reconciler: crate::reconcile::Reconciler,
    /// Cluster mode: `status` shows every node's processes.
    pub cluster: Option<crate::cluster::Cluster>,
}

/// Binds `control.sock` at `path`, replacing a stale one — never one that
/// a live orchestrator answers on (`run` holds the state directory's lock,
/// so there should be none; this is the second line of defence).
pub fn bind(path: &Path) -> io::Result<Listener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another orchestrator answers on this socket",
        ));
    }
    let name = path.to_fs_name::<GenericFilePath>()?;
    let listener = ListenerOptions::new()
        .name(name)
        .try_overwrite(true)
        .create_tokio()?;
    restrict(path)?;
    Ok(listener)
}

fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Answers clients until `stop` is cancelled.
pub async fn serve(listener: Listener, ctx: ControlContext, stop: CancellationToken) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.cancelled() => return,
        };
        match conn {
            Ok(conn) => {
                tokio::spawn(handle(conn, ctx.clone()));
            }
            Err(e) => tracing::warn!("control socket: accept failed: {e}"),
        }
    }
}

async fn handle(conn: Stream, ctx: ControlContext) {
    let mut line = String::new();
    let mut reader = BufReader::new((&conn).take(MAX_REQUEST));
    // A client that connects and says nothing is not kept forever.
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    let response = match read {
        Err(_) => Response::error("no request within 10s"),
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => answer(req, &ctx).await,
            Err(e) => Response::error(format!("bad request: {e}")),
        },
        Ok(Err(e)) => Response::error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_string(&response)
        .unwrap_or_else(|e| format!("{{\"ok\":false,\"error\":\"{e}\"}}"));
    out.push('\n');
    let mut write = &conn;
    let _ = write.write_all(out.as_bytes()).await;
    let _ = write.flush().await;
}

/// The answer to one request.
pub async fn answer(req: Request, ctx: &ControlContext) -> Response {
    let cancel = matches!(req, Request::JobCancel { .. });
    match req {
        Request::Status => {
            let mut processes = with_operations(ctx.registry.snapshot(), &ctx.operations);
            if let Some(cluster) = &ctx.cluster {
                for row in &mut processes {
                    row.node = Some(cluster.node().to_string());
                }
                processes.extend(cluster.peer_status().await);
            }
            Response {
                processes: Some(processes),
                agents: Some(ctx.router.agent_summaries()),
                ..Response::ok()
            }
        }
        Request::Restart { target } => restart(&ctx.registry, &target),
        Request::DlqList if ctx.cluster.is_some() => dlq::cluster(ctx, Request::DlqList).await,
        Request::DlqReplay { id } if ctx.cluster.is_some() => {
            dlq::cluster(ctx, Request::DlqReplay { id }).await
        }
        Request::DlqDrop { id } if ctx.cluster.is_some() => {
            dlq::cluster(ctx, Request::DlqDrop { id }).await
        }
        Request::DlqList => match ctx.journal.dead_letters() {
            Ok(letters) => Response {
                dead_letters: Some(letters.iter().map(DlqEntry::from).collect()),
                ..Response::ok()
            },
            Err(e) => Response::error(format!("journal: {e}")),
        },
        Request::DlqReplay { id } => dlq::replay_running(ctx, id).await,
        Request::Invoke {
            connection,
            operation,
            input,
            idempotency_key,
            timeout_ms,
        } => {
            let invoke = ipc_proto::Invoke {
                id: "operator".into(),
                connection,
                operation,
                input: ipc_proto::Json(input),
                idempotency_key,
                timeout_ms,
                correlation_id: None,
            };
            let result = ctx
                .operations
                .invoke(&crate::operations::Caller::operator(), invoke)
                .await;
            Response {
                result: Some(result),
                ..Response::ok()
            }
        }
        Request::JobsList => match ctx.operations.jobs().await {
            Ok(jobs) => Response {
                jobs: Some(jobs.iter().map(Into::into).collect()),
                ..Response::ok()
            },
            Err(e) => Response::error(format!("journal: {e}")),
        },
        Request::JobGet { id } | Request::JobCancel { id } => {
            let operator = crate::operations::Caller::operator();
            let found = if cancel {
                ctx.operations.cancel_job(&operator, &id).await
            } else {
                ctx.operations.job(&operator, &id).await
            };
            match found {
                Ok(record) => Response {
                    jobs: Some(vec![(&record).into()]),
                    ..Response::ok()
                },
                Err(e) => Response::error(format!("{}: {}", e.class, e.message)),
            }
        }
        Request::Diff { bundle } => reconcile(ctx, &bundle, false).await,
        Request::Apply { bundle } => reconcile(ctx, &bundle, true).await,
        Request::DlqDrop { id } => match ctx.journal.drop_dead(&id).await {
            Ok(()) => Response {
                events: Some(vec![id]),
                ..Response::ok()
            },
            Err(e) => Response::error(format!("{id}: {e}")),
        },
    }
}

/// `diff` and `apply`: the plan, or why the bundle was refused.
async fn reconcile(ctx: &ControlContext, bundle: &str, apply: bool) -> Response {
    let path = Path::new(bundle);
    if !path.is_absolute() {
        return Response::error(format!(
            "the bundle path must be absolute (the orchestrator's working directory is not yours): {bundle}"
        ));
    }
    let result = if apply {
        ctx.reconciler.apply(path, "control socket").await
    } else {
        ctx.reconciler.diff(path).await
    };
    match result {
        Ok(plan) => Response {
            plan: Some(plan),
            ..Response::ok()
        },
        Err(crate::reconcile::ApplyError::Invalid(errors)) => Response {
            diagnostics: Some(errors.iter().map(ToString::to_string).collect()),
            ..Response::error(format!(
                "invalid bundle ({} errors): nothing changed",
                errors.len()
            ))
        },
        Err(e) => Response::error(format!("{e}: nothing changed")),
    }
}

fn restart(registry: &Registry, target: &str) -> Response {
    let matched = registry.matching(target);
    if matched.is_empty() {
        return Response::error(format!(
            "no process matches '{target}' (targets look like connection/<name>, agent/<name> or agent/<name>/<instanceKey>)"
        ));
    }
    let restarted = matched
        .iter()
        .filter(|p| p.request(Control::Restart))
        .map(|p| p.target())
        .collect();
    Response {
        restarted: Some(restarted),
        ..Response::ok()
    }
}

/// Each connection's row with its operations' counters.
fn with_operations(
    mut rows: Vec<crate::status::ProcessSnapshot>,
    operations: &crate::operations::Operations,
) -> Vec<crate::status::ProcessSnapshot> {
    for row in &mut rows {
        if row.kind == crate::status::ProcessKind::Connection
            && let Some(ops) = operations.connection(&row.name)
            && ops.declares_operations()
        {
            row.operations = Some(ops.stats());
            row.operations_state = Some(ops.state().to_string());
            if ops.state() == "degraded" && row.connection_state.as_deref() == Some("active") {
                row.connection_state = Some("degraded".into());
            }
            row.circuit_trips = Some(ops.circuit_trips());
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request lines the README documents.
    #[test]
    fn request_shapes_are_stable() {
        let cases = [
            (r#"{"verb":"status"}"#, Request::Status),
            (
                r#"{"verb":"restart","target":"agent/echo"}"#,
                Request::Restart {
                    target: "agent/echo".into(),
                },
            ),
            (r#"{"verb":"dlqList"}"#, Request::DlqList),
            (
                r#"{"verb":"dlqReplay","id":"0193"}"#,
                Request::DlqReplay {
                    id: Some("0193".into()),
                },
            ),
            (
                r#"{"verb":"dlqReplay","id":null}"#,
                Request::DlqReplay { id: None },
            ),
            (
                r#"{"verb":"dlqDrop","id":"0193"}"#,
                Request::DlqDrop { id: "0193".into() },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                serde_json::from_str::<Request>(line).unwrap(),
                want,
                "{line}"
            );
            assert_eq!(serde_json::to_string(&want).unwrap(), line);
        }
        assert!(serde_json::from_str::<Request>(r#"{"verb":"selfDestruct"}"#).is_err());
    }

    #[test]
    fn responses_leave_out_what_does_not_apply() {
        assert_eq!(
            serde_json::to_string(&Response::error("no")).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
    }
}
