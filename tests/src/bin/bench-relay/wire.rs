//! The channels to the children, as the orchestrator gives them (jsonl: the
//! child's stdin and stdout pipes; frames: a socketpair at fd 3), and the
//! buffers that read and write messages on them with `ipc-proto`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub type Res<T> = Result<T, String>;

#[derive(Clone, Copy, PartialEq)]
pub enum Transport {
    Jsonl,
    Frames,
}

/// The read buffer of one channel; messages are decoded where they lie.
pub struct In {
    t: Transport,
    file: File,
    /// A socket (frames) is read without blocking with `recv(MSG_DONTWAIT)`;
    /// a pipe (jsonl) is set `O_NONBLOCK` when the relay spins.
    socket: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    pub eof: bool,
}

impl In {
    fn new(t: Transport, fd: OwnedFd, socket: bool) -> Self {
        Self {
            t,
            file: File::from(fd),
            socket,
            buf: vec![0; 256 << 10],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Makes a pipe's reads return at once when it is empty (sockets are
    /// read with `MSG_DONTWAIT` instead, so their writes still block).
    pub fn set_nonblocking(&mut self) -> Res<()> {
        if self.socket {
            return Ok(());
        }
        let fd = self.fd();
        // SAFETY: fcntl on a descriptor this struct owns.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
        };
        if ok {
            Ok(())
        } else {
            Err(format!("O_NONBLOCK: {}", std::io::Error::last_os_error()))
        }
    }

    /// The length of the first complete message in the buffer (with its
    /// newline or length prefix), if there is one.
    fn complete(&self) -> Option<usize> {
        let data = &self.buf[self.start..self.end];
        match self.t {
            Transport::Jsonl => data.iter().position(|&b| b == b'\n').map(|i| i + 1),
            Transport::Frames => {
                let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
                (data.len() >= 4 + len).then_some(4 + len)
            }
        }
    }

    pub fn has_message(&self) -> bool {
        self.complete().is_some()
    }

    /// Decodes the next message already in the buffer, if a whole one is.
    pub fn next<T: DeserializeOwned>(&mut self) -> Res<Option<T>> {
        let Some(n) = self.complete() else {
            return Ok(None);
        };
        let msg = &self.buf[self.start..self.start + n];
        self.start += n;
        let decoded = match self.t {
            Transport::Jsonl => std::str::from_utf8(msg)
                .map_err(|e| format!("a line that is not utf-8: {e}"))
                .and_then(|s| ipc_proto::json::decode(s).map_err(|e| format!("bad line: {e}"))),
            Transport::Frames => {
                ipc_proto::frame::decode_body(&msg[4..]).map_err(|e| format!("bad frame: {e}"))
            }
        };
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        decoded.map(Some)
    }

    /// One `read(2)` into the buffer (or `recv(MSG_DONTWAIT)` when `spin` on a
    /// socket). Ok(false) when nothing came (EAGAIN) or at EOF.
    pub fn fill(&mut self, spin: bool) -> Res<bool> {
        if self.start > 0 && self.buf.len() - self.end < (64 << 10) {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let free = &mut self.buf[self.end..];
        let n = if spin && self.socket {
            // SAFETY: recv into the free part of our own buffer.
            let n = unsafe {
                libc::recv(
                    self.file.as_raw_fd(),
                    free.as_mut_ptr().cast(),
                    free.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        } else {
            self.file.read(free)
        };
        match n {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// The next message, reading (blocking) as needed; None at EOF.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Res<Option<T>> {
        loop {
            if let Some(msg) = self.next()? {
                return Ok(Some(msg));
            }
            if self.eof {
                return Ok(None);
            }
            self.fill(false)?;
        }
    }
}

/// The write buffer of one channel: messages are encoded into it, and
/// `flush` writes them all with one `write(2)` (blocking).
pub struct Out {
    t: Transport,
    file: File,
    buf: Vec<u8>,
}

impl Out {
    fn new(t: Transport, fd: OwnedFd) -> Self {
        Self {
            t,
            file: File::from(fd),
            buf: Vec::with_capacity(256 << 10),
        }
    }

    pub fn send<T: Serialize>(&mut self, msg: &T) -> Res<()> {
        match self.t {
            Transport::Jsonl => {
                ipc_proto::json::encode_into(msg, &mut self.buf)
                    .map_err(|e| format!("encode: {e}"))?;
                self.buf.push(b'\n');
            }
            Transport::Frames => {
                let at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                let n = ipc_proto::frame::encode_body_into(msg, &mut self.buf)
                    .map_err(|e| format!("encode: {e}"))?;
                self.buf[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
            }
        }
        Ok(())
    }

    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn flush(&mut self) -> Res<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        r.map_err(|e| format!("write: {e}"))
    }
}

/// Starts `program` with its channel as the orchestrator gives it.
pub fn spawn(t: Transport, program: &Path, env: &[(&str, String)]) -> Res<(Child, In, Out)> {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for var in ["PATH", "HOME", "LANG"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v)))
        .stderr(Stdio::inherit());
    match t {
        Transport::Jsonl => {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("spawn {}: {e}", program.display()))?;
            let (Some(w), Some(r)) = (child.stdin.take(), child.stdout.take()) else {
                return Err("no pipes".into());
            };
            let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
            Ok((child, In::new(t, r, false), Out::new(t, w)))
        }
        Transport::Frames => {
            let (mine, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            let fd = theirs.as_raw_fd();
            cmd.env("ORCHESTRATOR_IPC_FD", "3")
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if fd == 3 {
                        if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .map_err(|e| format!("spawn {}: {e}", program.display()))?;
            drop(OwnedFd::from(theirs));
            let w = mine.try_clone().map_err(|e| format!("dup: {e}"))?;
            Ok((
                child,
                In::new(t, OwnedFd::from(mine), true),
                Out::new(t, OwnedFd::from(w)),
            ))
        }
    }
}
