//! End-to-end test harness: runs the real `orchestrator` binary on a bundle in
//! a temp dir and reads what its children wrote.
//!
//! # Theory of operation
//!
//! [`bin_dir`] finds the cargo profile directory the test binary lives in
//! (`target/debug`) and, once per test run (per process outside nextest), runs
//! `cargo build --workspace --bins` there, so `cargo nextest run --workspace`
//! works on a fresh clone: the orchestrator, the example agents and this
//! crate's fake peers (`test-emitter`, `raw-connector`) all end up next to
//! each other, where a bare `entry` name in a bundle finds them.
//!
//! A [`Harness`] owns one temp dir. A test writes its files into it (events,
//! example scripts), then [`Harness::start`] writes `bundle.yaml` and starts
//! `orchestrator run bundle.yaml --state-dir <tmp>/state` with its stdout and
//! stderr in files beside it. Everything a test checks comes from the state
//! directory's logs: each agent prints a `pid=… agent=… instanceKey=…` line
//! and one `received {json}` line per delivery, and connectors print their
//! acks. [`Harness::wait_until`] polls a condition with a deadline and, on
//! timeout, panics with the orchestrator's stderr and every log, so a failure
//! says what happened. Dropping a harness SIGKILLs an orchestrator still
//! running (its children die with it: `PR_SET_PDEATHSIG`).
//!
//! Nothing here sleeps to wait for something: every wait is a condition.
//!
//! Environment knobs: `E2E_KEEP=1` keeps each test's temp dir (its path is
//! printed) to read the logs afterwards; `E2E_NO_BUILD=1` skips the build
//! and runs the binaries already in the profile directory (under nextest the
//! build runs once per run anyway: see `build_once`); `E2E_SKIP_ROOT=1`
//! skips the tests that need root instead of failing them.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

pub mod answers;
pub mod nats;
pub mod proc_stats;

/// How long a test waits for things that normally take milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// The workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `examples/` of the workspace.
pub fn examples_dir() -> PathBuf {
    workspace_dir().join("examples")
}

/// `tests/fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The cargo profile directory (`target/debug` or `target/release`) with every
/// workspace binary built in it. The first call in a process builds them.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test binary>, or target/<profile>/<bin> for
        // this crate's own binaries (the benchmark).
        let parent = exe.parent();
        let dir = match parent {
            Some(d) if d.file_name().is_some_and(|n| n == "deps") => d.parent(),
            Some(d) if d.join("orchestrator").exists() || d.join("deps").is_dir() => Some(d),
            _ => None,
        }
        .unwrap_or_else(|| {
            panic!(
                "test binary {} is not in <target>/<profile>/deps",
                exe.display()
            )
        })
        .to_path_buf();
        // E2E_NO_BUILD=1 runs whatever binaries are there (already built, or
        // kept while another crate of the workspace does not compile).
        if std::env::var_os("E2E_NO_BUILD").is_none() {
            build_once(&dir);
        }
        dir
    })
    .clone()
}

/// Builds the binaries once per test run. nextest runs every test in a
/// process of its own: without this, each of them would run cargo (a no-op
/// build still takes a second, and they queue on cargo's lock). Within one
/// run (`NEXTEST_RUN_ID`) the first process builds and leaves a stamp; the
/// others wait on the lock file and find it.
fn build_once(profile_dir: &Path) {
    use std::os::fd::AsRawFd as _;
    let Some(run) = std::env::var_os("NEXTEST_RUN_ID") else {
        return build_bins(profile_dir);
    };
    let lock = File::create(profile_dir.join(".e2e-build.lock")).expect("e2e build lock file");
    // SAFETY: flock(2) on an fd we own; released when `lock` is closed.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock: {}", std::io::Error::last_os_error());
    let stamp = profile_dir.join(format!(".e2e-built-{}", run.to_string_lossy()));
    if stamp.exists() {
        return;
    }
    build_bins(profile_dir);
    if let Ok(entries) = std::fs::read_dir(profile_dir) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".e2e-built-")
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    File::create(&stamp).expect("e2e build stamp");
}

