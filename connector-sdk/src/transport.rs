//! Where the bytes go: an inherited Unix socket (frames) or stdin/stdout
//! (jsonl), and how a message is encoded and written to it.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use futures::Stream;
use ipc_proto::codec::{FrameCodec, JsonlCodec};
use ipc_proto::{DEFAULT_MAX_FRAME_BYTES, DecodeError, IPC_FD_ENV};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedWriteHalf, pipe};
use tokio_util::codec::FramedRead;

use crate::Error;

/// Incoming messages; an inner `Err` is one bad message, an outer `Err` ends the stream.
pub(crate) type Reader<In> =
    Pin<Box<dyn Stream<Item = io::Result<Result<In, DecodeError>>> + Send>>;

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// The byte channel to the orchestrator, before any message is read.
///
/// [`Transport::from_env`] picks what the orchestrator set up; tests build one
/// from one end of `UnixStream::pair()` with [`Transport::frames`].
pub struct Transport(Kind);

enum Kind {
    Frames(UnixStream),
    Jsonl(BoxRead, BoxWrite),
    /// jsonl whose writing end is a pipe (as the orchestrator sets it up):
    /// written from the sender, like the frames socket.
    JsonlPipe(BoxRead, pipe::Sender),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Kind::Frames(_) => "Transport(frames)",
            Kind::Jsonl(..) | Kind::JsonlPipe(..) => "Transport(jsonl)",
        })
    }
}

/// Only one `Transport` may own the inherited fd.
static FD_TAKEN: AtomicBool = AtomicBool::new(false);

impl Transport {
    /// Frames over a Unix stream socket.
    pub fn frames(stream: UnixStream) -> Self {
        Transport(Kind::Frames(stream))
    }

    /// jsonl over any reader (orchestrator → child) and writer (child → orchestrator).
    pub fn jsonl(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Self {
        Transport(Kind::Jsonl(Box::new(reader), Box::new(writer)))
    }

    /// What the orchestrator set up for this process: the socket named by
    /// `ORCHESTRATOR_IPC_FD` (frames), else stdin/stdout (jsonl).
    ///
    /// In the jsonl case the protocol takes stdin and stdout for itself: fd 0
    /// then reads `/dev/null` and fd 1 writes to stderr, so a stray `println!`
    /// lands in the process log instead of corrupting the channel.
    /// Must be called inside a tokio runtime.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var(IPC_FD_ENV) {
            Ok(value) => {
                let fd: RawFd = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::BadFdEnv(value.clone()))?;
                if fd < 0 {
                    return Err(Error::BadFdEnv(value));
                }
                Ok(Transport::frames(take_socket(fd)?))
            }
            Err(_) => take_stdio().map_err(|source| Error::Transport {
                transport: "jsonl",
                source,
            }),
        }
    }

    /// Splits into a message reader, and the writing end with the encoder of this transport.
    pub(crate) fn into_parts<In, Out>(self) -> (Reader<In>, Sink, Encoder<Out>)
    where
        In: DeserializeOwned + Send + 'static,
        Out: Serialize + Send + 'static,
    {
        let max = DEFAULT_MAX_FRAME_BYTES;
        match self.0 {
            Kind::Frames(stream) => {
                let (r, w) = stream.into_split();
                (
                    Box::pin(FramedRead::new(r, FrameCodec::<In, ()>::new(max))),
                    Sink::Direct(Direct::Socket(w)),
                    Encoder::Frames(FrameCodec::new(max)),
                )
            }
            Kind::Jsonl(r, w) => (
                Box::pin(FramedRead::new(r, JsonlCodec::<In, ()>::new(max))),
                Sink::Stream(w),
                Encoder::Jsonl(JsonlCodec::new(max)),
            ),
            Kind::JsonlPipe(r, w) => (
                Box::pin(FramedRead::new(r, JsonlCodec::<In, ()>::new(max))),
                Sink::Direct(Direct::Pipe(w)),
                Encoder::Jsonl(JsonlCodec::new(max)),
            ),
        }
    }
}

