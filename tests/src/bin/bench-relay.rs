//! `bench-relay`: the baseline of `bench-throughput`, "the least an
//! orchestrator can do". It starts the same connector and agent programs the
//! orchestrator runs, with the same channels (jsonl: the child's stdin and
//! stdout pipes; frames: a socketpair at fd 3, `ORCHESTRATOR_IPC_FD=3`), sends
//! each its `init`, and then, for every `emit` it reads, acks it to the
//! connector and forwards it to the agent as a `deliver`; a second thread
//! counts the agent's acks. No journal, no routing, no window: messages are
//! decoded and encoded with `ipc-proto` as the orchestrator does, and writes
//! are coalesced (one `write(2)` per side for all the emits one `read(2)` brought).
//!
//! ```text
//! bench-relay TRANSPORT CONNECTOR AGENT DIR COUNT RATE STAMP [WINDOW]
//! ```
//!
//! TRANSPORT is `jsonl` or `frames`; CONNECTOR and AGENT are programs (the
//! `bench-*connector` and `bench-*agent` bins); the connector's state dir is
//! `DIR/connector`, the agent's `DIR/agent` (where they write their
//! `result.json`); COUNT events on one key, offered at RATE/s (0: unpaced),
//! STAMP `true` to carry send times. WINDOW (default 0: none) is the most
//! deliveries the agent may have unanswered, like `maxInFlight`: with 1 every
//! event waits for the previous one's ack, one round trip each, read on the
//! forwarding thread itself. Prints one line:
//! `acks=<n> cpu_relay=<s> cpu_connector=<s> cpu_agent=<s>` (CPU seconds).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use ipc_proto::{
    AgentInit, ConnectorInit, Deliver, DeliveredEvent, EmitAck, FromAgent, FromConnector, Secrets,
    Shutdown, ToAgent, ToConnector,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

type Res<T> = Result<T, String>;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Jsonl,
    Frames,
}

/// Reads messages of one transport.
struct Rx<R> {
    t: Transport,
    r: BufReader<R>,
    line: String,
    body: Vec<u8>,
}

impl<R: Read> Rx<R> {
    fn new(t: Transport, r: R) -> Self {
        Self {
            t,
            r: BufReader::with_capacity(256 << 10, r),
            line: String::new(),
            body: Vec::new(),
        }
    }

    /// The next message; None at EOF.
    fn recv<T: DeserializeOwned>(&mut self) -> Res<Option<T>> {
        match self.t {
            Transport::Jsonl => {
                self.line.clear();
                let n = self
                    .r
                    .read_line(&mut self.line)
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Ok(None);
                }
                ipc_proto::json::decode(self.line.trim_end())
                    .map(Some)
                    .map_err(|e| format!("bad line: {e}"))
            }
            Transport::Frames => {
                let mut len = [0u8; 4];
                if self.r.read_exact(&mut len).is_err() {
                    return Ok(None);
                }
                self.body.resize(u32::from_be_bytes(len) as usize, 0);
                self.r
                    .read_exact(&mut self.body)
                    .map_err(|e| format!("read a frame body: {e}"))?;
                ipc_proto::frame::decode_body(&self.body)
                    .map(Some)
                    .map_err(|e| format!("bad frame: {e}"))
            }
        }
    }

    fn buffered(&self) -> bool {
        !self.r.buffer().is_empty()
    }
}

/// Writes messages of one transport through a buffer.
struct Tx<W: Write> {
    t: Transport,
    w: BufWriter<W>,
    scratch: Vec<u8>,
}

impl<W: Write> Tx<W> {
    fn new(t: Transport, w: W) -> Self {
        Self {
            t,
            w: BufWriter::with_capacity(256 << 10, w),
            scratch: Vec::new(),
        }
    }