/// Whether the test runs as root, which it needs. Not as root it fails,
/// saying so, unless `E2E_SKIP_ROOT=1` asks to skip it: a check that cannot
/// run must not pass in silence.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("E2E_SKIP_ROOT").is_some_and(|v| v == "1") {
        eprintln!("skipped (E2E_SKIP_ROOT=1): this test needs to run as root");
        return false;
    }
    panic!("this test needs to run as root (CI does); set E2E_SKIP_ROOT=1 to skip it");
}

fn build_bins(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--workspace")
        .arg("--bins")
        .arg("--manifest-path")
        .arg(workspace_dir().join("Cargo.toml"));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build --workspace --bins failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The orchestrator's escaping of an instance key into a file name (its own
/// function, so the tests cannot drift from it).
pub use orchestrator::logs::escape_key;
/// The Python examples as a replying swarm: `lines.py` (Connection `lines`,
/// following `events`, serving `respond` by appending to `replies`) and
/// `reply.py` (Agent `reply`, answering every event through `respond`). The
/// caller copies both examples into the temp dir.
pub fn lines_reply_bundle(events: &str, replies: &Path) -> String {
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: lines }}
spec:
  entry: ./lines.py
  protocol: jsonl
  events: [{{ name: user_message }}]
  operations:
    - name: respond
      input: {{ type: object, required: [text], properties: {{ text: {{ type: string }} }} }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: lines }}
spec:
  connectorRef: Connector/lines
  config: {{ FILE: "{events}", REPLIES: "{replies}" }}
  operations: {{ allow: [respond] }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/reply, agents: [Agent/reply] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: reply }}
spec:
  entry: ./reply.py
  invoke: [{{ connection: lines, operations: [respond] }}]
"#,
        replies = replies.display()
    )
}

/// A docs/protocol.md event with a text message, as one JSON value.
pub fn event(
    name: &str,
    text: &str,
    properties: &[(&str, &str)],
    instance_key: Option<&str>,
) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let mut e = serde_json::json!({
        "name": name,
        "message": {"type": "text", "text": text},
        "properties": props,
    });
    if let Some(key) = instance_key {
        e["instanceKey"] = key.into();
    }
    e
}

/// Whether `pid` is a live process (present in /proc and not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// When process `pid` started (clock ticks after boot, /proc/PID/stat field
/// 22), if it exists: with the pid, it names one process even after the pid
/// is given to another (pid_max is often 32,768, and a full test run starts
/// many processes).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; starttime is field 22.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that was `pid` when it started at `start` still runs
/// (not a zombie, and not another process that got the pid since).
pub fn same_process_alive(pid: u32, start: u64) -> bool {
    pid_alive(pid) && start_time(pid) == Some(start)
}

/// One process of a tree, as /proc shows it now.
#[derive(Clone, Debug)]
pub struct TreeProcess {
    /// Its pid.
    pub pid: u32,
    /// CPU seconds (user + system, all threads) it used so far.
    pub cpu_secs: f64,
    /// Its command line, arguments joined by NULs.
    pub cmdline: String,
}

/// `root` and every process below it (for the benchmarks' CPU figures).
pub fn process_tree(root: u32) -> Vec<TreeProcess> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state ppid … utime(14) stime(15).
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(ut), Some(st)) = (
            f.get(1).and_then(|v| v.parse::<u32>().ok()),
            f.get(11).and_then(|v| v.parse::<u64>().ok()),
            f.get(12).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        procs.push((pid, ppid, (ut + st) as f64 / ticks));
    }
    let mut inside = std::collections::BTreeSet::from([root]);
    loop {
        let before = inside.len();
        for (pid, ppid, _) in &procs {
            if inside.contains(ppid) {
                inside.insert(*pid);
            }
        }
        if inside.len() == before {
            break;
        }
    }
    procs
        .into_iter()
        .filter(|(pid, ..)| inside.contains(pid))
        .map(|(pid, _, cpu_secs)| TreeProcess {
            pid,
            cpu_secs,
            cmdline: String::from_utf8_lossy(
                &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
            )
            .into_owned(),
        })
        .collect()
}

/// The `pid=<n>` an agent prints on its first line, for each such line in `log`.
pub fn agent_pids(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains(" agent=") && l.contains(" instanceKey="))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pid=")))
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The program pids of every `ready (pid N)` note in `log`.
pub fn started_pids(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains(" orchestrator ready (pid "))
        .filter_map(|l| {
            l.rsplit_once("(pid ")
                .and_then(|(_, p)| p.strip_suffix(')'))
        })
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// The JSON of every `received {json}` line in `log`, in order.
pub fn parse_received(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| l.find(" received {").map(|i| &l[i + " received ".len()..]))
        .map(|json| {
            serde_json::from_str(json).unwrap_or_else(|e| panic!("bad received line {json:?}: {e}"))
        })
        .collect()
}

