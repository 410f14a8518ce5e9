//! The raw baseline: framed writes between two processes over a socketpair,
//! with nothing else (a reference for what the machine's IPC can carry).

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode, Stdio};

use connector_sdk::ipc_proto::{self, Emit, Event, FromConnector, Message};
use e2e::bin;

use crate::{PAYLOAD, now_ns};

/// The bytes on the wire of one measured `emit` (4-byte length + bincode body).
pub fn emit_frame_bytes() -> usize {
    let event = Event {
        name: "item".into(),
        message: Some(Message::text("x".repeat(PAYLOAD))),
        properties: [("t".to_string(), now_ns().to_string())].into(),
        instance_key: Some("k12".into()),
        payload: None,
    };
    let emit = FromConnector::Emit(Emit {
        seq: 123_456,
        event,
        dedupe_key: None,
    });
    4 + ipc_proto::frame::encode_body(&emit)
        .expect("encode an emit")
        .len()
}

/// The reader half: reads frames from stdin (a Unix socket) until EOF; prints
/// `<frames> <end ns>`.
pub fn raw_reader() -> ExitCode {
    let stdin = std::io::stdin();
    let mut r = BufReader::with_capacity(256 << 10, stdin.lock());
    let mut len = [0u8; 4];
    let mut body = vec![0u8; 1 << 16];
    let mut frames = 0u64;
    while r.read_exact(&mut len).is_ok() {
        let n = u32::from_be_bytes(len) as usize;
        if body.len() < n {
            body.resize(n, 0);
        }
        if r.read_exact(&mut body[..n]).is_err() {
            break;
        }
        frames += 1;
    }
    println!("{frames} {}", now_ns());
    ExitCode::SUCCESS
}

/// Frames/s from this process to a reader process over a socketpair:
/// written through a 256 KiB buffer, or with one `write(2)` per frame.
pub fn raw_baseline(frame_bytes: usize, frames: u64, buffered: bool) -> f64 {
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    // Not current_exe(): the build at start may just have replaced this binary.
    let child = Command::new(bin("bench-throughput"))
        .arg("--raw-reader")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the raw reader");
    let body_len = frame_bytes - 4;
    let mut frame = Vec::with_capacity(frame_bytes);
    frame.extend_from_slice(&(body_len as u32).to_be_bytes());
    frame.extend((0..body_len).map(|i| i as u8));
    let start = now_ns();
    if buffered {
        let mut w = BufWriter::with_capacity(256 << 10, &mine);
        for _ in 0..frames {
            w.write_all(&frame).expect("write a frame");
        }
        w.flush().expect("flush");
    } else {
        let mut w = &mine;
        for _ in 0..frames {
            w.write_all(&frame).expect("write a frame");
        }
    }
    drop(mine);
    let out = child.wait_with_output().expect("raw reader");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let got: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let end: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert_eq!(got, frames, "the reader got every frame");
    frames as f64 / ((end - start) as f64 / 1e9)
}

/// The echo half of [`ping_pong`]: reads fd 0 and writes what it read to
/// fd 1 (a pipe each, or both one socket), blocking, until EOF.
pub fn raw_echo() -> ExitCode {
    use std::os::fd::FromRawFd;
    // SAFETY: fds 0 and 1 are open for this process's life; ManuallyDrop
    // keeps these Files from closing them.
    let (mut input, mut output) = unsafe {
        (
            std::mem::ManuallyDrop::new(std::fs::File::from_raw_fd(0)),
            std::mem::ManuallyDrop::new(std::fs::File::from_raw_fd(1)),
        )
    };
    let mut buf = [0u8; 64];
    while let Ok(n) = input.read(&mut buf) {
        if n == 0 || output.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// Round trips/s of one byte to an echoing process and back, over a
/// socketpair (frames' channel) or two pipes (jsonl's); the echo blocks in
/// `read(2)`, this side too or, with `spin`, reads without blocking over and
/// over and never sleeps: the floor of a `maxInFlight: 1` round trip here.
/// `pin`: (this thread's CPU, the echo's CPU), to compare a wake-up on the
/// same CPU with one on the other.
pub fn ping_pong(rounds: u64, spin: bool, socket: bool, pin: Option<(usize, usize)>) -> f64 {
    use std::os::fd::AsRawFd;
    let mut cmd = Command::new(bin("bench-throughput"));
    cmd.arg("--raw-echo");
    let mut saved = None;
    if let Some((mine, theirs)) = pin {
        let theirs = cpu_set(theirs);
        // SAFETY: sched_setaffinity(2) only, between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &theirs) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // SAFETY: get and set this thread's own CPU mask.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut old) == 0 {
                saved = Some(old);
            }
            libc::sched_setaffinity(0, size, &cpu_set(mine));
        }
    }
    let (mut child, to, from): (_, std::fs::File, std::fs::File) = if socket {
        let (mine, theirs) = UnixStream::pair().expect("socketpair");
        let theirs_too = theirs.try_clone().expect("dup");
        let child = cmd
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(OwnedFd::from(theirs_too)))
            .spawn()
            .expect("spawn the raw echo");
        let mine_too = mine.try_clone().expect("dup");
        (
            child,
            OwnedFd::from(mine).into(),
            OwnedFd::from(mine_too).into(),
        )
    } else {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the raw echo");
        let (Some(w), Some(r)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("the raw echo has no pipes");
        };
        (child, OwnedFd::from(w).into(), OwnedFd::from(r).into())
    };
    let fd = from.as_raw_fd();
    if spin && !socket {
        // SAFETY: fcntl on our own read end (the echo's write end is another
        // open file, so it keeps blocking).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
    let mut byte = [0u8; 1];
    // One round first, so the echo's start-up is not measured.
    let mut round = |to: &std::fs::File| {
        (&*to).write_all(b"x").expect("write a ping");
        loop {
            let n = if spin && socket {
                // SAFETY: recv into a 1-byte buffer we own.
                unsafe { libc::recv(fd, byte.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) }
            } else {
                // SAFETY: read into a 1-byte buffer we own.
                unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) }
            };
            if n == 1 {
                break;
            }
            let e = std::io::Error::last_os_error();
            assert!(
                n < 0
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ),
                "the echo ended: {e}"
            );
        }
    };
    round(&to);
    let start = now_ns();
    for _ in 0..rounds {
        round(&to);
    }
    let secs = (now_ns() - start) as f64 / 1e9;
    drop((to, from));
    let _ = child.wait();
    if let Some(old) = saved {
        // SAFETY: restores this thread's own CPU mask.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old);
        }
    }
    rounds as f64 / secs
}

fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits; CPU_SET writes one of them.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    }
}
