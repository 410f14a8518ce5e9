//! `test-peer MODE [ARGS]`: a frames connector that fails in one chosen way,
//! written on the bare codec (not connector-sdk, whose reader task would
//! answer pings for it). Every mode reads `init` first and prints
//! `test-peer pid=<pid> mode=<mode>` to stderr.
//!
//! - `hang`: sends `ready`, then never answers a `ping` (each is printed as
//!   `ignoring ping <nonce>`), as a process stuck in a busy loop would.
//! - `never-ready`: never sends `ready`; prints what it receives.
//! - `flood SECS BYTES`: sends `ready` and answers pings, prints
//!   `flood starting` on stdout, then writes numbered stderr lines of BYTES
//!   bytes (`flood <i> xxx…`) as fast as it can for SECS seconds, from a
//!   thread of its own; then `flood done: <n> lines` on stderr every 100 ms.
//! - `count RATE SECS BYTES TRIGGER`: sends `ready` and answers pings; once
//!   the file TRIGGER exists, writes numbered stderr lines of BYTES bytes
//!   (`count <i> xxx…`), RATE a second for SECS seconds, then
//!   `count done: <n> lines`.
//! - `fork`: starts a grandchild (`sleep 1000000`, in its process group, as
//!   any child it spawns would be), prints `grandchild pid=<pid>`, sends
//!   `ready` and answers pings.
//!
//! All modes exit 0 on `shutdown` or when the channel closes (leaving any
//! grandchild behind: cleaning up the tree is the supervisor's job).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{SinkExt, StreamExt};
use ipc_proto::codec::FrameCodec;
use ipc_proto::{DEFAULT_MAX_FRAME_BYTES, FromConnector, IPC_FD_ENV, Pong, Ready, ToConnector};
use tokio_util::codec::{FramedRead, FramedWrite};

fn flood(secs: f64, bytes: usize) {
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let pad = "x".repeat(bytes.saturating_sub(24).max(1));
    let mut err = std::io::BufWriter::with_capacity(1 << 16, std::io::stderr().lock());
    let mut n: u64 = 0;
    while start.elapsed() < limit {
        // Check the clock every 256 lines: the loop is about writing.
        for _ in 0..256 {
            n += 1;
            if writeln!(err, "flood {n:>10} {pad}").is_err() {
                return;
            }
        }
    }
    if err.flush().is_err() {
        return;
    }
    drop(err);
    // Let the flood limit refill, so the first count line is not dropped itself.
    std::thread::sleep(Duration::from_millis(200));
    loop {
        eprintln!("flood done: {n} lines");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(rate: u64, secs: u64, bytes: usize, trigger: String) {
    while !std::path::Path::new(&trigger).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pad = "x".repeat(bytes.saturating_sub(24).max(1));
    let start = Instant::now();
    let total = rate * secs;
    let mut err = std::io::stderr().lock();
    let mut n = 0;
    while n < total {
        // Catch up with the schedule, in 10 ms steps.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
        while n < due.min(total) {
            n += 1;
            if writeln!(err, "count {n} {pad}").is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = writeln!(err, "count done: {n} lines");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_default();
    let fd: i32 = std::env::var(IPC_FD_ENV)
        .context(IPC_FD_ENV)?
        .parse()
        .context("fd number")?;
    // SAFETY: the orchestrator gave this process the fd to own; nothing else here uses it.
    let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    // Keep the channel out of any grandchild: its end must be ours alone.
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(std_stream.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
    }
    std_stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(std_stream)?;
    let (read, write) = stream.into_split();
    let max = DEFAULT_MAX_FRAME_BYTES;
    let mut incoming = FramedRead::new(read, FrameCodec::<ToConnector, FromConnector>::new(max));
    let mut outgoing = FramedWrite::new(write, FrameCodec::<ToConnector, FromConnector>::new(max));

    match incoming.next().await {
        Some(Ok(Ok(ToConnector::Init(_)))) => {}
        other => bail!("expected init, got {other:?}"),
    }
    eprintln!("test-peer pid={} mode={mode}", std::process::id());

    let mut answer_pings = true;
    match mode.as_str() {
        "hang" => answer_pings = false,
        "never-ready" => {}
        "flood" => {
            let secs: f64 = args.get(1).map_or(Ok(2.0), |s| s.parse())?;
            let bytes: usize = args.get(2).map_or(Ok(200), |s| s.parse())?;
            println!("flood starting: {secs}s of {bytes}-byte lines");
            std::thread::spawn(move || flood(secs, bytes));
        }
        "count" => {
            let num = |i: usize, default: u64| -> anyhow::Result<u64> {
                Ok(args.get(i).map_or(Ok(default), |s| s.parse())?)
            };
            let (rate, secs, bytes) = (num(1, 1000)?, num(2, 4)?, num(3, 8000)? as usize);
            let trigger = args.get(4).cloned().context("count needs a trigger file")?;
            std::thread::spawn(move || count(rate, secs, bytes, trigger));
        }
        "fork" => {
            let child = std::process::Command::new("sleep")
                .arg("1000000")
                .stdin(std::process::Stdio::null())
                .spawn()
                .context("spawn sleep")?;
            eprintln!("grandchild pid={}", child.id());
        }
        other => bail!("unknown mode {other:?}"),
    }
    if mode != "never-ready" {
        outgoing
            .send(FromConnector::Ready(Ready {
                protocol: None,
                features: Vec::new(),
            }))
            .await?;
    }

    while let Some(item) = incoming.next().await {
        let Ok(msg) = item? else { continue };
        match msg {
            ToConnector::Ping(p) if answer_pings => {
                outgoing
                    .send(FromConnector::Pong(Pong { nonce: p.nonce }))
                    .await?
            }
            ToConnector::Ping(p) => eprintln!("ignoring ping {}", p.nonce),
            ToConnector::Shutdown(_) => {
                eprintln!("shutdown received");
                break;
            }
            other => eprintln!("got {}", other.tag()),
        }
    }
    Ok(())
}
