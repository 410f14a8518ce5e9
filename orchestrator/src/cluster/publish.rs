//! Publishing accepted events to JetStream, pipelined and in order.
//!
//! One task per node sends every publish in the order `publish` was
//! called (so events of one connection keep their order in the stream)
//! without waiting for the previous one's ack; acks resolve each caller's
//! [`Commit`] in that order. A publish NATS could not store (a stream
//! without a leader for a moment) is sent again, with the same message id,
//! before anything newer, for up to [`RETRY_FOR`]; only then is it refused.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::jetstream::{self, message::PublishMessage};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::publish::PublishAck;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot};

use crate::journal::{Accepted, JournalError};

/// Publishes queued for the task, at most (beyond, `publish` fails fast).
const QUEUE: usize = 65_536;

struct Job {
    subject: String,
    msg_id: Option<String>,
    payload: bytes::Bytes,
    done: oneshot::Sender<Result<Accepted, JournalError>>,
    /// When it was first queued.
    since: Instant,
    /// Sent again after a failure: it may be stored after events emitted
    /// later, so it is delivered marked as a redelivery (see [`RESENT`]).
    resent: bool,
}

/// The header of an event published again after a failure: later events
/// may have been stored before it, so its delivery carries `attempt` ≥ 2,
/// the mark of an event that may come out of order.
pub const RESENT: &str = "Goondan-Resent";

/// The handle of the publishing task.
#[derive(Clone, Debug)]
pub struct Publisher {
    tx: mpsc::Sender<Job>,
}

/// Resolves when JetStream has stored the event (or found it a duplicate).
#[derive(Debug)]
pub struct Commit(CommitState);

#[derive(Debug)]
enum CommitState {
    Ready(Option<Result<Accepted, JournalError>>),
    Waiting(oneshot::Receiver<Result<Accepted, JournalError>>),
}

impl Future for Commit {
    type Output = Result<Accepted, JournalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            CommitState::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| Err(gone()))),
            CommitState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(gone()))),
        }
    }
}

fn gone() -> JournalError {
    JournalError::Cluster("the publishing task has stopped".into())
}

impl Publisher {
    /// Starts the task on `js`.
    pub fn start(js: jetstream::Context) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(js, rx));
        Self { tx }
    }

    /// Queues `record` for `subject` (with `msg_id` as `Nats-Msg-Id`).
    pub fn publish(
        &self,
        subject: String,
        msg_id: Option<String>,
        record: &impl serde::Serialize,
    ) -> Commit {
        let payload = match serde_json::to_vec(record) {
            Ok(v) => bytes::Bytes::from(v),
            Err(e) => {
                let e = JournalError::Cluster(format!("cannot encode the event: {e}"));
                return Commit(CommitState::Ready(Some(Err(e))));
            }
        };
        let (done, rx) = oneshot::channel();
        let job = Job {
            subject,
            msg_id,
            payload,
            done,
            since: Instant::now(),
            resent: false,
        };
        match self.tx.try_send(job) {
            Ok(()) => Commit(CommitState::Waiting(rx)),
            Err(mpsc::error::TrySendError::Full(_)) => Commit(CommitState::Ready(Some(Err(
                JournalError::Cluster(format!("{QUEUE} publishes are waiting for NATS")),
            )))),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Commit(CommitState::Ready(Some(Err(gone()))))
            }
        }
    }
}

/// How long a publish is tried again (in order, before anything newer)
/// while NATS cannot store it: electing a stream's new leader after a
/// server died takes seconds.
const RETRY_FOR: Duration = Duration::from_secs(15);

type Acked = Pin<Box<dyn Future<Output = (Job, Result<PublishAck, String>)> + Send>>;

async fn run(js: jetstream::Context, mut rx: mpsc::Receiver<Job>) {
    // Acks are taken in the order the publishes went out.
    let mut acks: FuturesOrdered<Acked> = FuturesOrdered::new();
    let mut retry: VecDeque<Job> = VecDeque::new();
    let mut delay = Duration::from_millis(100);
    loop {
        if acks.is_empty() && !retry.is_empty() {
            // Everything sent before has answered: the failed ones go again,
            // in their order, before anything new (the same message id, so
            // one that was stored after all is a duplicate, not a second copy).
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
            for mut job in retry.drain(..) {
                job.resent = true;
                send(&js, job, &mut acks).await;
            }
            continue;
        }
        tokio::select! {
            job = rx.recv(), if retry.is_empty() => {
                let Some(job) = job else { break };
                send(&js, job, &mut acks).await;
            }
            Some((job, result)) = acks.next(), if !acks.is_empty() => match result {
                Ok(ack) => {
                    delay = Duration::from_millis(100);
                    let accepted = if ack.duplicate {
                        Accepted::Duplicate {
                            original_id: format!("stream sequence {}", ack.sequence),
                        }
                    } else {
                        Accepted::New
                    };
                    let _ = job.done.send(Ok(accepted));
                }
                Err(e) if job.since.elapsed() < RETRY_FOR => {
                    tracing::debug!("cluster: publish to {} failed ({e}); trying again", job.subject);
                    retry.push_back(job);
                }
                Err(e) => {
                    let e = JournalError::Cluster(format!("NATS did not store the event: {e}"));
                    let _ = job.done.send(Err(e));
                }
            },
        }
    }
    while acks.next().await.is_some() {}
}

/// Sends `job` now; its ack (or the error) joins `acks` in order.
async fn send(js: &jetstream::Context, job: Job, acks: &mut FuturesOrdered<Acked>) {
    let mut publish = PublishMessage::build().payload(job.payload.clone());
    if let Some(id) = &job.msg_id {
        publish = publish.message_id(id);
    }
    if job.resent {
        publish = publish.header(RESENT, "1");
    }
    match js.send_publish(job.subject.clone(), publish).await {
        Ok(ack) => acks.push_back(Box::pin(async move {
            let result = ack.await.map_err(|e| e.to_string());
            (job, result)
        })),
        Err(e) => acks.push_back(Box::pin(std::future::ready((job, Err(e.to_string()))))),
    }
}
