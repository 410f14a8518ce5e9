//! The connector side against a fake orchestrator over a real socket pair.

mod common;

use std::collections::BTreeMap;
use std::process::ExitCode;

use common::{Fake, pair, within};
use connector_sdk::{
    Accepted, Clock, ConfigError, Context, EmitError, Event, Message, MockClock, NackKind, Secrets,
};
use ipc_proto::{
    ConnectorInit, EmitAck, EmitNack, FromConnector, NackError, PROTOCOL_VERSION, Ping, Pong,
    Ready, Shutdown, ToConnector,
};

type Orch = Fake<FromConnector, ToConnector>;

fn init(protocol: u32) -> ConnectorInit {
    ConnectorInit {
        protocol,
        connector: "cli".into(),
        connection: "cli-local".into(),
        config: BTreeMap::from([("USER".into(), "ada".into())]),
        secrets: Secrets(BTreeMap::from([("TOKEN".into(), "hunter2".into())])),
        state_dir: "/tmp/state/cli-local".into(),
    }
}

async fn connect() -> (Context, Orch) {
    let (transport, mut orch) = pair();
    let ctx = tokio::spawn(Context::connect(transport));
    orch.send(init(PROTOCOL_VERSION)).await;
    let ctx = within(ctx).await.unwrap().expect("handshake");
    (ctx, orch)
}

fn event(text: &str) -> Event {
    Event {
        name: "user_message".into(),
        message: Some(Message::text(text)),
        ..Event::default()
    }
}

fn emitted(msg: FromConnector) -> ipc_proto::Emit {
    match msg {
        FromConnector::Emit(e) => e,
        other => panic!("expected an emit, got {other:?}"),
    }
}

#[tokio::test]
async fn handshake_exposes_init_and_ready_carries_the_protocol() {
    let (ctx, mut orch) = connect().await;
    assert_eq!(ctx.connector(), "cli");
    assert_eq!(ctx.connection(), "cli-local");
    assert_eq!(ctx.config_value("USER"), Some("ada"));
    assert_eq!(ctx.secrets().get("TOKEN"), Some("hunter2"));
    assert_eq!(
        ctx.state_dir(),
        std::path::Path::new("/tmp/state/cli-local")
    );

    ctx.ready().await;
    ctx.ready().await;
    ctx.info("up");
    assert_eq!(
        orch.recv().await,
        FromConnector::Ready(Ready {
            protocol: Some(PROTOCOL_VERSION),
            features: Vec::new(),
        })
    );
    // The second ready() sent nothing: the log comes next.
    assert!(matches!(orch.recv().await, FromConnector::Log(l) if l.message == "up"));
}

