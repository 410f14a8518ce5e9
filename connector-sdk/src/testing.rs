//! Test helpers for connector and agent authors: a fake orchestrator and a
//! harness that runs a connector function against it, on a mock clock.
//! ([`Clock`] and [`MockClock`] live in [`crate::clock`]; they are
//! re-exported here for tests written before they moved.)
//!
//! The quickest test of a connector is [`run_connector`]: structure `main`
//! as `fn main() -> ExitCode { connector_sdk::run(my_connector) }`, then
//! run `my_connector` in-process with the config, secrets and clock a test
//! picks, and read what it emitted:
//!
//! ```
//! use std::time::Duration;
//! use connector_sdk::testing::{TestConfig, run_connector};
//! use connector_sdk::{BoxError, Context, Event, MockClock};
//!
//! /// Emits one `tick` a minute, by the clock of its context.
//! async fn my_connector(ctx: Context) -> Result<(), BoxError> {
//!     let clock = ctx.clock();
//!     loop {
//!         clock.sleep(Duration::from_secs(60)).await;
//!         ctx.emit(Event { name: "tick".into(), ..Event::default() }).await?;
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mock = MockClock::at_unix(1_000_000);
//! let mut run = run_connector(my_connector, TestConfig::new().clock(&mock).config("K", "v"));
//! let limit = Duration::from_secs(5);
//! mock.advance_to_next_sleeper(limit).await.expect("the connector sleeps");
//! assert_eq!(run.next_emit(limit).await.unwrap().event.name, "tick");
//! run.shutdown().await.unwrap();
//! # }
//! ```
//!
//! [`TestRun::call`] calls one of the connector's operation handlers (see
//! [`Operations`](crate::Operations)) as the orchestrator would, and returns
//! its `callResult`.
//!
//! [`TestRun`] also holds emits for the test to answer ([`AckPolicy::Hold`],
//! [`TestRun::ack`], [`TestRun::nack`]), and has the logs and audit
//! records. A connector reads time through [`Context::clock`](crate::Context::clock):
//! the system clock in production, the test's [`MockClock`] under the
//! harness, which hands it to [`serve_with_clock`](crate::serve_with_clock).
//!
//! Lower level, [`FakeOrchestrator::pair`] gives an in-process [`Transport`]
//! for [`serve`](crate::serve) or [`Agent::serve`](crate::agent::Agent::serve);
//! [`FakeOrchestrator::spawn`] runs a real binary with the socket inherited
//! as `ORCHESTRATOR_IPC_FD`, as the orchestrator would.

mod calls;
mod config;
mod harness;
mod peer;

pub use crate::clock::{Clock, MockClock};
pub use config::{AckPolicy, Answer, TestConfig};
pub use harness::{Finished, HarnessError, TestRun, run_connector};

/// Polls `cond` every 10 ms until it holds, at most `limit` (real time):
/// for conditions outside the harness's record, such as a file a connector
/// writes. Errs with `what` when time runs out.
pub async fn wait_until(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.into(),
                limit,
                context: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ipc_proto::codec::FrameCodec;
use ipc_proto::{
    DEFAULT_MAX_FRAME_BYTES, FromAgent, FromConnector, IPC_FD_ENV, ToAgent, ToConnector,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio_util::codec::Framed;

use crate::Transport;

/// The orchestrator's end of a frames channel: receives `In`, sends `Out`.
pub struct FakeOrchestrator<In, Out> {
    io: Framed<UnixStream, FrameCodec<In, Out>>,
}

/// A fake orchestrator talking to a connector.
pub type ConnectorPeer = FakeOrchestrator<FromConnector, ToConnector>;
/// A fake orchestrator talking to an agent.
pub type AgentPeer = FakeOrchestrator<FromAgent, ToAgent>;

impl<In, Out> fmt::Debug for FakeOrchestrator<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FakeOrchestrator")
    }
}

impl<In: DeserializeOwned, Out: Serialize> FakeOrchestrator<In, Out> {
    fn new(stream: UnixStream) -> Self {
        FakeOrchestrator {
            io: Framed::new(stream, FrameCodec::new(DEFAULT_MAX_FRAME_BYTES)),
        }
    }

    /// A connected pair: the transport for the code under test, and its peer.
    pub fn pair() -> io::Result<(Transport, Self)> {
        let (child, orch) = UnixStream::pair()?;
        Ok((Transport::frames(child), Self::new(orch)))
    }

    /// Spawns `cmd` with the other end of a socket pair as its `ORCHESTRATOR_IPC_FD`.
    pub fn spawn(cmd: &mut Command) -> io::Result<(Child, Self)> {
        let (child_end, orch) = std::os::unix::net::UnixStream::pair()?;
        let fd = child_end.as_raw_fd();
        cmd.env(IPC_FD_ENV, fd.to_string());
        // SAFETY: the closure only calls fcntl, which is async-signal-safe,
        // on an fd that stays open in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(child_end);
        orch.set_nonblocking(true)?;
        Ok((child, Self::new(UnixStream::from_std(orch)?)))
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: impl Into<Out>) -> io::Result<()> {
        self.io.send(msg.into()).await
    }

    /// The next message; `None` when the other side closed the channel.
    /// A message that does not decode is an `InvalidData` error.
    pub async fn recv(&mut self) -> io::Result<Option<In>> {
        match self.io.next().await {
            None => Ok(None),
            Some(Ok(Ok(msg))) => Ok(Some(msg)),
            Some(Ok(Err(e))) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            Some(Err(e)) => Err(e),
        }
    }

    /// [`recv`](Self::recv) with a deadline: `TimedOut` when nothing came in time.
    pub async fn recv_within(&mut self, limit: Duration) -> io::Result<Option<In>> {
        tokio::time::timeout(limit, self.recv())
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no message within {limit:?}"),
                )
            })?
    }
}
