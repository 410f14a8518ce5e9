//! Cluster mode end to end (issue 15): NATS lost during a run.
//!
//! One node on one NATS server, a Connection on every node (`placement:
//! every`, so no lease stops it while NATS is away). The server is killed
//! with `-9` mid-stream: the node keeps running, emits it cannot store are
//! refused `transient` (never acked), and once the server is back on its
//! port with its store, acks resume and every acked event reaches an agent.

mod cluster_support;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_support::answers::{acked, answer_runs, is_done, refusals};
use cluster_support::{LONG, bundle, dump_all, start_nodes, wait_every_acked_delivered, wait_for};
use e2e::nats::NatsServer;

const POLL: Duration = Duration::from_millis(100);

#[test]
fn nats_lost_mid_run_refuses_emits_transient_and_delivery_resumes_when_it_is_back() {
    const N: u64 = 8_000;
    let mut nats = NatsServer::start();
    let rec = tempfile::Builder::new()
        .prefix("e2e-records-")
        .tempdir()
        .expect("tempdir");
    let b = bundle(
        rec.path(),
        "stream",
        &format!("{{ COUNT: {N}, KEYS: 10, DEDUPE: \"true\", WINDOW: 64, RATE: 400 }}"),
        "  placement: every\n  overflow: wait",
    );
    let nodes = start_nodes(&nats, &["a"], &b, &["--lease-ttl", "5s"]);
    let node = &nodes[0];
    let runs = || answer_runs(&node.h.state(), "stream");
    let dump = |nats: &NatsServer| dump_all(&[node], &nats.dump());

    wait_for(
        "1,000 events acked",
        LONG,
        POLL,
        || {
            runs()
                .last()
                .is_some_and(|r| acked(r, "new").len() >= 1_000)
        },
        || dump(&nats),
    );
    nats.kill();
    // Each emit is tried again for 15 s (a stream electing a leader takes
    // seconds), then refused.
    wait_for(
        "an emit refused while NATS is gone",
        LONG,
        POLL,
        || runs().iter().any(|r| !refusals(r).is_empty()),
        || dump(&nats),
    );
    assert!(
        node.h.try_status().is_ok(),
        "the node runs on without NATS\n{}",
        dump(&nats)
    );
    nats.restart();
    wait_for(
        "the stream to finish: every emit answered",
        LONG,
        POLL,
        || runs().last().is_some_and(|r| is_done(r)),
        || dump(&nats),
    );
    let all = runs();
    assert_eq!(all.len(), 1, "the connector ran through the outage");
    let run = &all[0];
    let refused = refusals(run);
    for r in &refused {
        assert!(
            r.starts_with("nack ") && r.ends_with(" transient"),
            "refused otherwise than transient: {r}\n{}",
            dump(&nats)
        );
    }
    let first_refusal = run
        .iter()
        .position(|l| l.starts_with("nack "))
        .expect("a refusal");
    assert!(
        run[first_refusal..]
            .iter()
            .any(|l| l.starts_with("ack ") && l.ends_with(" new")),
        "acks resumed once NATS was back ({} refused)\n{}",
        refused.len(),
        dump(&nats)
    );
    let acked_all: BTreeSet<u64> = acked(run, "new")
        .union(&acked(run, "dup"))
        .copied()
        .collect();
    assert_eq!(
        acked_all.len() + refused.len(),
        usize::try_from(N).expect("small"),
        "every emit answered once"
    );
    wait_every_acked_delivered(rec.path(), &acked_all, POLL, || dump(&nats));
    let refused_ids: BTreeSet<u64> = refused
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert!(
        refused_ids.is_disjoint(&acked_all),
        "an emit was both refused and acked"
    );
}
