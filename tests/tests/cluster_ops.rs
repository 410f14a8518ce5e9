//! Cluster mode end to end (issue 15): the operator and invoke paths across
//! two nodes on one NATS server.
//!
//! - An invoke of a Connection placed on node a, asked of node b (by the
//!   operator's CLI, and by an agent whose partition b owns), is forwarded
//!   to a and performed there once; an async job run on a is listed by
//!   `jobs` on b, and its `job.succeeded` event reaches the agent on b.
//! - An idempotency key used on a and then on b (a Connection with
//!   `placement: every`, so each node runs its own connector) gets the first
//!   result on both, and the connector performs it once; asked of both at
//!   once, one node calls and the other waits for its result.
//! - `placement: {nodes: [b]}` runs the Connection on b only, and a `kill -9`
//!   of b does not move it to a.
//! - A dead letter of one node is listed, replayed and dropped from the other.
//!
//! What the peers record: `op-connector` appends each performed call's text
//! to `replies.txt`, a path relative to the bundle, so to the directory of
//! the node that runs it; `op-agent` prints each result in its log (on the
//! node that runs the instance); `delivery-agent` records each delivery in
//! one directory shared by both nodes (see `cluster_support`).
//!
//! Which node owns an instance's partition follows from the node names and
//! the instance (rendezvous hashing): with nodes `a` and `b`, the partitions
//! of (`worker`, `k`) and (`worker`, `p`) belong to b. The tests that rely on
//! that check it in `status` first, so a change of the hashing shows as a
//! broken premise, not as a wrong result.

mod cluster_support;

use std::time::Duration;

use cluster_support::ops::{
    agent_results, calls, cli_json, dlq_bundle, dlq_list, dlq_verb, invoke, ops_bundle, performed,
    slow_bundle, wait_ready_on,
};
use cluster_support::{JOIN, Node, attempt, dump_all, records, start_nodes, text, wait_for};
use e2e::DEADLINE;
use e2e::nats::NatsServer;
use serde_json::{Value, json};

/// The lease TTL the nodes run with (the default, given explicitly).
const LEASE_TTL: &str = "5s";

const POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------- 1 and 5. forwarded invokes, jobs

