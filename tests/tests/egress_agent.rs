//! An Agent in `sandbox.network.mode: egress`: the same confinement as a
//! Connection's connector. A Python agent (standard library only,
//! `tests/fixtures/egress_probe.py` in its agent role) handles an event by
//! fetching an allowed name, one that is not allowed, and by trying a TCP
//! connection that bypasses its proxy. The allowed fetch reaches the test
//! server (on 127.0.0.2, registered through `ORCHESTRATOR_EGRESS_RESOLVE`);
//! the other is a 403 with an `egress_refused` audit record naming the
//! agent and its instance; the direct connection fails. Root only, like
//! tests/tests/egress.rs.

mod egress_support;

use e2e::{DEADLINE, Harness};
use egress_support::fakes::confined;
use egress_support::{Run, audit_records, metric, outcome, python, scrape, upstream};

#[test]
fn an_agent_in_egress_mode_reaches_only_its_allowed_hosts() {
    if !e2e::require_root() {
        return;
    }
    let up = upstream();
    let port = up.port;
    let h = Harness::new();
    h.copy_fixture("egress_probe.py");
    let checks = [
        "env".to_string(),
        format!("urllib:http://api.test:{port}/from-agent"),
        format!("tunnel:api.test:{port}"),
        format!("urllib:http://other.test:{port}/x"),
        format!("direct:127.0.0.2:{port}"),
    ];
    let events = h.write_events(
        "events.jsonl",
        &[e2e::event("go", &checks.join(" "), &[], Some("k1"))],
    );
    let (python, prefix) = python();
    let filesystem = prefix
        .map(|p| format!(", filesystem: {{ readOnly: [\"{p}\"] }}"))
        .unwrap_or_default();
    h.write(
        "bundle.yaml",
        &format!(
            r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: emitter }}
spec:
  entry: test-emitter
  protocol: frames
  events: [ {{ name: go }} ]
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: src }}
spec:
  connectorRef: Connector/emitter
  config: {{ EVENTS: "{events}" }}
  ingress: {{ rules: [ {{ route: {{}} }} ] }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/probe, agents: [Agent/probe] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: probe }}
spec:
  entry: {python}
  args: [egress_probe.py]
  protocol: jsonl
  env: {{ NO_PROXY: "*" }}
  sandbox: {{ network: {{ mode: egress, allowHosts: [api.test], allowPorts: [{port}], allowCidrs: ["127.0.0.2/32"] }}{filesystem} }}
"#
        ),
    );
    let _run = Run::start(
        &h,
        &[(
            "ORCHESTRATOR_EGRESS_RESOLVE",
            "api.test=127.0.0.2,other.test=127.0.0.2",
        )],
    );
    h.wait_until("the agent to handle the event", DEADLINE, || {
        h.agent_log("probe", "k1").contains("checks done")
    });
    let log = h.agent_log("probe", "k1");

    // Told its proxy the conventional way, NO_PROXY of the bundle removed.
    let env = outcome(&log, "env");
    assert!(env.starts_with("ok HTTPS_PROXY=http://127.0.0.1:"), "{env}");
    assert!(env.ends_with("NO_PROXY=absent"), "{env}");

    // The allowed name, by plain urllib and by CONNECT, reached the server.
    assert_eq!(
        outcome(&log, &format!("urllib:http://api.test:{port}/from-agent")),
        "ok 200 hello /from-agent"
    );
    assert_eq!(
        outcome(&log, &format!("tunnel:api.test:{port}")),
        "ok 200 hello /tunnel"
    );
    // The name not listed: 403, its reason in X-Egress-Refused.
    assert_eq!(
        outcome(&log, &format!("urllib:http://other.test:{port}/x")),
        "err 403 host_not_allowed"
    );
    // Around the proxy: no route out of its namespace.
    let direct = outcome(&log, &format!("direct:127.0.0.2:{port}"));
    assert!(direct.starts_with("err"), "{direct}\n{log}");
    let seen = up.seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![
            format!("GET /from-agent HTTP/1.1 host=api.test:{port}"),
            "GET /tunnel HTTP/1.1 host=api.test".to_string(),
        ],
        "only the two allowed requests reached the server"
    );

    // audit.log names the agent and its instance.
    h.wait_until("the refusal in audit.log", DEADLINE, || {
        !audit_records(&h).is_empty()
    });
    let records = audit_records(&h);
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["process"], "agent/probe/k1", "{r}");
    assert_eq!(r["agent"], "probe", "{r}");
    assert_eq!(r["instanceKey"], "k1", "{r}");
    assert_eq!(r["connection"], serde_json::Value::Null, "{r}");
    assert_eq!(r["host"], "other.test", "{r}");
    assert_eq!(r["port"], port, "{r}");
    assert_eq!(r["reason"], "host_not_allowed", "{r}");

    // status: the instance's mechanism and its counts.
    let row = confined(&h, "agent/probe/k1", 2);
    assert_eq!(row["egress"]["allowed"], 2, "{row:#}");
    assert_eq!(row["egress"]["refused"]["host_not_allowed"], 1, "{row:#}");
    let text = String::from_utf8_lossy(&h.cli(&["status", "agent/probe/k1"]).stdout).to_string();
    assert!(text.contains("egress-proxy"), "{text}");

    // /metrics: the agent's counts, by agent.
    let m = scrape(&h);
    let a = "agent=\"probe\"";
    assert_eq!(
        metric(&m, "orchestrator_egress_allowed_total", &[a]),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "orchestrator_egress_refused_total",
            &[a, "reason=\"host_not_allowed\""]
        ),
        1.0,
        "{m}"
    );
}

/// An Agent's egress keys are checked at `validate` as a Connector's are,
/// each error at its place.
#[test]
fn an_agents_egress_keys_are_checked_at_validate() {
    let h = Harness::new();
    h.copy_fixture("egress_probe.py");
    let agent = |network: &str| {
        format!(
            r#"
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/probe, agents: [Agent/probe] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: probe }}
spec:
  entry: python3
  args: [egress_probe.py]
  sandbox: {{ network: {network} }}
"#
        )
    };
    for (network, message) in [
        ("{ mode: egress }", "network mode egress needs allowHosts"),
        (
            "{ mode: egress, allowHosts: [\"api.*.com\"] }",
            "`api.*.com` is not a host name",
        ),
        (
            "{ mode: loopback, allowHosts: [api.test] }",
            "allowHosts is only allowed with network mode egress",
        ),
    ] {
        h.write("bundle.yaml", &agent(network));
        let out = h.validate("bundle.yaml");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{network}: {text}");
        assert!(text.contains(message), "{network}: {text}");
        assert!(text.contains("bundle.yaml:"), "{network}: a place: {text}");
    }
    h.write(
        "bundle.yaml",
        &agent("{ mode: egress, allowHosts: [api.example.com, \"*.example.org\"], allowPorts: [443, 8443] }"),
    );
    let out = h.validate("bundle.yaml");
    assert!(out.status.success(), "{out:?}");
}
