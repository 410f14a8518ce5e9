//! Dead letters over the control socket, and on the journal directly when
//! no orchestrator is running.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ControlContext, Response};
use crate::bundle::Overflow;
use crate::journal::{DeadLetter, Journal, JournalOptions, JournaledEvent};
use crate::logs::timestamp;
use crate::router::Pending;

/// One row of `orchestrator dlq list --json` (documented in the README; stable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqEntry {
    /// The event id.
    pub id: String,
    /// The Connection it came through.
    pub connection: String,
    /// The event name.
    pub name: String,
    /// The agent it was routed to.
    pub agent: String,
    /// The instance key.
    pub instance_key: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it was accepted.
    pub received_at: String,
    /// When it was given up on.
    pub dead_at: String,
    /// Its text, if it is a text message.
    pub text: Option<String>,
}

impl From<&DeadLetter> for DlqEntry {
    fn from(d: &DeadLetter) -> Self {
        Self {
            id: d.event.id.clone(),
            connection: d.event.connection.clone(),
            name: d.event.name.clone(),
            agent: d.route.agent.clone(),
            instance_key: d.event.instance_key.clone(),
            attempts: d.attempts,
            error: d.error.clone(),
            received_at: d.event.received_at.clone(),
            dead_at: timestamp(d.dead_at),
            text: d
                .event
                .message
                .as_ref()
                .and_then(|m| m.as_text())
                .map(str::to_string),
        }
    }
}

/// Replays in a running orchestrator: back to pending in the journal, then
/// to the agent instance, first attempt again.
pub async fn replay_running(ctx: &ControlContext, id: Option<String>) -> Response {
    let events: Vec<JournaledEvent> = match id {
        Some(id) => match ctx.journal.replay(&id).await {
            Ok(e) => vec![e],
            Err(e) => return Response::error(format!("{id}: {e}")),
        },
        None => match ctx.journal.replay_all().await {
            Ok(all) => all,
            Err(e) => return Response::error(format!("journal: {e}")),
        },
    };
    let mut ids = Vec::new();
    for je in events {
        let id = je.event.id.clone();
        match ctx
            .router
            .reserve(
                &je.route.swarm,
                &je.route.agent,
                &je.event.instance_key,
                Overflow::Wait,
            )
            .await
        {
            Ok(slot) => slot.send(Pending {
                event: Box::new(je.event),
                attempt: 1,
                held: false,
                receipt: None,
            }),
            // It stays pending in the journal: the next start delivers it.
            Err(e) => {
                return Response::error(format!(
                    "{id}: replayed in the journal but not delivered now: {e}"
                ));
            }
        }
        ids.push(id);
    }
    Response {
        events: Some(ids),
        ..Response::ok()
    }
}

/// The dlq verbs in cluster mode: on the cluster's dead-letter stream,
/// whichever node is asked.
pub async fn cluster(ctx: &ControlContext, req: super::Request) -> Response {
    let Some(cluster) = &ctx.cluster else {
        return Response::error("not in cluster mode".to_string());
    };
    let result = match req {
        super::Request::DlqList => {
            return match cluster.dead_letters().await {
                Ok(letters) => Response {
                    dead_letters: Some(letters.iter().map(|(_, d)| DlqEntry::from(d)).collect()),
                    ..Response::ok()
                },
                Err(e) => Response::error(e),
            };
        }
        super::Request::DlqReplay { id } => cluster.replay(id.as_deref()).await,
        super::Request::DlqDrop { id } => cluster.drop_dead(&id).await.map(|()| vec![id]),
        _ => return Response::error("not a dlq verb".to_string()),
    };
    match result {
        Ok(ids) => Response {
            events: Some(ids),
            ..Response::ok()
        },
        Err(e) => Response::error(e),
    }
}

/// The dlq verbs on the journal file itself (the orchestrator is not running):
/// a replayed event becomes pending and is delivered at the next start.
pub async fn offline(journal_path: &Path, req: super::Request) -> Response {
    if !journal_path.exists() {
        return Response::error(format!("no journal at {}", journal_path.display()));
    }
    let journal = match Journal::open(journal_path, JournalOptions::default()) {
        Ok(j) => j,
        Err(e) => return Response::error(format!("cannot open {}: {e}", journal_path.display())),
    };
    let response = match req {
        super::Request::DlqList => match journal.dead_letters() {
            Ok(letters) => Response {
                dead_letters: Some(letters.iter().map(DlqEntry::from).collect()),
                ..Response::ok()
            },
            Err(e) => Response::error(format!("journal: {e}")),
        },
        super::Request::DlqReplay { id: Some(id) } => match journal.replay(&id).await {
            Ok(_) => Response {
                events: Some(vec![id]),
                ..Response::ok()
            },
            Err(e) => Response::error(format!("{id}: {e}")),
        },
        super::Request::DlqReplay { id: None } => match journal.replay_all().await {
            Ok(all) => Response {
                events: Some(all.into_iter().map(|e| e.event.id).collect()),
                ..Response::ok()
            },
            Err(e) => Response::error(format!("journal: {e}")),
        },
        super::Request::DlqDrop { id } => match journal.drop_dead(&id).await {
            Ok(()) => Response {
                events: Some(vec![id]),
                ..Response::ok()
            },
            Err(e) => Response::error(format!("{id}: {e}")),
        },
        other => Response::error(format!("{other:?} needs a running orchestrator")),
    };
    journal.close();
    response
}