/// Connection `opc` placed on node a (`placement: {nodes: [a]}`); the
/// instance `worker/k` its events go to lives on node b. The agent's invoke
/// on b, and the operator's `orchestrator invoke` against b's state dir,
/// are forwarded to a: each is performed once, on a (its `replies.txt`),
/// and answered with the connector's result. An async job the operator
/// starts on a is listed and read by `jobs` on b; a job the agent on b
/// starts (run on a) comes back to it on b as `job.succeeded`.
#[test]
fn an_invoke_asked_of_another_node_is_performed_once_on_the_connections_node() {
    let nats = NatsServer::start();
    let b = ops_bundle("hello job:later", "{ nodes: [a] }");
    // b joins first and keeps the partitions it ranks first for, so the
    // events the connector on a emits wait in b's partition, none is
    // delivered on a in between.
    let nodes = start_nodes(&nats, &["b", "a"], &b, &["--lease-ttl", LEASE_TTL]);
    let (nb, na) = (&nodes[0], &nodes[1]);
    let dump = || dump_all(&[na, nb], &nats.dump());

    wait_ready_on(nb, "connection/opc", &["a"], dump);
    // The agent's invoke: from b, performed on a.
    wait_for(
        "the agent on b to print both results (respond, and the job's event)",
        JOIN,
        POLL,
        || {
            let log = nb.h.agent_log("worker", "k");
            !agent_results(&log).is_empty() && log.contains(" stdout job event job.succeeded ")
        },
        dump,
    );
    let on_b: Vec<String> =
        nb.h.try_status()
            .unwrap_or_default()
            .iter()
            .filter(|r| r["kind"] == "agent" && r["name"] == "worker" && r["instanceKey"] == "k")
            .filter_map(|r| r["node"].as_str().map(str::to_owned))
            .collect();
    assert_eq!(
        on_b,
        ["b"],
        "premise: the instance worker/k runs on node b (the rendezvous ranking of its \
         partition changed? rename the agent or the nodes)\n{}",
        dump()
    );
    assert!(
        na.h.agent_log("worker", "k").is_empty(),
        "no instance of worker/k ever ran on node a\n{}",
        dump()
    );
    let log = nb.h.agent_log("worker", "k");
    assert_eq!(
        agent_results(&log),
        [r#"ok {"attempt":1,"written":true}"#],
        "the agent on b got the connector's result\n{}",
        dump()
    );
    assert!(
        log.contains(" stdout job started pending"),
        "the agent's async invoke answered with its job: {log}"
    );
    let job_event = log
        .lines()
        .find_map(|l| {
            l.split_once(" stdout job event job.succeeded ")
                .map(|(_, p)| p)
        })
        .expect("job event");
    let payload: Value = serde_json::from_str(job_event).expect("job payload json");
    assert_eq!(payload["data"]["written"], true, "{payload}");
    assert_eq!(
        performed(na),
        ["echo: hello", "echo: job:later"],
        "both performed once, on a\n{}",
        dump()
    );
    assert!(
        performed(nb).is_empty(),
        "nothing performed on b: {:?}",
        performed(nb)
    );

    // The operator's invoke against b: forwarded to a, answered with its result.
    let (code, result) = invoke(nb, "respond", &json!({"text": "by hand"}), &[]);
    assert_eq!(code, Some(0), "{result}\n{}", dump());
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(
        result["response"]["data"],
        json!({"written": true, "attempt": 1}),
        "{result}"
    );
    assert_eq!(result["response"]["metadata"]["connection"], "opc");
    assert_eq!(
        performed(na),
        ["echo: hello", "echo: job:later", "by hand"],
        "performed once more, on a"
    );
    assert!(performed(nb).is_empty(), "still nothing on b");
    // Refused where it is governed, on a, and the refusal comes back whole.
    let (code, refused) = invoke(nb, "respond", &json!({}), &[]);
    assert_eq!(code, Some(1), "{refused}");
    assert_eq!(refused["error"]["class"], "validation_error", "{refused}");

    // Governed on a: a audits each call with the caller b forwarded.
    let audited = |who: &str| {
        std::fs::read_to_string(na.h.state().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["kind"] == "invoke" && r["agent"] == who)
            .collect::<Vec<Value>>()
    };
    wait_for(
        "a's audit log to have the agent's two invokes and the operator's two",
        DEADLINE,
        POLL,
        || audited("worker").len() == 2 && audited("operator").len() == 2,
        dump,
    );
    for r in audited("worker") {
        assert_eq!(r["instanceKey"], "k", "the agent's instance: {r}");
        assert!(
            r["correlationId"].as_str().is_some_and(|c| !c.is_empty()),
            "the delivery in flight on b is the correlation: {r}"
        );
    }

    // 5: an async job the operator starts on a is seen by `jobs` on b.
    let (code, started) = invoke(na, "respondLater", &json!({"text": "job by hand"}), &[]);
    assert_eq!(code, Some(0), "{started}");
    let job_id = started["job"]["jobId"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {started}"))
        .to_owned();
    let mut got = Value::Null;
    wait_for(
        "jobs get on b to show the job succeeded",
        DEADLINE,
        POLL,
        || {
            got = cli_json(nb, &["jobs", "get", &job_id]);
            got["state"] == "succeeded"
        },
        dump,
    );
    assert_eq!(got["response"]["data"]["written"], true, "{got}");
    let listed = cli_json(nb, &["jobs", "list"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap_or_else(|| panic!("jobs list is not an array: {listed}"))
        .iter()
        .filter_map(|j| j["jobId"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "jobs list on b: the agent's job and the operator's, both run on a: {listed}"
    );
    assert!(ids.contains(&job_id.as_str()), "{listed}");
    assert_eq!(
        performed(na).last().map(String::as_str),
        Some("job by hand")
    );
    assert!(performed(nb).is_empty(), "nothing ever performed on b");
}

// ---------------------------------------------------------------- 2. idempotency through KV

/// `placement: every`: each node runs its own connector, so an invoke is
/// performed where it is asked. The same idempotency key, first on a, then
/// on b (other input), then on a again: the first result every time, and
/// the connector performed it once (on a); b performs a new key itself,
/// which shows its repeat was answered from the shared record, not
/// forwarded.
#[test]
fn an_idempotency_key_used_on_two_nodes_gets_the_first_result_and_one_call() {
    let nats = NatsServer::start();
    let b = ops_bundle("", "every");
    let nodes = start_nodes(&nats, &["a", "b"], &b, &["--lease-ttl", LEASE_TTL]);
    let (na, nb) = (&nodes[0], &nodes[1]);
    let dump = || dump_all(&[na, nb], &nats.dump());
    wait_ready_on(na, "connection/opc", &["a", "b"], dump);
    wait_ready_on(nb, "connection/opc", &["a", "b"], dump);

    let key = ["--idempotency-key", "k-1"];
    let (code, first) = invoke(na, "respond", &json!({"text": "first"}), &key);
    assert_eq!(code, Some(0), "{first}\n{}", dump());
    assert_eq!(first["response"]["metadata"]["attempts"], 1, "{first}");
    assert_eq!(performed(na), ["first"]);

    let (code, again) = invoke(nb, "respond", &json!({"text": "second"}), &key);
    assert_eq!(code, Some(0), "{again}\n{}", dump());
    assert_eq!(
        again["response"]["data"], first["response"]["data"],
        "b answers with a's first result: {again}"
    );
    assert_eq!(
        again["response"]["metadata"]["attempts"], 0,
        "not called again: {again}"
    );
    assert!(
        again
            .to_string()
            .contains("the first result for this idempotencyKey"),
        "it says so: {again}"
    );
    let (_, third) = invoke(na, "respond", &json!({"text": "third"}), &key);
    assert_eq!(third["response"]["metadata"]["attempts"], 0, "{third}");
    assert_eq!(performed(na), ["first"], "performed once, on a");
    assert!(
        performed(nb).is_empty(),
        "b never performed the key: {:?}",
        performed(nb)
    );

    // Another key on b is performed on b: its connector serves b's invokes.
    let (code, other) = invoke(
        nb,
        "respond",
        &json!({"text": "other"}),
        &["--idempotency-key", "k-2"],
    );
    assert_eq!(code, Some(0), "{other}");
    assert_eq!(other["response"]["metadata"]["attempts"], 1, "{other}");
    assert_eq!(
        performed(nb),
        ["other"],
        "performed on b, where it was asked"
    );
    assert_eq!(performed(na), ["first"]);
}

/// The same key asked of both nodes at once (`placement: every`, a call
/// that takes a second): one node calls, the other waits for its result
/// (the key's claim in the cluster) instead of calling too; both answer
/// with the one call's result.
#[test]
fn an_idempotency_key_asked_of_two_nodes_at_once_is_called_once() {
    let nats = NatsServer::start();
    let nodes = start_nodes(
        &nats,
        &["a", "b"],
        &slow_bundle(),
        &["--lease-ttl", LEASE_TTL],
    );
    let (na, nb) = (&nodes[0], &nodes[1]);
    let dump = || dump_all(&[na, nb], &nats.dump());
    wait_ready_on(na, "connection/opc", &["a", "b"], dump);
    wait_ready_on(nb, "connection/opc", &["a", "b"], dump);

    let key = ["--idempotency-key", "k-1"];
    let (on_a, on_b) = std::thread::scope(|s| {
        let a = s.spawn(|| invoke(na, "slow", &json!({"ms": 1000}), &key));
        let b = s.spawn(|| invoke(nb, "slow", &json!({"ms": 1200}), &key));
        (a.join().expect("a"), b.join().expect("b"))
    });
    let (on_a, on_b) = (on_a.1, on_b.1);
    let all_calls = [calls(na), calls(nb)].concat();
    assert_eq!(
        all_calls,
        ["slow 1"],
        "one call in the cluster (a: {:?}, b: {:?}); answers {on_a} {on_b}\n{}",
        calls(na),
        calls(nb),
        dump()
    );
    assert_eq!(
        on_a["response"]["data"], on_b["response"]["data"],
        "both answer with the one call's result: {on_a} {on_b}"
    );
    let mut attempts = [
        on_a["response"]["metadata"]["attempts"].as_u64(),
        on_b["response"]["metadata"]["attempts"].as_u64(),
    ];
    attempts.sort_unstable();
    assert_eq!(
        attempts,
        [Some(0), Some(1)],
        "one called, the other got its result: {on_a} {on_b}"
    );
}

// ---------------------------------------------------------------- 3. placement: {nodes: [b]}

/// The Connections each `this node holds …` line of `stderr` names.
fn held_connections(stderr: &str) -> Vec<Vec<String>> {
    stderr
        .lines()
        .filter(|l| l.contains("this node holds "))
        .map(|l| {
            l.split_once(" and connections ")
                .map(|(_, names)| {
                    // The line's fields (` nodes=2`) follow the names.
                    let names = names.split(" nodes=").next().unwrap_or_default();
                    names.split(", ").map(|n| n.trim().to_owned()).collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// `placement: {nodes: [b]}`: Connection `opc` runs on b, never on a. Once
/// b is killed with `-9`, a takes over every partition and Connection
/// `spare` (`placement: {nodes: [b, a]}`, held by b until then, its lease
/// renewed with opc's), so a has seen b gone and ranked every target
/// without it; `opc` still does not run on a, and an invoke of it on a
/// answers `unavailable`.
#[test]
fn a_connection_placed_on_one_node_stays_off_the_others_when_it_dies() {
    let nats = NatsServer::start();
    let spare = r#"
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: spare }
spec:
  connectorRef: Connector/opc
  config: { WORDS: "", REPLIES: spare.txt }
  placement: { nodes: [b, a] }
"#;
    let b = ops_bundle("", "{ nodes: [b] }") + spare;
    // b joins first (alone: every partition and both Connections), then a;
    // a running Connection stays where it runs.
    let mut nodes = start_nodes(&nats, &["b", "a"], &b, &["--lease-ttl", LEASE_TTL]);
    let dump = |nodes: &[Node]| dump_all(&nodes.iter().collect::<Vec<_>>(), &nats.dump());
    for viewer in &nodes {
        wait_ready_on(viewer, "connection/opc", &["b"], || dump(&nodes));
        wait_ready_on(viewer, "connection/spare", &["b"], || dump(&nodes));
    }
    let na = &nodes[1];
    let (code, result) = invoke(na, "respond", &json!({"text": "via a"}), &[]);
    assert_eq!(code, Some(0), "{result}\n{}", dump(&nodes));
    assert_eq!(performed(&nodes[0]), ["via a"], "performed on b");

    nodes[0].kill9();
    let na = &nodes[1];
    // b's rows gone from a's status, spare ready on a: b's leases (renewed
    // together) have lapsed and a has claimed what it may.
    wait_ready_on(na, "connection/spare", &["a"], || dump(&nodes));
    wait_for(
        "status on a to show none of b's rows, and a to hold every partition",
        JOIN,
        POLL,
        || {
            na.h.try_status()
                .is_ok_and(|rows| !rows.iter().any(|r| r["node"] == "b"))
                && na
                    .h
                    .stderr()
                    .contains("this node holds 32 of 32 partitions")
        },
        || dump(&nodes),
    );
    let rows = na.h.status();
    let conn: Vec<&Value> = rows
        .iter()
        .filter(|r| r["target"] == "connection/opc")
        .collect();
    assert!(
        conn.is_empty(),
        "the Connection is not eligible on a, so it does not run there: {conn:?}\n{}",
        dump(&nodes)
    );
    let held = held_connections(&na.h.stderr());
    assert!(
        held.iter().any(|c| c.iter().any(|n| n == "spare"))
            && !held.iter().any(|c| c.iter().any(|n| n == "opc")),
        "a held spare, never opc: {held:?}\n{}",
        dump(&nodes)
    );
    assert!(
        !na.h.path("replies.txt").exists() && na.h.connection_log("opc").is_empty(),
        "its connector never ran on a\n{}",
        dump(&nodes)
    );
    let (code, refused) = invoke(na, "respond", &json!({"text": "nobody"}), &[]);
    assert_eq!(code, Some(1), "{refused}");
    assert_eq!(refused["error"]["class"], "unavailable", "{refused}");
}

// ---------------------------------------------------------------- 4. dead letters from any node

/// An agent's dead letters (a poison event after `maxAttempts`, and one it
/// refuses outright) are dead-lettered by the node that owns the instance's
/// partition; the other node lists them, replays one (delivered again as a
/// first attempt, same id, now acked), and either node drops the other;
/// both then list none.
#[test]
fn dead_letters_are_listed_replayed_and_dropped_from_the_other_node() {
    let nats = NatsServer::start();
    let tmp = tempfile::Builder::new()
        .prefix("e2e-dlq-")
        .tempdir()
        .expect("tempdir");
    let (events, rec, fixed) = (
        tmp.path().join("events.jsonl"),
        tmp.path().join("records"),
        tmp.path().join("fixed"),
    );
    let item = |t: &str| json!({"event": {"name": "item", "message": {"type": "text", "text": t}, "instanceKey": "p"}});
    let lines: Vec<String> = ["poison-1", "fail-2", "after-3"]
        .iter()
        .map(|t| item(t).to_string())
        .collect();
    std::fs::write(&events, lines.join("\n") + "\n").expect("write events");
    let b = dlq_bundle(&events, &rec, &fixed);
    let nodes = start_nodes(&nats, &["b", "a"], &b, &["--lease-ttl", LEASE_TTL]);
    let dump = || dump_all(&nodes.iter().collect::<Vec<_>>(), &nats.dump());

    wait_for(
        "after-3 to be delivered (both dead letters made before it)",
        JOIN,
        POLL,
        || records(&rec, "p").iter().any(|r| text(r) == "after-3"),
        dump,
    );
    let got: Vec<(String, u64)> = records(&rec, "p")
        .iter()
        .map(|r| (text(r).to_owned(), attempt(r)))
        .collect();
    let expected: Vec<(String, u64)> = [
        ("poison-1", 1),
        ("poison-1", 2),
        ("poison-1", 3),
        ("fail-2", 1),
        ("after-3", 1),
    ]
    .iter()
    .map(|(t, a)| ((*t).to_owned(), *a))
    .collect();
    assert_eq!(got, expected, "{}", dump());
    // The node that delivered them (owns the partition), and the other one.
    let mut owner = None;
    wait_for(
        "status to show which node runs worker/p",
        DEADLINE,
        POLL,
        || {
            owner = nodes[0].h.try_status().ok().and_then(|rows| {
                rows.iter()
                    .find(|r| r["kind"] == "agent" && r["instanceKey"] == "p")
                    .and_then(|r| r["node"].as_str().map(str::to_owned))
            });
            owner.is_some()
        },
        dump,
    );
    let owner = owner.expect("found");
    let (o, other) = match nodes.iter().position(|n| n.name == owner) {
        Some(0) => (&nodes[0], &nodes[1]),
        Some(_) => (&nodes[1], &nodes[0]),
        None => panic!("status names an unknown node {owner:?}"),
    };

    wait_for(
        &format!(
            "node {} to list both dead letters of node {}",
            other.name, o.name
        ),
        DEADLINE,
        POLL,
        || dlq_list(other).len() == 2,
        || format!("listed: {:?}\n{}", dlq_list(other), dump()),
    );
    let dead = dlq_list(other);
    let find = |t: &str| {
        dead.iter()
            .find(|d| d["text"] == t)
            .unwrap_or_else(|| panic!("{t} not in {dead:?}"))
    };
    let (poison, fail) = (find("poison-1"), find("fail-2"));
    assert_eq!(poison["attempts"], 3, "{poison}");
    assert!(
        poison["error"]
            .as_str()
            .is_some_and(|e| e.contains("poisoned: cannot handle poison-1")),
        "the agent's last error: {poison}"
    );
    assert_eq!(fail["attempts"], 1, "{fail}");
    assert_eq!(
        (poison["agent"].as_str(), poison["instanceKey"].as_str()),
        (Some("worker"), Some("p"))
    );
    let poison_id = poison["id"].as_str().expect("id").to_owned();
    let fail_id = fail["id"].as_str().expect("id").to_owned();

    // Fixed: replayed from the other node, delivered again by the owner.
    std::fs::write(&fixed, "fixed\n").expect("write the marker");
    dlq_verb(other, "replay", &poison_id, "replayed");
    wait_for(
        "the replayed event to arrive",
        JOIN,
        POLL,
        || records(&rec, "p").len() > expected.len(),
        dump,
    );
    let again = &records(&rec, "p")[expected.len()];
    assert_eq!((text(again), attempt(again)), ("poison-1", 1), "{again}");
    assert_eq!(again["id"].as_str(), Some(poison_id.as_str()), "same id");
    let left: Vec<Value> = dlq_list(o);
    assert_eq!(left.len(), 1, "the owner lists what is left: {left:?}");
    assert_eq!(left[0]["id"].as_str(), Some(fail_id.as_str()));

    dlq_verb(o, "drop", &fail_id, "dropped");
    assert!(dlq_list(other).is_empty(), "{}", dump());
    assert!(dlq_list(o).is_empty());
    // The replayed event was acked: it is not dead again.
    assert_eq!(records(&rec, "p").len(), expected.len() + 1);
}