#[tokio::test]
async fn debug_output_redacts_secrets() {
    let (ctx, _orch) = connect().await;
    let debug = format!("{ctx:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[tokio::test]
async fn pipelined_emits_resolve_with_their_own_acks_out_of_order() {
    let (ctx, mut orch) = connect().await;
    let emitter = ctx.emitter();
    let first = emitter.emit(event("one"));
    let second = emitter.emit_with_key(event("two"), "delivery-2");
    let third = emitter.emit(event("three"));

    // The first emit implies ready.
    assert!(matches!(orch.recv().await, FromConnector::Ready(_)));
    let sent: Vec<_> = [orch.recv().await, orch.recv().await, orch.recv().await]
        .into_iter()
        .map(emitted)
        .collect();
    let seqs: Vec<u64> = sent.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(sent[1].dedupe_key.as_deref(), Some("delivery-2"));
    assert_eq!(sent[2].event.message, Some(Message::text("three")));

    orch.send(EmitAck {
        seq: 3,
        duplicate: None,
    })
    .await;
    assert_eq!(within(third).await, Ok(Accepted { duplicate: false }));
    orch.send(EmitAck {
        seq: 2,
        duplicate: Some(true),
    })
    .await;
    orch.send(EmitAck {
        seq: 1,
        duplicate: Some(false),
    })
    .await;
    assert_eq!(within(first).await, Ok(Accepted { duplicate: false }));
    assert_eq!(within(second).await, Ok(Accepted { duplicate: true }));
    assert_eq!(emitter.in_flight(), 0);
}

#[tokio::test]
async fn emits_that_fill_the_socket_go_out_whole_and_in_order_once_read() {
    use futures::FutureExt;

    let (ctx, mut orch) = connect().await;
    ctx.ready().await;
    assert!(matches!(orch.recv().await, FromConnector::Ready(_)));
    // 200 × 32 KiB: far more than a socket pair buffers, so most of it waits
    // for the reader, behind a task.
    let big = "x".repeat(32 * 1024);
    let pending: Vec<_> = (0..200).map(|_| ctx.emit(event(&big))).collect();
    let flushed = ctx.flush(std::time::Duration::from_secs(60));
    tokio::pin!(flushed);
    assert!(
        flushed.as_mut().now_or_never().is_none(),
        "nothing read yet, so not all written"
    );
    ctx.info("after the emits");
    for seq in 1..=200 {
        let emit = emitted(orch.recv().await);
        assert_eq!(emit.seq, seq);
        assert_eq!(
            emit.event.message.as_ref().and_then(Message::as_text),
            Some(big.as_str())
        );
    }
    assert!(matches!(orch.recv().await, FromConnector::Log(l) if l.message == "after the emits"));
    within(flushed).await;
    for seq in 1..=200 {
        orch.send(EmitAck {
            seq,
            duplicate: None,
        })
        .await;
    }
    for p in pending {
        assert_eq!(within(p).await, Ok(Accepted { duplicate: false }));
    }
}

#[tokio::test]
async fn a_nack_surfaces_with_its_kind() {
    let (ctx, mut orch) = connect().await;
    let pending = ctx.emit(event("x"));
    orch.recv().await; // ready
    let seq = emitted(orch.recv().await).seq;
    let error = NackError {
        kind: NackKind::Overloaded,
        message: "queue full".into(),
    };
    orch.send(EmitNack { seq, error }).await;
    assert_eq!(
        within(pending).await,
        Err(EmitError::Nacked {
            kind: NackKind::Overloaded,
            message: "queue full".into()
        })
    );
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let (_ctx, mut orch) = connect().await;
    orch.send(Ping { nonce: 42 }).await;
    assert_eq!(orch.recv().await, FromConnector::Pong(Pong { nonce: 42 }));
}

#[tokio::test]
async fn shutdown_resolves_and_sets_the_grace() {
    let (ctx, mut orch) = connect().await;
    let token = ctx.shutdown_token();
    assert!(!token.is_cancelled());
    orch.send(Shutdown { grace_ms: 1234 }).await;
    within(ctx.shutdown()).await;
    assert!(token.is_cancelled());
    assert_eq!(ctx.grace().as_millis(), 1234);
}

#[tokio::test]
async fn a_closed_channel_fails_emits_in_flight_and_later() {
    let (ctx, mut orch) = connect().await;
    let pending = ctx.emit(event("x"));
    orch.recv().await; // ready
    orch.recv().await; // the emit
    drop(orch);
    assert_eq!(within(pending).await, Err(EmitError::Closed));
    within(ctx.shutdown()).await;
    assert_eq!(
        within(ctx.emit(event("late"))).await,
        Err(EmitError::Closed)
    );
}

#[tokio::test]
async fn serve_runs_until_shutdown_and_exits_0() {
    let (transport, mut orch): (_, Orch) = pair();
    let served = tokio::spawn(connector_sdk::serve(transport, |ctx: Context| async move {
        ctx.ready().await;
        ctx.shutdown().await;
        ctx.info("bye");
        Ok(())
    }));
    orch.send(init(PROTOCOL_VERSION)).await;
    assert!(matches!(orch.recv().await, FromConnector::Ready(_)));
    orch.send(Shutdown { grace_ms: 5000 }).await;
    assert!(matches!(orch.recv().await, FromConnector::Log(l) if l.message == "bye"));
    assert_eq!(within(served).await.unwrap(), ExitCode::SUCCESS);
}

#[tokio::test]
async fn the_context_clock_is_the_system_clock_unless_one_is_injected() {
    let (ctx, _orch) = connect().await;
    assert!(!ctx.clock().is_mock());

    let mock = MockClock::at_unix(42);
    let (transport, mut orch): (_, Orch) = pair();
    let ctx = tokio::spawn(Context::connect_with_clock(transport, mock.clock()));
    orch.send(init(PROTOCOL_VERSION)).await;
    let ctx = within(ctx).await.unwrap().expect("handshake");
    assert_eq!(ctx.clock().now(), mock.now());
    mock.advance(std::time::Duration::from_secs(1));
    assert_eq!(ctx.clock().now(), mock.now(), "the context reads the mock");
}

#[tokio::test]
async fn serve_with_clock_hands_the_clock_to_the_connector() {
    let mock = MockClock::at_unix(42);
    let (transport, mut orch): (_, Orch) = pair();
    let served = tokio::spawn(connector_sdk::serve_with_clock(
        transport,
        mock.clock(),
        |ctx: Context| async move {
            let clock: Clock = ctx.clock();
            let secs = clock.now().duration_since(std::time::UNIX_EPOCH)?;
            ctx.info(format!("at {}", secs.as_secs()));
            Ok(())
        },
    ));
    orch.send(init(PROTOCOL_VERSION)).await;
    assert!(matches!(orch.recv().await, FromConnector::Log(l) if l.message == "at 42"));
    assert_eq!(within(served).await.unwrap(), ExitCode::SUCCESS);
}

#[tokio::test]
async fn a_config_error_exits_78() {
    let (transport, mut orch): (_, Orch) = pair();
    let served = tokio::spawn(connector_sdk::serve(transport, |_ctx| async move {
        Err(ConfigError::new("PORT is not a number").into())
    }));
    orch.send(init(PROTOCOL_VERSION)).await;
    assert_eq!(within(served).await.unwrap(), ExitCode::from(78));
}

#[tokio::test]
async fn a_wrong_protocol_version_is_refused_with_78_and_no_reply() {
    let (transport, mut orch): (_, Orch) = pair();
    let served = tokio::spawn(connector_sdk::serve(transport, |_ctx| async move {
        panic!("the connector must not run");
    }));
    orch.send(init(PROTOCOL_VERSION + 1)).await;
    assert_eq!(within(served).await.unwrap(), ExitCode::from(78));
    assert_eq!(orch.next().await, None, "nothing is sent on a mismatch");
}

#[tokio::test]
async fn jsonl_transport_speaks_the_json_shapes() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let (child_in, mut orch_out) = tokio::io::duplex(4096);
    let (orch_in, child_out) = tokio::io::duplex(4096);
    let transport = connector_sdk::Transport::jsonl(child_in, child_out);
    let ctx = tokio::spawn(Context::connect(transport));
    let line = r#"{"type":"init","protocol":1,"connector":"lines","connection":"l","config":{},"secrets":{"K":"v"},"stateDir":"/tmp/x"}"#;
    orch_out
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let ctx = within(ctx).await.unwrap().expect("handshake");
    let pending = ctx.emit(event("hi"));

    let mut lines = BufReader::new(orch_in).lines();
    let mut next = async || within(lines.next_line()).await.unwrap().unwrap();
    assert_eq!(next().await, r#"{"type":"ready","protocol":1}"#);
    let emit: serde_json::Value = serde_json::from_str(&next().await).unwrap();
    assert_eq!(emit["type"], "emit");
    assert_eq!(emit["seq"], 1);
    assert_eq!(emit["event"]["message"]["text"], "hi");
    orch_out
        .write_all(b"{\"type\":\"ack\",\"seq\":1}\n")
        .await
        .unwrap();
    assert_eq!(within(pending).await, Ok(Accepted { duplicate: false }));
}
