//! A fake orchestrator for tests of connectors and agents.
//!
//! [`FakeOrchestrator::pair`] gives an in-process [`Transport`] for
//! [`serve`](crate::serve) or [`Agent::serve`](crate::agent::Agent::serve);
//! [`FakeOrchestrator::spawn`] runs a real binary with the socket inherited
//! as `ORCHESTRATOR_IPC_FD`, as the orchestrator would.

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
