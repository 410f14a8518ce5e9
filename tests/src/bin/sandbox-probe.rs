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
//! - `state`: write a file into its state directory;
//! - `unix:PATH`: connect to the unix socket PATH (control.sock);
//! - `read:PATH` / `write:PATH`: read a file / open it for appending;
//! - `environ:PID` / `mem:PID`: read `/proc/PID/environ` / open `/proc/PID/mem`;
//! - `ptrace:PID`: `PTRACE_ATTACH` (detached again at once);
//! - `kill:PID`: signal 0 (the permission check of any signal);
//! - `mptcp:PORT`: an MPTCP socket connected to 127.0.0.1:PORT;
//! - `raw` / `udp` / `nonblock`: a raw ICMP socket / a UDP socket / a TCP
//!   socket with `SOCK_NONBLOCK | SOCK_CLOEXEC` in its type;
//! - `procs`: how many processes `/proc` shows (`ok N`);
//! - `self`: its uid, gid, capability sets and NoNewPrivs (`ok uid=0 …`);
//! - `tmp`: write a file into `/tmp` (`ok /tmp/…`);
//! - `unshare`: `unshare(CLONE_NEWUSER)`.
//!
//! A PID is a number, or `@FILE`: the number FILE holds, once it exists
//! (the tests write the orchestrator's pid there after starting it).
//!
//! Then it prints `checks done` and waits for `shutdown`.
//!
//! `sandbox-probe attack CHECK…` runs the checks that need no connection
//! from the command line (the tests run it as another child's uid).

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use connector_sdk::{BoxError, Context, Event};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("attack") {
        for check in &args[1..] {
            match run_check(None, check) {
                Ok(detail) => println!("check {check}: ok {detail}"),
                Err(detail) => println!("check {check}: err {detail}"),
            }
        }
        return ExitCode::SUCCESS;
    }
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
            payload: None,
        };
        match ctx.emit(event).await {
            Ok(_) => println!("ack 1"),
            Err(e) => println!("failed 1 {e}"),
        }
        for check in &checks {
            let outcome = run_check(Some(&ctx), check);
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

fn run_check(ctx: Option<&Context>, check: &str) -> Result<String, String> {
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
        "secret" => match ctx.ok_or("no connection")?.secrets().get(arg) {
            Some(v) if !v.is_empty() => Ok("arrived in init".into()),
            _ => Err("missing".into()),
        },
        "state" => std::fs::write(
            ctx.ok_or("no connection")?.state_dir().join("probe"),
            b"written\n",
        )
        .map(|_| "written".to_string())
        .map_err(|e| e.to_string()),
        _ => attack::run(name, arg),
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

/// The checks that try to reach beyond the sandbox.
mod attack {
    use std::io::Read as _;
    use std::time::{Duration, Instant};

    pub fn run(name: &str, arg: &str) -> Result<String, String> {
        let os = |e: std::io::Error| e.to_string();
        match name {
            "unix" => std::os::unix::net::UnixStream::connect(arg)
                .map(|_| "connected".to_string())
                .map_err(os),
            "read" => std::fs::read(arg)
                .map(|b| format!("read {} bytes", b.len()))
                .map_err(os),
            "write" => std::fs::OpenOptions::new()
                .append(true)
                .open(arg)
                .map(|_| "opened for writing".to_string())
                .map_err(os),
            "environ" => std::fs::read(format!("/proc/{}/environ", pid(arg)?))
                .map(|b| format!("read {} bytes", b.len()))
                .map_err(os),
            "mem" => {
                let mut f = std::fs::File::open(format!("/proc/{}/mem", pid(arg)?)).map_err(os)?;
                let mut byte = [0u8; 1];
                // Offset 0 is unmapped: an error here still means it opened.
                let _ = f.read(&mut byte);
                Ok("opened".into())
            }
            "ptrace" => {
                let pid = pid(arg)?;
                // SAFETY: ptrace attach/detach on a pid; no memory is touched.
                let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error().to_string());
                }
                // SAFETY: as above.
                unsafe {
                    libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
                    libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize);
                }
                Ok("attached".into())
            }
            "kill" => {
                // SAFETY: signal 0 sends nothing; only the permission is checked.
                let rc = unsafe { libc::kill(pid(arg)?, 0) };
                if rc == 0 {
                    Ok("may signal it".into())
                } else {
                    Err(std::io::Error::last_os_error().to_string())
                }
            }
            "mptcp" => {
                let port: u16 = arg.parse().map_err(|e| format!("bad port {arg}: {e}"))?;
                connect_with(libc::SOCK_STREAM, libc::IPPROTO_MPTCP, port)
            }
            "raw" => socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
            "udp" => socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
            "nonblock" => socket(
                libc::AF_INET6,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                libc::IPPROTO_TCP,
            ),
            "procs" => {
                let n = std::fs::read_dir("/proc")
                    .map_err(os)?
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                    .count();
                Ok(format!("procs {n}"))
            }
            "self" => {
                let status = std::fs::read_to_string("/proc/self/status").map_err(os)?;
                let field = |key: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(key))
                        .and_then(|v| v.split_whitespace().next())
                        .unwrap_or("?")
                        .to_string()
                };
                Ok(format!(
                    "uid={} gid={} capeff={} capprm={} capbnd={} capamb={} nnp={}",
                    field("Uid:"),
                    field("Gid:"),
                    field("CapEff:"),
                    field("CapPrm:"),
                    field("CapBnd:"),
                    field("CapAmb:"),
                    field("NoNewPrivs:")
                ))
            }
            "tmp" => {
                let path = format!("/tmp/sandbox-probe-{}", std::process::id());
                std::fs::write(&path, b"probe\n").map_err(os)?;
                Ok(path)
            }
            "unshare" => {
                // SAFETY: unshare changes only this process's namespaces.
                if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
                    Ok("new user namespace".into())
                } else {
                    Err(std::io::Error::last_os_error().to_string())
                }
            }
            other => Err(format!("unknown check {other}")),
        }
    }

    /// A pid: a number, or `@FILE` holding one (waited for, up to 30 s).
    fn pid(arg: &str) -> Result<i32, String> {
        let Some(file) = arg.strip_prefix('@') else {
            return arg.parse().map_err(|e| format!("bad pid {arg}: {e}"));
        };
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(file)
                && let Ok(pid) = text.trim().parse()
            {
                return Ok(pid);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("no pid in {file}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn socket(family: i32, ty: i32, protocol: i32) -> Result<String, String> {
        // SAFETY: a plain socket(2), closed at once.
        let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, protocol) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        // SAFETY: closing the fd just opened.
        unsafe { libc::close(fd) };
        Ok("opened".into())
    }

    fn connect_with(ty: i32, protocol: i32, port: u16) -> Result<String, String> {
        // SAFETY: socket(2), connect(2) on a sockaddr_in built here, close(2).
        unsafe {
            let fd = libc::socket(libc::AF_INET, ty | libc::SOCK_CLOEXEC, protocol);
            if fd < 0 {
                return Err(format!("socket: {}", std::io::Error::last_os_error()));
            }
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_port = port.to_be();
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let rc = libc::connect(
                fd,
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if rc == 0 {
                Ok(format!("connected to port {port}"))
            } else {
                Err(format!("connect: {err}"))
            }
        }
    }
}
