//! The relay baseline: `bench-relay` runs the same connector and agent
//! programs with no orchestrator between them, only a forwarder.

use std::collections::BTreeMap;
use std::process::Command;

use e2e::{Harness, bin};

use crate::orch::{Measured, Transport, collect};

/// `count` events on one key through `bench-relay`, at `rate`/s (0: unpaced),
/// at most `window` unanswered deliveries (0: no limit).
pub fn measure(t: Transport, count: u64, rate: u64, stamp: bool, window: u64) -> Measured {
    let h = Harness::new();
    let out = Command::new(bin("bench-relay"))
        .arg(t.name())
        .arg(bin(t.connector()))
        .arg(bin(t.agent()))
        .arg(h.dir())
        .args([
            count.to_string(),
            rate.to_string(),
            stamp.to_string(),
            window.to_string(),
        ])
        .output()
        .expect("run bench-relay");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench-relay {} failed ({}): {text}",
        t.name(),
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
    ]
    .into();
    collect(
        &h.path("connector/result.json"),
        &[h.path("agent")],
        count,
        cpu,
    )
}
