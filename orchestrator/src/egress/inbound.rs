//! `publishTcp`: inbound connections to a child in `egress` mode (a
//! connector that receives webhooks). The orchestrator listens on the
//! host's address and forwards each connection to `127.0.0.1:<port>` inside
//! the child's namespace, through sockets made there by a thread that
//! joined it (`setns` on the child's `/proc/self/ns/net`, which the child
//! sends with its proxy's listener). Needs root.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

type Request = oneshot::Sender<io::Result<OwnedFd>>;

/// Makes TCP sockets inside one child's network namespace.
#[derive(Clone, Debug)]
struct Maker(std_mpsc::Sender<Request>);

impl Maker {
    /// A thread in the namespace `ns` (it ends when every `Maker` is dropped).
    fn new(ns: OwnedFd) -> Self {
        let (tx, rx) = std_mpsc::channel::<Request>();
        std::thread::spawn(move || {
            // SAFETY: setns with a namespace fd we own; CLONE_NEWNET moves
            // this thread only.
            let joined = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            let joined = if joined == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error().to_string())
            };
            for reply in rx {
                let made = match &joined {
                    Ok(()) => socket(),
                    Err(why) => Err(io::Error::other(format!(
                        "cannot join its network namespace: {why}"
                    ))),
                };
                let _ = reply.send(made);
            }
        });
        Self(tx)
    }

    async fn connect(&self, port: u16) -> io::Result<TcpStream> {
        let (reply, made) = oneshot::channel();
        self.0
            .send(reply)
            .map_err(|_| io::Error::other("its namespace thread is gone"))?;
        let fd = made
            .await
            .map_err(|_| io::Error::other("its namespace thread is gone"))??;
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        socket
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
    }
}

/// A non-blocking TCP socket of this thread's network namespace.
fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `addr`; while the previous start's forward on it is still being
/// let go (its child just exited), tries again for up to two seconds.
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
}

/// Listens on each of `publish` and forwards to the same port inside the
/// namespace `ns`, until `stop`; a bind that fails is returned (after the
/// others are started).
pub(super) async fn serve(
    target: Arc<str>,
    publish: &[SocketAddr],
    ns: OwnedFd,
    stop: CancellationToken,
) -> Result<(), String> {
    let maker = Maker::new(ns);
    let mut failed = Vec::new();
    for addr in publish {
        let listener = match bind(*addr).await {
            Ok(l) => l,
            Err(e) => {
                failed.push(format!("publishTcp {addr}: {e}"));
                continue;
            }
        };
        let (maker, stop, target) = (maker.clone(), stop.clone(), target.clone());
        let port = addr.port();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    () = stop.cancelled() => return,
                };
                let mut outside = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of fds, say: do not spin on it.
                        tracing::warn!("{target}: publishTcp {port}: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (maker, stop, target) = (maker.clone(), stop.clone(), target.clone());
                tokio::spawn(async move {
                    let mut inside = match maker.connect(port).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!("{target}: publishTcp {port}: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut outside, &mut inside) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}
