//! `run --metrics`: a real scrape of `/metrics`, parsed by a Prometheus text
//! parser (`prometheus-parse`), whose counters move as events and invokes flow.

use std::io::{Read, Write};

use prometheus_parse::{Scrape, Value};

use e2e::{DEADLINE, Harness};

fn scrape(h: &Harness) -> Scrape {
    let addr = std::fs::read_to_string(h.state().join("metrics.address")).expect("metrics.address");
    let mut conn = std::net::TcpStream::connect(addr.trim()).expect("connect");
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("http response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("prometheus text format")
}

/// The value of the sample `name` whose labels include `labels` (0 if none).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

#[test]
fn metrics_are_scraped_and_move_as_events_and_invokes_flow() {
    let mut h = Harness::new();
    h.copy_example("connectors/lines.py");
    h.copy_example("agents/reply.py");
    let events = h.write_events(
        "events.jsonl",
        &[
            e2e::event("user_message", "one", &[], Some("a")),
            e2e::event("user_message", "two", &[], Some("a")),
            e2e::event("user_message", "three", &[], Some("b")),
        ],
    );
    let replies = h.path("replies.txt");
    h.start_with(
        &e2e::lines_reply_bundle(&events, &replies),
        &["--metrics", "127.0.0.1:0"],
    );
    h.wait_until("every reply", DEADLINE, || {
        std::fs::read_to_string(&replies).is_ok_and(|r| r.lines().count() >= 3)
    });
    let conn = [("connection", "lines")];
    let agent = [("agent", "reply")];
    let op = [("connection", "lines"), ("operation", "respond")];
    h.wait_until("the acks counted", DEADLINE, || {
        value(&scrape(&h), "orchestrator_agent_acks_total", &agent) >= 3.0
    });
    let s = scrape(&h);
    assert_eq!(
        value(&s, "orchestrator_connection_accepted_total", &conn),
        3.0
    );
    assert_eq!(value(&s, "orchestrator_connection_emits_total", &conn), 3.0);
    assert_eq!(
        value(&s, "orchestrator_connection_nacked_total", &conn),
        0.0
    );
    assert_eq!(value(&s, "orchestrator_emit_ack_seconds", &conn), 3.0);
    assert_eq!(
        value(&s, "orchestrator_agent_deliveries_total", &agent),
        3.0
    );
    assert_eq!(value(&s, "orchestrator_agent_acks_total", &agent), 3.0);
    assert_eq!(
        value(&s, "orchestrator_agent_dead_letters_total", &agent),
        0.0
    );
    assert_eq!(
        value(&s, "orchestrator_operation_invocations_total", &op),
        3.0
    );
    let ok = [
        ("connection", "lines"),
        ("operation", "respond"),
        ("outcome", "ok"),
    ];
    assert_eq!(value(&s, "orchestrator_operation_outcomes_total", &ok), 3.0);
    assert_eq!(
        value(&s, "orchestrator_operation_duration_seconds", &op),
        3.0
    );
    assert!(value(&s, "orchestrator_journal_accepted_total", &[]) >= 3.0);
    assert!(value(&s, "orchestrator_journal_commit_seconds", &[]) >= 1.0);
    let ready = [("connection", "lines"), ("state", "ready")];
    assert_eq!(value(&s, "orchestrator_connection_state", &ready), 1.0);
    let instances = [("agent", "reply"), ("state", "ready")];
    assert_eq!(value(&s, "orchestrator_agent_instances", &instances), 2.0);
    dashboard_metrics_exist(&s);
    assert!(h.stop().success(), "{}", h.dump());
}

/// Every metric `examples/monitoring/grafana-dashboard.json` queries is in the scrape.
fn dashboard_metrics_exist(s: &Scrape) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/monitoring/grafana-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    let mut used = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for (i, _) in expr.match_indices("orchestrator_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                used.insert(name);
            }
        }
    }
    assert!(used.len() >= 15, "{used:?}");
    for name in used {
        let base = name.strip_suffix("_bucket").unwrap_or(&name);
        assert!(
            s.samples.iter().any(|x| x.metric == base),
            "the dashboard queries {name}, which /metrics does not have"
        );
    }
}

/// An Agent without instances (none yet, or its last one forgotten) shows
/// zeros, not whatever its gauge said last.
#[test]
fn an_agent_without_instances_has_zero_gauges() {
    let mut h = Harness::new();
    h.copy_example("connectors/lines.py");
    h.copy_example("agents/reply.py");
    let events = h.write_events("events.jsonl", &[]);
    let replies = h.path("replies.txt");
    let bundle = e2e::lines_reply_bundle(&events, &replies)
        .replace("agents: [Agent/reply]", "agents: [Agent/reply, Agent/idle]")
        + "---\napiVersion: goondan.ai/v1\nkind: Agent\nmetadata: { name: idle }\nspec: { entry: ./reply.py }\n";
    h.start_with(&bundle, &["--metrics", "127.0.0.1:0"]);
    h.wait_until("the metrics address", DEADLINE, || {
        std::fs::read_to_string(h.state().join("metrics.address")).is_ok_and(|a| a.ends_with('\n'))
    });
    h.wait_until("the idle Agent's gauge", DEADLINE, || {
        scrape(&h).samples.iter().any(|x| {
            x.metric == "orchestrator_agent_instances"
                && x.labels.get("agent") == Some("idle")
                && x.labels.get("state") == Some("ready")
                && matches!(x.value, Value::Gauge(v) if v == 0.0)
        })
    });
    assert!(h.stop().success(), "{}", h.dump());
}
