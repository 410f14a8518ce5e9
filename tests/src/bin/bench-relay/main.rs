//! `bench-relay`: the baseline of `bench-throughput`, "the least an
//! orchestrator can do". It starts the same connector and agent programs the
//! orchestrator runs, with the same channels (jsonl: the child's stdin and
//! stdout pipes; frames: a socketpair at fd 3, `ORCHESTRATOR_IPC_FD=3`), sends
//! each its `init`, and then, for every `emit` it reads, acks it to the
//! connector and forwards it to the agent of its key as a `deliver`. No
//! journal: messages are decoded and encoded with `ipc-proto` as the
//! orchestrator does, and writes are coalesced (one `write(2)` per channel
//! for all that is ready to go).
//!
//! ```text
//! bench-relay TRANSPORT CONNECTOR AGENT DIR COUNT RATE STAMP [WINDOW [AGENTS [spin]]]
//! ```
//!
//! TRANSPORT is `jsonl` or `frames`; CONNECTOR and AGENT are programs (the
//! `bench-*connector` and `bench-*agent` bins); the connector's state dir is
//! `DIR/connector`, agent `i`'s `DIR/agents/k<i>` (where they write their
//! `result.json`); COUNT events, offered at RATE/s (0: unpaced), STAMP `true`
//! to carry send times.
//!
//! - WINDOW 0 (the default): no window, one agent; a second thread counts
//!   the agent's acks.
//! - WINDOW ≥ 1: AGENTS agent processes (default 1), one per key `k0`…
//!   (the connector spreads its emits over them round robin, as it does in
//!   the orchestrator's rows), each with at most WINDOW deliveries
//!   unanswered, like `maxInFlight`; one thread forwards (`windowed.rs`).
//!   With `spin` it never sleeps: it busy-polls every channel it waits on
//!   with non-blocking reads, the most a forwarder that burns a core can get.
//!
//! Prints one line: `acks=<n> cpu_relay=<s> cpu_connector=<s> cpu_agent=<s>
//! switches_relay=<n> switches_agent=<n>` (CPU seconds of each, all agents
//! summed; context switches of each, each a sleep and its wake-up or a
//! preemption).

mod windowed;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, ExitCode};

use ipc_proto::{
    AgentInit, ConnectorInit, Deliver, DeliveredEvent, EmitAck, Event, FromAgent, FromConnector,
    Secrets, Shutdown, ToAgent, ToConnector,
};

use wire::{In, Out, Res, Transport, spawn};

const USAGE: &str =
    "usage: bench-relay TRANSPORT CONNECTOR AGENT DIR COUNT RATE STAMP [WINDOW [AGENTS [spin]]]";

/// The `deliver` of the relay's `n`th forwarded event.
pub fn deliver(n: u64, e: Event) -> ToAgent {
    let id = format!("00000000-0000-7000-8000-{n:012x}");
    ToAgent::Deliver(Deliver {
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
            received_at: "2026-11-30T00:00:00Z".into(),
            payload: None,
        },
    })
}

struct Args {
    t: Transport,
    connector: PathBuf,
    agent: PathBuf,
    dir: PathBuf,
    count: u64,
    rate: String,
    stamp: String,
    window: u64,
    agents: u64,
    spin: bool,
}

fn parse(args: &[String]) -> Res<Args> {
    let [t, c, a, d, n, r, s, rest @ ..] = args else {
        return Err(USAGE.into());
    };
    let num = |what: &str, v: Option<&String>, default: u64| -> Res<u64> {
        v.map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("{what} {v:?}: {e}"))
        })
    };
    let parsed = Args {
        t: match t.as_str() {
            "jsonl" => Transport::Jsonl,
            "frames" => Transport::Frames,
            other => return Err(format!("transport {other:?}: jsonl or frames")),
        },
        connector: c.into(),
        agent: a.into(),
        dir: d.into(),
        count: num("COUNT", Some(n), 0)?,
        rate: r.clone(),
        stamp: s.clone(),
        window: num("WINDOW", rest.first(), 0)?,
        agents: num("AGENTS", rest.get(1), 1)?.max(1),
        spin: match rest.get(2).map(String::as_str) {
            None | Some("block") => false,
            Some("spin") => true,
            Some(other) => return Err(format!("{other:?}: spin or block; {USAGE}")),
        },
    };
    if rest.len() > 3 {
        return Err(USAGE.into());
    }
    if parsed.window == 0 && (parsed.agents > 1 || parsed.spin) {
        return Err("more than one agent, or spin, needs a WINDOW".into());
    }
    if !parsed.count.is_multiple_of(parsed.agents) {
        return Err(format!(
            "COUNT {} does not split evenly over {} agents",
            parsed.count, parsed.agents
        ));
    }
    Ok(parsed)
}

struct Agent {
    child: Child,
    /// Lent to the ack counter while it runs.
    rx: Option<In>,
    tx: Out,
}

