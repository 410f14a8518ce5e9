//! Cluster mode end to end (issue 15): async jobs across nodes.
//!
//! - `jobs cancel` asked of a node that does not run the job is sent to the
//!   node that does, which cancels it there.
//! - A job whose node is killed with `-9` is taken up by the node that runs
//!   its Connection next: an idempotent operation runs again there, any
//!   other fails naming the node that is gone.
//!
//! The Connection runs `opconn.py` (`slow*` operations sleep `input.ms`,
//! each call is a line `<operation> <attempt>` in `calls.txt`, a path
//! relative to the bundle, so in the directory of the node that runs it).

mod cluster_support;

use std::time::Duration;

use cluster_support::ops::{calls, cli_json, invoke, opconn_bundle, ready_on, wait_ready_on};
use cluster_support::{JOIN, Node, dump_all, start_nodes, wait_for};
use e2e::DEADLINE;
use e2e::nats::NatsServer;
use serde_json::{Value, json};

const POLL: Duration = Duration::from_millis(100);

/// Connection `opc` (`opconn.py`; `slown` async, `slowi` async and
/// idempotent) with `placement`.
fn jobs_bundle(placement: &str) -> String {
    opconn_bundle(
        "[{ name: slown, mode: async }, { name: slowi, mode: async, idempotent: true }]",
        "[slown, slowi]",
        placement,
    )
}

/// Starts an async job of `op` on `node` (operator's invoke): its id.
fn start_job(node: &Node, op: &str, ms: u64) -> String {
    let (code, started) = invoke(node, op, &json!({ "ms": ms }), &[]);
    assert_eq!(code, Some(0), "{started}");
    assert_eq!(started["job"]["state"], "pending", "{started}");
    started["job"]["jobId"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {started}"))
        .to_owned()
}

/// Node a runs the Connection (`placement: {nodes: [a]}`) and a job that
/// would take a minute; `jobs cancel` on node b cancels it on a: b answers
/// with the canceled record, and a, which ran it, shows it canceled too.
#[test]
fn a_job_is_canceled_from_a_node_that_does_not_run_it() {
    let nats = NatsServer::start();
    let nodes = start_nodes(&nats, &["a", "b"], &jobs_bundle("{ nodes: [a] }"), &[]);
    let (na, nb) = (&nodes[0], &nodes[1]);
    let dump = || dump_all(&[na, nb], &nats.dump());
    wait_ready_on(nb, "connection/opc", &["a"], dump);

    let id = start_job(na, "slown", 60_000);
    wait_for(
        "the connector on a to be called",
        DEADLINE,
        POLL,
        || calls(na) == ["slown 1"],
        dump,
    );
    let canceled = cli_json(nb, &["jobs", "cancel", &id]);
    assert_eq!(canceled["state"], "canceled", "{canceled}\n{}", dump());
    assert_eq!(canceled["error"]["class"], "canceled", "{canceled}");
    assert_eq!(
        canceled["error"]["message"], "canceled by the operator",
        "{canceled}"
    );
    let on_a = cli_json(na, &["jobs", "get", &id]);
    assert_eq!(on_a["state"], "canceled", "the record is shared: {on_a}");
    // A second cancel finds it settled and answers it as it stands.
    let again = cli_json(nb, &["jobs", "cancel", &id]);
    assert_eq!(again["state"], "canceled", "{again}");
    assert!(calls(nb).is_empty(), "nothing ran on b: {:?}", calls(nb));
}

/// `placement: one`: the Connection runs on one of two nodes, which starts
/// two jobs (idempotent `slowi`, plain `slown`) and is killed with `-9`
/// while both run. The survivor takes the Connection over and, within
/// seconds, the jobs: `slowi` runs again there and succeeds, `slown` fails
/// naming the node that is gone.
#[test]
fn the_jobs_of_a_killed_node_are_taken_up_where_the_connection_runs_next() {
    let nats = NatsServer::start();
    let mut nodes = start_nodes(&nats, &["a", "b"], &jobs_bundle("one"), &[]);
    let mut host = Vec::new();
    wait_for(
        "connection/opc ready on one node",
        JOIN,
        POLL,
        || {
            host = ready_on(&nodes[0], "connection/opc");
            host.len() == 1
        },
        || dump_all(&nodes.iter().collect::<Vec<_>>(), &nats.dump()),
    );
    let h = nodes
        .iter()
        .position(|n| n.name == host[0])
        .expect("a node");
    let s = 1 - h;
    let (gone, survivor) = (nodes[h].name.clone(), nodes[s].name.clone());

    let plain = start_job(&nodes[h], "slown", 60_000);
    let idem = start_job(&nodes[h], "slowi", 2_000);
    wait_for(
        "both jobs to call the connector",
        DEADLINE,
        POLL,
        || calls(&nodes[h]).len() == 2,
        || dump_all(&nodes.iter().collect::<Vec<_>>(), &nats.dump()),
    );
    let before = cli_json(&nodes[s], &["jobs", "get", &idem]);
    assert_ne!(
        before["state"], "succeeded",
        "the kill must land while slowi runs (2 s): {before}"
    );
    nodes[h].kill9();
    let dump = || dump_all(&[&nodes[s]], &nats.dump());

    let mut got = (Value::Null, Value::Null);
    wait_for(
        &format!("node {survivor} to settle both jobs of node {gone}"),
        JOIN,
        POLL,
        || {
            got = (
                cli_json(&nodes[s], &["jobs", "get", &plain]),
                cli_json(&nodes[s], &["jobs", "get", &idem]),
            );
            got.0["state"] == "failed" && got.1["state"] == "succeeded"
        },
        dump,
    );
    let (plain_rec, idem_rec) = got;
    assert_eq!(
        plain_rec["error"]["message"],
        format!("its node {gone} is gone"),
        "{plain_rec}"
    );
    assert_eq!(idem_rec["response"]["data"]["slept"], 2000, "{idem_rec}");
    assert_eq!(
        calls(&nodes[s]),
        ["slowi 1"],
        "the idempotent job ran again on {survivor}, the other did not\n{}",
        dump()
    );
    wait_ready_on(&nodes[s], "connection/opc", &[&survivor], dump);
}