    fn send<T: Serialize>(&mut self, msg: &T) -> Res<()> {
        self.scratch.clear();
        match self.t {
            Transport::Jsonl => {
                serde_json::to_writer(&mut self.scratch, msg)
                    .map_err(|e| format!("encode: {e}"))?;
                self.scratch.push(b'\n');
            }
            Transport::Frames => {
                self.scratch.extend_from_slice(&[0; 4]);
                let n = ipc_proto::frame::encode_body_into(msg, &mut self.scratch)
                    .map_err(|e| format!("encode: {e}"))?;
                self.scratch[..4].copy_from_slice(&(n as u32).to_be_bytes());
            }
        }
        self.w
            .write_all(&self.scratch)
            .map_err(|e| format!("write: {e}"))
    }

    fn flush(&mut self) -> Res<()> {
        self.w.flush().map_err(|e| format!("flush: {e}"))
    }
}

type Boxed = (Box<dyn Read + Send>, Box<dyn Write + Send>);

/// Starts `program` with its channel as the orchestrator gives it.
fn spawn(t: Transport, program: &Path, env: &[(&str, String)]) -> Res<(Child, Boxed)> {
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
            Ok((child, (Box::new(r), Box::new(w))))
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
            Ok((child, (Box::new(mine), Box::new(w))))
        }
    }
}

fn cpu_of(pid: u32) -> f64 {
    e2e::process_tree(pid)
        .iter()
        .filter(|p| p.pid == pid)
        .map(|p| p.cpu_secs)
        .sum()
}

