//! Golden fixtures: the encoded bytes of every message kind, in both forms.
//!
//! A fixture that no longer matches what the code writes, or no longer
//! decodes to the same value, is a protocol change: bump PROTOCOL_VERSION and
//! say so in docs/protocol.md. Regenerate with `UPDATE_FIXTURES=1 cargo test -p ipc-proto`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use ipc_proto::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn event() -> Event {
    Event {
        name: "user_message".into(),
        message: Some(Message::text("hi")),
        properties: props(&[("chat_id", "42")]),
        instance_key: Some("telegram:42".into()),
        payload: None,
    }
}

fn delivered() -> DeliveredEvent {
    DeliveredEvent {
        id: "0193b3c2-7d4e-7000-8000-000000000001".into(),
        connection: "telegram-production".into(),
        connector: "telegram".into(),
        name: "user_message".into(),
        message: Some(Message::text("hi")),
        properties: props(&[("chat_id", "42")]),
        instance_key: "telegram:42".into(),
        received_at: "2026-11-27T10:30:00Z".into(),
        payload: None,
    }
}

fn payload() -> Option<Json> {
    Some(Json(
        serde_json::json!({"update_id": 10, "message": {"message_id": 7, "text": "hi"}}),
    ))
}

fn job_response() -> InvokeResponse {
    InvokeResponse {
        data: Json(serde_json::json!({"reportId": "r1"})),
        metadata: ResponseMetadata {
            request_id: "0194a000-0000-7000-8000-000000000002".into(),
            correlation_id: None,
            connection: "reports".into(),
            operation: "buildReport".into(),
            duration_ms: 1200,
            attempts: 1,
            provider_status: None,
        },
        warnings: vec![],
        redactions_applied: vec![],
        truncated: false,
    }
}

pub fn to_connector() -> Vec<(&'static str, ToConnector)> {
    vec![
        (
            "init",
            ToConnector::Init(ConnectorInit {
                protocol: PROTOCOL_VERSION,
                connector: "telegram".into(),
                connection: "telegram-production".into(),
                config: props(&[("PORT", "3000")]),
                secrets: Secrets(props(&[("BOT_TOKEN", "123:abc")])),
                state_dir: "/abs/path/for/this/connection".into(),
            }),
        ),
        (
            "ack",
            ToConnector::Ack(EmitAck {
                seq: 7,
                duplicate: None,
            }),
        ),
        (
            "ack-duplicate",
            ToConnector::Ack(EmitAck {
                seq: 9,
                duplicate: Some(true),
            }),
        ),
        (
            "nack",
            ToConnector::Nack(EmitNack {
                seq: 8,
                error: NackError {
                    kind: NackKind::ValidationError,
                    message: "event 'foo' is not declared by Connector/telegram".into(),
                },
            }),
        ),
        (
            "shutdown",
            ToConnector::Shutdown(Shutdown { grace_ms: 5000 }),
        ),
        ("ping", ToConnector::Ping(Ping { nonce: 42 })),
        (
            "error",
            ToConnector::Error(ProtocolError {
                message: "line 3: expected value at column 1".into(),
            }),
        ),
        (
            "call",
            ToConnector::Call(Call {
                id: "c-88".into(),
                operation: "sendMessage".into(),
                input: Json(serde_json::json!({"chatId": "42", "text": "hi"})),
                attempt: 1,
                deadline_ms: 4950,
                idempotency_key: Some("reply:0193b3c2".into()),
            }),
        ),
        (
            "cancel",
            ToConnector::Cancel(CancelCall { id: "c-88".into() }),
        ),
    ]
}