/// The last `max` bytes of `text`, on a char boundary.
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Copies `src` to `dest`, keeping (and ensuring, for scripts) the exec bit.
fn copy_file(src: &Path, dest: &Path) {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).expect("create dir");
    }
    std::fs::copy(src, dest)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", src.display(), dest.display()));
    let mode = std::fs::metadata(src)
        .expect("metadata")
        .permissions()
        .mode();
    let script = src.extension().is_some_and(|x| x == "py" || x == "sh");
    let mode = if script { mode | 0o755 } else { mode };
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Copies the directory `src` into `dest`, recursively.
pub fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("create dir");
    for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display())) {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let name = entry.file_name();
        // Never copy someone's local run state along.
        if name == ".orchestrator" {
            continue;
        }
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&path, &dest.join(name));
        } else {
            copy_file(&path, &dest.join(name));
        }
    }
}

/// One orchestrator run in its own temp dir.
#[derive(Debug)]
pub struct Harness {
    /// `None` when kept for inspection (`E2E_KEEP=1`).
    _dir: Option<TempDir>,
    path: PathBuf,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A fresh temp dir; nothing runs yet.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("e2e-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().to_path_buf();
        // E2E_KEEP=1 leaves the temp dir behind, to read its logs afterwards.
        let dir = if std::env::var_os("E2E_KEEP").is_some() {
            eprintln!("keeping {}", dir.keep().display());
            None
        } else {
            Some(dir)
        };
        Self {
            _dir: dir,
            path,
            child: None,
            status: None,
        }
    }

    /// The temp dir (the bundle's directory).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// `rel` inside the temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    /// The state directory given to `--state-dir`.
    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// Writes `contents` to `rel` in the temp dir; returns its absolute path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Writes an executable script; returns its absolute path.
    pub fn write_script(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.write(rel, contents);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// Writes `events` one JSON object a line; returns the file's absolute path as a string.
    pub fn write_events(&self, rel: &str, events: &[Value]) -> String {
        let mut text = String::new();
        for e in events {
            text.push_str(&e.to_string());
            text.push('\n');
        }
        self.write(rel, &text).display().to_string()
    }

    /// Copies `examples/<rel>` into the temp dir under its file name; returns the copy.
    pub fn copy_example(&self, rel: &str) -> PathBuf {
        let src = examples_dir().join(rel);
        assert!(src.exists(), "{} does not exist (yet?)", src.display());
        let dest = self.path(src.file_name().and_then(|n| n.to_str()).expect("file name"));
        copy_file(&src, &dest);
        dest
    }

    /// Copies the directory `examples/<rel>` to `<temp dir>/<rel>`; returns the copy.
    pub fn copy_example_dir(&self, rel: &str) -> PathBuf {
        let src = examples_dir().join(rel);
        assert!(src.is_dir(), "{} does not exist (yet?)", src.display());
        let dest = self.path(rel);
        copy_dir(&src, &dest);
        dest
    }

    /// Copies `tests/fixtures/<rel>` into the temp dir under its file name; returns the copy.
    pub fn copy_fixture(&self, rel: &str) -> PathBuf {
        let src = fixtures_dir().join(rel);
        let dest = self.path(src.file_name().and_then(|n| n.to_str()).expect("file name"));
        copy_file(&src, &dest);
        dest
    }

    /// A command running the orchestrator binary in the temp dir.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("orchestrator"));
        cmd.current_dir(self.dir()).stdin(Stdio::null());
        cmd
    }

    /// `orchestrator validate <bundle>` in the temp dir, to completion.
    pub fn validate(&self, bundle: &str) -> Output {
        self.command()
            .args(["validate", bundle])
            .output()
            .expect("run orchestrator validate")
    }

    /// Writes `bundle.yaml` and starts `orchestrator run bundle.yaml --state-dir state`.
    pub fn start(&mut self, bundle: &str) {
        self.write("bundle.yaml", bundle);
        self.start_file("bundle.yaml");
    }