/// Takes ownership of the inherited socket `fd`, once.
fn take_socket(fd: RawFd) -> Result<UnixStream, Error> {
    let not_socket = |source| Error::NotASocket { fd, source };
    // SAFETY: F_GETFD only reads the descriptor flags of an integer fd; an fd
    // that is not open makes it fail with EBADF, touching no memory.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(not_socket(io::Error::last_os_error()));
    }
    if FD_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(Error::FdTaken);
    }
    // SAFETY: the fd is open (checked above), it was inherited for this
    // process to use, and FD_TAKEN makes this the only owner in the process.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (owned, kind) = file_type(owned).map_err(not_socket)?;
    if !kind.is_socket() {
        return Err(not_socket(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a socket",
        )));
    }
    // Programs this child spawns must not hold the orchestrator's channel open.
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| not_socket(e.into()))?;
    let std_stream = std::os::unix::net::UnixStream::from(owned);
    std_stream.set_nonblocking(true).map_err(not_socket)?;
    UnixStream::from_std(std_stream).map_err(|source| Error::Transport {
        transport: "frames",
        source,
    })
}

/// Moves stdin/stdout to private fds for the protocol, and points fd 0 at
/// `/dev/null` and fd 1 at stderr.
fn take_stdio() -> io::Result<Transport> {
    if FD_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::other(
            "stdin/stdout were already taken by this process",
        ));
    }
    io::stdout().flush()?;
    let proto_in = private_dup(io::stdin())?;
    let proto_out = private_dup(io::stdout())?;
    let devnull = File::open("/dev/null")?;
    nix::unistd::dup2_stdin(&devnull)?;
    nix::unistd::dup2_stdout(io::stderr())?;
    // Pipes (what the orchestrator gives a jsonl child) are read and written
    // without blocking, on the runtime's own I/O driver. That sets O_NONBLOCK
    // on the pipe, which only this process holds open for that end (fd 0
    // and 1 point elsewhere now). Anything else (a file, a terminal: a
    // program tried by hand) goes through tokio's File, which does blocking
    // reads and writes on the runtime's blocking pool.
    let (proto_in, in_kind) = file_type(proto_in)?;
    let (proto_out, out_kind) = file_type(proto_out)?;
    let reader: BoxRead = if in_kind.is_fifo() {
        Box::new(pipe::Receiver::from_owned_fd(proto_in)?)
    } else {
        Box::new(tokio::fs::File::from_std(File::from(proto_in)))
    };
    if out_kind.is_fifo() {
        let writer = pipe::Sender::from_owned_fd(proto_out)?;
        return Ok(Transport(Kind::JsonlPipe(reader, writer)));
    }
    let writer = tokio::fs::File::from_std(File::from(proto_out));
    Ok(Transport(Kind::Jsonl(reader, Box::new(writer))))
}

/// What `fd` is (a socket, a pipe, a file…), and `fd` back.
fn file_type(fd: OwnedFd) -> io::Result<(OwnedFd, std::fs::FileType)> {
    let file = File::from(fd);
    let kind = file.metadata()?.file_type();
    Ok((OwnedFd::from(file), kind))
}

fn private_dup(fd: impl std::os::fd::AsFd) -> io::Result<OwnedFd> {
    let owned = nix::unistd::dup(fd)?;
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(owned)
}

/// Where the encoded bytes go.
pub(crate) enum Sink {
    /// A non-blocking socket or pipe, written from the sender.
    Direct(Direct),
    /// Anything else, written by a writer task.
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
}

/// A non-blocking channel that a sender writes itself.
pub(crate) enum Direct {
    /// The frames socket.
    Socket(OwnedWriteHalf),
    /// jsonl's stdout, when it is a pipe.
    Pipe(pipe::Sender),
}

impl Direct {
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Direct::Socket(s) => s.try_write(buf),
            Direct::Pipe(p) => p.try_write(buf),
        }
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            Direct::Socket(s) => s.writable().await,
            Direct::Pipe(p) => p.writable().await,
        }
    }
}

/// Encodes messages of one transport.
pub(crate) enum Encoder<Out> {
    Frames(FrameCodec<(), Out>),
    Jsonl(JsonlCodec<(), Out>),
}

impl<Out: Serialize> Encoder<Out> {
    pub(crate) fn encode(&mut self, msg: &Out, dst: &mut BytesMut) -> io::Result<()> {
        match self {
            Encoder::Frames(c) => c.encode_ref(msg, dst),
            Encoder::Jsonl(c) => c.encode_ref(msg, dst),
        }
    }
}
