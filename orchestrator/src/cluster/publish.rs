//! Publishing accepted events to JetStream, pipelined and in order.
//!
//! One task per node sends every publish in the order `publish` was
//! called (so events of one connection keep their order in the stream)
//! without waiting for the previous one's ack; acks resolve each caller's
//! [`Commit`] as they come.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::jetstream::{self, message::PublishMessage};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use crate::journal::{Accepted, JournalError};

/// Publishes queued for the task, at most (beyond, `publish` fails fast).
const QUEUE: usize = 65_536;

struct Job {
    subject: String,
    msg_id: Option<String>,
    payload: bytes::Bytes,
    done: oneshot::Sender<Result<Accepted, JournalError>>,
}

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

type Acked = Pin<Box<dyn Future<Output = ()> + Send>>;

async fn run(js: jetstream::Context, mut rx: mpsc::Receiver<Job>) {
    let mut acks: FuturesUnordered<Acked> = FuturesUnordered::new();
    loop {
        tokio::select! {
            job = rx.recv() => {
                let Some(job) = job else { break };
                let mut publish = PublishMessage::build().payload(job.payload);
                if let Some(id) = &job.msg_id {
                    publish = publish.message_id(id);
                }
                // Sent now, in order; only the ack is awaited concurrently.
                match js.send_publish(job.subject, publish).await {
                    Ok(ack) => acks.push(Box::pin(async move {
                        let result = match ack.await {
                            Ok(ack) if ack.duplicate => Ok(Accepted::Duplicate {
                                original_id: format!("stream sequence {}", ack.sequence),
                            }),
                            Ok(_) => Ok(Accepted::New),
                            Err(e) => Err(JournalError::Cluster(format!("NATS did not store the event: {e}"))),
                        };
                        let _ = job.done.send(result);
                    })),
                    Err(e) => {
                        let e = JournalError::Cluster(format!("cannot publish to NATS: {e}"));
                        let _ = job.done.send(Err(e));
                    }
                }
            }
            Some(()) = acks.next(), if !acks.is_empty() => {}
        }
    }
    while acks.next().await.is_some() {}
}
