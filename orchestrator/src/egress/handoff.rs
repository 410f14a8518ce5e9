//! The proxy's listener, made inside the child's network namespace and
//! handed to the orchestrator over an inherited unix socket.
//!
//! The child side ([`hand_over`]) runs in the shim's forked child before
//! exec, right after its network namespace is made and `lo` is up: it binds
//! `127.0.0.1:0` there, sends that listening socket and its namespace
//! (`/proc/self/ns/net`, for `publishTcp`) with the port over fd
//! [`EGRESS_FD`] (`SCM_RIGHTS`), and closes them all. The orchestrator side
//! ([`Handoff`]) receives it and accepts on it: connections made inside the
//! child's namespace arrive at the orchestrator's proxy, with no relay
//! process and nothing else reachable from there.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg};

/// The fd number of the handoff socket in a child in `egress` mode.
pub const EGRESS_FD: RawFd = 4;

/// Child side: binds the proxy's address in this (new) network namespace,
/// sends the listener over `fd` and closes `fd`; returns the port.
pub fn hand_over(fd: RawFd) -> Result<u16, String> {
    // SAFETY: the shim placed the handoff socket at `fd`, and nothing else in
    // this single-threaded child owns it; it is closed when this drops.
    let channel = unsafe { OwnedFd::from_raw_fd(fd) };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?
        .port();
    let bytes = port.to_be_bytes();
    let ns = std::fs::File::open("/proc/self/ns/net")
        .map_err(|e| format!("cannot open /proc/self/ns/net: {e}"))?;
    let fds = [listener.as_raw_fd(), ns.as_raw_fd()];
    sendmsg::<UnixAddr>(
        channel.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("cannot hand the listener to the orchestrator: {e}"))?;
    Ok(port)
}

/// Orchestrator side: one child's handoff socket pair.
#[derive(Debug)]
pub struct Handoff {
    ours: UnixStream,
    theirs: OwnedFd,
}

impl Handoff {
    /// A new pair; the child's end has a number of at least 10 (close on
    /// exec), so placing it at [`EGRESS_FD`] cannot clobber another fd the
    /// child is given.
    pub fn new() -> io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1; no memory is passed.
        let high = unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
        if high < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `high` was just returned by fcntl and is owned by nobody else.
        let theirs = unsafe { OwnedFd::from_raw_fd(high) };
        Ok(Self { ours, theirs })
    }

    /// The child's end, to place at [`EGRESS_FD`] between fork and exec.
    pub fn child_fd(&self) -> RawFd {
        self.theirs.as_raw_fd()
    }

    /// Our end, once the child has its copy (ours of its end is closed).
    pub fn into_parent(self) -> UnixStream {
        drop(self.theirs);
        self.ours
    }
}

/// What a read of the handoff socket gave.
pub(super) enum Received {
    /// The listener, its port, and the child's network namespace.
    Listener(OwnedFd, u16, Option<OwnedFd>),
    /// Every copy of the child's end is closed: the child is gone.
    Closed,
    /// Bytes without a listener (ignored).
    Other,
}

/// Reads the handoff socket once, without blocking.
pub(super) fn receive(sock: &UnixStream) -> io::Result<Received> {
    let mut buf = [0u8; 2];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let n = msg.bytes;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: each fd arrived with this message and is ours alone.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(Received::Closed);
    }
    let mut fds = fds.into_iter();
    match (fds.next(), n) {
        (Some(fd), 2) => Ok(Received::Listener(fd, u16::from_be_bytes(buf), fds.next())),
        _ => Ok(Received::Other),
    }
}
