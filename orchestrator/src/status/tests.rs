use super::*;

fn row(target: &str, state: ProcessState) -> ProcessSnapshot {
    ProcessSnapshot {
        kind: if target.starts_with("agent") {
            ProcessKind::Agent
        } else {
            ProcessKind::Connection
        },
        name: target.split('/').nth(1).unwrap_or_default().into(),
        instance_key: target.split('/').nth(2).map(Into::into),
        target: target.into(),
        pid: Some(4242),
        pgid: Some(4241),
        state,
        restarts: 2,
        uptime_secs: Some(75.0),
        last_exit: Some("exit code 1".into()),
        last_error: Some("panicked at src/main.rs:10: boom".into()),
        last_success_at: Some("2026-11-27T10:30:00.000Z".into()),
        health_checked_at: None,
        events_in: 10,
        events_out: 9,
        protocol_errors: 0,
        intake: None,
        sandbox: Vec::new(),
        egress: None,
        operations: None,
        operations_state: None,
        circuit_trips: None,
        connection_state: None,
        details: None,
        node: None,
    }
}

#[test]
fn table_snapshot() {
    let mut crashed = row("connection/webhook", ProcessState::Crashloop);
    crashed.pid = None;
    crashed.uptime_secs = None;
    let mut sandboxed = row("agent/echo/telegram:42", ProcessState::Ready);
    sandboxed.sandbox = vec![
        LimitReport {
            limit: "network".into(),
            value: "allowlist bindTcp=[3000] connectTcp=[]".into(),
            enforced: true,
            mechanism: "landlock-abi-7, seccomp".into(),
            note: Some("UDP is not covered (Landlock ABI 7 < 10)".into()),
        },
        LimitReport {
            limit: "memoryMax".into(),
            value: "256Mi".into(),
            enforced: true,
            mechanism: "cgroup-v1".into(),
            note: None,
        },
        LimitReport {
            limit: "cpuQuota".into(),
            value: "50%".into(),
            enforced: false,
            mechanism: "not enforced: no cpu cgroup".into(),
            note: None,
        },
    ];
    let rows = vec![crashed, sandboxed];
    insta::assert_snapshot!(render_table(&rows));
}

#[test]
fn json_shape_is_stable() {
    let json = serde_json::to_value(row("agent/echo/k", ProcessState::Ready)).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "circuitTrips",
            "eventsIn",
            "eventsOut",
            "healthCheckedAt",
            "instanceKey",
            "intake",
            "kind",
            "lastError",
            "lastExit",
            "lastSuccessAt",
            "name",
            "operations",
            "operationsState",
            "pgid",
            "pid",
            "protocolErrors",
            "restarts",
            "sandbox",
            "state",
            "target",
            "uptimeSecs"
        ]
    );
    assert_eq!(json["state"], "ready");
    let limit = LimitReport {
        limit: "nofile".into(),
        value: "1024".into(),
        enforced: true,
        mechanism: "rlimit".into(),
        note: Some("why".into()),
    };
    let limit = serde_json::to_value(limit).unwrap();
    let keys: Vec<&str> = limit
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["enforced", "limit", "mechanism", "note", "value"]);
    assert_eq!(json["kind"], "agent");
}

#[test]
fn targets_match_agents_by_prefix() {
    let reg = Registry::default();
    for (kind, name, key) in [
        (ProcessKind::Agent, "echo", Some("a")),
        (ProcessKind::Agent, "echo", Some("b/c")),
        (ProcessKind::Agent, "echoes", Some("a")),
        (ProcessKind::Connection, "echo", None),
    ] {
        reg.add(ProcessStatus::new(kind, name, key).0);
    }
    let names = |t: &str| {
        reg.matching(t)
            .iter()
            .map(|p| p.target())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("agent/echo"), ["agent/echo/a", "agent/echo/b/c"]);
    assert_eq!(names("agent/echo/b/c"), ["agent/echo/b/c"]);
    assert_eq!(names("connection/echo"), ["connection/echo"]);
    assert!(names("agent/ech").is_empty());
}