/// Starts the agents, one per key, and waits until each is ready.
fn start_agents(a: &Args) -> Res<Vec<Agent>> {
    let per_agent = (a.count / a.agents).to_string();
    let mut agents = Vec::new();
    for i in 0..a.agents {
        let dir = a.dir.join(format!("agents/k{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (child, rx, mut tx) = spawn(a.t, &a.agent, &[("EXPECT", per_agent.clone())])?;
        tx.send(&ToAgent::Init(AgentInit {
            protocol: ipc_proto::PROTOCOL_VERSION,
            agent: "sink".into(),
            instance_key: format!("k{i}"),
            swarm: "default".into(),
            state_dir: dir.display().to_string(),
            secrets: Secrets::default(),
        }))?;
        tx.flush()?;
        agents.push(Agent {
            child,
            rx: Some(rx),
            tx,
        });
    }
    for (i, agent) in agents.iter_mut().enumerate() {
        let rx = agent.rx.as_mut().ok_or("no channel")?;
        match rx.recv::<FromAgent>()? {
            Some(FromAgent::Ready(_)) => {}
            other => return Err(format!("agent k{i}: expected ready, got {other:?}")),
        }
    }
    Ok(agents)
}

/// No window, one agent: forwards on this thread, counts acks on another.
fn unwindowed(count: u64, c_rx: &mut In, c_tx: &mut Out, agent: &mut Agent) -> Res<u64> {
    let a_rx = agent.rx.take().ok_or("the agent's channel is gone")?;
    let counter = std::thread::spawn(move || -> Res<(u64, In)> {
        let mut a_rx = a_rx;
        let mut n = 0;
        while n < count {
            match a_rx.recv::<FromAgent>()? {
                Some(FromAgent::Ack(_)) => n += 1,
                Some(_) => {}
                None => break,
            }
        }
        Ok((n, a_rx))
    });
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
            agent.tx.send(&deliver(emits, emit.event))?;
        }
        // One write per side for all that one read brought.
        if !c_rx.has_message() {
            c_tx.flush()?;
            agent.tx.flush()?;
        }
    }
    c_tx.flush()?;
    agent.tx.flush()?;
    let (n, a_rx) = counter
        .join()
        .map_err(|_| "the ack counter panicked".to_owned())??;
    agent.rx = Some(a_rx);
    Ok(n)
}

fn run(args: &[String]) -> Res<()> {
    let a = parse(args)?;
    let c_dir = a.dir.join("connector");
    std::fs::create_dir_all(&c_dir).map_err(|e| format!("{}: {e}", c_dir.display()))?;

    // The agents first, so they are up before the first emit.
    let mut agents = start_agents(&a)?;
    let (mut conn_child, mut c_rx, mut c_tx) = spawn(a.t, &a.connector, &[])?;
    let config: BTreeMap<String, String> = [
        ("COUNT", a.count.to_string()),
        ("KEYS", a.agents.to_string()),
        ("WINDOW", "4096".into()),
        ("RATE", a.rate.clone()),
        ("STAMP", a.stamp.clone()),
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

    let acked = if a.window == 0 {
        unwindowed(a.count, &mut c_rx, &mut c_tx, &mut agents[0])?
    } else {
        let mut relay = windowed::Relay {
            conn_rx: c_rx,
            conn_tx: c_tx,
            agents: Vec::new(),
            keys: (0..a.agents)
                .map(|i| (format!("k{i}"), i as usize))
                .collect::<HashMap<_, _>>(),
            count: a.count,
            window: a.window,
            spin: a.spin,
        };
        let mut children = Vec::new();
        for agent in agents.drain(..) {
            children.push(agent.child);
            relay.agents.push(windowed::Agent {
                rx: agent.rx.ok_or("no channel")?,
                tx: agent.tx,
                in_flight: 0,
                queue: Default::default(),
            });
        }
        let acked = relay.run()?;
        for (child, ch) in children.into_iter().zip(relay.agents) {
            agents.push(Agent {
                child,
                rx: Some(ch.rx),
                tx: ch.tx,
            });
        }
        (c_rx, c_tx) = (relay.conn_rx, relay.conn_tx);
        acked
    };

    let agent_pids: Vec<u32> = agents.iter().map(|x| x.child.id()).collect();
    let tree = e2e::process_tree(std::process::id());
    let cpu = |pids: &[u32]| -> f64 {
        tree.iter()
            .filter(|p| pids.contains(&p.pid))
            .map(|p| p.cpu_secs)
            .sum()
    };
    let agent_switches: u64 = agent_pids
        .iter()
        .map(|&p| e2e::proc_stats::context_switches(p))
        .sum();
    println!(
        "acks={acked} cpu_relay={} cpu_connector={} cpu_agent={} switches_relay={} switches_agent={agent_switches}",
        cpu(&[std::process::id()]),
        cpu(&[conn_child.id()]),
        cpu(&agent_pids),
        e2e::proc_stats::context_switches(std::process::id()),
    );
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
    for agent in &mut agents {
        let _ = agent.tx.send(&ToAgent::Shutdown(bye.clone()));
        let _ = agent.tx.flush();
    }
    drop((c_tx, c_rx));
    let _ = conn_child.wait();
    for mut agent in agents {
        drop((agent.tx, agent.rx));
        let _ = agent.child.wait();
    }
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
