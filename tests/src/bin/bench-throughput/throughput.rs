//! The throughput rows: each orchestrator row beside the relay of its own
//! shape (as many agent processes as it has keys, a window of its
//! `maxInFlight`), measured in the same run.

use crate::orch::{self, Measured, Run, Transport, journal_name};
use crate::relay::{self, AGENT_SWITCHES, RELAY_SWITCHES, Shape};
use crate::report::thousands;
use crate::{cpu_per_event, holds, push};

/// A throughput row: (transport, durable, keys, maxInFlight, target events/s,
/// target share of the relay with no window).
type Row = (Transport, bool, u64, u32, Option<f64>, Option<f64>);

const ROWS: [Row; 6] = [
    (Transport::Jsonl, true, 1, 1, Some(60_000.0), None),
    (Transport::Jsonl, true, 4, 1, None, None),
    (Transport::Jsonl, true, 1, 256, Some(300_000.0), Some(0.16)),
    (Transport::Jsonl, false, 1, 256, None, Some(0.20)),
    (Transport::Frames, true, 64, 1, Some(100_000.0), None),
    (Transport::Frames, true, 4, 256, Some(400_000.0), None),
];

/// The relay of an orchestrator row's shape (blocking).
fn shape_of(t: Transport, keys: u64, in_flight: u32) -> Shape {
    Shape {
        t,
        agents: keys,
        window: u64::from(in_flight),
        spin: false,
    }
}

/// Per-event context switches of a relay run: relay, agents.
fn switches(m: &Measured, n: u64) -> (f64, f64) {
    let per = |k| m.cpu.get(k).copied().unwrap_or(0.0) / n as f64;
    (per(RELAY_SWITCHES), per(AGENT_SWITCHES))
}

/// Runs the relays the selected rows (1-based; all when empty) need, then
/// those rows; adds them to `table`. Returns notes to print below it.
pub fn rows(table: &mut Vec<[String; 7]>, n: u64, only: &[usize]) -> Vec<String> {
    let selected: Vec<Row> = ROWS
        .into_iter()
        .enumerate()
        .filter(|(i, _)| only.is_empty() || only.contains(&(i + 1)))
        .map(|(_, r)| r)
        .collect();
    let mut shapes = vec![
        Shape::open(Transport::Jsonl),
        Shape::open(Transport::Frames),
    ];
    for &(t, _, keys, in_flight, ..) in &selected {
        let s = shape_of(t, keys, in_flight);
        let spinning = Shape { spin: true, ..s };
        for s in [Some(s), (keys == 1 && in_flight == 1).then_some(spinning)]
            .into_iter()
            .flatten()
        {
            if !shapes.contains(&s) {
                shapes.push(s);
            }
        }
    }

    let mut relays: Vec<(Shape, f64)> = Vec::new();
    let mut notes = Vec::new();
    for shape in shapes {
        eprintln!("relay: {}, {n} events …", shape.describe());
        let m = relay::measure(shape, n, 0, false);
        let (sw_relay, sw_agent) = switches(&m, n);
        push(
            table,
            [
                format!(
                    "relay, {} (the least an orchestrator can do)",
                    shape.describe()
                ),
                format!("{} events/s", thousands(m.events_per_sec)),
                "—".into(),
                "100%".into(),
                "—".into(),
                "—".into(),
                format!(
                    "{} (relay first; context switches/event: relay {sw_relay:.2}, agents {sw_agent:.2})",
                    cpu_per_event(&m, n)
                ),
            ],
        );
        if shape.agents == 1 && shape.window == 1 {
            let per_event = 1e6 / m.events_per_sec;
            let cpu = |k| m.cpu.get(k).copied().unwrap_or(0.0) * 1e6 / n as f64;
            let (agent, relay_cpu) = (cpu("agents"), cpu("orchestrator"));
            let rest = (per_event - agent - relay_cpu).max(0.0);
            let why = if shape.spin {
                "the relay never sleeps, so then it had no CPU (its context switches are preemptions)"
            } else {
                "a wake-up on its way, or a CPU to get"
            };
            let rest = format!(
                "the rest, {rest:.1} µs ({:.0}%), neither runs: {why}",
                rest / per_event * 100.0
            );
            notes.push(format!(
                "Relay {}: {per_event:.1} µs per event, each one round trip through the agent; of it the agent's CPU {agent:.1} µs ({:.0}%), the relay's {relay_cpu:.1} µs ({:.0}%); {rest}. The agent sleeps in read(2) between events ({sw_agent:.2} context switches/event), the relay {sw_relay:.2}/event.",
                shape.describe(),
                agent / per_event * 100.0,
                relay_cpu / per_event * 100.0,
            ));
        }
        relays.push((shape, m.events_per_sec));
    }
    let rate_of = |s: Shape| {
        relays
            .iter()
            .find(|(r, _)| *r == s)
            .map_or(f64::NAN, |r| r.1)
    };

    for (t, durable, keys, in_flight, target, share) in selected {
        eprintln!(
            "orchestrator: {}, {} journal, {keys} keys, maxInFlight {in_flight}, {n} events …",
            t.name(),
            journal_name(durable)
        );
        let m = orch::measure(&Run {
            transport: t,
            durable,
            keys,
            count: n,
            rate: 0,
            stamp: false,
            in_flight,
        });
        let shape = shape_of(t, keys, in_flight);
        let relay = rate_of(shape);
        let ratio = m.events_per_sec / relay;
        let mut relay_text = format!("{} events/s", thousands(relay));
        let mut ratio_text = format!("{:.1}%", ratio * 100.0);
        let spinning = rate_of(Shape {
            spin: true,
            ..shape
        });
        if spinning.is_finite() {
            relay_text += &format!(" (spinning: {} events/s)", thousands(spinning));
            ratio_text += &format!(" ({:.1}% of spinning)", m.events_per_sec / spinning * 100.0);
        }
        let mut targets = Vec::new();
        let mut ok = true;
        if let Some(x) = target {
            targets.push(format!("≥ {} events/s", thousands(x)));
            ok &= m.events_per_sec >= x;
        }
        if let Some(s) = share {
            let open = m.events_per_sec / rate_of(Shape::open(t));
            targets.push(format!(
                "≥ {:.0}% of the relay with no window ({:.1}%)",
                s * 100.0,
                open * 100.0
            ));
            ok &= open >= s;
        }
        let nacked = if m.nacked > 0 {
            format!(" ({} nacked)", m.nacked)
        } else {
            String::new()
        };
        push(
            table,
            [
                format!(
                    "orchestrator, {}, {keys} key{}, maxInFlight {in_flight}, {}",
                    t.name(),
                    if keys == 1 { "" } else { "s" },
                    journal_name(durable)
                ),
                format!("{} events/s{nacked}", thousands(m.events_per_sec)),
                relay_text,
                ratio_text,
                targets.join(", "),
                if targets.is_empty() {
                    "—".into()
                } else {
                    holds(ok).into()
                },
                cpu_per_event(&m, n),
            ],
        );
    }
    notes
}