fn run(args: &[String]) -> Res<()> {
    let (t, connector, agent, dir, count, rate, stamp, window) = match args {
        [t, c, a, d, n, r, s] => (t, c, a, d, n, r, s, 0),
        [t, c, a, d, n, r, s, w] => {
            let w: u64 = w.parse().map_err(|e| format!("WINDOW {w:?}: {e}"))?;
            (t, c, a, d, n, r, s, w)
        }
        _ => {
            return Err(
                "usage: bench-relay TRANSPORT CONNECTOR AGENT DIR COUNT RATE STAMP [WINDOW]".into(),
            );
        }
    };
    let t = match t.as_str() {
        "jsonl" => Transport::Jsonl,
        "frames" => Transport::Frames,
        other => return Err(format!("transport {other:?}: jsonl or frames")),
    };
    let dir = PathBuf::from(dir);
    let count: u64 = count.parse().map_err(|e| format!("COUNT {count:?}: {e}"))?;
    let (c_dir, a_dir) = (dir.join("connector"), dir.join("agent"));
    for d in [&c_dir, &a_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }

    // The agent first, so it is up before the first emit.
    let (mut agent_child, (ar, aw)) = spawn(t, Path::new(agent), &[("EXPECT", count.to_string())])?;
    let mut a_rx = Rx::new(t, ar);
    let mut a_tx = Tx::new(t, aw);
    a_tx.send(&ToAgent::Init(AgentInit {
        protocol: ipc_proto::PROTOCOL_VERSION,
        agent: "sink".into(),
        instance_key: "k0".into(),
        swarm: "default".into(),
        state_dir: a_dir.display().to_string(),
        secrets: Secrets::default(),
    }))?;
    a_tx.flush()?;
    match a_rx.recv::<FromAgent>()? {
        Some(FromAgent::Ready(_)) => {}
        other => return Err(format!("agent: expected ready, got {other:?}")),
    }

    let (mut conn_child, (cr, cw)) = spawn(t, Path::new(connector), &[])?;
    let mut c_rx = Rx::new(t, cr);
    let mut c_tx = Tx::new(t, cw);
    let config: BTreeMap<String, String> = [
        ("COUNT", count.to_string()),
        ("KEYS", "1".into()),
        ("WINDOW", "4096".into()),
        ("RATE", rate.clone()),
        ("STAMP", stamp.clone()),
        ("PAYLOAD", "64".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    c_tx.send(&ToConnector::Init(ConnectorInit {
        protocol: ipc_proto::PROTOCOL_VERSION,
        connector: "bench".into(),
        connection: "bench".into(),
        config,
        secrets: Secrets::default(),
        state_dir: c_dir.display().to_string(),
    }))?;
    c_tx.flush()?;

    // Count the agent's acks on another thread, or, with a window, here.
    let (mut own_rx, acks) = if window > 0 {
        (Some(a_rx), None)
    } else {
        let counter = std::thread::spawn(move || -> Res<u64> {
            let mut n = 0;
            while n < count {
                match a_rx.recv::<FromAgent>()? {
                    Some(FromAgent::Ack(_)) => n += 1,
                    Some(_) => {}
                    None => break,
                }
            }
            Ok(n)
        });
        (None, Some(counter))
    };
    let mut acked_here = 0u64;

    let received_at = "2026-11-30T00:00:00Z".to_owned();
    let mut emits = 0u64;
    while emits < count {
        let Some(msg) = c_rx.recv::<FromConnector>()? else {
            return Err(format!("the connector ended after {emits} emits"));
        };
        if let FromConnector::Emit(emit) = msg {
            emits += 1;
            c_tx.send(&ToConnector::Ack(EmitAck {
                seq: emit.seq,
                duplicate: None,
            }))?;
            let id = format!("00000000-0000-7000-8000-{emits:012x}");
            let e = emit.event;
            a_tx.send(&ToAgent::Deliver(Deliver {
                id: id.clone(),
                attempt: 1,
                event: DeliveredEvent {
                    id,
                    connection: "bench".into(),
                    connector: "bench".into(),
                    name: e.name,
                    message: e.message,
                    properties: e.properties,
                    instance_key: e.instance_key.unwrap_or_default(),
                    received_at: received_at.clone(),
                    payload: None,
                },
            }))?;
        }
        if let Some(rx) = &mut own_rx {
            // The window is full: this delivery goes out now, and the next
            // waits for an ack.
            if emits - acked_here >= window {
                c_tx.flush()?;
                a_tx.flush()?;
                while emits - acked_here >= window {
                    match rx.recv::<FromAgent>()? {
                        Some(FromAgent::Ack(_)) => acked_here += 1,
                        Some(_) => {}
                        None => return Err(format!("the agent ended after {acked_here} acks")),
                    }
                }
            }
        } else if !c_rx.buffered() {
            c_tx.flush()?;
            a_tx.flush()?;
        }
    }
    c_tx.flush()?;
    a_tx.flush()?;
    let acked = match (acks, &mut own_rx) {
        (Some(counter), _) => counter
            .join()
            .map_err(|_| "the ack counter panicked".to_owned())??,
        (None, Some(rx)) => {
            while acked_here < count {
                match rx.recv::<FromAgent>()? {
                    Some(FromAgent::Ack(_)) => acked_here += 1,
                    Some(_) => {}
                    None => break,
                }
            }
            acked_here
        }
        (None, None) => 0,
    };
    let (cpu_c, cpu_a) = (cpu_of(conn_child.id()), cpu_of(agent_child.id()));
    let cpu_r = cpu_of(std::process::id());
    println!("acks={acked} cpu_relay={cpu_r} cpu_connector={cpu_c} cpu_agent={cpu_a}");
    // The connector writes its result once every emit is answered; wait for it.
    let result = c_dir.join("result.json");
    while !result.exists() {
        if let Ok(Some(s)) = conn_child.try_wait() {
            return Err(format!("the connector exited ({s}) without a result"));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let bye = Shutdown { grace_ms: 1000 };
    let _ = c_tx.send(&ToConnector::Shutdown(bye.clone()));
    let _ = c_tx.flush();
    let _ = a_tx.send(&ToAgent::Shutdown(bye));
    let _ = a_tx.flush();
    drop((c_tx, a_tx, c_rx, own_rx));
    let _ = conn_child.wait();
    let _ = agent_child.wait();
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
