//! Plumbing shared by connectors and agents: the handshake, the reader pump
//! that answers pings and notes shutdown, and the outbox (`outbox.rs`) every
//! other part sends through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use ipc_proto::{
    AgentInit, ConnectorInit, FromAgent, FromConnector, Log, PROTOCOL_VERSION, Ping, Pong,
    ProtocolError, Ready, Shutdown, ToAgent, ToConnector,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::Error;
pub(crate) use crate::outbox::Outbox;
use crate::transport::{Reader, Transport};

/// How long to wait for `init`.
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The grace period when the channel closes without a `shutdown`.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// The pump writes what it gathered at least after this many messages.
const MAX_CORKED: u32 = 256;

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
        let (mut reader, sink, encoder) = transport.into_parts::<S::In, S::Out>();
        let init = tokio::time::timeout(timeout, wait_for_init::<S>(&mut reader))
            .await
            .map_err(|_| Error::InitTimeout(timeout))??;
        let got = S::protocol(&init);
        if got != PROTOCOL_VERSION {
            return Err(Error::ProtocolMismatch { got });
        }
        let stop = Stop::new();
        Ok(Link {
            init,
            outbox: Outbox::new(sink, encoder, stop.clone()),
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
            // Whatever arrived together is handled corked: the answers to it
            // go out in one write, before the pump waits for more. The guard
            // uncorks however the pump ends, a panic included.
            let _uncork = Uncork(outbox.clone());
            outbox.cork();
            let mut corked = 0;
            loop {
                corked += 1;
                if corked > MAX_CORKED {
                    outbox.uncork();
                    outbox.cork();
                    corked = 1;
                }
                let item = match reader.next().now_or_never() {
                    Some(item) => item,
                    None => {
                        outbox.uncork();
                        let item = reader.next().await;
                        outbox.cork();
                        corked = 1;
                        item
                    }
                };
                let Some(item) = item else {
                    break;
                };
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

/// Writes what the pump held back when it ends.
struct Uncork<Out: Serialize + Send + 'static>(Outbox<Out>);

impl<Out: Serialize + Send + 'static> Drop for Uncork<Out> {
    fn drop(&mut self) {
        self.0.uncork();
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
