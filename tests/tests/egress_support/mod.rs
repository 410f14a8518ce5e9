//! What the egress tests share: a plain HTTP "outside" on 127.0.0.2, the
//! orchestrator run with `--metrics`, the Python interpreter, and readers
//! of the probe's log, `audit.log` and `/metrics`.
#![allow(dead_code)] // each test file uses its own part

pub mod fakes;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Child;
use std::sync::{Arc, Mutex};

use e2e::Harness;
use serde_json::Value;

/// A plain HTTP server on 127.0.0.2 that answers `hello <path>` and keeps
/// each request's first line and Host header.
pub struct Upstream {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<String>>>,
}

pub fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.2:0").expect("listen on 127.0.0.2");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut host = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = v.trim().to_string();
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("?").to_string();
            keep.lock()
                .expect("lock")
                .push(format!("{} host={host}", first.trim()));
            let body = format!("hello {path}");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Upstream { port, seen }
}

/// The orchestrator, started with `env` and `--metrics`; SIGTERMed on drop.
pub struct Run(Child);

impl Run {
    /// Runs `bundle.yaml` of the temp dir.
    pub fn start(h: &Harness, env: &[(&str, &str)]) -> Self {
        Self::start_at(h, "bundle.yaml", env)
    }

    /// Runs the bundle at `rel` (a file or a directory) of the temp dir.
    pub fn start_at(h: &Harness, rel: &str, env: &[(&str, &str)]) -> Self {
        let out = std::fs::File::create(h.path("orchestrator.stdout")).expect("stdout");
        let err = std::fs::File::create(h.path("orchestrator.stderr")).expect("stderr");
        let child = h
            .command()
            .args(["run", rel, "--metrics", "127.0.0.1:0", "--state-dir"])
            .arg(h.state())
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn orchestrator");
        Run(child)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// The Python interpreter and the prefix it needs to read (when outside
/// the system paths every sandboxed child may read).
pub fn python() -> (String, Option<String>) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.executable); print(sys.base_prefix)",
        ])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let exe = lines.next().expect("sys.executable").to_string();
    let exe = std::fs::canonicalize(&exe)
        .map(|p| p.display().to_string())
        .unwrap_or(exe);
    let prefix = lines.next().expect("sys.base_prefix").to_string();
    let system = ["/usr", "/bin", "/lib", "/opt"]
        .iter()
        .any(|s| prefix == *s || prefix.starts_with(&format!("{s}/")));
    (exe, (!system).then_some(prefix))
}

/// The outcome of `check` in the probe's log (`ok …` or `err …`).
pub fn outcome(log: &str, check: &str) -> String {
    let needle = format!(" check {check}: ");
    log.lines()
        .find_map(|l| l.split_once(&needle).map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("no outcome for {check}\n{log}"))
}

pub fn audit_records(h: &Harness) -> Vec<Value> {
    std::fs::read_to_string(h.state().join("audit.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with('}'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &Value| r["kind"] == "egress_refused")
        .collect()
}

pub fn scrape(h: &Harness) -> String {
    use std::io::Read;
    let addr = std::fs::read_to_string(h.state().join("metrics.address")).expect("address");
    let mut conn = std::net::TcpStream::connect(addr.trim()).expect("connect");
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: m\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    conn.read_to_string(&mut text).expect("response");
    text
}

/// The value of the metric line starting with `prefix` (`name{labels}`), or 0.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A bundle whose Connection `p` runs `egress_probe.py` (copy it in) with
/// `sandbox.network: <network>` and config CHECKS `checks`.
pub fn bundle(network: &str, checks: &str) -> String {
    let (python, prefix) = python();
    let filesystem = prefix
        .map(|p| format!(", filesystem: {{ readOnly: [\"{p}\"] }}"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: probe }}
spec:
  entry: {python}
  args: [egress_probe.py]
  protocol: jsonl
  env: {{ NO_PROXY: "*", no_proxy: "*" }}
  events: [ {{ name: probe }} ]
  restart: {{ policy: never }}
  sandbox: {{ network: {network}{filesystem} }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: p }}
spec:
  connectorRef: Connector/probe
  config: {{ CHECKS: "{checks}" }}
  ingress: {{ rules: [ {{ route: {{}} }} ] }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/a, agents: [Agent/a] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: a }}
spec: {{ entry: test-agent, protocol: frames }}
"#
    )
}