pub fn from_connector() -> Vec<(&'static str, FromConnector)> {
    vec![
        ("ready", FromConnector::Ready(Ready::default())),
        (
            "ready-versioned",
            FromConnector::Ready(Ready {
                protocol: Some(1),
                features: vec![],
            }),
        ),
        (
            "emit-payload",
            FromConnector::Emit(Emit {
                seq: 10,
                event: Event {
                    payload: payload(),
                    ..event()
                },
                dedupe_key: Some("telegram:10".into()),
            }),
        ),
        (
            "emit",
            FromConnector::Emit(Emit {
                seq: 7,
                event: event(),
                dedupe_key: None,
            }),
        ),
        (
            "emit-dedupe",
            FromConnector::Emit(Emit {
                seq: 8,
                event: Event {
                    name: "push".into(),
                    message: Some(Message::File(File {
                        url: "https://example.com/a.txt".into(),
                        name: "a.txt".into(),
                    })),
                    properties: BTreeMap::new(),
                    instance_key: None,
                    payload: None,
                },
                dedupe_key: Some("github:72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            }),
        ),
        (
            "emit-image",
            FromConnector::Emit(Emit {
                seq: 9,
                event: Event {
                    name: "photo".into(),
                    message: Some(Message::Image(Image {
                        url: "https://example.com/a.png".into(),
                    })),
                    properties: BTreeMap::new(),
                    instance_key: None,
                    payload: None,
                },
                dedupe_key: None,
            }),
        ),
        (
            "log",
            FromConnector::Log(Log {
                level: LogLevel::Info,
                message: "listening on 127.0.0.1:3000".into(),
            }),
        ),
        (
            "audit",
            FromConnector::Audit(Audit {
                kind: "signature_rejected".into(),
                scheme: Some("github".into()),
                reason: Some("bad_signature".into()),
            }),
        ),
        ("pong", FromConnector::Pong(Pong { nonce: 42 })),
        (
            "call-result-ok",
            FromConnector::CallResult(CallResult {
                id: "c-88".into(),
                ok: true,
                data: Some(Json(serde_json::json!({"messageId": "991"}))),
                provider_status: Some(200),
                warnings: vec![],
                error: None,
            }),
        ),
        (
            "call-result-error",
            FromConnector::CallResult(CallResult {
                id: "c-88".into(),
                ok: false,
                data: None,
                provider_status: Some(502),
                warnings: vec![],
                error: Some(CallError {
                    class: FailureClass::Transient,
                    message: "502 from the provider".into(),
                    retry_after_ms: None,
                    provider_status: Some(502),
                }),
            }),
        ),
    ]
}

pub fn to_agent() -> Vec<(&'static str, ToAgent)> {
    vec![
        (
            "init",
            ToAgent::Init(AgentInit {
                protocol: PROTOCOL_VERSION,
                agent: "handler".into(),
                instance_key: "telegram:42".into(),
                swarm: "default".into(),
                state_dir: "/abs/path/for/this/instance".into(),
                secrets: Default::default(),
            }),
        ),
        (
            "deliver",
            ToAgent::Deliver(Deliver {
                id: "0193b3c2-7d4e-7000-8000-000000000001".into(),
                attempt: 1,
                event: delivered(),
            }),
        ),
        ("shutdown", ToAgent::Shutdown(Shutdown { grace_ms: 5000 })),
        ("ping", ToAgent::Ping(Ping { nonce: 1 })),
        (
            "error",
            ToAgent::Error(ProtocolError {
                message: "bad line".into(),
            }),
        ),
        (
            "result-ok",
            ToAgent::Result(InvokeResult {
                id: "r-17".into(),
                ok: true,
                response: Some(InvokeResponse {
                    data: Json(serde_json::json!({"messageId": "991"})),
                    metadata: ResponseMetadata {
                        request_id: "0194a000-0000-7000-8000-000000000001".into(),
                        correlation_id: Some("0193b3c2-7d4e-7000-8000-000000000001".into()),
                        connection: "telegram-production".into(),
                        operation: "sendMessage".into(),
                        duration_ms: 41,
                        attempts: 1,
                        provider_status: Some(200),
                    },
                    warnings: vec![],
                    redactions_applied: vec![],
                    truncated: false,
                }),
                error: None,
                job: None,
            }),
        ),
        (
            "result-error",
            ToAgent::Result(InvokeResult {
                id: "r-17".into(),
                ok: false,
                response: None,
                error: Some(InvokeError {
                    class: FailureClass::QuotaExceeded,
                    message: "provider answered 429".into(),
                    retry_after_ms: Some(3000),
                    provider_status: Some(429),
                    attempts: 3,
                }),
                job: None,
            }),
        ),
        (
            "result-job",
            ToAgent::Result(InvokeResult {
                id: "r-20".into(),
                ok: true,
                response: None,
                error: None,
                job: Some(Box::new(Job {
                    job_id: "0194a000-0000-7000-8000-000000000002".into(),
                    state: JobState::Pending,
                    connection: Some("reports".into()),
                    operation: Some("buildReport".into()),
                    response: None,
                    error: None,
                })),
            }),
        ),
        (
            "result-job-succeeded",
            ToAgent::Result(InvokeResult {
                id: "r-18".into(),
                ok: true,
                response: None,
                error: None,
                job: Some(Box::new(Job {
                    job_id: "0194a000-0000-7000-8000-000000000002".into(),
                    state: JobState::Succeeded,
                    connection: Some("reports".into()),
                    operation: Some("buildReport".into()),
                    response: Some(job_response()),
                    error: None,
                })),
            }),
        ),
        (
            "init-secrets",
            ToAgent::Init(AgentInit {
                protocol: PROTOCOL_VERSION,
                agent: "handler".into(),
                instance_key: "telegram:42".into(),
                swarm: "default".into(),
                state_dir: "/abs/path/for/this/instance".into(),
                secrets: Secrets(props(&[("OPENAI_API_KEY", "sk-test")])),
            }),
        ),
        (
            "deliver-payload",
            ToAgent::Deliver(Deliver {
                id: "0193b3c2-7d4e-7000-8000-000000000001".into(),
                attempt: 1,
                event: DeliveredEvent {
                    payload: payload(),
                    ..delivered()
                },
            }),
        ),
    ]
}

pub fn from_agent() -> Vec<(&'static str, FromAgent)> {
    vec![
        ("ready", FromAgent::Ready(Ready::default())),
        (
            "ack",
            FromAgent::Ack(DeliveryAck {
                id: "0193b3c2-7d4e-7000-8000-000000000001".into(),
            }),
        ),
        (
            "nack",
            FromAgent::Nack(DeliveryNack {
                id: "0193b3c2-7d4e-7000-8000-000000000001".into(),
                retry: true,
                error: "upstream timed out".into(),
            }),
        ),
        (
            "log",
            FromAgent::Log(Log {
                level: LogLevel::Warn,
                message: "slow".into(),
            }),
        ),
        ("pong", FromAgent::Pong(Pong { nonce: 1 })),
        (
            "invoke",
            FromAgent::Invoke(Invoke {
                id: "r-17".into(),
                connection: "telegram-production".into(),
                operation: "sendMessage".into(),
                input: Json(serde_json::json!({"chatId": "42", "text": "hi"})),
                idempotency_key: Some("reply:0193b3c2".into()),
                timeout_ms: Some(5000),
                correlation_id: Some("0193b3c2-7d4e-7000-8000-000000000001".into()),
            }),
        ),
        (
            "ready-features",
            FromAgent::Ready(Ready {
                protocol: Some(1),
                features: vec![FEATURE_PAYLOAD.into()],
            }),
        ),
        (
            "job-get",
            FromAgent::JobGet(JobGet {
                id: "r-18".into(),
                job_id: "0194a000-0000-7000-8000-000000000002".into(),
            }),
        ),
        (
            "job-cancel",
            FromAgent::JobCancel(JobCancel {
                id: "r-19".into(),
                job_id: "0194a000-0000-7000-8000-000000000002".into(),
            }),
        ),
    ]
}

fn fixture(form: &str, name: &str) -> PathBuf {
    let ext = if form == "frames" { "hex" } else { "json" };
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{form}/{name}.{ext}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n"
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(group: &str, cases: Vec<(&str, T)>) {
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    for (name, msg) in cases {
        let name = format!("{group}-{name}");

        let body = frame::encode_body(&msg).unwrap();
        let path = fixture("frames", &name);
        if update {
            std::fs::write(&path, hex(&body)).unwrap();
        }
        let golden =
            unhex(&std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {path:?}")));
        assert_eq!(body, golden, "{name}: frame bytes changed");
        assert_eq!(
            frame::decode_body::<T>(&golden).unwrap(),
            msg,
            "{name}: frame fixture decodes"
        );

        let line = json::encode(&msg).unwrap();
        let path = fixture("jsonl", &name);
        if update {
            std::fs::write(&path, format!("{line}\n")).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {path:?}"));
        assert_eq!(line, golden.trim_end(), "{name}: json changed");
        assert_eq!(
            json::decode::<T>(&golden).unwrap(),
            msg,
            "{name}: json fixture decodes"
        );
    }
}

#[test]
fn to_connector_fixtures() {
    check("to-connector", to_connector());
}

#[test]
fn from_connector_fixtures() {
    check("from-connector", from_connector());
}

#[test]
fn to_agent_fixtures() {
    check("to-agent", to_agent());
}

#[test]
fn from_agent_fixtures() {
    check("from-agent", from_agent());
}

fn named<T>(cases: Vec<(&str, T)>, name: &str) -> T {
    cases
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// The JSON shapes are the ones docs/protocol.md shows, field for field.
#[test]
fn json_matches_protocol_md() {
    let cases: Vec<(String, &str)> = vec![
        (
            json::encode(&to_connector()[0].1).unwrap(),
            r#"{"config":{"PORT":"3000"},"connection":"telegram-production","connector":"telegram","protocol":1,"secrets":{"BOT_TOKEN":"123:abc"},"stateDir":"/abs/path/for/this/connection","type":"init"}"#,
        ),
        (
            json::encode(&to_connector()[1].1).unwrap(),
            r#"{"seq":7,"type":"ack"}"#,
        ),
        (
            json::encode(&from_connector()[0].1).unwrap(),
            r#"{"type":"ready"}"#,
        ),
        (
            json::encode(&named(from_connector(), "emit")).unwrap(),
            r#"{"event":{"instanceKey":"telegram:42","message":{"text":"hi","type":"text"},"name":"user_message","properties":{"chat_id":"42"}},"seq":7,"type":"emit"}"#,
        ),
        (
            json::encode(&from_agent()[2].1).unwrap(),
            r#"{"error":"upstream timed out","id":"0193b3c2-7d4e-7000-8000-000000000001","retry":true,"type":"nack"}"#,
        ),
    ];
    for (got, want) in cases {
        let got: serde_json::Value = serde_json::from_str(&got).unwrap();
        let want: serde_json::Value = serde_json::from_str(want).unwrap();
        assert_eq!(got, want);
    }
}

/// A line written by hand, as a Python connector would, decodes.
#[test]
fn hand_written_lines_decode() {
    let m: FromConnector = json::decode(
        r#"{"type":"emit","seq":1,"event":{"name":"user_message","message":{"type":"text","text":"hi"}}}"#,
    )
    .unwrap();
    let FromConnector::Emit(e) = m else {
        panic!("not an emit")
    };
    assert_eq!(e.event.message.unwrap().as_text(), Some("hi"));
    assert!(e.event.properties.is_empty());

    let m: FromAgent = json::decode(r#"{"type":"ack","id":"x","extra":"ignored"}"#).unwrap();
    assert_eq!(m, FromAgent::Ack(DeliveryAck { id: "x".into() }));
}

/// A message of the other direction is not something this side may receive.
#[test]
fn wrong_direction_is_an_error() {
    let err = json::decode::<FromConnector>(r#"{"type":"deliver","id":"x"}"#).unwrap_err();
    assert!(err.to_string().contains("deliver"), "{err}");
    let body = frame::encode_body(&ToConnector::Ping(Ping { nonce: 1 })).unwrap();
    // ping is variant 4 of ToConnector; FromConnector's variant 4 is pong, which
    // decodes; the tag byte 5 (error) has no FromConnector counterpart.
    let body5 = frame::encode_body(&ToConnector::Error(ProtocolError {
        message: "x".into(),
    }))
    .unwrap();
    assert!(frame::decode_body::<FromConnector>(&body5).is_err());
    assert!(frame::decode_body::<FromConnector>(&body[..0]).is_err());
}

#[test]
fn secrets_are_redacted_in_debug() {
    let init = &to_connector()[0].1;
    let dbg = format!("{init:?}");
    assert!(!dbg.contains("123:abc"), "{dbg}");
    assert!(dbg.contains("BOT_TOKEN"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
}

/// Absent optional fields are left out of a line, but a `null` inside a
/// payload, an input or a result's data is the sender's data and stays.
#[test]
fn nulls_inside_opaque_json_are_kept() {
    let emit = FromConnector::Emit(Emit {
        seq: 1,
        event: Event {
            name: "push".into(),
            payload: Some(Json(
                serde_json::json!({"repository": {"description": null}}),
            )),
            ..event()
        },
        dedupe_key: None,
    });
    let line = json::encode(&emit).unwrap();
    assert!(line.contains(r#""description":null"#), "{line}");
    assert!(!line.contains("dedupeKey"), "{line}");
    let back: FromConnector = json::decode(&line).unwrap();
    assert_eq!(back, emit);
    let call = ToConnector::Call(Call {
        id: "c-1".into(),
        operation: "x".into(),
        input: Json(serde_json::json!({"a": null, "b": [null]})),
        attempt: 1,
        deadline_ms: 10,
        idempotency_key: None,
    });
    let line = json::encode(&call).unwrap();
    assert!(line.contains(r#""input":{"a":null,"b":[null]}"#), "{line}");
    assert!(!line.contains("idempotencyKey"), "{line}");
}
