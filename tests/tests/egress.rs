//! `sandbox.network.mode: egress`: a Python child (standard library only)
//! reaches an allowed host through the orchestrator's proxy, by CONNECT and
//! by a plain `urllib` request; every other way out is refused, with its
//! reason in `audit.log`, `status` and `/metrics`.
//!
//! The "outside" is a test server on 127.0.0.2, registered under names
//! through the proxy's test resolver (`ORCHESTRATOR_EGRESS_RESOLVE`): no
//! real outside address is ever asked for. These tests run as root (as CI
//! does), where the child gets a network namespace; without root they
//! fail, unless `E2E_SKIP_ROOT=1` says to skip them knowingly.

mod egress_support;

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, UdpSocket};

use e2e::{DEADLINE, Harness};
use egress_support::{Run, audit_records, bundle, metric, outcome, scrape, upstream};

#[test]
fn egress_reaches_allowed_hosts_through_its_proxy_and_nothing_else() {
    if !e2e::require_root() {
        return;
    }
    let up = upstream();
    let port = up.port;
    let other_port = port.checked_add(1).unwrap_or(port - 1);
    // Something of the host's own, on another port: must stay out of reach.
    let host_side = TcpListener::bind("0.0.0.0:0").expect("host listener");
    host_side.set_nonblocking(true).expect("nonblocking");
    let host_port = host_side.local_addr().expect("addr").port();
    let dns = UdpSocket::bind("127.0.0.1:0").expect("udp");
    dns.set_nonblocking(true).expect("nonblocking");
    let dns_port = dns.local_addr().expect("addr").port();

    let h = Harness::new();
    h.copy_fixture("egress_probe.py");
    let network = format!(
        r#"{{ mode: egress, allowHosts: [api.test, "*.wild.test", loop.test, private.test, meta.test, "169.254.169.254"], allowPorts: [{port}], allowCidrs: ["127.0.0.2/32"] }}"#
    );
    let checks = [
        "env".to_string(),
        format!("tunnel:api.test:{port}"),
        format!("urllib:http://api.test:{port}/plain"),
        format!("urllib:http://deep.down.wild.test:{port}/wild"),
        format!("tunnel:other.test:{port}"),
        format!("urllib:http://other.test:{port}/x"),
        format!("tunnel:127.0.0.2:{port}"),
        format!("tunnel:loop.test:{port}"),
        format!("tunnel:private.test:{port}"),
        format!("tunnel:meta.test:{port}"),
        format!("tunnel:169.254.169.254:{port}"),
        format!("tunnel:api.test:{other_port}"),
        format!("direct:127.0.0.2:{port}"),
        format!("direct:127.0.0.1:{host_port}"),
        "dns:api.test".to_string(),
        format!("udp:127.0.0.1:{dns_port}"),
    ];
    h.write("bundle.yaml", &bundle(&network, &checks.join(" ")));
    let resolve = "api.test=127.0.0.2,deep.down.wild.test=127.0.0.2,other.test=127.0.0.2,loop.test=127.0.0.1,private.test=10.0.0.1,meta.test=169.254.169.254";
    let _run = Run::start(&h, &[("ORCHESTRATOR_EGRESS_RESOLVE", resolve)]);
    h.wait_until("the probe to finish its checks", DEADLINE, || {
        h.connection_log("p").contains("checks done")
    });
    let log = h.connection_log("p");

    // Told the conventional way; NO_PROXY from the bundle is gone.
    let env = outcome(&log, "env");
    assert!(env.starts_with("ok HTTPS_PROXY=http://127.0.0.1:"), "{env}");
    let url = env
        .split(' ')
        .nth(1)
        .and_then(|v| v.split_once('='))
        .map(|(_, u)| u);
    let url = url.expect("proxy url");
    assert!(env.contains(&format!("HTTP_PROXY={url}")), "{env}");
    assert!(env.contains(&format!("ALL_PROXY={url}")), "{env}");
    assert!(env.ends_with("NO_PROXY=absent"), "{env}");

    // Allowed: CONNECT, and plain urllib (absolute form, sent on in origin form).
    assert_eq!(
        outcome(&log, &format!("tunnel:api.test:{port}")),
        "ok 200 hello /tunnel"
    );
    assert_eq!(
        outcome(&log, &format!("urllib:http://api.test:{port}/plain")),
        "ok 200 hello /plain"
    );
    assert_eq!(
        outcome(
            &log,
            &format!("urllib:http://deep.down.wild.test:{port}/wild")
        ),
        "ok 200 hello /wild",
        "*.wild.test covers any depth"
    );
    let seen = up.seen.lock().expect("lock").clone();
    assert!(
        seen.contains(&format!("GET /plain HTTP/1.1 host=api.test:{port}")),
        "{seen:?}"
    );

    // Refused, each with its reason (403, X-Egress-Refused).
    let refusals = [
        (
            format!("tunnel:other.test:{port}"),
            "host_not_allowed",
            "other.test",
        ),
        (
            format!("urllib:http://other.test:{port}/x"),
            "host_not_allowed",
            "other.test",
        ),
        (
            format!("tunnel:127.0.0.2:{port}"),
            "literal_ip",
            "127.0.0.2",
        ),
        (
            format!("tunnel:loop.test:{port}"),
            "loopback_address",
            "loop.test",
        ),
        (
            format!("tunnel:private.test:{port}"),
            "private_address",
            "private.test",
        ),
        (
            format!("tunnel:meta.test:{port}"),
            "metadata_address",
            "meta.test",
        ),
        (
            format!("tunnel:169.254.169.254:{port}"),
            "metadata_address",
            "169.254.169.254",
        ),
        (
            format!("tunnel:api.test:{other_port}"),
            "port_not_allowed",
            "api.test",
        ),
    ];
    for (check, reason, _) in &refusals {
        assert_eq!(outcome(&log, check), format!("err 403 {reason}"), "{check}");
    }

    // No way around the proxy: not to the server, not to the host's other
    // ports, not to a resolver, not even a UDP socket.
    for check in [
        format!("direct:127.0.0.2:{port}"),
        format!("direct:127.0.0.1:{host_port}"),
        "dns:api.test".to_string(),
        format!("udp:127.0.0.1:{dns_port}"),
    ] {
        assert!(outcome(&log, &check).starts_with("err"), "{check}\n{log}");
    }
    assert!(
        matches!(host_side.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the host's listener saw no connection"
    );
    let mut buf = [0u8; 512];
    assert!(
        matches!(dns.recv_from(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the resolver saw no query"
    );
    let direct = up.seen.lock().expect("lock").len();
    assert_eq!(
        direct, 3,
        "only the three allowed requests reached the server: {:?}",
        up.seen
    );

    // audit.log: one record per refusal, naming the child, host and reason.
    h.wait_until("the refusals in audit.log", DEADLINE, || {
        audit_records(&h).len() >= refusals.len()
    });
    let records = audit_records(&h);
    for (check, reason, host) in &refusals {
        assert!(
            records.iter().any(|r| r["reason"] == *reason
                && r["host"] == *host
                && r["process"] == "connection/p"
                && r["connection"] == "p"
                && r["outcome"] == "refused"),
            "{check}: no record\n{records:#?}"
        );
    }
    let meta = records
        .iter()
        .find(|r| r["host"] == "meta.test")
        .expect("meta");
    assert_eq!(meta["addresses"], serde_json::json!(["169.254.169.254"]));

    // status: the mechanism, and the counts.
    let row = h.process("connection/p").expect("status row");
    let network = row["sandbox"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["limit"] == "network").cloned())
        .expect("network limit");
    assert_eq!(network["enforced"], true, "{network}");
    let mechanism = network["mechanism"].as_str().unwrap_or_default();
    assert!(mechanism.contains("netns+egress-proxy"), "{network}");
    let egress = &row["egress"];
    assert_eq!(egress["allowed"], 3, "{egress}");
    assert_eq!(egress["refused"]["host_not_allowed"], 2, "{egress}");
    assert_eq!(egress["refused"]["literal_ip"], 1, "{egress}");
    assert_eq!(egress["refused"]["metadata_address"], 2, "{egress}");
    assert_eq!(egress["refused"]["port_not_allowed"], 1, "{egress}");
    assert!(
        egress["bytesReceived"].as_u64().unwrap_or(0) > 0,
        "{egress}"
    );
    assert!(egress["bytesSent"].as_u64().unwrap_or(0) > 0, "{egress}");
    let text = String::from_utf8_lossy(&h.cli(&["status", "connection/p"]).stdout).to_string();
    assert!(text.contains("egress-proxy"), "{text}");
    assert!(
        text.contains("egress      allowed 3, refused host_not_allowed 2, literal_ip 1,"),
        "{text}"
    );

    // /metrics agrees.
    let m = scrape(&h);
    let p = "connection=\"p\"";
    assert_eq!(
        metric(&m, "orchestrator_egress_allowed_total", &[p]),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "orchestrator_egress_refused_total",
            &[p, "reason=\"loopback_address\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "orchestrator_egress_refused_total",
            &[p, "reason=\"private_address\""]
        ),
        1.0
    );
    assert!(
        metric(
            &m,
            "orchestrator_egress_bytes_total",
            &[p, "direction=\"received\""]
        ) > 0.0
    );
}

#[test]
fn egress_keys_are_checked_at_validate_with_their_places() {
    let h = Harness::new();
    h.copy_fixture("egress_probe.py");
    let cases = [
        (
            "{ mode: allowlist, connectTcp: [443], allowHosts: [api.test] }",
            "allowHosts is only allowed with network mode egress",
        ),
        (
            "{ mode: none, publishTcp: [3000] }",
            "publishTcp is only allowed with network mode egress",
        ),
        (
            "{ mode: egress, allowHosts: [a.test], publishTcp: [\"localhost:x\"] }",
            "`localhost:x` is not a port or address:port",
        ),
        ("{ mode: egress }", "network mode egress needs allowHosts"),
        (
            "{ mode: egress, allowHosts: [\"api.*.com\"] }",
            "`api.*.com` is not a host name",
        ),
        (
            "{ mode: egress, allowHosts: [a.test], allowCidrs: [10.0.0.0/40] }",
            "the prefix length must be 0 to 32",
        ),
        (
            "{ mode: egress, allowHosts: [a.test], connectTcp: [443] }",
            "ports are only allowed with network mode allowlist",
        ),
    ];
    for (network, message) in cases {
        h.write("bundle.yaml", &bundle(network, "env"));
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
        &bundle(
            "{ mode: egress, allowHosts: [API.Telegram.org, \"*.slack.com\", 192.0.2.1], allowCidrs: [10.1.0.0/16] }",
            "env",
        ),
    );
    let out = h.validate("bundle.yaml");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn egress_publish_tcp_forwards_inbound_connections_into_its_namespace() {
    if !e2e::require_root() {
        return;
    }
    use std::io::Read;
    // A port free on the host now; the child listens on the same one inside.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let h = Harness::new();
    h.copy_fixture("egress_probe.py");
    let network = format!("{{ mode: egress, allowHosts: [api.test], publishTcp: [{port}] }}");
    h.write("bundle.yaml", &bundle(&network, &format!("listen:{port}")));
    let _run = Run::start(&h, &[("ORCHESTRATOR_EGRESS_RESOLVE", "api.test=127.0.0.2")]);
    h.wait_until("the probe to listen", DEADLINE, || {
        h.connection_log("p").contains("checks done")
    });
    let log = h.connection_log("p");
    assert_eq!(outcome(&log, &format!("listen:{port}")), "ok listening");
    // From the host: 127.0.0.1:<port> reaches the child's own listener.
    let ask = |path: &str| {
        let mut answer = String::new();
        h.wait_until("an answer from inside", DEADLINE, || {
            answer.clear();
            std::net::TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut s| {
                    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                    s.write_all(request.as_bytes())?;
                    s.read_to_string(&mut answer)
                })
                .is_ok()
                && !answer.is_empty()
        });
        answer
    };
    assert_eq!(ask("/hook"), format!("inside {port} GET /hook HTTP/1.1"));
    let row = h.process("connection/p").expect("status row");
    let network = row["sandbox"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["limit"] == "network").cloned())
        .expect("network limit");
    assert!(
        network["value"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("publishTcp=[\"127.0.0.1:{port}\"]")),
        "{network}"
    );
    assert!(
        network["note"]
            .as_str()
            .unwrap_or_default()
            .contains("publishTcp"),
        "{network}"
    );
    // Restarted: the first start's forward is gone with it (the host port
    // binds again) and the new child is reached.
    let first = row["pid"].clone();
    let out = h.cli(&["restart", "connection/p"]);
    assert!(out.status.success(), "{out:?}");
    h.wait_until("the second start's checks", DEADLINE, || {
        e2e::count_lines(&h.connection_log("p"), "checks done") >= 2
    });
    assert_eq!(ask("/again"), format!("inside {port} GET /again HTTP/1.1"));
    let row = h.process("connection/p").expect("status row");
    assert_ne!(row["pid"], first, "{row:#}");
    assert!(
        !row["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("publishTcp"),
        "{row:#}"
    );
}

#[test]
fn a_shipped_connector_reaches_its_api_through_the_proxy() {
    if !e2e::require_root() {
        return;
    }
    // connector-telegram (reqwest, no proxy configured by it) in egress
    // mode: its only way out is the proxy from HTTPS_PROXY/HTTP_PROXY.
    let up = upstream();
    let port = up.port;
    let h = Harness::new();
    h.write(
        "bundle.yaml",
        &format!(
            r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: {{ name: telegram }}
spec:
  entry: connector-telegram
  protocol: frames
  events: [ {{ name: message }} ]
  sandbox: {{ network: {{ mode: egress, allowHosts: [api.telegram.test], allowPorts: [{port}], allowCidrs: ["127.0.0.2/32"] }} }}
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: {{ name: tg }}
spec:
  connectorRef: Connector/telegram
  config: {{ API_BASE: "http://api.telegram.test:{port}", POLL_TIMEOUT: "1" }}
  secrets: {{ BOT_TOKEN: {{ value: "123:test-token" }} }}
  ingress: {{ rules: [ {{ route: {{}} }} ] }}
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: {{ name: default }}
spec: {{ entryAgent: Agent/a, agents: [Agent/a] }}
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: {{ name: a }}
spec: {{ entry: test-agent, protocol: frames }}
"#
        ),
    );
    let _run = Run::start(
        &h,
        &[("ORCHESTRATOR_EGRESS_RESOLVE", "api.telegram.test=127.0.0.2")],
    );
    h.wait_until("getUpdates through the proxy", DEADLINE, || {
        up.seen
            .lock()
            .expect("lock")
            .iter()
            .any(|r| r.contains("/getUpdates HTTP/1.1") && r.contains("host=api.telegram.test:"))
    });
    let row = h.wait_process("counted", "connection/tg", DEADLINE, |p| {
        p["egress"]["allowed"].as_u64().unwrap_or(0) >= 1
    });
    assert!(
        row["egress"]["bytesSent"].as_u64().unwrap_or(0) > 0,
        "{row:#}"
    );
}