    /// Starts `orchestrator run <rel> --state-dir state` on a bundle already in the temp dir.
    pub fn start_file(&mut self, rel: &str) {
        self.start_file_with(rel, &[]);
    }

    /// Writes `bundle.yaml` and starts it with `extra` arguments to `run`.
    pub fn start_with(&mut self, bundle: &str, extra: &[&str]) {
        self.write("bundle.yaml", bundle);
        self.start_file_with("bundle.yaml", extra);
    }

    /// [`Harness::start_file`] with `extra` arguments to `run`.
    pub fn start_file_with(&mut self, rel: &str, extra: &[&str]) {
        assert!(self.child.is_none(), "already started");
        let stdout = File::create(self.path("orchestrator.stdout")).expect("stdout file");
        let stderr = File::create(self.path("orchestrator.stderr")).expect("stderr file");
        let child = self
            .command()
            .args(["run", rel, "--state-dir"])
            .arg(self.state())
            .args(extra)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn orchestrator");
        self.child = Some(child);
    }

    /// Starts `bundle.yaml` again on the same state directory, once the
    /// orchestrator has exited (after [`Harness::wait_exit`]).
    pub fn start_again(&mut self) {
        assert!(self.status.is_some(), "the orchestrator has not exited");
        self.child = None;
        self.status = None;
        self.start_file("bundle.yaml");
    }

