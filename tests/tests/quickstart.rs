//! The README's quickstart, run for real: an HTTP webhook routed to the Rust
//! and the Python echo agents.

use e2e::{DEADLINE, Harness};

/// One JSON POST; the status code and body.
fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    let a = e2e::http_post(
        addr,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    (a.status, a.body)
}

#[test]
fn quickstart_webhook_reaches_both_echo_agents() {
    let mut h = Harness::new();
    // The bundle refers to ../agents/echo.py: keep the examples' layout.
    let dir = h.copy_example_dir("quickstart");
    h.copy_example_dir("agents");
    let bundle_path = dir.join("bundle.yaml");
    let bundle = std::fs::read_to_string(&bundle_path).expect("read quickstart bundle");
    assert!(
        bundle.contains(r#"PORT: "8080""#),
        "the quickstart sets PORT \"8080\"; update this test\n{bundle}"
    );
    // Port 0: tests run in parallel, and 8080 may be taken.
    std::fs::write(
        &bundle_path,
        bundle.replace(r#"PORT: "8080""#, r#"PORT: "0""#),
    )
    .expect("write bundle");
    h.start_file("quickstart/bundle.yaml");

    let address_file = h.state().join("state/connections/quickstart/address");
    h.wait_until(
        "the webhook connector to write its address",
        DEADLINE,
        || std::fs::read_to_string(&address_file).is_ok_and(|a| !a.trim().is_empty()),
    );
    let addr = std::fs::read_to_string(&address_file)
        .expect("address")
        .trim()
        .to_owned();

    // The agent's answer, through the webhook's `respond`, is the HTTP response.
    let (status, body) = post(&addr, "/hooks", r#"{"user":"ada","text":"hello"}"#);
    assert_eq!(status, 200, "{body}\n{}", h.dump());
    let reply: serde_json::Value = serde_json::from_str(&body).expect("json reply");
    assert_eq!(
        reply,
        serde_json::json!({"echo": "hello", "by": "agent-echo", "instanceKey": "ada"}),
        "{}",
        h.dump()
    );
    let r = h.wait_received("echo", "ada", 1);
    assert_eq!(r[0]["text"], "hello");
    assert_eq!(r[0]["connection"], "quickstart");
    assert!(
        h.agent_log("echo", "ada").contains("agent-echo pid="),
        "the Rust agent handled it"
    );

    let (status, body) = post(
        &addr,
        "/hooks",
        r#"{"user":"bob","text":"hi","lang":"python"}"#,
    );
    assert_eq!(status, 200, "{body}\n{}", h.dump());
    let reply: serde_json::Value = serde_json::from_str(&body).expect("json reply");
    assert_eq!(
        reply,
        serde_json::json!({"echo": "hi", "by": "echo.py", "instanceKey": "bob"})
    );
    let r = h.wait_received("echo-py", "bob", 1);
    assert_eq!(r[0]["text"], "hi");
    assert_eq!(r[0]["properties"]["lang"], "python");
    assert!(
        h.agent_log("echo-py", "bob").contains("echo.py pid="),
        "the Python agent handled it"
    );

    let (status, body) = post(&addr, "/hooks", r#"{"user":"eve","text": oops"#);
    assert_eq!(status, 400, "invalid JSON is refused: {body}");
    // A later valid request to the same instance arrives alone: the bad one never did.
    let (status, body) = post(
        &addr,
        "/hooks",
        r#"{"user":"eve","text":"after the bad one"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let r = h.wait_received("echo", "eve", 1);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["text"], "after the bad one");

    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// Issue 4's "done when": the quickstart's webhook connector, sandboxed to
/// its one port, still answers, and status shows every limit's mechanism.
#[test]
fn the_quickstart_webhook_runs_sandboxed_to_its_one_port() {
    let mut h = Harness::new();
    let dir = h.copy_example_dir("quickstart");
    h.copy_example_dir("agents");
    // Landlock needs the port up front: take a free one and give it back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bundle_path = dir.join("bundle.yaml");
    let bundle = std::fs::read_to_string(&bundle_path).expect("read quickstart bundle");
    let sandboxed = bundle.replace(r#"PORT: "8080""#, &format!(r#"PORT: "{port}""#)).replace(
        "  restart:\n    backoff: { initial: 500ms, max: 10s }\n",
        &format!(
            "  restart:\n    backoff: {{ initial: 500ms, max: 10s }}\n  sandbox:\n    network: {{ mode: allowlist, bindTcp: [{port}] }}\n    resources: {{ memoryMax: 256Mi, tasksMax: 64, nofile: 256 }}\n"
        ),
    );
    assert_ne!(
        sandboxed,
        bundle.replace(r#"PORT: "8080""#, &format!(r#"PORT: "{port}""#)),
        "the sandbox went in"
    );
    std::fs::write(&bundle_path, sandboxed).expect("write bundle");
    h.start_file("quickstart/bundle.yaml");
    let addr = format!("127.0.0.1:{port}");
    h.wait_process("ready", "connection/quickstart", DEADLINE, |p| {
        p["state"] == "ready"
    });

    let (status, body) = post(
        &addr,
        "/hooks",
        r#"{"user":"ada","text":"from the sandbox"}"#,
    );
    assert_eq!(status, 200, "{body}\n{}", h.dump());
    assert_eq!(
        h.wait_received("echo", "ada", 1)[0]["text"],
        "from the sandbox"
    );

    let conn = h.process("connection/quickstart").expect("in status");
    let limits = conn["sandbox"].as_array().expect("a sandbox list");
    for limit in ["network", "memoryMax", "tasksMax", "nofile"] {
        let row = limits
            .iter()
            .find(|l| l["limit"] == limit)
            .unwrap_or_else(|| panic!("{limit} listed: {limits:#?}"));
        assert_eq!(row["enforced"], true, "{row}");
        assert!(
            row["mechanism"].as_str().is_some_and(|m| !m.is_empty()),
            "{row}"
        );
    }
    assert!(h.stop().success());
}

/// Without an answer within REPLY_TIMEOUT a request gets the usual
/// `{"accepted":true,…}`; `respond` naming no waiting request is `permanent`.
#[test]
fn a_request_nobody_answers_falls_back_to_accepted_after_reply_timeout() {
    let mut h = Harness::new();
    let dir = h.copy_example_dir("quickstart");
    h.copy_example_dir("agents");
    let bundle_path = dir.join("bundle.yaml");
    let bundle = std::fs::read_to_string(&bundle_path).expect("read quickstart bundle");
    // No agent may invoke `respond` here, and the wait is short.
    let changed = bundle
        .replace(r#"PORT: "8080""#, r#"PORT: "0""#)
        .replace("REPLY_TIMEOUT: 5s", "REPLY_TIMEOUT: 300ms")
        .replace(
            "  invoke: [{ connection: quickstart, operations: [respond] }]\n",
            "",
        );
    assert!(
        changed.contains("300ms") && !changed.contains("invoke:"),
        "{changed}"
    );
    std::fs::write(&bundle_path, changed).expect("write bundle");
    h.start_file("quickstart/bundle.yaml");
    let address_file = h.state().join("state/connections/quickstart/address");
    h.wait_until("the webhook's address", DEADLINE, || {
        std::fs::read_to_string(&address_file).is_ok_and(|a| !a.trim().is_empty())
    });
    let addr = std::fs::read_to_string(&address_file).expect("address");
    let (status, body) = post(addr.trim(), "/hooks", r#"{"user":"ada","text":"hello"}"#);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["accepted"], true, "{answer}");
    h.wait_until("the agent's failed reply", DEADLINE, || {
        h.agent_log("echo", "ada").contains("policy_denied")
    });
    let out = h.cli(&[
        "invoke",
        "quickstart",
        "respond",
        "--input",
        r#"{"replyTo":"01a2297a-0000-7000-8000-000000000000","body":{}}"#,
        "--json",
    ]);
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(result["error"]["class"], "permanent", "{result}");
    assert!(h.stop().success(), "{}", h.dump());
}
