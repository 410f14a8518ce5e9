//! Plumbing shared by connectors and agents: the handshake, the one writer
//! task, the reader pump that answers pings and notes shutdown, and the
//! outbox every other part sends through.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ipc_proto::{
    AgentInit, ConnectorInit, FromAgent, FromConnector, Log, PROTOCOL_VERSION, Ping, Pong,
    ProtocolError, Ready, Shutdown, ToAgent, ToConnector,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::transport::{Reader, Transport, Writer};

/// How long to wait for `init`.
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The grace period when the channel closes without a `shutdown`.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// At most this many messages are fed before one flush.
const MAX_BATCH: usize = 256;

/// Messages that mean the same thing on both sides.
pub(crate) enum Control<I> {
    Init(I),
    Ping(Ping),
    Shutdown(Shutdown),
    Error(ProtocolError),
}

/// One side of the protocol: what it receives and sends.
pub(crate) trait Side: 'static {
    type In: DeserializeOwned + Send + 'static;
    type Out: Serialize + From<Ready> + From<Pong> + From<Log> + Send + 'static;
    type Init: Send + 'static;

    /// Takes out the messages the pump handles the same way on both sides.
    fn control(msg: Self::In) -> Result<Control<Self::Init>, Self::In>;
    /// The protocol version an init carries.
    fn protocol(init: &Self::Init) -> u32;
}

pub(crate) struct ConnectorSide;
pub(crate) struct AgentSide;

impl Side for ConnectorSide {
    type In = ToConnector;
    type Out = FromConnector;
    type Init = ConnectorInit;

    fn control(msg: ToConnector) -> Result<Control<ConnectorInit>, ToConnector> {
        match msg {
            ToConnector::Init(i) => Ok(Control::Init(i)),
            ToConnector::Ping(p) => Ok(Control::Ping(p)),
            ToConnector::Shutdown(s) => Ok(Control::Shutdown(s)),
            ToConnector::Error(e) => Ok(Control::Error(e)),
            other => Err(other),
        }
    }

    fn protocol(init: &ConnectorInit) -> u32 {
        init.protocol
    }
}

impl Side for AgentSide {
    type In = ToAgent;
    type Out = FromAgent;
    type Init = AgentInit;

    fn control(msg: ToAgent) -> Result<Control<AgentInit>, ToAgent> {
        match msg {
            ToAgent::Init(i) => Ok(Control::Init(i)),
            ToAgent::Ping(p) => Ok(Control::Ping(p)),
            ToAgent::Shutdown(s) => Ok(Control::Shutdown(s)),
            ToAgent::Error(e) => Ok(Control::Error(e)),
            other => Err(other),
        }
    }

    fn protocol(init: &AgentInit) -> u32 {
        init.protocol
    }
}

/// Called by the writer when one message could not be encoded (it was not sent).
pub(crate) type OnUnsendable = Box<dyn FnOnce(io::Error) + Send>;

enum Outgoing<Out> {
    Msg(Out, Option<OnUnsendable>),
    Flush(oneshot::Sender<()>),
}

/// The sending half: a queue drained by the one writer task.
pub(crate) struct Outbox<Out> {
    tx: mpsc::UnboundedSender<Outgoing<Out>>,
}

impl<Out> Clone for Outbox<Out> {
    fn clone(&self) -> Self {
        Outbox {
            tx: self.tx.clone(),
        }
    }
}

impl<Out> fmt::Debug for Outbox<Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Outbox")
    }
}

impl<Out: Send + 'static> Outbox<Out> {
    /// Queues `msg`; false when the writer is gone.
    pub(crate) fn send(&self, msg: impl Into<Out>) -> bool {
        self.tx.send(Outgoing::Msg(msg.into(), None)).is_ok()
    }

    /// Queues `msg`, with a callback for when it cannot be encoded.
    pub(crate) fn send_or(&self, msg: Out, on_unsendable: OnUnsendable) -> bool {
        self.tx
            .send(Outgoing::Msg(msg, Some(on_unsendable)))
            .is_ok()
    }

    /// Waits until everything queued so far is written, at most `limit`.
    pub(crate) async fn flush(&self, limit: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Outgoing::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }
}

/// Shutdown state: cancelled on `shutdown` or when the channel closes.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    pub(crate) token: CancellationToken,
    /// Cancelled only when the channel is gone.
    pub(crate) closed: CancellationToken,
    grace_ms: Arc<AtomicU64>,
}

impl Stop {
    fn new() -> Self {
        Stop {
            token: CancellationToken::new(),
            closed: CancellationToken::new(),
            grace_ms: Arc::new(AtomicU64::new(DEFAULT_GRACE.as_millis() as u64)),
        }
    }

