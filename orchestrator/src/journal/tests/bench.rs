//! `cargo test -p orchestrator --release --lib journal::tests::bench -- --ignored --nocapture`
//!
//! `bench` prints accepts per second for both backends with 1 and 64
//! concurrent callers, each caller awaiting its accept before the next (so
//! one caller pays a full commit per event and 64 share them).
//! `bench_delivered` sends `BENCH_EVENTS` (200,000) events through accept and
//! the delivered mark, 256 at a time, into a file journal, and prints the
//! writer thread's CPU per event, the growth of the process's RSS and the
//! file's size. Prints only: timings are not asserted.

use super::*;

async fn run(backend: Backend, callers: usize, for_how_long: Duration) -> (u64, Counts) {
    let h = Harness::start(backend, JournalOptions::default());
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let journal = h.journal.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < for_how_long {
                    let e = event(&format!("c{c}"), n as usize);
                    journal.accept(routed(e)).await.expect("accept");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let rate = (total as f64 / start.elapsed().as_secs_f64()) as u64;
    (rate, h.journal.counts())
}

#[test]
#[ignore = "benchmark: prints accepts/s"]
fn bench() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<8} {:>7} {:>12} {:>9} {:>13}",
        "backend", "callers", "accepts/s", "commits", "events/commit"
    );
    for backend in BACKENDS {
        for callers in [1, 64] {
            let (rate, c) = rt.block_on(run(backend, callers, Duration::from_secs(2)));
            let per_commit = c.accepted as f64 / c.commits.max(1) as f64;
            let name = format!("{backend:?}");
            println!(
                "{name:<8} {callers:>7} {rate:>12} {:>9} {per_commit:>13.1}",
                c.commits
            );
        }
    }
}

/// The process's resident memory now, in KiB (0 if /proc says nothing).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) the journal's writer thread has used so far.
fn writer_cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ticks: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains("(journal-writer)"))
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0
}

/// `n` events through accept and the delivered mark, up to `window`
/// accepted and not yet marked at once (as an agent with `maxInFlight:
/// window` would ack them). Returns events/s.
async fn accept_and_deliver(journal: &Journal, n: usize, window: usize) -> u64 {
    let start = Instant::now();
    let mut in_flight = std::collections::VecDeque::with_capacity(window);
    for i in 0..n {
        let e = event("bench", i);
        let id = e.id.clone();
        in_flight.push_back((id, journal.accept(routed(e))));
        if in_flight.len() >= window
            && let Some((id, accepted)) = in_flight.pop_front()
        {
            accepted.await.expect("accept");
            journal.delivered(&id);
        }
    }
    for (id, accepted) in in_flight {
        accepted.await.expect("accept");
        journal.delivered(&id);
    }
    journal.flush().await.expect("flush");
    (n as f64 / start.elapsed().as_secs_f64()) as u64
}

#[test]
#[ignore = "benchmark: prints events/s and memory"]
fn bench_delivered() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!(
        "{:<8} {:>10} {:>9} {:>8} {:>12} {:>10} {:>16}",
        "backend", "events/s", "commits", "retained", "RSS +KiB", "file KiB", "writer µs/event"
    );
    let backend = Backend::File;
    let before = rss_kib();
    let h = Harness::start(backend, JournalOptions::default());
    let rate = rt.block_on(accept_and_deliver(&h.journal, n, 256));
    let c = h.journal.counts();
    let file = h
        .dir
        .as_ref()
        .and_then(|d| std::fs::metadata(d.path().join("journal.db")).ok())
        .map_or(0, |m| m.len() / 1024);
    let writer_us = writer_cpu_secs() * 1e6 / n as f64;
    println!(
        "{:<8} {rate:>10} {:>9} {:>8} {:>12} {file:>10} {writer_us:>16.2}",
        format!("{backend:?}"),
        c.commits,
        c.retained,
        rss_kib().saturating_sub(before)
    );
}

/// CPU seconds (user + system) of the calling thread so far.
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    ticks as f64 / 100.0
}

/// What redb alone costs per event, with the journal's cache size and a
/// record of the journal's size, 256 events per durable commit: one insert
/// per event (the least a durable journal in redb can do); the two B-tree
/// changes the journal makes for an event acked before its accept commits
/// (record and retention entry, one commit); and the four it makes
/// otherwise (record, pending id, then in the next commit the pending id's
/// removal and the retention entry). The floor under the durable
/// throughput rows of `bench-throughput`.
#[test]
#[ignore = "benchmark: prints redb's CPU µs per event"]
fn bench_redb_floor() {
    use redb::{Durability, TableDefinition};
    use uuid::Uuid;
    const EV: TableDefinition<Uuid, &[u8]> = TableDefinition::new("events");
    const PEND: TableDefinition<Uuid, u32> = TableDefinition::new("pending_ids");
    const AT: TableDefinition<(u64, Uuid), ()> = TableDefinition::new("delivered_at");
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let record = vec![b'x'; 420];
    println!(
        "{:<34} {:>10} {:>14} {:>14}",
        "shape", "events/s", "CPU µs/event", "wall µs/event"
    );
    for (shape, ops, durability) in [
        ("1 insert, fsync per 256", 1, Durability::Immediate),
        (
            "journal's 2 changes, fsync per 256",
            2,
            Durability::Immediate,
        ),
        (
            "journal's 4 changes, fsync per 256",
            4,
            Durability::Immediate,
        ),
        ("1 insert, no fsync", 1, Durability::None),
        ("journal's 2 changes, no fsync", 2, Durability::None),
        ("journal's 4 changes, no fsync", 4, Durability::None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Builder::new()
            .set_cache_size(4 << 20)
            .create(dir.path().join("floor.db"))
            .unwrap();
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
        let (cpu0, t0) = (thread_cpu_secs(), Instant::now());
        let mut prev: &[Uuid] = &[];
        for chunk in ids.chunks(256) {
            let mut txn = db.begin_write().unwrap();
            {
                let mut ev = txn.open_table(EV).unwrap();
                let mut pend = txn.open_table(PEND).unwrap();
                let mut at = txn.open_table(AT).unwrap();
                for &id in chunk {
                    ev.insert(id, record.as_slice()).unwrap();
                    match ops {
                        2 => drop(at.insert((1, id), ()).unwrap()),
                        4 => drop(pend.insert(id, 0).unwrap()),
                        _ => {}
                    }
                }
                if ops == 4 {
                    for &id in prev {
                        pend.remove(id).unwrap();
                        at.insert((1, id), ()).unwrap();
                    }
                }
            }
            txn.set_durability(durability).unwrap();
            txn.commit().unwrap();
            prev = chunk;
        }
        let (cpu, wall) = (thread_cpu_secs() - cpu0, t0.elapsed().as_secs_f64());
        println!(
            "{shape:<34} {:>10.0} {:>14.2} {:>14.2}",
            n as f64 / wall,
            cpu * 1e6 / n as f64,
            wall * 1e6 / n as f64
        );
    }
}
