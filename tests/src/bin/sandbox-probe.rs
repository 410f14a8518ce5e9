//! `sandbox-probe`: a frames connector (on connector-sdk) that tries what
//! its sandbox should allow or refuse and prints each outcome, for the
//! sandbox end-to-end tests.
//!
//! After `ready` it emits one `probe` event over the inherited IPC socket
//! and prints `ack 1` (or `failed 1 …`) once it is acked, so the
//! orchestrator surely serves it before any check can kill it.
//!
//! Config `CHECKS`: checks separated by spaces, run in order after that ack;
//! each prints `check <check>: ok <detail>` or `check <check>: err <detail>`:
//!
//! - `inet` / `netlink`: open an AF_INET stream / AF_NETLINK socket;
//! - `connect:PORT`: a TCP connect to 127.0.0.1:PORT (2 s timeout);
//! - `bind:PORT`: bind 127.0.0.1:PORT;
//! - `loop:PORT`: bind 127.0.0.1:PORT (0: any) and connect to it;
//! - `fork:N`: fork up to N children that wait to be killed; `ok forked K`;
//! - `nofile:N`: open /dev/null up to N times; `ok opened K`;
//! - `hog:MIB`: allocate and touch MIB MiB, a MiB at a time, printing
//!   `hog at K MiB` every 8; `ok survived` if it gets through;
//! - `secret:NAME`: whether the secret NAME arrived in `init`;
//! - `state`: write a file into its state directory.
//!
//! Then it prints `checks done` and waits for `shutdown`.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use connector_sdk::{BoxError, Context, Event};

fn main() -> ExitCode {
    connector_sdk::run(|ctx: Context| async move {
        let checks: Vec<String> = ctx
            .config_value("CHECKS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        println!("sandbox-probe pid={}", std::process::id());
        ctx.ready().await;
        let event = Event {
            name: "probe".into(),
            message: None,
            properties: Default::default(),
            instance_key: Some("probe".into()),
        };
        match ctx.emit(event).await {
            Ok(_) => println!("ack 1"),
            Err(e) => println!("failed 1 {e}"),
        }
        for check in &checks {
            let outcome = run_check(&ctx, check);
            match outcome {
                Ok(detail) => println!("check {check}: ok {detail}"),
                Err(detail) => println!("check {check}: err {detail}"),
            }
        }
        println!("checks done");
        ctx.shutdown().await;
        Ok::<(), BoxError>(())
    })
}

fn run_check(ctx: &Context, check: &str) -> Result<String, String> {
    let (name, arg) = check.split_once(':').unwrap_or((check, ""));
    let num = || {
        arg.parse::<u64>()
            .map_err(|e| format!("bad argument {arg:?}: {e}"))
    };
    let local = |port: u64| SocketAddr::from((Ipv4Addr::LOCALHOST, port as u16));
    match name {
        "inet" => socket(libc::AF_INET, libc::SOCK_STREAM),
        "netlink" => socket(libc::AF_NETLINK, libc::SOCK_RAW),
        "connect" => TcpStream::connect_timeout(&local(num()?), Duration::from_secs(2))
            .map(|_| "connected".to_string())
            .map_err(|e| e.to_string()),
        "bind" => TcpListener::bind(local(num()?))
            .map(|_| "bound".to_string())
            .map_err(|e| e.to_string()),
        "loop" => {
            let listener = TcpListener::bind(local(num()?)).map_err(|e| format!("bind: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .map_err(|e| format!("connect: {e}"))?;
            Ok(format!("connected to {addr}"))
        }
        "fork" => Ok(format!("forked {}", fork_many(num()?))),
        "nofile" => {
            let files: Vec<_> = (0..num()?)
                .map_while(|_| std::fs::File::open("/dev/null").ok())
                .collect();
            Ok(format!("opened {}", files.len()))
        }
        "hog" => hog(num()?),
        "setns" => {
            // Try to join the network namespace of our parent, the shim,
            // which runs in the host's.
            let parent = std::os::unix::process::parent_id();
            let ns = std::fs::File::open(format!("/proc/{parent}/ns/net"))
                .map_err(|e| format!("open: {e}"))?;
            // SAFETY: setns on a file descriptor we own.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            if rc == 0 {
                Ok("joined the host's network namespace".into())
            } else {
                Err(std::io::Error::last_os_error().to_string())
            }
        }
        "secret" => match ctx.secrets().get(arg) {
            Some(v) if !v.is_empty() => Ok("arrived in init".into()),
            _ => Err("missing".into()),
        },
        "state" => std::fs::write(ctx.state_dir().join("probe"), b"written\n")
            .map(|_| "written".to_string())
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown check {other}")),
    }
}

fn socket(family: i32, ty: i32) -> Result<String, String> {
    // SAFETY: a plain socket(2), closed at once.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: closing the fd just opened.
    unsafe { libc::close(fd) };
    Ok("opened".into())
}

/// Forks up to `n` children that wait to be killed; kills and reaps them.
fn fork_many(n: u64) -> usize {
    let mut pids = Vec::new();
    for _ in 0..n {
        // SAFETY: the child only calls async-signal-safe functions (prctl,
        // pause, _exit) before it dies.
        match unsafe { libc::fork() } {
            -1 => break,
            0 => unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::pause();
                libc::_exit(0);
            },
            pid => pids.push(pid),
        }
    }
    for &pid in &pids {
        // SAFETY: our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    pids.len()
}

fn hog(mib: u64) -> Result<String, String> {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for i in 1..=mib {
        // try_reserve: an rlimit failure is an error here, not an abort.
        let mut chunk: Vec<u8> = Vec::new();
        chunk
            .try_reserve_exact(1 << 20)
            .map_err(|e| format!("allocation failed at {i} MiB: {e}"))?;
        chunk.resize(1 << 20, 1);
        kept.push(chunk);
        if i % 8 == 0 {
            println!("hog at {i} MiB");
            let _ = std::io::stdout().flush();
        }
    }
    Ok(format!("survived {} MiB", kept.len()))
}