    /// The grace period the orchestrator granted (or the default).
    pub(crate) fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::SeqCst))
    }
}

/// A channel after a successful handshake.
pub(crate) struct Link<S: Side> {
    pub(crate) init: S::Init,
    pub(crate) outbox: Outbox<S::Out>,
    pub(crate) stop: Stop,
    reader: Reader<S::In>,
}

impl<S: Side> Link<S> {
    /// Waits for `init` (at most `timeout`), checks its version and starts the writer.
    ///
    /// Nothing is sent on a version mismatch: the orchestrator sees the exit code.
    pub(crate) async fn open(transport: Transport, timeout: Duration) -> Result<Self, Error> {
        let (mut reader, writer) = transport.into_parts::<S::In, S::Out>();
        let init = tokio::time::timeout(timeout, wait_for_init::<S>(&mut reader))
            .await
            .map_err(|_| Error::InitTimeout(timeout))??;
        let got = S::protocol(&init);
        if got != PROTOCOL_VERSION {
            return Err(Error::ProtocolMismatch { got });
        }
        let stop = Stop::new();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(writer, rx, stop.clone()));
        Ok(Link {
            init,
            outbox: Outbox { tx },
            stop,
            reader,
        })
    }

    /// Starts the reader pump: pings are answered, `shutdown` cancels the
    /// stop token, everything else goes to `on_msg`. When the channel ends,
    /// both tokens are cancelled.
    pub(crate) fn pump(self, mut on_msg: impl FnMut(S::In) + Send + 'static) {
        let Link {
            outbox,
            stop,
            mut reader,
            ..
        } = self;
        tokio::spawn(async move {
            while let Some(item) = reader.next().await {
                let msg = match item {
                    Ok(Ok(msg)) => msg,
                    Ok(Err(e)) => {
                        eprintln!("connector-sdk: ignored a message from the orchestrator: {e}");
                        continue;
                    }
                    Err(e) => {
                        eprintln!("connector-sdk: reading from the orchestrator failed: {e}");
                        break;
                    }
                };
                match S::control(msg) {
                    Ok(Control::Ping(p)) => {
                        outbox.send(Pong { nonce: p.nonce });
                    }
                    Ok(Control::Shutdown(s)) => {
                        stop.grace_ms.store(s.grace_ms, Ordering::SeqCst);
                        stop.token.cancel();
                    }
                    Ok(Control::Error(e)) => {
                        eprintln!("connector-sdk: the orchestrator reported: {}", e.message)
                    }
                    Ok(Control::Init(_)) => eprintln!("connector-sdk: ignored a second init"),
                    Err(other) => on_msg(other),
                }
            }
            stop.closed.cancel();
            stop.token.cancel();
        });
    }
}

async fn wait_for_init<S: Side>(reader: &mut Reader<S::In>) -> Result<S::Init, Error> {
    loop {
        match reader.next().await {
            None | Some(Err(_)) => return Err(Error::ClosedBeforeInit),
            Some(Ok(Err(e))) => eprintln!("connector-sdk: ignored a message before init: {e}"),
            Some(Ok(Ok(msg))) => match S::control(msg) {
                Ok(Control::Init(init)) => return Ok(init),
                Ok(Control::Error(e)) => {
                    eprintln!("connector-sdk: the orchestrator reported: {}", e.message)
                }
                _ => eprintln!("connector-sdk: ignored a message before init"),
            },
        }
    }
}

/// The one task that writes: feeds every message already queued, then flushes once.
async fn write_loop<Out>(
    mut sink: Writer<Out>,
    mut rx: mpsc::UnboundedReceiver<Outgoing<Out>>,
    stop: Stop,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushed = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for item in batch.drain(..) {
            match item {
                Outgoing::Msg(msg, on_unsendable) => match sink.feed(msg).await {
                    Ok(()) => {}
                    // The codecs check size and encode before writing a byte,
                    // so an encode error concerns this message only.
                    Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                        eprintln!("connector-sdk: a message was not sent: {e}");
                        if let Some(f) = on_unsendable {
                            f(e);
                        }
                    }
                    Err(e) => return fail(e, &stop),
                },
                Outgoing::Flush(done) => flushed.push(done),
            }
        }
        if let Err(e) = sink.flush().await {
            return fail(e, &stop);
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

fn fail(e: io::Error, stop: &Stop) {
    eprintln!("connector-sdk: writing to the orchestrator failed: {e}");
    stop.closed.cancel();
    stop.token.cancel();
}
