//! `cargo test -p orchestrator --release --lib journal::tests::bench -- --ignored --nocapture`
//!
//! Prints accepts per second for both backends with 1 and 64 concurrent
//! callers, each caller awaiting its accept before the next (so one caller
//! pays a full commit per event and 64 share them). Prints only: timings
//! are not asserted.

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
