//! The relay baselines: `bench-relay` runs the same connector and agent
//! programs with no orchestrator between them, only a forwarder, in the
//! shape of an orchestrator row (agents, window) or none.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use e2e::{Harness, bin};

use crate::orch::{Measured, Transport, collect};

/// Keys of a relay run's context switches in [`Measured::cpu`].
pub const RELAY_SWITCHES: &str = "relay context switches";
pub const AGENT_SWITCHES: &str = "agent context switches";

/// The shape of a relay: `agents` agent processes, one per key, each with at
/// most `window` deliveries unanswered (0: no window, one agent), waiting by
/// blocking or by spinning.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Shape {
    pub t: Transport,
    pub agents: u64,
    pub window: u64,
    pub spin: bool,
}

impl Shape {
    /// The relay with no window and one agent.
    pub fn open(t: Transport) -> Self {
        Self {
            t,
            agents: 1,
            window: 0,
            spin: false,
        }
    }

    pub fn describe(&self) -> String {
        let agents = match self.agents {
            1 => "1 agent".to_owned(),
            n => format!("{n} agents (one per key)"),
        };
        let window = match self.window {
            0 => "no window".to_owned(),
            w => format!("window {w} per agent"),
        };
        let wait = if self.spin {
            ", spinning (non-blocking reads, never sleeps)"
        } else if self.window > 0 {
            ", blocking reads"
        } else {
            ""
        };
        format!("{}, {agents}, {window}{wait}", self.t.name())
    }
}

/// `count` events through `bench-relay` in `shape`, at `rate`/s (0: unpaced).
pub fn measure(shape: Shape, count: u64, rate: u64, stamp: bool) -> Measured {
    let h = Harness::new();
    let t = shape.t;
    let out = Command::new(bin("bench-relay"))
        .arg(t.name())
        .arg(bin(t.connector()))
        .arg(bin(t.agent()))
        .arg(h.dir())
        .args([
            count.to_string(),
            rate.to_string(),
            stamp.to_string(),
            shape.window.to_string(),
            shape.agents.to_string(),
            if shape.spin { "spin" } else { "block" }.to_string(),
        ])
        .output()
        .expect("run bench-relay");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench-relay {shape:?} failed ({}): {text}",
        out.status
    );
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(field("acks") as u64, count, "the relay counted every ack");
    let cpu: BTreeMap<&'static str, f64> = [
        ("orchestrator", field("cpu_relay")),
        ("connector", field("cpu_connector")),
        ("agents", field("cpu_agent")),
        (RELAY_SWITCHES, field("switches_relay")),
        (AGENT_SWITCHES, field("switches_agent")),
    ]
    .into();
    let agent_dirs: Vec<PathBuf> = (0..shape.agents)
        .map(|i| h.path(&format!("agents/k{i}")))
        .collect();
    collect(&h.path("connector/result.json"), &agent_dirs, count, cpu)
}
