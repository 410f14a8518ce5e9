//! What the orchestrator does with bad input from a connector: an event it
//! does not declare is nacked, a frame or line that does not decode is
//! answered with `error`, and either way the connector goes on working.

use e2e::{Harness, event};

/// Connector `$NAME` running `$ENTRY` over `$PROTOCOL`, one Connection `main`
/// routing user_message by chat_id to agent-echo `handler`.
const BUNDLE: &str = r#"
apiVersion: goondan.ai/v1
kind: Connector
metadata: { name: $NAME }
spec:
  entry: $ENTRY
  protocol: $PROTOCOL
  events:
    - name: user_message
      properties: { chat_id: { type: string }, count: { type: number, optional: true } }
  restart: { backoff: { initial: 100ms, max: 1s } }
---
apiVersion: goondan.ai/v1
kind: Connection
metadata: { name: main }
spec:
  connectorRef: Connector/$NAME
  config: $CONFIG
  ingress:
    rules:
      - match: { event: user_message }
        route: { agentRef: Agent/handler, instanceKeyProperty: chat_id, instanceKeyPrefix: "tg:" }
---
apiVersion: goondan.ai/v1
kind: Swarm
metadata: { name: default }
spec: { entryAgent: Agent/handler, agents: [Agent/handler] }
---
apiVersion: goondan.ai/v1
kind: Agent
metadata: { name: handler }
spec: { entry: agent-echo, protocol: frames }
"#;

fn bundle(name: &str, entry: &str, protocol: &str, config: &str) -> String {
    BUNDLE
        .replace("$NAME", name)
        .replace("$ENTRY", entry)
        .replace("$PROTOCOL", protocol)
        .replace("$CONFIG", config)
}

