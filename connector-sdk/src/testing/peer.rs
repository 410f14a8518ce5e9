//! The fake orchestrator's side of a harness run: init, record, answer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ipc_proto::{
    Audit, CallResult, ConnectorInit, Emit, EmitAck, EmitNack, FromConnector, Log, NackError,
    Shutdown, ToConnector,
};
use tokio::sync::{mpsc, watch};

use super::ConnectorPeer;
use super::config::{AckPolicy, Answer};
use super::harness::Finished;

/// Everything the fake orchestrator saw, in arrival order.
#[derive(Debug, Default)]
pub(super) struct Record {
    pub(super) ready: bool,
    pub(super) emits: Vec<Emit>,
    pub(super) answers: BTreeMap<u64, Answer>,
    pub(super) held: BTreeSet<u64>,
    pub(super) logs: Vec<Log>,
    pub(super) audits: Vec<Audit>,
    /// `status` messages, in order.
    pub(super) statuses: Vec<ipc_proto::ConnectorStatus>,
    /// Answers to the calls the test sent, by call id.
    pub(super) call_results: HashMap<String, CallResult>,
    /// Dedupe keys acked so far: a repeat is acked as a duplicate.
    acked_keys: HashSet<String>,
    /// The connector closed its end of the channel.
    pub(super) closed: bool,
    pub(super) finished: Option<Finished>,
}

/// What the test (and the connector task, when it ends) tells the fake orchestrator.
pub(super) enum Cmd {
    Answer(u64, Answer),
    Policy(AckPolicy),
    Shutdown(Duration),
    /// Send this (a `call`, a `cancel`) as it is.
    Send(ToConnector),
    /// The connector function ended: read what it flushed, record the end, close.
    Ended(Finished),
}

/// How long the fake waits for one more message after the connector ended.
/// The SDK flushes before `serve` returns, so what is left is already in the
/// socket buffer and arrives at once.
const DRAIN: Duration = Duration::from_millis(50);

/// The fake orchestrator's task: init, then record and answer until the channel closes.
pub(super) async fn fake_orchestrator(
    mut peer: ConnectorPeer,
    init: ConnectorInit,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    rec: Arc<watch::Sender<Record>>,
    mut policy: AckPolicy,
) {
    if peer.send(init).await.is_err() {
        rec.send_modify(|r| r.closed = true);
        return;
    }
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Answer(seq, answer)) => {
                    if answer != Answer::Hold && !send_answer(&mut peer, &rec, seq, answer).await {
                        break;
                    }
                }
                Some(Cmd::Policy(p)) => policy = p,
                Some(Cmd::Shutdown(grace)) => {
                    let grace_ms = grace.as_millis().try_into().unwrap_or(u64::MAX);
                    if peer.send(Shutdown { grace_ms }).await.is_err() {
                        break;
                    }
                }
                Some(Cmd::Send(msg)) => {
                    if peer.send(msg).await.is_err() {
                        break;
                    }
                }
                Some(Cmd::Ended(finished)) => {
                    while let Ok(Ok(Some(msg))) = tokio::time::timeout(DRAIN, peer.recv()).await {
                        if !on_message(&mut peer, &rec, &policy, msg).await {
                            break;
                        }
                    }
                    rec.send_modify(|r| r.finished = Some(finished));
                    break;
                }
                None => break,
            },
            msg = peer.recv() => match msg {
                Ok(Some(msg)) => {
                    if !on_message(&mut peer, &rec, &policy, msg).await {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    eprintln!("fake orchestrator: a message did not decode: {e}");
                }
                Ok(None) | Err(_) => break,
            },
        }
    }
    rec.send_modify(|r| r.closed = true);
}

/// Records one message and answers it if it is an emit; false when the channel is gone.
async fn on_message(
    peer: &mut ConnectorPeer,
    rec: &watch::Sender<Record>,
    policy: &AckPolicy,
    msg: FromConnector,
) -> bool {
    match msg {
        FromConnector::Emit(emit) => {
            let seq = emit.seq;
            let answer = policy.answer(&emit);
            rec.send_modify(|r| {
                r.ready = true;
                r.emits.push(emit);
                r.held.insert(seq);
                r.answers.insert(seq, Answer::Hold);
            });
            if answer != Answer::Hold {
                return send_answer(peer, rec, seq, answer).await;
            }
        }
        FromConnector::Ready(_) => rec.send_modify(|r| r.ready = true),
        FromConnector::Log(log) => rec.send_modify(|r| r.logs.push(log)),
        FromConnector::Audit(a) => rec.send_modify(|r| r.audits.push(a)),
        FromConnector::Status(s) => rec.send_modify(|r| r.statuses.push(s)),
        FromConnector::CallResult(c) => rec.send_modify(|r| {
            r.call_results.insert(c.id.clone(), c);
        }),
        FromConnector::Pong(_) => {}
    }
    true
}

/// Sends the answer for `seq` (once); false when the channel is gone.
async fn send_answer(
    peer: &mut ConnectorPeer,
    rec: &watch::Sender<Record>,
    seq: u64,
    answer: Answer,
) -> bool {
    let mut msg: Option<ToConnector> = None;
    rec.send_modify(|r| {
        if !r.held.remove(&seq) {
            return;
        }
        let key = r
            .emits
            .iter()
            .find(|e| e.seq == seq)
            .and_then(|e| e.dedupe_key.clone());
        let answer = match answer {
            Answer::Ack if key.as_ref().is_some_and(|k| r.acked_keys.contains(k)) => {
                Answer::Duplicate
            }
            other => other,
        };
        if matches!(answer, Answer::Ack | Answer::Duplicate)
            && let Some(k) = key
        {
            r.acked_keys.insert(k);
        }
        msg = Some(match &answer {
            Answer::Nack(kind, message) => EmitNack {
                seq,
                error: NackError {
                    kind: *kind,
                    message: message.clone(),
                },
            }
            .into(),
            Answer::Duplicate => EmitAck {
                seq,
                duplicate: Some(true),
            }
            .into(),
            _ => EmitAck {
                seq,
                duplicate: None,
            }
            .into(),
        });
        r.answers.insert(seq, answer);
    });
    match msg {
        Some(m) => peer.send(m).await.is_ok(),
        None => true,
    }
}
