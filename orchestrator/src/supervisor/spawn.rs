//! Starting one child: its command, environment, process group, transport and log pumps.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use futures::StreamExt;
use ipc_proto::codec::{FrameCodec, JsonlCodec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncRead;
use tokio::process::Command;
use tokio_util::codec::FramedRead;

use super::lines::LossyLines;
use super::link::{Link, LinkOptions};
use super::pin::Pin;
use super::process::{Process, StderrTail};
use crate::bundle::Protocol;
use crate::logs::LogSink;
use crate::sandbox::{CgroupGuard, SandboxPlan};

/// The fd number the IPC socket has in every frames child.
pub const CHILD_IPC_FD: i32 = 3;

/// Longest line a log pump keeps; the rest is cut and marked.
pub const MAX_LOG_LINE: usize = 16 * 1024;

/// Everything needed to start one child process.
#[derive(Clone, Debug)]
pub struct ChildSpec {
    /// Resolved executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Declared environment (on top of PATH, HOME, LANG).
    pub env: BTreeMap<String, String>,
    /// Working directory (the bundle root).
    pub cwd: PathBuf,
    /// Transport.
    pub protocol: Protocol,
    /// Largest frame or line either way.
    pub max_frame_bytes: usize,
    /// Bad messages tolerated before the channel is closed.
    pub max_protocol_errors: u32,
    /// The orchestrator binary to run the program through as `__shim`
    /// (see [`crate::shim`]), so grandchildren die with the orchestrator.
    pub shim: Option<PathBuf>,
    /// A frames child reads the orchestrator's own stdin (`stdin: inherit`).
    pub inherit_stdin: bool,
    /// The sandbox plan of its program (see [`crate::sandbox`]), if it has one.
    pub sandbox: Option<Arc<SandboxPlan>>,
    /// `entry.sha256`: the program must hash to this before every spawn.
    pub pin: Option<Pin>,
}

/// A started child and the channel to it.
#[derive(Debug)]
pub struct Spawned<In, Out> {
    /// The process (its own process-group leader).
    pub process: Process,
    /// The channel.
    pub link: Link<In, Out>,
    /// The last bytes it wrote to stderr, for its crash record.
    pub stderr_tail: StderrTail,
    /// Finishes when its stderr is closed (so the tail is complete).
    pub stderr_done: tokio::task::JoinHandle<()>,
    /// Its sandbox cgroups: emptied and removed when this is dropped.
    pub cgroups: Option<CgroupGuard>,
}

/// The environment of a child: built, never inherited. PATH, HOME and LANG
/// from ours (PATH has a sane default), then what the bundle declares.
pub fn child_env(declared: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    env.insert("PATH".to_string(), path);
    for key in ["HOME", "LANG"] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.to_string(), v);
        }
    }
    env.extend(declared.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Starts `spec` with its transport; stdout/stderr that are not the channel go to `log`.
pub fn spawn<In, Out>(
    spec: &ChildSpec,
    log: &LogSink,
    opts: LinkOptions<Out>,
    pong: fn(&In) -> Option<u64>,
) -> io::Result<Spawned<In, Out>>
where
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + Send + 'static,
{
    check_executable(&spec.program)?;
    let sandbox = match &spec.sandbox {
        Some(plan) => {
            let shim = spec.shim.is_some();
            crate::sandbox::prepare(plan, &spec.program, &spec.cwd, shim, log, &opts.status)?
        }
        None => None,
    };
    let mut cgroups = None;
    let mut egress = None;
    let mut cmd = match &spec.shim {
        Some(shim) => {
            let mut cmd = Command::new(shim);
            cmd.arg(crate::shim::SHIM_ARG);
            if let Some(prepared) = sandbox {
                cmd.arg(crate::shim::SANDBOX_OPT).arg(prepared.steps_json);
                cgroups = prepared.cgroups;
                egress = prepared.egress;
            }
            cmd.arg("--").arg(&spec.program);
            cmd
        }
        None => Command::new(&spec.program),
    };
    // The shim catches its death signal to kill the whole group; a program
    // started directly just dies.
    let death_signal = if spec.shim.is_some() {
        crate::shim::SHIM_DEATH_SIGNAL
    } else {
        libc::SIGKILL
    };
    cmd.args(&spec.args)
        .env_clear()
        .envs(child_env(&spec.env))
        .current_dir(&spec.cwd)
        .process_group(0)
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let parent_pid = std::process::id() as libc::pid_t;
    let mut child_end: Option<OwnedFd> = None;
    let parent_end = match spec.protocol {
        Protocol::Frames => {
            let (parent, child) = std::os::unix::net::UnixStream::pair()?;
            cmd.stdin(if spec.inherit_stdin {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .env(ipc_proto::IPC_FD_ENV, CHILD_IPC_FD.to_string());
            let fd = child.as_raw_fd();
            child_end = Some(child.into());
            // SAFETY: only async-signal-safe calls (prctl, getppid, dup2, fcntl)
            // run between fork and exec; nothing allocates.
            unsafe {
                cmd.pre_exec(move || {
                    set_parent_death_signal(parent_pid, death_signal)?;
                    place_fd(fd, CHILD_IPC_FD)
                });
            }
            Some(parent)
        }
        Protocol::Jsonl => {
            cmd.stdin(Stdio::piped());
            // SAFETY: as above.
            unsafe {
                cmd.pre_exec(move || set_parent_death_signal(parent_pid, death_signal));
            }
            None
        }
    };

    // Network mode `egress`: the socket its proxy's listener comes back on.
    let egress = match egress {
        Some(policy) => {
            let handoff = crate::egress::Handoff::new()?;
            let fd = handoff.child_fd();
            // SAFETY: dup2 is async-signal-safe.
            unsafe { cmd.pre_exec(move || place_fd(fd, crate::egress::EGRESS_FD)) };
            Some((handoff, policy))
        }
        None => None,
    };
    let mut child = cmd.spawn()?;
    // The child has its copy; ours must go, or the socket never reports EOF.
    drop(child_end);
    if let Some((handoff, policy)) = egress {
        crate::egress::start(handoff, policy, &opts.status);
    }
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let stderr_tail = StderrTail::default();
    let stderr_done = pump(stderr, log.clone(), "stderr", Some(stderr_tail.clone()));

    let unit;
    let link = match parent_end {
        Some(sock) => {
            pump(stdout, log.clone(), "stdout", None);
            unit = "frame";
            sock.set_nonblocking(true)?;
            let sock = tokio::net::UnixStream::from_std(sock)?;
            let (read, write) = sock.into_split();
            let incoming = reader(read, FrameCodec::<In, Out>::new(spec.max_frame_bytes));
            let encode = Box::new(FrameCodec::<In, Out>::new(spec.max_frame_bytes));
            Link::new(
                incoming.boxed(),
                Box::new(write),
                encode,
                LinkOptions { unit, ..opts },
                pong,
            )
        }
        None => {
            unit = "line";
            let stdin = child.stdin.take().expect("stdin is piped");
            let stdin = tokio::net::unix::pipe::Sender::from_owned_fd(stdin.into_owned_fd()?)?;
            let incoming = reader(stdout, JsonlCodec::<In, Out>::new(spec.max_frame_bytes));
            let encode = Box::new(JsonlCodec::<In, Out>::new(spec.max_frame_bytes));
            Link::new(
                incoming.boxed(),
                Box::new(stdin),
                encode,
                LinkOptions { unit, ..opts },
                pong,
            )
        }
    };
    let process = Process::new(child);
    Ok(Spawned {
        process,
        link,
        stderr_tail,
        stderr_done,
        cgroups,
    })
}

/// The child dies with us: `signal` when the orchestrator's thread that forked
/// it goes away, and an immediate exit if we died before the signal was set.
fn set_parent_death_signal(parent: libc::pid_t, signal: i32) -> io::Result<()> {
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of ours.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// The program a shim runs: the shim's (only) child, from `/proc`; or that
/// child's child when it is the init of the sandbox's PID namespace.
pub fn program_pid(shim: u32) -> Option<u32> {
    let first = |pid: u32| -> Option<u32> {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    };
    let child = first(shim)?;
    if crate::sandbox::is_namespace_init(child) {
        return Some(first(child).unwrap_or(child));
    }
    Some(child)
}

/// Fails like exec would (NotFound, PermissionDenied) before anything is
/// forked, so a missing program is a permanent failure even through the shim.
fn check_executable(program: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(program)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not an executable file", program.display()),
        ));
    }
    Ok(())
}

/// Puts `fd` at `target` without close-on-exec.
fn place_fd(fd: i32, target: i32) -> io::Result<()> {
    // SAFETY: dup2 and fcntl are async-signal-safe.
    unsafe {
        if fd == target {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        } else if libc::dup2(fd, target) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// First size of a channel's read buffer, which grows to what a child sends
/// (`read.rs`); most children, idle agent instances above all, never need
/// tokio-util's 8 KiB default, which cost 24–32 KiB per live process. (The
/// write buffer holds only what a full channel did not take, `link.rs`.)
const BUFFER: usize = 512;

/// A child channel's reading half, with a small first buffer that grows
/// only for a child that keeps it full (`read.rs`).
fn reader<R: AsyncRead, D>(read: R, codec: D) -> super::read::Reader<R, D> {
    super::read::Reader::new(read, codec, BUFFER)
}

/// Copies a child's output stream into its log, a line at a time.
fn pump<R: AsyncRead + Send + Unpin + 'static>(
    reader: R,
    log: LogSink,
    source: &'static str,
    tail: Option<StderrTail>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = FramedRead::with_capacity(reader, LossyLines::new(MAX_LOG_LINE), BUFFER);
        while let Some(Ok(line)) = lines.next().await {
            log.line(source, &line);
            if let Some(tail) = &tail {
                tail.push(&line);
            }
        }
    })
}