#[test]
fn invalid_events_are_nacked_and_later_ones_still_arrive() {
    let mut h = Harness::new();
    let events = h.write_events(
        "events.jsonl",
        &[
            event("bogus", "undeclared event", &[], Some("k")),
            event("user_message", "missing required property", &[], Some("k")),
            event(
                "user_message",
                "undeclared property",
                &[("chat_id", "7"), ("extra", "x")],
                Some("k"),
            ),
            event(
                "user_message",
                "not a number",
                &[("chat_id", "7"), ("count", "lots")],
                Some("k"),
            ),
            event(
                "user_message",
                "valid-after-nacks",
                &[("chat_id", "7")],
                Some("k"),
            ),
        ],
    );
    h.start(&bundle(
        "emitter",
        "test-emitter",
        "frames",
        &format!("{{ EVENTS: \"{events}\" }}"),
    ));
    let received = h.wait_received("handler", "tg:7", 1);
    h.wait_until("every emit answered", e2e::DEADLINE, || {
        h.connection_log("main").contains("all answered")
    });

    let log = h.connection_log("main");
    // The connector's own account of its answers (test-emitter prints them).
    for (seq, why) in [
        (1, "'bogus' is not declared"),
        (2, "'chat_id' is missing"),
        (3, "'extra' is not declared"),
        (4, "'count' is \"lots\", not a number"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!(" stdout nack {seq} ")))
            .unwrap_or_else(|| panic!("no nack for seq {seq}\n{log}"));
        assert!(
            line.contains(&format!("nack {seq} validation_error ")),
            "kind of nack {seq}: {line}"
        );
        assert!(line.contains(why), "nack {seq} says why: {line}");
        // The orchestrator notes it too.
        assert!(
            log.contains(&format!(
                " orchestrator nack seq {seq} (validation_error): "
            )),
            "note for nack {seq}\n{log}"
        );
    }
    assert!(
        log.contains(" stdout ack 5\n"),
        "the valid event is acked\n{log}"
    );
    assert_eq!(received.len(), 1, "only the valid event is delivered");
    assert_eq!(received[0]["text"], "valid-after-nacks");
    assert!(
        h.is_running(),
        "the orchestrator keeps running\n{}",
        h.dump()
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

#[test]
fn malformed_frames_are_answered_with_error_and_the_channel_goes_on() {
    let mut h = Harness::new();
    let config =
        r#"{ EVENT_NAME: user_message, TEXT: after-garbage, PROPERTIES: '{"chat_id":"9"}' }"#;
    h.start(&bundle("raw", "raw-connector", "frames", config));
    let received = h.wait_received("handler", "tg:9", 1);
    assert_eq!(received[0]["text"], "after-garbage");
    h.wait_until("the raw connector to see its ack", e2e::DEADLINE, || {
        h.connection_log("main")
            .lines()
            .any(|l| l.contains(" stderr ack {") && l.contains(r#""seq":1"#))
    });

    let log = h.connection_log("main");
    // Frame 1 is `ready`, 2 the garbage.
    let garbage = log.lines().find(|l| l.contains("protocol error: frame 2:"));
    assert!(
        garbage.is_some_and(|l| l.contains(" orchestrator ")),
        "garbage frame logged\n{log}"
    );
    // The connector was told, on its own channel.
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" stderr error {"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error message reached the connector\n{log}"
    );
    assert!(errors[0].contains("frame 2"), "{}", errors[0]);
    assert!(
        h.is_running(),
        "the orchestrator keeps running\n{}",
        h.dump()
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

#[test]
fn a_malformed_jsonl_line_is_answered_with_error_and_the_channel_goes_on() {
    let mut h = Harness::new();
    h.copy_fixture("bad_line.py");
    let config = r#"{ TEXT: after-bad-line, PROPERTIES: '{"chat_id":"5"}' }"#;
    h.start(&bundle("badline", "./bad_line.py", "jsonl", config));
    let received = h.wait_received("handler", "tg:5", 1);
    assert_eq!(received[0]["text"], "after-bad-line");
    h.wait_until("the connector to see its ack", e2e::DEADLINE, || {
        h.connection_log("main")
            .lines()
            .any(|l| l.contains(" stderr got ack {") && l.contains(r#""seq":1"#))
    });

    let log = h.connection_log("main");
    // Line 1 is `ready`, line 2 the one that is not JSON.
    assert!(
        log.contains(" orchestrator protocol error: line 2: "),
        "bad line logged\n{log}"
    );
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" stderr got error {"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error message reached the connector\n{log}"
    );
    assert!(errors[0].contains("line 2"), "{}", errors[0]);
    assert!(
        h.is_running(),
        "the orchestrator keeps running\n{}",
        h.dump()
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// A length prefix over the limit (here 4 GiB) ends the channel at once: the
/// orchestrator does not sit reading gigabytes while the child looks ready.
#[test]
fn a_frame_length_over_the_limit_closes_the_channel_at_once() {
    let mut h = Harness::new();
    let config = r#"{ OVERSIZE: "1", TEXT: after-oversize, PROPERTIES: '{"chat_id":"3"}' }"#;
    h.start(&bundle("raw", "raw-connector", "frames", config));
    h.wait_until("the channel to be closed", e2e::DEADLINE, || {
        h.connection_log("main")
            .contains("channel closed after a frame over the size limit")
    });
    let log = h.connection_log("main");
    let oversize = log.lines().find(|l| l.contains("protocol error: frame 3:"));
    assert!(
        oversize.is_some_and(|l| l.contains("over the limit")),
        "oversized frame logged\n{log}"
    );
    // Its process is not left running with a dead channel: it is stopped
    // and started again by its restart policy.
    h.wait_until("the connector to be started again", e2e::DEADLINE, || {
        e2e::count_lines(&h.connection_log("main"), " orchestrator started ") >= 2
    });
    // What came after the bad head was never read as a message.
    assert!(
        h.agent_instances().is_empty(),
        "nothing after the oversized frame is delivered\n{}",
        h.dump()
    );
    assert!(
        h.is_running(),
        "the orchestrator keeps running\n{}",
        h.dump()
    );
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// Two emits in flight with one `seq`: the second is a protocol error
/// answered with `error`, never a second ack.
#[test]
fn a_repeated_seq_in_flight_is_answered_with_error_not_a_second_ack() {
    let mut h = Harness::new();
    let config = r#"{ DUP_SEQ: "1", TEXT: twice, PROPERTIES: '{"chat_id":"4"}' }"#;
    h.start(&bundle("raw", "raw-connector", "frames", config));
    h.wait_until("the ack of seq 2", e2e::DEADLINE, || {
        h.connection_log("main")
            .lines()
            .any(|l| l.contains(" stderr ack {") && l.contains(r#""seq":2"#))
    });
    let log = h.connection_log("main");
    let acks_of_1 = log
        .lines()
        .filter(|l| l.contains(" stderr ack {") && l.contains(r#""seq":1"#))
        .count();
    assert_eq!(acks_of_1, 1, "one ack for seq 1\n{log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" stderr error {"))
        .collect();
    assert_eq!(errors.len(), 2, "garbage frame and repeated seq\n{log}");
    assert!(
        errors[1].contains("seq 1 while an emit with that seq is in flight"),
        "{}",
        errors[1]
    );
    // Both seq 1 and seq 2 carry the same event: delivered twice, not three
    // times (the repeat was refused before seq 2 was read, let alone acked).
    let received = h.wait_received("handler", "tg:4", 2);
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// A child that speaks another protocol version is `failed` for good, not
/// restarted in a loop.
#[test]
fn a_protocol_version_mismatch_is_permanent() {
    let mut h = Harness::new();
    let config = r#"{ READY_PROTOCOL: "99" }"#;
    h.start(&bundle("raw", "raw-connector", "frames", config));
    let row = h.wait_process("failed", "connection/main", e2e::DEADLINE, |p| {
        e2e::state_of(p) == "failed"
    });
    assert!(
        row["lastExit"]
            .as_str()
            .is_some_and(|e| e.contains("protocol version 99")),
        "{row}"
    );
    let log = h.connection_log("main");
    assert_eq!(
        e2e::count_lines(&log, " orchestrator started "),
        1,
        "started once and not again\n{log}"
    );
    assert_eq!(row["restarts"], 0, "{row}");
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// A jsonl connector written by hand: a number where the Connector declares
/// a number is taken, and an emit that cannot be decoded but whose `seq` can
/// be read gets a `validation_error` nack for that seq naming the field —
/// never silence (which would leave the connector waiting for its ack).
const HANDWRITTEN: &str = r#"#!/usr/bin/env python3
import json, sys
sys.stdin.readline()
out = sys.stdout
out.write('{"type":"ready"}\n')
emits = [
    {"name": "user_message", "properties": {"chat_id": "8", "count": 5}, "message": {"type": "text", "text": "counted"}},
    {"name": "user_message", "properties": {"chat_id": "8"}, "text": "beside the message"},
    {"name": "user_message", "properties": {"chat_id": "8", "count": [5]}},
]
for seq, event in enumerate(emits, start=1):
    out.write(json.dumps({"type": "emit", "seq": seq, "event": event}) + "\n")
out.flush()
for line in sys.stdin:
    print("got " + line.strip(), file=sys.stderr, flush=True)
    if json.loads(line)["type"] == "shutdown":
        break
"#;

#[test]
fn a_hand_written_emit_gets_a_nack_naming_its_field_or_is_taken() {
    let mut h = Harness::new();
    h.write_script("handwritten.py", HANDWRITTEN);
    h.start(&bundle("hand", "./handwritten.py", "jsonl", "{}"));
    let received = h.wait_received("handler", "tg:8", 1);
    assert_eq!(received[0]["text"], "counted");
    assert_eq!(received[0]["properties"]["count"], "5");
    h.wait_until("answers to all three emits", e2e::DEADLINE, || {
        e2e::count_lines(&h.connection_log("main"), " stderr got {") >= 3
    });
    let log = h.connection_log("main");
    let answer = |seq: u64| {
        log.lines()
            .filter_map(|l| l.split_once(" stderr got ").map(|(_, j)| j))
            .filter_map(|j| serde_json::from_str::<serde_json::Value>(j).ok())
            .find(|v| v["seq"] == seq)
            .unwrap_or_else(|| panic!("no answer for seq {seq}\n{log}"))
    };
    assert_eq!(answer(1)["type"], "ack", "{log}");
    for (seq, field) in [(2, "unknown field `text`"), (3, "properties.count")] {
        let a = answer(seq);
        assert_eq!(a["type"], "nack", "{a}");
        assert_eq!(a["error"]["kind"], "validation_error", "{a}");
        let message = a["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "seq {seq}: {message}");
    }
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// A connector and an agent built on connector-sdk, both with `protocol:
/// jsonl`: the SDK takes stdin/stdout (pipes from the orchestrator) for the
/// protocol, reads and writes them without blocking, and a stray print goes
/// to the log. Every event arrives, in order per key, and is acked.
#[test]
fn sdk_programs_speak_jsonl_over_their_stdio() {
    const N: usize = 400;
    let mut h = Harness::new();
    let all: Vec<_> = (0..N)
        .map(|i| {
            let chat = if i % 2 == 0 { "a" } else { "b" };
            event("user_message", &format!("m{i}"), &[("chat_id", chat)], None)
        })
        .collect();
    let events = h.write_events("events.jsonl", &all);
    let bundle = bundle(
        "emitter",
        "test-emitter",
        "jsonl",
        &format!("{{ EVENTS: \"{events}\" }}"),
    )
    .replace(
        "spec: { entry: agent-echo, protocol: frames }",
        "spec: { entry: agent-echo, protocol: jsonl }",
    );
    assert!(bundle.contains("agent-echo, protocol: jsonl"));
    h.start(&bundle);
    let a = h.wait_received("handler", "tg:a", N / 2);
    let b = h.wait_received("handler", "tg:b", N / 2);
    h.wait_until("every emit answered", e2e::DEADLINE, || {
        h.connection_log("main").contains("all answered")
    });
    let texts = |got: &[serde_json::Value]| -> Vec<String> {
        got.iter()
            .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let want = |parity: usize| -> Vec<String> {
        (0..N)
            .filter(|i| i % 2 == parity)
            .map(|i| format!("m{i}"))
            .collect()
    };
    assert_eq!(texts(&a), want(0), "key a: every event, in order");
    assert_eq!(texts(&b), want(1), "key b: every event, in order");
    let log = h.connection_log("main");
    assert!(
        log.contains(&format!(" ack {N}\n")),
        "the connector got its last ack (its prints reach the log)\n{log}"
    );
    // Both programs read and write their protocol pipes without blocking
    // (on the runtime's I/O driver, not its blocking pool): each holds two
    // pipes with O_NONBLOCK, its private copies of stdin and stdout. Its
    // stderr, also a pipe, is left as it was.
    let rows = h.status();
    for kind in ["connection", "agent"] {
        let pid = rows
            .iter()
            .find(|r| r["kind"] == kind)
            .and_then(|r| r["pid"].as_u64())
            .unwrap_or_else(|| panic!("a running {kind} in status: {rows:?}"));
        assert_eq!(
            nonblocking_pipes(pid as u32),
            2,
            "{kind} {pid}: its two protocol pipes are non-blocking\n{}",
            h.dump()
        );
    }
    assert!(h.stop().success(), "exit status\n{}", h.dump());
}

/// How many of `pid`'s open fds are pipes with O_NONBLOCK set.
fn nonblocking_pipes(pid: u32) -> usize {
    const O_NONBLOCK: u32 = 0o4000;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("its fds");
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("pipe:"))
        })
        .filter(|fd| {
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            std::fs::read_to_string(info).is_ok_and(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                    .is_some_and(|flags| flags & O_NONBLOCK != 0)
            })
        })
        .count()
}
