//! The relay with a window: one thread that forwards to N agents (one per
//! key), each with at most WINDOW deliveries unanswered, the rest queued per
//! agent, as the orchestrator's `maxInFlight` does.
//!
//! It reads only what it needs: the connector while some agent is idle
//! (room in its window, nothing queued), an agent while it has deliveries
//! out. Blocking, it waits in `read(2)` when one channel is wanted and in
//! `poll(2)` when several are; spinning, it never sleeps and tries every
//! wanted channel without blocking, over and over. Acks to the connector
//! go out 1,024 at a time, or before it waits on the connector (the
//! orchestrator too acks a batch at a time, per journal commit).

use std::collections::{HashMap, VecDeque};

use ipc_proto::{EmitAck, Event, FromAgent, FromConnector, ToConnector};

use crate::deliver;
use crate::wire::{In, Out, Res};

/// Acks to the connector wait for this many more, or until the relay
/// waits on the connector (its window is 4,096).
const ACK_BATCH: u64 = 1024;

pub struct Agent {
    pub rx: In,
    pub tx: Out,
    pub in_flight: u64,
    pub queue: VecDeque<Event>,
}

pub struct Relay {
    pub conn_rx: In,
    pub conn_tx: Out,
    pub agents: Vec<Agent>,
    /// Instance key → agent.
    pub keys: HashMap<String, usize>,
    pub count: u64,
    pub window: u64,
    pub spin: bool,
}

impl Relay {
    /// Forwards `count` events; the number of agent acks.
    pub fn run(&mut self) -> Res<u64> {
        if self.spin {
            for a in &mut self.agents {
                a.rx.set_nonblocking()?;
            }
            self.conn_rx.set_nonblocking()?;
        }
        let (mut emits, mut acks, mut unflushed_acks, mut ids) = (0u64, 0u64, 0u64, 0u64);
        let mut polled: Vec<libc::pollfd> = Vec::new();
        // Which channel each pollfd is: None the connector, Some(i) agent i.
        let mut whose: Vec<Option<usize>> = Vec::new();
        while acks < self.count {
            while let Some(msg) = self.conn_rx.next::<FromConnector>()? {
                let FromConnector::Emit(emit) = msg else {
                    continue;
                };
                emits += 1;
                unflushed_acks += 1;
                self.conn_tx.send(&ToConnector::Ack(EmitAck {
                    seq: emit.seq,
                    duplicate: None,
                }))?;
                let key = emit.event.instance_key.as_deref().unwrap_or_default();
                let Some(&i) = self.keys.get(key) else {
                    return Err(format!("an emit for key {key:?}, which has no agent"));
                };
                let a = &mut self.agents[i];
                if a.in_flight < self.window && a.queue.is_empty() {
                    ids += 1;
                    a.tx.send(&deliver(ids, emit.event))?;
                    a.in_flight += 1;
                } else {
                    a.queue.push_back(emit.event);
                }
            }
            for a in &mut self.agents {
                while let Some(msg) = a.rx.next::<FromAgent>()? {
                    if let FromAgent::Ack(_) = msg {
                        acks += 1;
                        a.in_flight = a.in_flight.saturating_sub(1);
                    }
                }
                while a.in_flight < self.window
                    && let Some(e) = a.queue.pop_front()
                {
                    ids += 1;
                    a.tx.send(&deliver(ids, e))?;
                    a.in_flight += 1;
                }
                a.tx.flush()?;
            }
            if acks >= self.count {
                break;
            }
            let want_connector = emits < self.count
                && self
                    .agents
                    .iter()
                    .any(|a| a.in_flight < self.window && a.queue.is_empty());
            if unflushed_acks >= ACK_BATCH || (want_connector && self.conn_tx.pending()) {
                self.conn_tx.flush()?;
                unflushed_acks = 0;
            }
            if self.conn_rx.eof && want_connector {
                return Err(format!("the connector ended after {emits} emits"));
            }
            if let Some(a) = self.agents.iter().find(|a| a.rx.eof && a.in_flight > 0) {
                return Err(format!("an agent ended with {} unanswered", a.in_flight));
            }
            polled.clear();
            whose.clear();
            if want_connector {
                polled.push(pollfd(self.conn_rx.fd()));
                whose.push(None);
            }
            for (i, a) in self.agents.iter().enumerate() {
                if a.in_flight > 0 {
                    polled.push(pollfd(a.rx.fd()));
                    whose.push(Some(i));
                }
            }
            if self.spin {
                for w in &whose {
                    self.rx(*w).fill(true)?;
                }
                continue;
            }
            match whose.as_slice() {
                [] => return Err("nothing to wait for (a bug)".into()),
                [one] => {
                    self.rx(*one).fill(false)?;
                }
                _ => {
                    // SAFETY: poll(2) on our own array of pollfds.
                    let n = unsafe {
                        libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, -1)
                    };
                    if n < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.kind() != std::io::ErrorKind::Interrupted {
                            return Err(format!("poll: {e}"));
                        }
                    }
                    for (p, w) in polled.iter().zip(&whose) {
                        if p.revents != 0 {
                            self.rx(*w).fill(false)?;
                        }
                    }
                }
            }
        }
        self.conn_tx.flush()?;
        Ok(acks)
    }

    fn rx(&mut self, whose: Option<usize>) -> &mut In {
        match whose {
            None => &mut self.conn_rx,
            Some(i) => &mut self.agents[i].rx,
        }
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