    /// The orchestrator's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    /// Whether the orchestrator is still running (reaps it if not).
    pub fn is_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait().expect("try_wait") {
            None => true,
            Some(status) => {
                self.status = Some(status);
                false
            }
        }
    }

    /// What the orchestrator wrote to stderr.
    pub fn stderr(&self) -> String {
        read(&self.path("orchestrator.stderr"))
    }

    /// `state/logs/agents/<agent>/<escaped key>.log`.
    pub fn agent_log_path(&self, agent: &str, key: &str) -> PathBuf {
        self.state()
            .join("logs/agents")
            .join(agent)
            .join(format!("{}.log", escape_key(key)))
    }

    /// The log of one agent instance ("" while it does not exist).
    pub fn agent_log(&self, agent: &str, key: &str) -> String {
        read(&self.agent_log_path(agent, key))
    }

    /// The log of one Connection's connector process ("" while it does not exist).
    pub fn connection_log(&self, name: &str) -> String {
        read(
            &self
                .state()
                .join("logs/connections")
                .join(format!("{name}.log")),
        )
    }

    /// `state/logs/orchestrator.log`.
    pub fn orchestrator_log(&self) -> String {
        read(&self.state().join("logs/orchestrator.log"))
    }

    /// Every delivery the instance's agent process(es) printed, in order.
    pub fn received(&self, agent: &str, key: &str) -> Vec<Value> {
        parse_received(&self.agent_log(agent, key))
    }

    /// The texts of [`received`](Self::received).
    pub fn texts(&self, agent: &str, key: &str) -> Vec<String> {
        self.received(agent, key)
            .iter()
            .map(|r| {
                r["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("received without text: {r}"))
                    .to_owned()
            })
            .collect()
    }

    /// `(agent, escaped key)` of every agent log file there is.
    pub fn agent_instances(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Ok(agents) = std::fs::read_dir(self.state().join("logs/agents")) else {
            return out;
        };
        for agent in agents.flatten() {
            let Ok(files) = std::fs::read_dir(agent.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".log") {
                    out.push((
                        agent.file_name().to_string_lossy().into_owned(),
                        stem.to_owned(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// Every log file under `state/logs`, with its contents.
    pub fn all_logs(&self) -> Vec<(PathBuf, String)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), read(&p)));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.state().join("logs"), &mut out);
        out
    }

    /// The pid of every child process the orchestrator noted starting, in any log.
    pub fn child_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .all_logs()
            .iter()
            .flat_map(|(_, text)| started_pids(text))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The orchestrator's stderr and every log, for a failure message.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "==== temp dir {}", self.dir().display());
        let _ = writeln!(
            out,
            "==== orchestrator stderr\n{}",
            tail(&self.stderr(), 8 << 10)
        );
        for (path, text) in self.all_logs() {
            let shown = path.strip_prefix(self.dir()).unwrap_or(&path);
            let _ = writeln!(out, "==== {}\n{}", shown.display(), tail(&text, 6 << 10));
        }
        out
    }

    /// Polls `cond` every ~20 ms until it holds; past `deadline`, panics naming
    /// `what` with the orchestrator's stderr and the logs.
    pub fn wait_until(&self, what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if cond() {
                return;
            }
            if start.elapsed() > deadline {
                panic!(
                    "timed out after {deadline:?} waiting for: {what}\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `agent`/`key` has printed at least `n` deliveries; returns them.
    pub fn wait_received(&self, agent: &str, key: &str, n: usize) -> Vec<Value> {
        let what = format!("{n} deliveries to {agent}/{key}");
        self.wait_until(&what, DEADLINE, || self.received(agent, key).len() >= n);
        self.received(agent, key)
    }

    /// Sends `signal` to the orchestrator.
    pub fn signal(&self, signal: i32) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits (up to `deadline`) for the orchestrator to exit; returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        self.wait_until("the orchestrator to exit", deadline, || {
            let child = self.child.as_ref().expect("started");
            // try_wait needs &mut; waitpid(WNOHANG) would reap, so peek at /proc instead.
            !pid_alive(child.id())
        });
        let status = self.child.as_mut().expect("started").wait().expect("wait");
        self.status = Some(status);
        status
    }

    /// SIGTERM, then waits for the exit (panics with the logs if it takes longer than 15 s).
    pub fn stop(&mut self) -> ExitStatus {
        if self.is_running() {
            self.signal(libc::SIGTERM);
        }
        self.wait_exit(Duration::from_secs(15))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && self.status.is_none()
            && matches!(child.try_wait(), Ok(None))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The time a log line (`<RFC 3339 time> <source> <text>`) was written.
pub fn line_time(line: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(line.split_whitespace().next()?).ok()
}

/// The lines of `log` that contain `needle`, each with its time.
pub fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<(SystemTime, &'a str)> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| Some((line_time(l)?, l)))
        .collect()
}

/// How many lines of `log` contain `needle`.
pub fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// `b - a`, or zero when `b` is earlier.
pub fn gap(a: SystemTime, b: SystemTime) -> Duration {
    b.duration_since(a).unwrap_or_default()
}

/// SIGKILLs each of its pids still alive when dropped: for processes a test
/// expects to be gone, so that a failing test leaves none behind.
#[derive(Debug, Default)]
pub struct KillOnDrop(pub Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if pid > 1 && pid_alive(pid) {
                // SAFETY: kill(2) on a pid this test saw started; no memory is involved.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}

/// A running `orchestrator logs … -f`: its stdout lines arrive on a channel,
/// read by a thread, each with the moment it was read.
#[derive(Debug)]
pub struct LogFollower {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Every line read so far, in order.
    pub seen: Vec<String>,
}

impl LogFollower {
    /// Waits up to `deadline` for a line that satisfies `cond`; returns it
    /// and when it was read, or `None` (the lines seen are in `seen`).
    pub fn wait_line(
        &mut self,
        deadline: Duration,
        mut cond: impl FnMut(&str) -> bool,
    ) -> Option<(Instant, String)> {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    self.seen.push(line.clone());
                    if cond(&line) {
                        return Some((at, line));
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, CLI and feed helpers.
impl Harness {
    /// `orchestrator <args…> --state-dir <state>` in the temp dir, to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .output()
            .expect("run the orchestrator CLI")
    }

    /// The `processes` of `orchestrator status --json`, or why not.
    pub fn try_status(&self) -> Result<Vec<Value>, String> {
        status_rows(self.dir(), &self.state())
    }

    /// The `processes` of `orchestrator status --json` (panics with the logs if it fails).
    pub fn status(&self) -> Vec<Value> {
        self.try_status()
            .unwrap_or_else(|e| panic!("{e}\n{}", self.dump()))
    }

    /// The status row of `target` (`connection/<name>`, `agent/<name>/<key>`).
    pub fn process(&self, target: &str) -> Option<Value> {
        self.try_status()
            .ok()?
            .into_iter()
            .find(|p| p["target"] == target)
    }

    /// Polls `status --json` until `target`'s row satisfies `cond`; returns that row.
    pub fn wait_process(
        &self,
        what: &str,
        target: &str,
        deadline: Duration,
        mut cond: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut found = None;
        let what = format!("{target}: {what}");
        self.wait_until(&what, deadline, || {
            found = self.process(target).filter(|p| cond(p));
            found.is_some()
        });
        found.expect("found")
    }

    /// Appends `events` to the file `rel` (one JSON object a line), which a
    /// `test-feeder` connection follows; returns its absolute path.
    pub fn feed(&self, rel: &str, events: &[Value]) -> String {
        use std::io::Write as _;
        let path = self.path(rel);
        let mut text = String::new();
        for e in events {
            text.push_str(&e.to_string());
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open feed");
        f.write_all(text.as_bytes()).expect("append to feed");
        path.display().to_string()
    }

    /// Starts `orchestrator logs <args…> --state-dir <state>` with its stdout piped.
    pub fn follow_logs(&self, args: &[&str]) -> LogFollower {
        let mut child = self
            .command()
            .args(["logs"])
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn orchestrator logs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        LogFollower {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }
}

/// The pid of every `test-peer pid=<n> mode=…` line the peer wrote to
/// stderr in `log` (not their copies in crash records), in order: one per run.
pub fn peer_pids(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.split_once(" stderr test-peer pid=").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// A `test-feeder` Connection `feed` (following `feed.jsonl` in the temp
/// dir) routed by `chat_id` to the Agent `echo` (`agent-echo`, frames):
/// a way to send an event whenever a test chooses. `@AGENT_EXTRA@` is spliced
/// into the agent's spec.
const FEEDER: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: feeder }
spec:
  entry: test-feeder
  events:
    - name: user_message
      properties: { chat_id: { type: string } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: feed }
spec:
  connectorRef: Connector/feeder
  config: { FEED: "@FEED@" }
  ingress:
    rules:
      - route: { instanceKeyProperty: chat_id }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/echo, agents: [Agent/echo] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: echo }
spec:
  entry: agent-echo
  protocol: frames
  @AGENT_EXTRA@
"#;

/// The feeder bundle of `h`, with `agent_extra` (spec lines, indented by 2)
/// in the agent's spec and `extra` documents after it.
pub fn feeder_bundle(h: &Harness, agent_extra: &str, extra: &str) -> String {
    let feed = h.path("feed.jsonl").display().to_string();
    let mut b = FEEDER
        .replace("@FEED@", &feed)
        .replace("@AGENT_EXTRA@", agent_extra);
    if !extra.trim().is_empty() {
        b.push_str("\n---\n");
        b.push_str(extra.trim());
        b.push('\n');
    }
    b
}

/// A `user_message` for the feeder, keyed by `chat_id`.
pub fn feed_msg(text: &str, key: &str) -> Value {
    event("user_message", text, &[("chat_id", key)], None)
}

/// A status row's `state`.
pub fn state_of(p: &Value) -> &str {
    p["state"].as_str().unwrap_or_default()
}

/// What one HTTP request got back.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The status and header lines, lower-cased.
    pub head: String,
    /// The body.
    pub body: String,
}

impl HttpAnswer {
    /// The body as JSON (panics, showing it, if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim())
    }
}

/// One HTTP/1.1 POST on a fresh connection; `Err` when the server cannot be
/// reached or does not answer (e.g. it is being restarted).
pub fn try_http_post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpAnswer> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    // A server may answer (413) and close before reading all of a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {raw:?}")))?;
    Ok(HttpAnswer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    })
}

/// [`try_http_post`], panicking on a failed connection.
pub fn http_post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpAnswer {
    try_http_post(addr, path, headers, body)
        .unwrap_or_else(|e| panic!("POST {path} to {addr}: {e}"))
}

/// The `processes` of `orchestrator status --json` run in `dir` on the state
/// directory `state`, or why not (for callers without a [`Harness`], such as
/// a sampling thread).
pub fn status_rows(dir: &Path, state: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new(bin("orchestrator"))
        .current_dir(dir)
        .args(["status", "--json", "--state-dir"])
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run orchestrator status: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "status exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "status --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    json["processes"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no processes array in {json}"))
}

/// Every delivery `delivery-agent` recorded in `dir` for instance `key`
/// (`<dir>/<key>.jsonl`), in order. A line still being written (no newline
/// yet) is left for the next read.
pub fn delivery_records(dir: &Path, key: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{key}.jsonl"))).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l:?}: {e}")))
        .collect()
}
